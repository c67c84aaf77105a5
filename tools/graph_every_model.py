"""`python tools/graph_every_model.py DATA OUT [PAIRS [BATCH]]`: a short training run of every
registered model, one after another in one process, through the product's own `runs.train_run`
with the defaults, so that on one CUDA GPU each step is recorded as a CUDA graph, as `mmdigits
train` does there by default for any `--model`. One line a model: seconds, validation accuracy, or
the run's one-line error. The recording itself needs a GPU; on the CPU, tests/test_engine.py checks
every model's step operation by operation for what would stop one. tools/gpu_bench.sh runs this on
a lent GPU (6,000 pairs, batch 512, 2 epochs: 18 steps, 3 of them before the recording). A
measurement, not the product."""

import argparse
import json
import sys
import time
from pathlib import Path

from mmdigits.config import TrainConfig
from mmdigits.data import load_train
from mmdigits.errors import MmdigitsError
from mmdigits.models import list_models
from mmdigits.runs import train_run


def main(data_dir: Path, out: Path, pairs: int, batch: int) -> int:
    """Train each model; the number of models whose run failed."""
    try:
        data = load_train(data_dir)
    except MmdigitsError as error:
        sys.exit(f"Error: {error}")
    failed = 0
    for name in list_models():
        config = TrainConfig(
            data=str(data_dir), model=name, out=str(out / name), epochs=2, batch_size=batch, max_samples=pairs
        )
        started = time.perf_counter()
        try:
            summary = train_run(config, data=data)
            recorded = json.loads((summary.out / "config.json").read_text())["cuda_graph"]
            found = f"val acc {summary.result.history[-1]['val_acc']:.4f}, step recorded as a CUDA graph: {recorded}"
        except (MmdigitsError, RuntimeError) as error:  # RuntimeError: CUDA's own, so the other models still run
            failed, found = failed + 1, f"failed: {(str(error).strip().splitlines() or [type(error).__name__])[0]}"
        print(f"{name}: {time.perf_counter() - started:.1f} s, {found}", flush=True)
    return failed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("pairs", type=int, nargs="?", default=6000, help="training rows used (--max-samples)")
    parser.add_argument("batch", type=int, nargs="?", default=512)
    arguments = parser.parse_args()
    sys.exit(main(arguments.data, arguments.out, arguments.pairs, arguments.batch))

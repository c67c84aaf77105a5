"""`python tools/gpu_pieces.py DATA [OUT]`: the pieces of a GPU run that tools/trace_run.py times
whole, each beside the cheaper way to do it that waits for a GPU to be measured on (docs/benchmarks.md,
"Pieces of a GPU run, timed one by one"): the split's subsets copied to the device against the whole
arrays copied once and gathered there; validation in chunks of 2,048 pairs against one chunk; a
checkpoint save as `train` does it against one batched copy to pinned host memory first; the
curves drawn with and without pyplot's import. The flagship, its weights as initialised (the
seconds do not depend on them). Split pieces once, as a run pays them (first touch of their memory
included); the rest the median of five after one untimed call. A measurement, not the product."""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmdigits.bench import peak_memory_mb
from mmdigits.checkpoint import resume_state, save_checkpoint, training_payload
from mmdigits.config import TrainConfig
from mmdigits.data import load_train, train_val_indices
from mmdigits.engine import Tensors, evaluate, make_optimizer
from mmdigits.errors import MmdigitsError
from mmdigits.inference import as_tensor, inference_batch
from mmdigits.models import create_model
from mmdigits.reporting import plot_curves
from mmdigits.runtime import configure, pick_device, use_bf16


def seconds(call: Callable[[], object], device: torch.device, repeats: int = 1) -> float:
    """Wall seconds of `call` with the device's queue drained; the median of `repeats` calls after
    one untimed call when `repeats` > 1, else one call."""
    if repeats > 1:
        call()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def peak_gb(device: torch.device, call: Callable[[], object]) -> str:
    """The device memory `call` peaks at, in GB, as `bench` reads it; empty on a CPU."""
    if device.type != "cuda":
        return ""
    torch.cuda.reset_peak_memory_stats(device)
    call()
    return f", peak {peak_memory_mb(device) / 1024:.2f} GB"


def to_host(payload: dict, device: torch.device) -> dict:
    """The payload with every device tensor copied into pinned host memory, all copies queued
    before one wait, where torch.save waits on each tensor's copy in turn."""

    def pinned(value):
        if isinstance(value, dict):
            return {key: pinned(item) for key, item in value.items()}
        if isinstance(value, list):
            return [pinned(item) for item in value]
        if isinstance(value, torch.Tensor) and value.is_cuda:
            return torch.empty(value.shape, dtype=value.dtype, pin_memory=True).copy_(value, non_blocking=True)
        return value

    if device.type != "cuda":
        return payload
    host = pinned(payload)
    torch.cuda.synchronize(device)
    return host


def main(data_dir: Path, out: Path) -> None:
    device = pick_device("auto")
    configure(device, autotune=False)  # as a run that records its step
    bf16 = use_bf16("auto", device)
    try:
        data = load_train(data_dir)
    except MmdigitsError as error:
        sys.exit(f"Error: {error}")
    rows: dict[str, np.ndarray] = {}
    placed: dict[str, tuple] = {}

    def group() -> None:
        rows["train"], rows["val"], _ = train_val_indices(data.labels, data.audio, 0.1, 0)

    def copy_subsets() -> None:  # what runs.split_for and engine.fit do
        placed["subsets"] = tuple(Tensors.from_split(data.subset(rows[part]), device) for part in ("train", "val"))

    def gather_on_device() -> None:
        image, audio = as_tensor(data.image, device), as_tensor(data.audio, device)
        parts = (torch.from_numpy(rows[part]).to(device) for part in ("train", "val"))
        placed["gathered"] = tuple((image.index_select(0, part), audio.index_select(0, part)) for part in parts)

    print(
        f"split ({len(data)} pairs, each piece once): grouping {seconds(group, device):.2f} s; subsets copied to "
        f"the device {seconds(copy_subsets, device):.2f} s, whole arrays copied and both parts gathered "
        f"there {seconds(gather_on_device, device):.2f} s",
        flush=True,
    )
    train, val = placed["subsets"]
    model = create_model("cnn_transformer_attention").to_device(device)
    model.fit_normalisation(train.image, train.audio)
    passes = []
    for batch in (inference_batch(device), len(val.labels)):  # today's chunks, then the whole split at once

        def validate(batch: int = batch) -> None:
            evaluate(model, val, batch, bf16)

        passes.append(f"chunks of {batch}: {seconds(validate, device, 5) * 1e3:.1f} ms{peak_gb(device, validate)}")
    print(f"validation ({len(val.labels)} pairs): " + "; ".join(passes), flush=True)

    config = TrainConfig(data=str(data_dir), out=str(out)).resolved(len(train.labels), device.type == "cuda")
    optimizer, scheduler = make_optimizer(model, config, 100)
    model.train()
    model(train.image[:64], train.audio[:64]).float().sum().backward()
    optimizer.step()
    row = {"epoch": 1, "val_f1": 0.5}

    def payload() -> dict:
        return training_payload(model, config.to_dict(), row) | resume_state(optimizer, scheduler, [row], 1, 0.5)

    as_train = seconds(lambda: save_checkpoint(out / "last.pth", payload()), device, 5)
    batched = seconds(lambda: save_checkpoint(out / "last.pth", to_host(payload(), device)), device, 5)
    print(f"checkpoint save (last.pth): as train {as_train * 1e3:.1f} ms, batched copy first {batched * 1e3:.1f} ms")

    history = [
        {"epoch": e, "train_loss": 1 / e, "train_acc": 1 - 1 / e, "val_loss": 1 / e, "val_acc": 1 - 0.5 / e}
        for e in range(1, 21)
    ]
    first = seconds(lambda: plot_curves(out / "curves.png", history, "curves"), device)
    again = seconds(lambda: plot_curves(out / "curves.png", history, "curves"), device)
    print(f"curves (20 epochs): with pyplot's import {first:.2f} s, drawn again {again:.2f} s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path, nargs="?", help="where the saved files go (default: a temporary folder)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = arguments.out or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        main(arguments.data, folder)

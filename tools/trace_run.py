"""`python tools/trace_run.py train ...`: the mmdigits CLI with the wall-clock seconds of each piece
of a training run written to stderr when it exits, one line starting `trace:`. tools/gpu_bench.sh
uses it to tell where a GPU run's time outside its epochs goes (15.7 of 40.3 s on the H200 on
2026-11-28), which the CPU cannot say: CUDA's start-up lands in whichever piece touches the device
first. Unlike cProfile it adds nothing inside the epochs (each wrapped piece runs once a run or
once an epoch). A measurement, not the product."""

import atexit
import collections
import functools
import sys
import time

started = time.perf_counter()
import torch  # noqa: E402, F401  (timed: the import is one of the pieces)

torch_import = time.perf_counter() - started

import mmdigits.engine as engine  # noqa: E402
import mmdigits.runs as runs  # noqa: E402
from mmdigits.cli import run  # noqa: E402
from mmdigits.models.network import MultimodalNet  # noqa: E402

seconds: dict[str, list[float]] = collections.defaultdict(list)


def timed(owner, name: str, label: str | None = None) -> None:
    """Replace owner.name by a wrapper that records each call's wall seconds under `label`."""
    function = getattr(owner, name)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[label or name].append(time.perf_counter() - began)

    setattr(owner, name, wrapper)


for piece in ("init_distributed", "load_train", "split_for", "input_summary", "create_model", "plot_curves"):
    timed(runs, piece)
for piece in ("make_optimizer", "train_one_epoch", "evaluate", "save_epoch", "calibrate_best"):
    timed(engine, piece)
timed(MultimodalNet, "to_device", "model_to_device")  # the first CUDA call: the context starts here
timed(MultimodalNet, "fit_normalisation")
from_split = engine.Tensors.from_split  # bound to the class already


def timed_from_split(cls, split, device):
    """Host-to-device copies of a split (a classmethod, so wrapped by hand)."""
    began = time.perf_counter()
    try:
        return from_split(split, device)
    finally:
        seconds["tensors_to_device"].append(time.perf_counter() - began)


engine.Tensors.from_split = classmethod(timed_from_split)


@atexit.register
def report() -> None:
    """Totals, with the first epoch apart from the rest (the device's lazy start-up lands there)."""
    parts = [f"wall {time.perf_counter() - started:.2f}", f"import_torch {torch_import:.2f}"]
    for label, values in seconds.items():
        if label == "train_one_epoch" and len(values) > 1:
            parts.append(f"first_epoch {values[0]:.2f} other_epochs {sum(values[1:]):.2f}x{len(values) - 1}")
        else:
            parts.append(f"{label} {sum(values):.2f}" + (f"x{len(values)}" if len(values) > 1 else ""))
    print("trace: " + " ".join(parts), file=sys.stderr)


run()

"""`mmdigits bench`: training and inference speed of our models beside the reference loop, in
one run, on generated data at the competition's scale."""

from __future__ import annotations

import itertools
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mmdigits.artifacts import refuse_file_overwrite, write_json
from mmdigits.config import TrainConfig
from mmdigits.data import Split
from mmdigits.engine import fit
from mmdigits.errors import UsageError
from mmdigits.inference import logits_for
from mmdigits.models import create_model
from mmdigits.reference import train_reference
from mmdigits.runtime import configure, pick_device, use_bf16

REFERENCE = "reference (competition solution)"
StepOptions = dict[str, bool | None]  # how our models' steps run: TrainConfig's compile and cuda_graph
NO_OPTIONS: StepOptions = {}
TARGET_ACCURACY = 0.99  # time-to-accuracy: training seconds until validation reaches this


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory of the last measurement, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inference_rate(model: torch.nn.Module, data: Split, device: torch.device, bf16: bool) -> float:
    """Pairs per second of `logits_for` over the whole split, best of two timed runs."""
    model.eval()
    logits_for(model, data.image[:256], data.audio[:256], device, bf16=bf16)  # warm-up
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        logits_for(model, data.image, data.audio, device, bf16=bf16)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return len(data) / best


def speed_figures(n_train: int, history: list[dict[str, float]]) -> dict[str, float | None]:
    """Training speed from per-epoch rows (train_seconds, val_acc): pairs/s over the whole run and
    in a steady epoch (the median after the first), the first epoch's extra seconds (compilation,
    autotuning, graph capture), and the training seconds until validation first reaches the target
    accuracy (None if it never does)."""
    seconds = [row["train_seconds"] for row in history]
    steady = statistics.median(seconds[1:] or seconds)
    elapsed = itertools.accumulate(seconds)
    reached = next((t for t, row in zip(elapsed, history, strict=True) if row["val_acc"] >= TARGET_ACCURACY), None)
    return {
        "epochs": len(history),
        "samples_per_s": n_train * len(seconds) / sum(seconds),
        "steady_samples_per_s": n_train / steady,
        "warmup_s": seconds[0] - steady,
        "seconds_to_target": reached,
        "val_acc": history[-1]["val_acc"],
    }


def bench_model(
    name: str, train: Split, val: Split, epochs: int, device: torch.device, seed: int, step: StepOptions = NO_OPTIONS
) -> dict[str, float | None]:
    """Train `name` with the default recipe for `epochs`, its device configured as `train` does;
    time training and inference."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=name, epochs=epochs, seed=seed, out=out, device=str(device), **step)
        configure(device, autotune=not config.records_graph(device.type == "cuda"))
        torch.manual_seed(seed)
        model = create_model(name)
        started = time.perf_counter()
        result = fit(model, train, val, config, device)
        fit_seconds = time.perf_counter() - started
    return speed_figures(len(train), result.history) | {
        "fit_seconds": fit_seconds,  # setup, training, validation, checkpoints and calibration
        "inference_per_s": inference_rate(model, val, device, use_bf16(config.precision, device)),
        "peak_memory_mb": peak_memory_mb(device),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def bench_reference(train: Split, val: Split, epochs: int, device: torch.device, seed: int) -> dict[str, float | None]:
    configure(device)  # threads on a CPU; on CUDA cuDNN autotunes its convolutions, to the loop's advantage
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    history, parameters = train_reference(train, val, epochs, device, seed)
    return speed_figures(len(train), history) | {
        "fit_seconds": time.perf_counter() - started,
        "inference_per_s": None,  # not measured: it only trains
        "peak_memory_mb": peak_memory_mb(device),
        "parameters": parameters,
    }


def run_bench(
    models: list[str],
    train: Split,
    val: Split,
    epochs: int,
    device: torch.device,
    seed: int = 0,
    step: StepOptions = NO_OPTIONS,
    reference_epochs: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Benchmark the reference loop (for `reference_epochs`, default `epochs`: its speed is steady
    after the first), then each model; rows carry the speed-up over the reference's pairs/s."""
    reference_epochs = reference_epochs or epochs
    log(f"reference loop: {len(train)} train pairs, {reference_epochs} epochs")
    rows = {REFERENCE: bench_reference(train, val, reference_epochs, device, seed)}
    for name in models:
        log(f"{name}: {epochs} epochs")
        rows[name] = bench_model(name, train, val, epochs, device, seed, step)
    for row in rows.values():
        row["speedup"] = row["samples_per_s"] / rows[REFERENCE]["samples_per_s"]
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "torch": str(torch.__version__),
        "train_pairs": len(train),
        "val_pairs": len(val),
        "epochs": epochs,
        "step_options": {  # as the runs resolved them: the CUDA graph is on by default on a GPU
            "compile": bool(step.get("compile")),
            "cuda_graph": TrainConfig(**step).records_graph(device.type == "cuda"),
        },
        "target_accuracy": TARGET_ACCURACY,
        "rows": rows,
    }


def bench_generated(
    models: list[str],
    samples: int,
    epochs: int,
    device_name: str,
    step: StepOptions,
    out: Path,
    reference_epochs: int = 0,
    log: Callable[[str], None] = lambda message: None,
    overwrite: bool = False,
) -> dict:
    """Generate `samples` shipped-profile pairs (and a sixth as many for validation), bench, write `out`
    (refused up front if it exists, unless `overwrite`: a GPU or 60k-pair run is not cheap to repeat)."""
    from mmdigits.synth import generate

    if samples < 100 or epochs < 1 or reference_epochs < 0:
        raise UsageError("--samples must be at least 100, --epochs at least 1 and --reference-epochs at least 0")
    refuse_file_overwrite(out, overwrite, "benchmark figures")
    device = pick_device(device_name)
    TrainConfig(**step).validate().check_place(device.type, distributed=False)
    log(f"generating {samples} + {samples // 6} pairs...")
    train, val, _ = generate(samples, max(samples // 6, 10), seed=0)
    figures = run_bench(models, train, val, epochs, device, 0, step, reference_epochs, log)
    write_json(out, figures)
    return figures

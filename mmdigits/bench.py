"""`mmdigits bench`: training and inference speed of our models beside the reference loop, in
one run, on generated data at the competition's scale."""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mmdigits.artifacts import write_json
from mmdigits.config import TrainConfig
from mmdigits.data import Split
from mmdigits.engine import fit
from mmdigits.errors import UsageError
from mmdigits.inference import logits_for
from mmdigits.models import create_model
from mmdigits.reference import train_reference
from mmdigits.runtime import configure, pick_device, use_bf16


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


def bench_model(
    name: str, train: Split, val: Split, epochs: int, device: torch.device, seed: int, compile: bool = False
) -> dict[str, float]:
    """Train `name` with the default recipe for `epochs`; time training and inference."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=name, epochs=epochs, seed=seed, out=out, device=str(device), compile=compile)
        torch.manual_seed(seed)
        model = create_model(name)
        result = fit(model, train, val, config, device)
    train_seconds = sum(row["train_seconds"] for row in result.history)
    return {
        "samples_per_s": len(train) * epochs / train_seconds,
        "seconds_per_epoch": sum(row["seconds"] for row in result.history) / epochs,
        "val_acc": result.history[-1]["val_acc"],
        "inference_per_s": inference_rate(model, val, device, use_bf16(config.precision, device)),
        "peak_memory_mb": peak_memory_mb(device),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def bench_reference(train: Split, val: Split, epochs: int, device: torch.device, seed: int) -> dict[str, float]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    row = train_reference(train, val, epochs, device, seed)
    return row | {"inference_per_s": float("nan"), "peak_memory_mb": peak_memory_mb(device)}


def run_bench(
    models: list[str],
    train: Split,
    val: Split,
    epochs: int,
    device: torch.device,
    seed: int = 0,
    compile: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Benchmark the reference loop, then each model; rows carry the speed-up over the reference."""
    configure(device)
    log(f"reference loop: {len(train)} train pairs, {epochs} epochs")
    rows = {"reference (competition solution)": bench_reference(train, val, epochs, device, seed)}
    reference_rate = rows["reference (competition solution)"]["samples_per_s"]
    for name in models:
        log(f"{name}: {epochs} epochs")
        rows[name] = bench_model(name, train, val, epochs, device, seed, compile)
    for row in rows.values():
        row["speedup"] = row["samples_per_s"] / reference_rate
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "torch": str(torch.__version__),
        "train_pairs": len(train),
        "val_pairs": len(val),
        "epochs": epochs,
        "rows": rows,
    }


def bench_generated(
    models: list[str],
    samples: int,
    epochs: int,
    device_name: str,
    compile: bool,
    out: Path,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Generate `samples` shipped-profile pairs (and a sixth as many for validation), bench, write `out`."""
    from mmdigits.synth import generate

    if samples < 100 or epochs < 1:
        raise UsageError("--samples must be at least 100 and --epochs at least 1")
    log(f"generating {samples} + {samples // 6} pairs...")
    train, val, _ = generate(samples, max(samples // 6, 10), seed=0)
    figures = run_bench(models, train, val, epochs, pick_device(device_name), compile=compile, log=log)
    write_json(out, figures)
    return figures

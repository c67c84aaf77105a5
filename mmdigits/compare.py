"""`mmdigits compare`: several models x several seeds on one split, summarised honestly
(mean +- std over seeds, with the command, hardware and torch version) into othermodels/."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from mmdigits.artifacts import pyplot, write_json, write_text
from mmdigits.config import TrainConfig
from mmdigits.data import load_train
from mmdigits.errors import UsageError
from mmdigits.metrics import mean_std
from mmdigits.profiles import provenance_command
from mmdigits.reporting import CURVE_LABELS, save_curves
from mmdigits.runs import refuse_runs, split_for, train_run

TARGET_ACCURACY = 0.97


def seconds_to(history: list[dict[str, float]], target: float = TARGET_ACCURACY) -> float | None:
    """Training seconds until validation accuracy first reached `target` (None if never)."""
    elapsed = 0.0
    for row in history:
        elapsed += row["seconds"]
        if row.get("val_acc", 0.0) >= target:
            return elapsed
    return None


def summarise(name: str, histories: list[list[dict[str, float]]], parameters: int) -> dict:
    """Final-epoch-of-best metrics per seed -> mean and std."""
    best = [max(history, key=lambda row: row["val_f1"]) for history in histories]
    reached = [seconds_to(history) for history in histories]
    reached_s = [value for value in reached if value is not None]

    return {
        "model": name,
        "parameters": parameters,
        "seeds": len(histories),
        "val_acc": mean_std([row["val_acc"] for row in best]),
        "val_f1": mean_std([row["val_f1"] for row in best]),
        "seconds_per_epoch": mean_std([float(np.mean([row["seconds"] for row in h])) for h in histories]),
        f"seconds_to_{int(TARGET_ACCURACY * 100)}": mean_std(reached_s) if reached_s else None,
        "runs_reaching_target": len(reached_s),
        "histories": histories,
    }


def plot_band(path: Path, name: str, histories: list[list[dict[str, float]]]) -> Path:
    """Mean loss and accuracy curves over seeds with a +-1 std band."""
    plt = pyplot()

    length = min(len(history) for history in histories)
    epochs = np.arange(1, length + 1)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "acc"), strict=True):
        for split in ("train", "val"):
            values = np.array([[row[f"{split}_{metric}"] for row in history[:length]] for history in histories])
            mean, std = values.mean(axis=0), values.std(axis=0)
            axis.plot(epochs, mean, "-o", markersize=3, label=CURVE_LABELS[split])
            axis.fill_between(epochs, mean - std, mean + std, alpha=0.25)
        axis.set(xlabel="epoch", title=metric if metric == "loss" else "accuracy")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{name}: mean +- std over {len(histories)} seeds")
    return save_curves(figure, path)


def compare_models(
    names: list[str],
    seeds: int,
    base: TrainConfig,
    out: Path,
    runs: Path,
    command: str,
    log: Callable[[str], None] = lambda message: None,
    overwrite: bool = False,
) -> Path:
    """Train every model with seeds 0..seeds-1 on one split of base.data (the split's seed is
    base.seed); write OUT/README.md, with `command` and how the data was made, and return it."""
    import torch

    if seeds < 1:
        raise UsageError("--seeds must be at least 1")
    refuse_runs([runs / name / f"seed{seed}" for name in names for seed in range(seeds)], overwrite)
    splits = split_for(base, load_train(Path(base.data)))[:2]  # one split for every model and seed: fair
    results = []
    for name in names:
        histories, parameters = [], 0
        for seed in range(seeds):
            log(f"{name}, seed {seed}")
            config = replace(base, model=name, seed=seed, out=str(runs / name / f"seed{seed}"))
            summary = train_run(config, splits=splits)
            histories.append(summary.result.history)
            parameters = summary.parameters
        result = summarise(name, histories, parameters)
        plot_band(out / name / "loss_acc.png", name, histories)
        write_json(out / name / "metrics.json", result)
        results.append(result)
    made = provenance_command(Path(base.data))
    command = f"{made} && {command}" if made else command
    return write_table(out / "README.md", results, command, hardware(), str(torch.__version__))


def write_table(path: Path, results: list[dict], command: str, hardware: str, torch_version: str) -> Path:
    """othermodels/README.md: one row per model, every number with its provenance."""
    target = f"seconds_to_{int(TARGET_ACCURACY * 100)}"
    lines = [
        "# Other models, measured",
        "",
        f"Produced by `{command}` on {hardware}, torch {torch_version}. Validation: a stratified, "
        "duplicate-audio-grouped 20 % split, the same for every model and seed. Values are mean +- std "
        "over seeds of each run's best epoch (by validation macro-F1).",
        "",
        f"| model | parameters | val accuracy | val macro-F1 | s/epoch | s to {TARGET_ACCURACY:.0%} val acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        reach = row[target]
        reach_text = (
            f"{reach['mean']:.0f} +- {reach['std']:.0f} ({row['runs_reaching_target']}/{row['seeds']})"
            if reach
            else "not reached"
        )
        lines.append(
            f"| [{row['model']}]({row['model']}/metrics.json) | {row['parameters']:,} | "
            f"{row['val_acc']['mean']:.4f} +- {row['val_acc']['std']:.4f} | "
            f"{row['val_f1']['mean']:.4f} +- {row['val_f1']['std']:.4f} | "
            f"{row['seconds_per_epoch']['mean']:.1f} | {reach_text} |"
        )
    lines += ["", "Curves: `<model>/loss_acc.png` (mean with a +-1 std band over seeds).", ""]
    return write_text(path, "\n".join(lines))


def hardware() -> str:
    import os

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU, {len(os.sched_getaffinity(0))} cores"

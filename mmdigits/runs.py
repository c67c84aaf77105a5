"""A training run end to end: competition folder -> split -> model -> fit -> run folder.

The run folder holds config.json, metrics.csv, loss_acc.png, best.pth and last.pth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdigits.artifacts import write_json
from mmdigits.config import TrainConfig
from mmdigits.data import Split, load_train, train_val_indices
from mmdigits.engine import FitResult, fit
from mmdigits.models import create_model
from mmdigits.reporting import plot_curves, write_metrics_csv
from mmdigits.runtime import configure, pick_device, seed_everything


@dataclass
class RunSummary:
    out: Path
    result: FitResult
    parameters: int
    n_train: int
    n_val: int
    n_groups: int


def split_for(config: TrainConfig, data: Split) -> tuple[Split, Split | None, int]:
    """The run's train/validation split (stratified, duplicate-audio grouped, seeded)."""
    if config.max_samples:
        data = data.subset(np.arange(min(config.max_samples, len(data))))
    train_rows, val_rows, n_groups = train_val_indices(data.labels, data.audio, config.val_fraction, config.seed)
    val = data.subset(val_rows) if len(val_rows) else None
    return data.subset(train_rows), val, n_groups


def train_run(
    config: TrainConfig,
    resume: dict[str, Any] | None = None,
    data: Split | None = None,
    log: Callable[[str], None] = lambda message: None,
    on_epoch: Callable[[dict[str, float], FitResult], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Validate, load, split, build, fit; write the run folder's artifacts after every epoch."""
    config.validate()
    device = pick_device(config.device)
    configure(device, config.deterministic)
    data = load_train(Path(config.data)) if data is None else data
    train, val, n_groups = split_for(config, data)
    log(
        f"data: {len(train)} train / {len(val) if val else 0} val pairs; "
        f"{n_groups} distinct audio clips grouped so none is on both sides"
    )
    seed_everything(config.seed)
    model = create_model(config.model)
    parameters = sum(p.numel() for p in model.parameters())
    log(f"model: {config.model}, {parameters:,} parameters, on {device}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict())

    def after_epoch(row: dict[str, float], result: FitResult) -> None:
        write_metrics_csv(out / "metrics.csv", result.history)
        plot_curves(out / "loss_acc.png", result.history, f"{config.model}: training curves")
        if on_epoch is not None:
            on_epoch(row, result)

    result = fit(model, train, val, config, device, resume=resume, on_epoch=after_epoch, on_batch=on_batch)
    return RunSummary(out, result, parameters, len(train), len(val) if val else 0, n_groups)

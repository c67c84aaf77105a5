"""`mmdigits cv`: k stratified, duplicate-audio-grouped folds, one checkpoint per fold, and
out-of-fold predictions scored as mean +- std over folds and pooled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from mmdigits.artifacts import atomic_path, write_json
from mmdigits.checkpoint import load_model
from mmdigits.config import TrainConfig
from mmdigits.data import fold_ids, load_train
from mmdigits.errors import UsageError
from mmdigits.inference import probabilities
from mmdigits.metrics import mean_std, score
from mmdigits.runs import refuse_runs, train_run
from mmdigits.runtime import pick_device


def cross_validate(
    config: TrainConfig,
    folds: int,
    out: Path,
    log: Callable[[str], None] = lambda message: None,
    overwrite: bool = False,
) -> dict:
    """Train one model per fold of config.data into OUT/fold<k>/; write OUT/oof.csv and OUT/cv.json."""
    import pandas as pd

    if folds < 2:
        raise UsageError("--folds must be at least 2")
    refuse_runs([out / f"fold{fold}" for fold in range(folds)], overwrite)
    data = load_train(Path(config.data))
    if config.max_samples:
        data = data.subset(np.arange(min(config.max_samples, len(data))))
    fold_of_row = fold_ids(data.labels, data.audio, folds, config.seed)
    if (np.bincount(fold_of_row, minlength=folds) == 0).any():  # too few pairs (or clips) for every fold
        raise UsageError(f"--folds {folds} of {len(data)} pairs leaves a fold empty: give more pairs or fewer folds")
    device = pick_device(config.device)
    oof = np.zeros((len(data), 10), dtype=np.float32)
    per_fold = []
    for fold in range(folds):
        train_rows, val_rows = np.flatnonzero(fold_of_row != fold), np.flatnonzero(fold_of_row == fold)
        log(f"fold {fold + 1}/{folds}: {len(train_rows)} train / {len(val_rows)} out-of-fold pairs")
        fold_config = replace(config, out=str(out / f"fold{fold}"))
        train_run(fold_config, splits=(data.subset(train_rows), data.subset(val_rows)))
        model, _ = load_model(out / f"fold{fold}" / "best.pth", device)
        held_out = data.subset(val_rows)
        oof[val_rows] = probabilities(model, held_out.image, held_out.audio, device).numpy()
        per_fold.append(score(oof[val_rows].argmax(axis=1), held_out.labels))
    pooled = score(oof.argmax(axis=1), data.labels)
    summary = {
        "model": config.model,
        "folds": folds,
        "per_fold": per_fold,
        "accuracy": mean_std([fold["accuracy"] for fold in per_fold]),
        "macro_f1": mean_std([fold["macro_f1"] for fold in per_fold]),
        "pooled_oof": pooled,
    }
    table = pd.DataFrame(oof, columns=[f"p{digit}" for digit in range(10)])
    table.insert(0, "row_id", np.arange(len(data)))
    table.insert(1, "fold", fold_of_row)
    table.insert(2, "label", data.labels)
    table.insert(3, "prediction", oof.argmax(axis=1))
    with atomic_path(out / "oof.csv") as temporary:
        table.to_csv(temporary, index=False, float_format="%.6f")
    write_json(out / "cv.json", summary)
    return summary

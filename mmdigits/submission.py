"""The Kaggle submission: `row_id,label`, one row per test pair, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmdigits.artifacts import atomic_path
from mmdigits.errors import UsageError


def write_submission(path: Path, predictions: np.ndarray, label_column: str = "label") -> Path:
    """Validate the predictions, then write row ids 0..M-1 in test-file order."""
    predictions = np.asarray(predictions)
    if predictions.ndim != 1 or len(predictions) == 0:
        raise ValueError(f"expected a non-empty 1-D array of predictions, got shape {predictions.shape}")
    if predictions.min() < 0 or predictions.max() > 9:
        raise ValueError("predictions must be digits 0..9")
    if not label_column or "," in label_column or label_column == "row_id":
        raise UsageError(f"--label-column {label_column!r}: must be a plain column name other than row_id")
    lines = [f"row_id,{label_column}"] + [f"{row},{int(label)}" for row, label in enumerate(predictions)]
    with atomic_path(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def write_probabilities(path: Path, probabilities: np.ndarray) -> Path:
    """`row_id,p0..p9` with six decimals, atomically."""
    import pandas as pd

    table = pd.DataFrame(probabilities, columns=[f"p{digit}" for digit in range(10)])
    table.insert(0, "row_id", np.arange(len(table)))
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6f")
    return Path(path)

"""Scores: accuracy and the competition's metric, macro F1, plus per-class detail."""

from __future__ import annotations

import numpy as np


def score(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (the Kaggle metric) of integer predictions."""
    from sklearn.metrics import f1_score

    return {
        "accuracy": float(np.mean(predictions == labels)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=np.arange(10), zero_division=0)),
    }


def per_class(predictions: np.ndarray, labels: np.ndarray):
    """A DataFrame of precision, recall, F1 and support per digit."""
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=np.arange(10), zero_division=0
    )
    return pd.DataFrame(
        {"digit": np.arange(10), "precision": precision, "recall": recall, "f1": f1, "support": support}
    )


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the support-weighted gap between confidence and accuracy over equal-width bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(gap)

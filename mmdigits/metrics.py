"""Scores: accuracy and the competition's metric, macro F1, plus per-class detail."""

from __future__ import annotations

import numpy as np


def confusion(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(10, 10) counts, rows = true digit, columns = prediction. Counts add up across shards,
    which is how distributed validation agrees on one macro F1."""
    return np.bincount(np.asarray(labels) * 10 + np.asarray(predictions), minlength=100).reshape(10, 10)


def scores_from_confusion(counts: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (F1 per digit = 2TP / (2TP + FP + FN), 0 where undefined)."""
    true_positive = np.diag(counts).astype(np.float64)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)  # = 2TP + FP + FN
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(10), where=denominator > 0)
    return {"accuracy": float(true_positive.sum() / max(counts.sum(), 1)), "macro_f1": float(f1.mean())}


def score(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (the Kaggle metric) of integer predictions."""
    return scores_from_confusion(confusion(predictions, labels))


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

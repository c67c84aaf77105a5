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


def mean_std(values: list[float]) -> dict[str, float]:
    """The summary every multi-run figure carries (seeds, folds): mean and population std."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


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


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: its centre, share of the pairs, mean confidence and accuracy
    (NaN where empty); the one binning behind the ECE and the reliability plot."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "centre": (edges[:-1] + edges[1:]) / 2,
            "share": counts / max(len(labels), 1),
            "confidence": np.bincount(which, confidence, minlength=bins) / counts,
            "accuracy": np.bincount(which, correct, minlength=bins) / counts,
        }


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the support-weighted gap between confidence and accuracy over equal-width bins."""
    found = reliability_bins(probabilities, labels, bins)
    filled = found["share"] > 0
    return float(np.sum(found["share"][filled] * np.abs(found["accuracy"][filled] - found["confidence"][filled])))

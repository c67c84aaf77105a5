"""Scoring predictions against labels: overall, per class, per noise condition, confusion plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdigits.artifacts import pyplot, save_figure
from mmdigits.metrics import per_class, score


@dataclass
class Report:
    overall: dict[str, float]
    classes: object  # DataFrame: digit, precision, recall, f1, support
    conditions: dict[str, dict[str, float]]  # condition -> accuracy, macro_f1, n


def report(predictions: np.ndarray, labels: np.ndarray, conditions: np.ndarray | None = None) -> Report:
    """Accuracy and macro F1 overall, per digit, and per condition when conditions are given."""
    by_condition = {}
    if conditions is not None:
        for name in sorted(set(conditions), key=str):
            rows = conditions == name
            by_condition[str(name)] = {**score(predictions[rows], labels[rows]), "n": int(rows.sum())}
    return Report(score(predictions, labels), per_class(predictions, labels), by_condition)


def plot_confusion(path: Path, predictions: np.ndarray, labels: np.ndarray, title: str) -> Path:
    """Row-normalised confusion matrix with counts in the cells."""
    plt = pyplot()
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(labels, predictions, labels=np.arange(10))
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    shown = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for true in range(10):
        for guess in range(10):
            if counts[true, guess]:
                colour = "white" if rates[true, guess] > 0.5 else "black"
                axis.text(guess, true, counts[true, guess], ha="center", va="center", fontsize=8, color=colour)
    axis.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit", title=title)
    figure.colorbar(shown, ax=axis, label="share of the true digit")
    return save_figure(figure, path)

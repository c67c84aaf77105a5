"""Everything a person reads: results on stdout (`show`), and while a command runs, one rich
Console on stderr, progress bars, one row per epoch, metrics.csv and the training-curve plot."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mmdigits.artifacts import atomic_path, pyplot, save_figure
from mmdigits.errors import DataWarning

console = Console(stderr=True, highlight=False, soft_wrap=True)  # progress and logs; results go to stdout
results = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "seconds"]


def rank_zero() -> bool:
    """Whether this process says what every process of a torchrun job would say: rank 0 only."""
    return os.environ.get("RANK", "0") == "0"


def show(*renderables: Any) -> None:
    """Print results (lines, tables) to stdout, one after another."""
    for renderable in renderables:
        results.print(renderable)


def warn(lines: list[str]) -> None:
    """Warnings about a result go to stderr beside the progress lines, one line each."""
    for line in lines:
        console.print(f"warning: {line}")


@contextmanager
def data_warnings_as_lines() -> Iterator[None]:
    """While a command runs, each DataWarning (a file read in other units) is one `warning:` line,
    once per file and message (under torchrun from rank 0 only, as the progress bar); other
    warnings print as Python prints them."""
    with warnings.catch_warnings():
        warnings.simplefilter("default", DataWarning)  # a new filter: no message is muted from before
        print_other = warnings.showwarning

        def show_warning(message, category, *args, **kwargs) -> None:
            if issubclass(category, DataWarning):
                if rank_zero():
                    warn([str(message)])
            else:
                print_other(message, category, *args, **kwargs)

        warnings.showwarning = show_warning
        yield


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator:
    """A transient bar on a terminal (nothing in CI logs); yields advance(done, total)."""
    if not console.is_terminal or not rank_zero():
        yield lambda done, total=None: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)

        def advance(done: int, total: int | None = None) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def epoch_line(row: dict[str, float], best: bool) -> str:
    """One fixed-width line per epoch that reads well in a CI log."""
    text = f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
    if "val_acc" in row:
        text += f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} f1 {row['val_f1']:.4f}"
    text += f"  lr {row['lr']:.2e}  {row['seconds']:.1f}s"
    return text + ("  *best" if best else "")


def print_epoch(row: dict[str, float], result: Any) -> None:
    """An on_epoch callback: the epoch's line on the console, marked when it is the best so far."""
    console.print(epoch_line(row, best=result.best_epoch == row["epoch"]))


def write_metrics_csv(path: Path, history: list[dict[str, float]]) -> Path:
    """The epoch rows as CSV, rewritten atomically each epoch."""
    import pandas as pd

    table = pd.DataFrame(history)
    columns = [c for c in EPOCH_COLUMNS if c in table.columns] + [c for c in table.columns if c not in EPOCH_COLUMNS]
    with atomic_path(path) as temporary:
        table[columns].to_csv(temporary, index=False, float_format="%.6g")
    return Path(path)


# Under every plot of training curves: why training and validation sit far apart, so that nobody
# reads the gap as under- or overfitting.
CURVES_NOTE = (
    "train: the batches as the optimiser saw them (augmented unless --no-augment, a modality blanked at "
    "--modality-dropout);\nits loss adds label smoothing and the modality heads. val: the pairs as given."
)
CURVE_LABELS = {"train": "train (as trained on)", "val": "val"}


def plot_curves(path: Path, history: list[dict[str, float]], title: str) -> Path:
    """Loss and accuracy per epoch, train beside validation."""
    plt = pyplot()

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("val", "-s")):
        if f"{split}_loss" in history[0]:
            for axis, metric in ((loss_axis, "loss"), (acc_axis, "acc")):
                values = [row[f"{split}_{metric}"] for row in history]
                axis.plot(epochs, values, style, label=CURVE_LABELS[split], markersize=3)
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (loss_axis, acc_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return save_curves(figure, path)


def save_curves(figure: Any, path: Path) -> Path:
    """Save training curves with CURVES_NOTE under them, epochs ticked at whole numbers only (a
    short run's axis would otherwise read 1.2, 1.4, ...)."""
    from matplotlib.ticker import MaxNLocator  # pyplot() has set the backend up by now

    for axis in figure.axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.text(0.5, 0.005, CURVES_NOTE, ha="center", va="bottom", fontsize=8, color="0.35")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(figure, path)

"""`mmdigits data check`: what is in a competition folder before anything trains on it.

Per file: shape, dtype, range, spread, NaN/Inf; then label balance, duplicated audio clips, exact
train/test overlaps and the train-vs-test shift of each modality. Nothing here changes the data:
findings are words for the user, and errors are the loaders' own one-line DataErrors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmdigits.data import (
    TEST_AUDIO,
    TEST_IMAGE,
    TRAIN_AUDIO,
    TRAIN_IMAGE,
    TRAIN_LABELS,
    Split,
    audio_groups,
    load_array,
    load_test,
    load_train,
    require_folder,
)
from mmdigits.errors import DataWarning

SHIFT_WARNING = 0.5  # a test mean this many training spreads away from the training mean is a shift


@dataclass
class CheckReport:
    files: list[dict[str, str]] = field(default_factory=list)  # one row per file
    facts: list[str] = field(default_factory=list)  # what was found
    warnings: list[str] = field(default_factory=list)  # what deserves a look


def describe_file(path: Path) -> dict[str, str]:
    """Shape, dtype, range and spread of one .npy file as the user gave it (read without pickle)."""
    try:
        array = np.load(path, allow_pickle=False)
        values = np.asarray(array, dtype=np.float64)
    except (ValueError, TypeError, OSError, EOFError):
        load_array(path)  # raises the loaders' one-line DataError naming the file and the problem
        raise
    finite = np.isfinite(values)
    return {
        "file": path.name,
        "shape": str(tuple(array.shape)),
        "dtype": str(array.dtype),
        "range": f"[{values[finite].min():.4g}, {values[finite].max():.4g}]" if finite.any() else "-",
        "mean": f"{values[finite].mean():.4g}" if finite.any() else "-",
        "spread": f"{values[finite].std():.4g}" if finite.any() else "-",
        "nan/inf": str(int((~finite).sum())),
    }


def audio_units(audio: np.ndarray) -> str | None:
    """A warning when the MFCC are not in the competition's [0, 1] units (they still work)."""
    low, high = float(audio.min()), float(audio.max())
    if low < -0.5 or high > 1.5:
        return (
            f"audio spans [{low:.3g}, {high:.3g}]: unscaled MFCC, not the competition's [0, 1]. mmdigits "
            "standardises with the training statistics, so training works; keep train and test in the same units"
        )
    return None


def shift(train: np.ndarray, test: np.ndarray, axes: tuple[int, ...]) -> float:
    """Largest |test mean - train mean| over features, in training spreads."""
    spread = train.std(axis=axes) + 1e-12
    return float(np.max(np.abs(test.mean(axis=axes) - train.mean(axis=axes)) / spread))


def overlaps(train: np.ndarray, test: np.ndarray) -> int:
    """Test rows that are byte-identical to some training row."""
    seen = {row.tobytes() for row in np.ascontiguousarray(train.reshape(len(train), -1))}
    return sum(row.tobytes() in seen for row in np.ascontiguousarray(test.reshape(len(test), -1)))


def load_noting_units(load: Callable[[Path], Split], data_dir: Path, report: CheckReport) -> Split:
    """`load(data_dir)`, with what the loader read in other units (DataWarning: 0..255 pixels)
    among the report's warnings, where the user reads it beside the rest."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        split = load(data_dir)
    report.warnings += [str(found.message) for found in caught if issubclass(found.category, DataWarning)]
    return split


def check_folder(data_dir: Path) -> CheckReport:
    """Describe every competition file in `data_dir` and what training on them would meet."""
    data_dir = require_folder(data_dir)
    report = CheckReport()
    for name in (TRAIN_IMAGE, TRAIN_AUDIO, TEST_IMAGE, TEST_AUDIO):
        if (data_dir / name).is_file():
            report.files.append(describe_file(data_dir / name))
    train = load_noting_units(load_train, data_dir, report)  # raises the one-line DataError of the first real problem
    counts = np.bincount(train.labels, minlength=10)
    report.facts.append(f"{TRAIN_LABELS}: {len(train)} labels; per digit " + " ".join(map(str, counts)))
    if 0 < counts.min() < 0.5 * counts.mean():  # a digit with no rows: the loader's warning says so
        report.warnings.append(f"labels are unbalanced: digit {int(counts.argmin())} has {counts.min()} rows")
    groups = audio_groups(train.audio)
    n_groups = int(groups.max()) + 1
    report.facts.append(
        f"train audio: {n_groups} distinct clips in {len(train)} rows"
        + (" (duplicated clips: validation keeps each clip on one side)" if n_groups < len(train) else "")
    )
    for warning in (audio_units(train.audio),):
        if warning:
            report.warnings.append(warning)
    if not ((data_dir / TEST_IMAGE).is_file() and (data_dir / TEST_AUDIO).is_file()):
        report.facts.append("no test files: predict needs x_test_wr.npy and x_test_sp.npy")
        return report
    test = load_noting_units(load_test, data_dir, report)
    image_overlap, audio_overlap = overlaps(train.image, test.image), overlaps(train.audio, test.audio)
    report.facts.append(
        f"test: {len(test)} pairs; {image_overlap} test images and {audio_overlap} test clips also occur in train"
    )
    shifts = {"image": shift(train.image, test.image, (0, 1, 2)), "audio": shift(train.audio, test.audio, (0, 1))}
    report.facts.append(
        "train -> test shift (largest mean difference, in training spreads): "
        + ", ".join(f"{name} {value:.2f}" for name, value in shifts.items())
    )
    for name, value in shifts.items():
        if value > SHIFT_WARNING:
            report.warnings.append(
                f"{name}: the test mean is {value:.2f} training spreads from the training mean; "
                "are train and test in the same units?"
            )
    return report

"""Data profiles: the generators `mmdigits data make --profile` offers, and the files they write.

`shipped` is the demo's data (audio in [0, 1] like the competition's); `foreign` differs from it in
every knob we control (see foreign.py), so that defaults are chosen on how they travel.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdigits import __version__, features, foreign, synth
from mmdigits.artifacts import refuse_overwrite, save_csv, save_npy, write_json
from mmdigits.data import TEST_AUDIO, TEST_IMAGE, TEST_LABELS, TRAIN_AUDIO, TRAIN_IMAGE, TRAIN_LABELS, Split
from mmdigits.errors import UsageError

PROVENANCE = "dataset.json"  # how `data make` made the folder, so that reports can say how to rebuild it
DATASET_FILES = (TRAIN_IMAGE, TRAIN_AUDIO, TRAIN_LABELS, TEST_IMAGE, TEST_AUDIO, TEST_LABELS, PROVENANCE)
AUDIO_UNITS = ("unit", "raw")  # unit: standardised and mapped to about [0, 1]; raw: librosa's MFCC


@dataclass(frozen=True)
class Profile:
    generate: Callable[[int, int, int], tuple[Split, Split, np.ndarray]]
    train: int  # default sizes
    test: int
    audio_units: str
    description: str


PROFILES = {
    "shipped": Profile(synth.generate, 60000, 10000, "unit", "real handwriting, espeak-ng voices, audio in [0, 1]"),
    "foreign": Profile(
        foreign.generate, foreign.TRAIN_PAIRS, foreign.TEST_PAIRS, "raw", "other writers and voices, raw MFCC"
    ),
}


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UsageError(f"--profile {name}: choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def convert_audio(audio: np.ndarray, source: str, target: str) -> np.ndarray:
    """Re-express MFCC in other units with the shipped table's statistics (linear, never clipped),
    so that a model can be tested on another profile in the units it was trained on."""
    if source == target:
        return audio
    table = features.spoken_digit_table()
    mean, std, low, high = (table[key].astype(np.float64) for key in ("mean", "std", "low", "high"))
    if target == "unit":
        return (((audio - mean) / std - low) / (high - low)).astype(np.float32)
    return ((audio * (high - low) + low) * std + mean).astype(np.float32)


def generate(name: str, n_train: int, n_test: int, seed: int = 0, units: str | None = None):
    """(train, test, test conditions) of a profile, audio in `units` (default: the profile's own)."""
    chosen = profile(name)
    train, test, conditions = chosen.generate(n_train, n_test, seed)
    target = units or chosen.audio_units
    for split in (train, test):
        split.audio = convert_audio(split.audio, chosen.audio_units, target)
    return train, test, conditions


def write_dataset(out_dir: Path, train: Split, test: Split, test_conditions: np.ndarray) -> list[Path]:
    """The five competition files plus y_test.csv (row_id,label,condition), in the competition's
    dtypes and shapes: float64, train images flat, test images 3-D."""
    import pandas as pd

    out_dir = Path(out_dir)
    written = {
        TRAIN_IMAGE: train.image.reshape(len(train), 784).astype(np.float64),
        TRAIN_AUDIO: train.audio.reshape(len(train), 507).astype(np.float64),
        TEST_IMAGE: test.image.astype(np.float64),
        TEST_AUDIO: test.audio.reshape(len(test), 507).astype(np.float64),
    }
    for name, array in written.items():
        save_npy(out_dir / name, array)
    save_csv(out_dir / TRAIN_LABELS, pd.DataFrame({"row_id": np.arange(len(train)), "label": train.labels}))
    save_csv(
        out_dir / TEST_LABELS,
        pd.DataFrame({"row_id": np.arange(len(test)), "label": test.labels, "condition": test_conditions}),
    )
    return [out_dir / name for name in (*written, TRAIN_LABELS, TEST_LABELS)]


def make_dataset(
    out_dir: Path,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    name: str = "shipped",
    overwrite: bool = False,
) -> list[Path]:
    """Generate a profile (default sizes when None) and write it to `out_dir`; a folder that holds
    competition files already (the user's own data, perhaps) is refused unless `overwrite`."""
    chosen = profile(name)
    refuse_overwrite(out_dir, DATASET_FILES, overwrite, "a dataset")
    n_train = chosen.train if n_train is None else n_train
    n_test = chosen.test if n_test is None else n_test
    train, test, conditions = generate(name, n_train, n_test, seed)
    written = write_dataset(out_dir, train, test, conditions)
    recipe = {"profile": name, "train": n_train, "test": n_test, "seed": seed, "mmdigits": __version__}
    return [*written, write_json(Path(out_dir) / PROVENANCE, recipe)]


def provenance_command(data: Path) -> str | None:
    """The `data make` command that rebuilds a generated folder (None for other data)."""
    try:
        recipe = json.loads((Path(data) / PROVENANCE).read_text())
        return (
            f"mmdigits data make --out {data} --profile {recipe['profile']} --train {recipe['train']} "
            f"--test {recipe['test']} --seed {recipe['seed']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None

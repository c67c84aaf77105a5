"""Load and validate the competition files; grouped, stratified splits and folds.

Arrays come back as images (N, 28, 28) float32 in [0, 1], audio (N, 39, 13) as [frame,
coefficient] (the 507 vector is frames-major; float64 when the file holds float64, as the
competition's do, else float32), labels (N,) int64. Every problem raises DataError
with one line naming the file and the problem, before any training starts.
"""

from __future__ import annotations

import csv
import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdigits.errors import DataError, DataWarning, kind_of_file, missing_file

CONDITIONS = ("clean", "image_noisy", "audio_noisy", "both_mild")  # noise conditions a labels CSV may name
TRAIN_IMAGE, TRAIN_AUDIO, TRAIN_LABELS = "x_train_wr.npy", "x_train_sp.npy", "y_train.csv"
TEST_IMAGE, TEST_AUDIO = "x_test_wr.npy", "x_test_sp.npy"
TEST_LABELS = "y_test.csv"  # not in the competition's files: what `data make` writes for scoring
NUM_CLASSES = 10
IMAGE_SHAPE, AUDIO_SHAPE = (28, 28), (39, 13)
PIXEL_ROUNDING = 1e-3  # pixels this far outside [0, 1] are rounding, kept as given


@dataclass
class Split:
    """One set of pairs; labels are None for an unlabelled test set."""

    image: np.ndarray  # (N, 28, 28) float32 in [0, 1]
    audio: np.ndarray  # (N, 39, 13) float64 or float32, as the file holds it
    labels: np.ndarray | None = None  # (N,) int64 in 0..9
    rows: np.ndarray | None = None  # each pair's row in its files; None: 0..N-1, as read

    def __len__(self) -> int:
        return len(self.image)

    def file_rows(self) -> np.ndarray:
        """Each pair's row in the files it was read from, so that a subset can be traced back."""
        return np.arange(len(self)) if self.rows is None else self.rows

    def subset(self, rows: np.ndarray) -> Split:
        labels = None if self.labels is None else self.labels[rows]
        return Split(self.image[rows], self.audio[rows], labels, self.file_rows()[rows])


def load_array(path: Path) -> np.ndarray:
    """np.load without pickle, turning every failure into a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {missing_file(path)}")
    if path.stat().st_size == 0:  # numpy says so in other words from one release to the next
        raise DataError(f"{path}: an empty file, not a .npy array")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        found = kind_of_file(path)  # np.load takes whatever is neither .npy nor zip for a pickle
        if found == "a plain pickle" or "object arrays" in str(error).lower():
            raise DataError(f"{path}: holds pickled/object data, which is never loaded") from None
        if found == "a NumPy array (.npy)":
            raise DataError(f"{path}: not a valid .npy file or truncated ({error})") from None
        what = f"{found}, not" if found else "not"
        raise DataError(f"{path}: {what} a .npy array (np.save writes one)") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot be read as .npy ({error})") from None
    if not isinstance(array, np.ndarray):  # np.load opens any zip as an .npz; torch.save writes zips too
        with array:
            checkpoint = any(name.endswith("data.pkl") for name in array.files)
        found = "a torch checkpoint (.pth)" if checkpoint else "an .npz archive"
        raise DataError(f"{path}: expected one .npy array, found {found}")
    if array.dtype.kind not in "fiub":
        raise DataError(f"{path}: dtype {array.dtype} is not numeric")
    if array.size == 0 or array.ndim == 0 or len(array) == 0:
        raise DataError(f"{path}: the array is empty (shape {array.shape})")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{path}: {int(bad.sum())} rows hold NaN or Inf (first at row {int(np.argmax(bad))})")
    return array


def as_images(array: np.ndarray, path: Path) -> np.ndarray:
    """(N, 784) or (N, 28, 28) -> (N, 28, 28) float32 in [0, 1]. Pixels in [0, 1] stay as given
    (nothing is clipped; a rounding's worth outside is kept); whole numbers up to 255 are read as
    0..255 and divided by 255, with a DataWarning that says so; anything else is refused: a guess
    at its scale could silently turn noisy [0, 1] pixels that reach 2 into near-black ones."""
    if array.ndim == 2 and array.shape[1] == 784:
        array = array.reshape(-1, *IMAGE_SHAPE)
    elif array.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: images have shape {array.shape}; expected (N, 784) or (N, 28, 28)")
    image = array.astype(np.float32, copy=False)
    low, high = float(image.min()), float(image.max())
    if low >= -PIXEL_ROUNDING and high <= 1 + PIXEL_ROUNDING:
        return image
    in_byte_range = low >= 0 and high <= 255
    whole = np.array_equal(image, np.round(image))
    if in_byte_range and whole:
        read_as = f"{path}: pixels are whole numbers 0..{high:.0f}: read as 0..255, divided by 255"
        warnings.warn(DataWarning(read_as), stacklevel=2)
        return image / np.float32(255)
    why = " and are not whole numbers" if in_byte_range else ""
    raise DataError(
        f"{path}: pixel values span [{low:.4g}, {high:.4g}]{why}; expected [0, 1], or whole numbers 0..255: "
        "rescale or clip the images to [0, 1] first"
    )


def as_audio(array: np.ndarray, path: Path) -> np.ndarray:
    """(N, 507) or (N, 39, 13) -> (N, 39, 13) [frame, coefficient], float64 kept, else float32;
    not copied when it already is one of them (loading 60,000 pairs: 0.1 GB less at peak)."""
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    if array.ndim == 2 and array.shape[1] == 507:
        return array.reshape(-1, *AUDIO_SHAPE).astype(dtype, copy=False)  # frames-major
    if array.shape[1:] == AUDIO_SHAPE:
        return array.astype(dtype, copy=False)
    raise DataError(f"{path}: audio has shape {array.shape}; expected (N, 507) or (N, 39, 13)")


def line_of_row(path: Path, row: int) -> int:
    """The line of the file where data row `row` of its pandas table starts: pandas skips blank and
    whitespace-only lines and a quoted field may hold line breaks, so neither the row's index nor a
    count of lines would do; csv's reader counts the file's lines as it reads each record."""

    def starts(reader) -> Iterator[int]:
        before = 0
        for record in reader:
            if any(field.strip() for field in record):
                yield before + 1
            before = reader.line_num

    with open(path, encoding="utf-8", errors="replace", newline="") as file:
        return next(itertools.islice(starts(csv.reader(file)), row + 1, None))  # the first is the header's


def read_label_table(path: Path):
    """Read a `row_id,label[,...]` CSV into a DataFrame sorted by row_id, validated."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {missing_file(path)}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        found = kind_of_file(path)  # an array or checkpoint given as the labels is named as such
        reason = found if found not in (None, "a text file") else str(error).strip().splitlines()[0]
        raise DataError(f"{path}: not a readable CSV ({reason})") from None
    if "label" not in table.columns:
        if not pd.to_numeric(pd.Series(table.columns), errors="coerce").isna().any():  # numbers read as names
            with open(path, encoding="utf-8-sig") as file:
                first = file.readline().strip()
            raise DataError(f"{path}: no header line (the first reads '{first}'); it must start with row_id,label")
        raise DataError(f"{path}: no 'label' column (columns: {', '.join(map(str, table.columns))})")
    if table.empty:
        raise DataError(f"{path}: no rows")
    labels = pd.to_numeric(table["label"], errors="coerce")
    bad = labels.isna() | (labels != labels.round())
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        value = table["label"].iloc[row]
        if pd.isna(value):  # an empty cell (or NA, null): pandas holds it as nan, the file does not
            raise DataError(f"{path}: line {line_of_row(path, row)} has no label")
        raise DataError(f"{path}: label {str(value)!r} on line {line_of_row(path, row)} is not an integer")  # '2.5'
    out_of_range = (labels < 0) | (labels >= NUM_CLASSES)
    if out_of_range.any():
        row = int(np.argmax(out_of_range.to_numpy()))
        raise DataError(f"{path}: label {int(labels.iloc[row])} on line {line_of_row(path, row)} is outside 0..9")
    table["label"] = labels.astype(np.int64)
    if "row_id" in table.columns:
        row_ids = pd.to_numeric(table["row_id"], errors="coerce")
        if row_ids.duplicated().any():
            duplicate = table["row_id"][row_ids.duplicated()].iloc[0]
            raise DataError(f"{path}: duplicate row_id {duplicate}")
        if set(row_ids) != set(range(len(table))):
            raise DataError(f"{path}: row_id must run 0..{len(table) - 1} (found other values)")
        table = table.assign(row_id=row_ids.astype(np.int64)).sort_values("row_id")
    return table.reset_index(drop=True)


def read_labels(path: Path, rows: int | None = None) -> np.ndarray:
    """The `label` column as int64, in row_id order; checked against the arrays' row count."""
    labels = read_label_table(path)["label"].to_numpy()
    if rows is not None and len(labels) != rows:
        raise DataError(f"{path}: {len(labels)} labels, but the arrays have {rows} rows")
    return labels


def load_pair(image_path: Path, audio_path: Path) -> Split:
    """Images and audio from two .npy files whose rows must agree."""
    image = as_images(load_array(image_path), image_path)
    audio = as_audio(load_array(audio_path), audio_path)
    if len(audio) != len(image):
        raise DataError(f"{audio_path}: {len(audio)} rows, but {Path(image_path).name} has {len(image)}")
    return Split(image, audio)


def require_folder(data_dir: Path) -> Path:
    """The --data folder; refused in one line where it is missing or holds none of the competition's
    files (a command run in the wrong folder), with the way to data."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "a file, not a folder" if data_dir.exists() else "no such folder"
        raise DataError(f"{data_dir}: {what} (pass --data DIR with the competition files)")
    if not any(
        (data_dir / name).is_file() for name in (TRAIN_IMAGE, TRAIN_AUDIO, TRAIN_LABELS, TEST_IMAGE, TEST_AUDIO)
    ):
        raise DataError(
            f"{data_dir.resolve()}: holds none of the competition's files ({TRAIN_IMAGE}, ...); pass --data DIR "
            "with them, or run `mmdigits demo`, which makes a dataset and trains on it"
        )
    return data_dir


def load_train(data_dir: Path) -> Split:
    """x_train_wr.npy, x_train_sp.npy and y_train.csv, validated together."""
    data_dir = require_folder(data_dir)
    split = load_pair(data_dir / TRAIN_IMAGE, data_dir / TRAIN_AUDIO)
    split.labels = read_labels(data_dir / TRAIN_LABELS, rows=len(split))
    absent = np.flatnonzero(np.bincount(split.labels, minlength=NUM_CLASSES) == 0)
    if len(absent):  # such labels train, but into a model that never predicts the digits it never saw
        digits = ("digits " if len(absent) > 1 else "digit ") + ", ".join(map(str, absent))
        them = "them" if len(absent) > 1 else "it"
        message = f"{data_dir / TRAIN_LABELS}: no rows of {digits}; the model will never predict {them}"
        warnings.warn(DataWarning(message), stacklevel=2)
    return split


def load_test(data_dir: Path) -> Split:
    """x_test_wr.npy and x_test_sp.npy; test row ids are 0..M-1 in file order."""
    data_dir = require_folder(data_dir)
    return load_pair(data_dir / TEST_IMAGE, data_dir / TEST_AUDIO)


def audio_groups(audio: np.ndarray) -> np.ndarray:
    """A group id per row; identical audio vectors (duplicated clips) share one. Ids count up in
    order of first appearance, not of the bytes, so the split does not depend on the audio's units.
    Rows are grouped by a 64-bit fingerprint of their bytes, then checked byte for byte: 0.06 s for
    60,000 clips where sorting the bytes themselves takes 0.9 s, which is what happens if two
    different clips ever share a fingerprint."""
    rows = np.ascontiguousarray(audio.reshape(len(audio), -1))
    words = rows.view(f"u{rows.dtype.itemsize}").astype(np.uint64, copy=False)
    _, first_row, by_key = np.unique(fingerprints(words), return_index=True, return_inverse=True)
    if not np.array_equal(words, words[first_row[by_key]]):
        keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
        _, first_row, by_key = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first_row), dtype=np.int64)
    rank[np.argsort(first_row)] = np.arange(len(first_row))
    return rank[by_key.reshape(-1)]


def fingerprints(words: np.ndarray) -> np.ndarray:
    """Each row's words weighted by fixed odd 64-bit numbers and summed, wrapping: equal rows get
    equal fingerprints, and rows that differ in one word never share one."""
    weights = np.random.default_rng(0).integers(0, 2**63, size=words.shape[1], dtype=np.uint64) * 2 + 1
    return words @ weights


def assign_parts(labels: np.ndarray, groups: np.ndarray, fractions: list[float], seed: int) -> np.ndarray:
    """Give every row a part index so that each part holds about `fraction` of every class and no
    group is split across parts (greedy: each shuffled group goes to the part furthest below target).
    """
    rng = np.random.default_rng(seed)
    parts = np.empty(len(labels), dtype=np.int64)
    targets = np.asarray(fractions, dtype=np.float64)
    unique_groups, first_row, group_of_row = np.unique(groups, return_index=True, return_inverse=True)
    group_sizes = np.bincount(group_of_row)
    group_part = np.empty(len(unique_groups), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels[first_row] == label)
        members = members[rng.permutation(len(members))]
        filled = np.zeros(len(targets))
        total = group_sizes[members].sum()
        for group in members:
            part = int(np.argmax(targets * total - filled))
            group_part[group] = part
            filled[part] += group_sizes[group]
    parts[:] = group_part[group_of_row]
    return parts


def train_val_indices(
    labels: np.ndarray, audio: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stratified, seeded, duplicate-audio-grouped split; returns (train, val, number of groups)."""
    groups = audio_groups(audio)
    n_groups = int(groups.max()) + 1
    if val_fraction <= 0:
        return np.arange(len(labels)), np.array([], dtype=np.int64), n_groups
    parts = assign_parts(labels, groups, [1.0 - val_fraction, val_fraction], seed)
    return np.flatnonzero(parts == 0), np.flatnonzero(parts == 1), n_groups


def fold_ids(labels: np.ndarray, audio: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold index per row for k-fold cross-validation, stratified and duplicate-grouped."""
    return assign_parts(labels, audio_groups(audio), [1.0 / folds] * folds, seed)

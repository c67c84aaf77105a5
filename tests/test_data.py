"""The loader on good and bad competition files, and the grouped, stratified splits."""

from __future__ import annotations

import pickle
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mmdigits import data as data_module
from mmdigits.data import (
    as_audio,
    as_images,
    audio_groups,
    fold_ids,
    load_array,
    load_test,
    load_train,
    train_val_indices,
)
from mmdigits.errors import DataError, DataWarning


def copy_of(tiny_data, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(tiny_data, target)
    return target


def test_loads_competition_layout(tiny_data):
    train, test = load_train(tiny_data), load_test(tiny_data)
    assert train.image.shape == (200, 28, 28) and train.audio.shape == (200, 39, 13)
    assert train.labels.dtype == np.int64 and set(np.unique(train.labels)) <= set(range(10))
    assert np.load(tiny_data / "x_test_wr.npy").shape == (40, 28, 28)  # 3-D, as the real test file
    assert test.image.shape == (40, 28, 28) and test.labels is None
    assert train.image.min() >= 0.0 and train.image.max() <= 1.0


def test_audio_is_frames_major():
    flat = np.arange(507, dtype=np.float64)[None]
    audio = as_audio(flat, "x.npy")
    assert audio[0, 1, 0] == 13  # row 1 = the second frame's 13 coefficients
    assert audio.dtype == np.float64 and np.shares_memory(audio, flat)  # kept, not copied
    assert as_audio(flat.astype(np.int32), "x.npy").dtype == np.float32


def test_pixels_given_as_0_to_255_are_divided_by_255_with_a_warning_naming_the_file():
    pixels = np.zeros((2, 784), dtype=np.uint8)
    pixels[:, :5] = 0, 1, 128, 254, 255
    for stored in (pixels, pixels.astype(np.float64), pixels.astype(np.int16)):
        with pytest.warns(DataWarning, match=r"x.npy: pixels are whole numbers 0..255: read as 0..255, divided by 255"):
            images = as_images(stored, "x.npy")
        np.testing.assert_allclose(images.reshape(2, 784), pixels / 255, atol=1e-7)


def test_pixels_beyond_1_that_are_not_0_to_255_are_refused_not_rescaled():
    """Noisy [0, 1] images reaching 2 are no 0..255 images: dividing them by 255 would train on near-black."""
    noisy = np.linspace(0, 2, 784)[None].repeat(2, axis=0)
    said = r"x.npy: pixel values span \[0, 2\] and are not whole numbers; expected \[0, 1\], or whole numbers 0..255"
    with pytest.raises(DataError, match=said + ": rescale or clip the images to \\[0, 1\\] first"):
        as_images(noisy, "x.npy")
    with pytest.raises(DataError, match=r"x.npy: pixel values span \[300, 300\]; expected"):
        as_images(np.full((2, 784), 300.0), "x.npy")


def test_pixels_a_rounding_outside_their_range_are_kept_as_given():
    pixels = np.linspace(0, 1, 784)[None].repeat(2, axis=0)
    pixels[0, :2] = -0.0005, 1.0005
    assert np.array_equal(as_images(pixels, "x.npy").reshape(2, 784), pixels.astype(np.float32))
    pixels[1, 0] = 1.01
    with pytest.raises(DataError, match=r"x.npy: pixel values span \[-0.0005, 1.01\]"):
        as_images(pixels, "x.npy")


def save(path, array):
    np.save(path, array)


BAD_CASES = {
    "missing file": (lambda d: (d / "x_train_sp.npy").unlink(), "x_train_sp.npy: no such file"),
    "a folder where a file goes": (
        lambda d: [(d / "y_train.csv").unlink(), (d / "y_train.csv").mkdir()],
        "y_train.csv: a folder, not a file",
    ),
    "none of the files (the wrong folder)": (
        lambda d: [path.unlink() for path in d.iterdir()],
        "holds none of the competition's files (x_train_wr.npy, ...); pass --data DIR with them, or run `mmdigits",
    ),
    "wrong image shape": (lambda d: save(d / "x_train_wr.npy", np.zeros((200, 780))), "images have shape"),
    "wrong audio shape": (lambda d: save(d / "x_train_sp.npy", np.zeros((200, 500))), "audio has shape"),
    "rows disagree": (
        lambda d: save(d / "x_train_sp.npy", np.zeros((193, 507))),
        "193 rows, but x_train_wr.npy has 200",
    ),
    "NaN": (
        lambda d: save(d / "x_train_sp.npy", np.where(np.arange(507) == 3, np.nan, np.zeros((200, 507)))),
        "NaN or Inf",
    ),
    "Inf": (lambda d: save(d / "x_train_wr.npy", np.full((200, 784), np.inf)), "NaN or Inf"),
    "label out of range": (
        lambda d: d.joinpath("y_train.csv").write_text(
            "row_id,label\n" + "".join(f"{i},{12 if i == 5 else 1}\n" for i in range(200))
        ),
        "label 12 on line 7 is outside 0..9",
    ),
    "label not integer": (
        lambda d: d.joinpath("y_train.csv").write_text(
            "row_id,label\n" + "".join(f"{i},{'seven' if i == 0 else 1}\n" for i in range(200))
        ),
        "is not an integer",
    ),
    "label fraction": (
        lambda d: d.joinpath("y_train.csv").write_text(
            "row_id,label\n" + "".join(f"{i},{2.5 if i == 0 else 1}\n" for i in range(200))
        ),
        "label '2.5' on line 2 is not an integer",
    ),
    "label missing": (
        lambda d: d.joinpath("y_train.csv").write_text(
            "row_id,label\n" + "".join(f"{i},{'' if i == 3 else 1}\n" for i in range(200))
        ),
        "line 5 has no label",
    ),
    "label after blank lines": (  # pandas skips blank and whitespace-only lines; the line named is the file's
        lambda d: d.joinpath("y_train.csv").write_text(
            "row_id,label\n0,1\n\n1,1\n   \n" + "".join(f"{i},{12 if i == 3 else 1}\n" for i in range(2, 200))
        ),
        "label 12 on line 7 is outside 0..9",
    ),
    "label after a quoted line break": (  # a row may span lines; the line named is where the bad one starts
        lambda d: d.joinpath("y_train.csv").write_text(
            'row_id,label,note\n0,1,"two\nlines"\n1,1,x\n'
            + "".join(f"{i},{12 if i == 2 else 1},x\n" for i in range(2, 200))
        ),
        "label 12 on line 5 is outside 0..9",
    ),
    "labels that are an array": (
        lambda d: d.joinpath("y_train.csv").write_bytes(d.joinpath("x_train_wr.npy").read_bytes()),
        "y_train.csv: not a readable CSV (a NumPy array (.npy))",
    ),
    "no header line": (
        lambda d: d.joinpath("y_train.csv").write_text("".join(f"{i},{i % 2}\n" for i in range(1, 201))),
        "y_train.csv: no header line (the first reads '1,1'); it must start with row_id,label",
    ),
    "no label column": (lambda d: d.joinpath("y_train.csv").write_text("row_id,digit\n0,1\n"), "no 'label' column"),
    "duplicate row ids": (
        lambda d: d.joinpath("y_train.csv").write_text(
            "row_id,label\n" + "".join(f"{min(i, 198)},1\n" for i in range(200))
        ),
        "duplicate row_id 198",
    ),
    "too few labels": (
        lambda d: d.joinpath("y_train.csv").write_text("row_id,label\n0,1\n"),
        "1 labels, but the arrays have 200",
    ),
    "empty array": (lambda d: save(d / "x_train_wr.npy", np.zeros((0, 784))), "empty"),
    "object array": (
        lambda d: np.save(d / "x_train_wr.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True),
        "pickled/object data",
    ),
    "truncated file": (
        lambda d: d.joinpath("x_train_sp.npy").write_bytes(d.joinpath("x_train_sp.npy").read_bytes()[:5000]),
        "truncated",
    ),
    "not npy": (lambda d: d.joinpath("x_train_sp.npy").write_text("hello"), "x_train_sp.npy: a text file, not a .npy"),
    "random bytes": (
        lambda d: d.joinpath("x_train_wr.npy").write_bytes(bytes(range(7, 200))),
        "x_train_wr.npy: not a .npy array (np.save writes one)",
    ),
    "a pickle": (
        lambda d: d.joinpath("x_train_wr.npy").write_bytes(pickle.dumps(np.zeros((200, 784)))),
        "x_train_wr.npy: holds pickled/object data, which is never loaded",
    ),
    "empty file": (
        lambda d: d.joinpath("x_train_wr.npy").write_bytes(b""),
        "x_train_wr.npy: an empty file, not a .npy array",
    ),
    "np.savetxt": (
        lambda d: np.savetxt(d / "x_train_wr.npy", np.zeros((200, 784))),
        "x_train_wr.npy: a text file, not a .npy array (np.save writes one)",
    ),
    "a checkpoint": (
        lambda d: torch.save({"x": torch.zeros(3)}, d / "x_train_wr.npy"),
        "x_train_wr.npy: expected one .npy array, found a torch checkpoint (.pth)",
    ),
    "an npz": (
        lambda d: (
            np.savez(d / "x_train_sp", x=np.zeros((200, 507))),
            (d / "x_train_sp.npz").replace(d / "x_train_sp.npy"),
        ),
        "x_train_sp.npy: expected one .npy array, found an .npz archive",
    ),
    "text array": (lambda d: save(d / "x_train_sp.npy", np.array(["a"] * 200)), "not numeric"),
}


@pytest.mark.parametrize("case", BAD_CASES, ids=list(BAD_CASES))
def test_bad_train_files_raise_one_line(case, tiny_data, tmp_path):
    folder = copy_of(tiny_data, tmp_path)
    corrupt, expected = BAD_CASES[case]
    corrupt(folder)
    with pytest.raises(DataError) as raised:
        load_train(folder)
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_nan_in_test_files(tiny_data, tmp_path):
    folder = copy_of(tiny_data, tmp_path)
    images = np.load(folder / "x_test_wr.npy")
    images[3, 4, 5] = np.nan
    np.save(folder / "x_test_wr.npy", images)
    with pytest.raises(DataError, match="x_test_wr.npy: 1 rows hold NaN or Inf .first at row 3"):
        load_test(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_train(tmp_path / "nowhere")
    (tmp_path / "x_train_wr.npy").write_bytes(b"")  # one of the files given as the folder
    with pytest.raises(DataError, match="x_train_wr.npy: a file, not a folder .pass --data DIR"):
        load_train(tmp_path / "x_train_wr.npy")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.uint8, np.int16, np.bool_, np.complex64]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=30),
    )
)
def test_random_arrays_load_or_raise_our_error(array, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, array)
    for convert, shape in ((as_images, (28, 28)), (as_audio, (39, 13))):
        try:
            converted = convert(load_array(path), path)
        except DataError:
            continue  # refused in one line: the other half of the property
        assert converted.dtype == np.float32 and converted.shape[1:] == shape and np.isfinite(converted).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(1, 8),
    flat=st.booleans(),
    dtype=st.sampled_from([np.float64, np.float32, np.uint8]),
    data=st.data(),
)
def test_valid_images_are_accepted_with_their_values(rows, flat, dtype, data, tmp_path):
    shape = (rows, 784) if flat else (rows, 28, 28)
    width = 32 if dtype == np.float32 else 64
    elements = st.integers(0, 255) if dtype == np.uint8 else st.floats(0, 1, width=width)
    array = data.draw(hnp.arrays(dtype=dtype, shape=shape, elements=elements))
    path = tmp_path / "x_train_wr.npy"
    np.save(path, array)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        images = as_images(load_array(path), path)
    assert images.shape == (rows, 28, 28) and images.dtype == np.float32
    pixels = array.reshape(rows, 28, 28).astype(np.float64)
    rescaled = pixels.max() > 1  # read as 0..255 only where a value is beyond [0, 1], and then said
    np.testing.assert_allclose(images, pixels / 255 if rescaled else pixels, atol=1e-6)
    assert [found.category for found in said] == ([DataWarning] if rescaled else [])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(1, 8),
    flat=st.booleans(),
    data=st.data(),
)
def test_valid_audio_is_accepted_in_its_own_units(rows, flat, data, tmp_path):
    shape = (rows, 507) if flat else (rows, 39, 13)
    array = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e4, 1e4, width=32)))
    path = tmp_path / "x_train_sp.npy"
    np.save(path, array)
    audio = as_audio(load_array(path), path)
    assert audio.shape == (rows, 39, 13) and audio.dtype == np.float64  # the file's precision is kept
    np.testing.assert_array_equal(audio, array.reshape(rows, 39, 13))  # frames-major, unscaled


def test_split_groups_duplicate_audio_and_stratifies():
    rng = np.random.default_rng(0)
    clips = rng.random((300, 39, 13)).astype(np.float32)
    clip_labels = np.arange(300) % 10
    rows = rng.integers(0, 300, 3000)  # clips duplicated at random, as in the real data
    audio, labels = clips[rows], clip_labels[rows]
    train, val, groups = train_val_indices(labels, audio, 0.2, seed=1)
    assert groups == len(np.unique(rows))
    assert not set(rows[train]) & set(rows[val])
    assert len(val) / len(labels) == pytest.approx(0.2, abs=0.02)
    for digit in range(10):
        share = np.mean(labels[val] == digit) / np.mean(labels == digit)
        assert share == pytest.approx(1.0, abs=0.15)
    again = train_val_indices(labels, audio, 0.2, seed=1)[1]
    assert np.array_equal(val, again)
    assert len(train_val_indices(labels, audio, 0.0, seed=1)[1]) == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_audio_groups_are_the_identical_rows_even_when_fingerprints_collide(dtype, monkeypatch):
    """Clips 0, 1 and 2 differ only in sign bits (0.0 vs -0.0) or one last bit: three groups. The
    ids count up in order of first appearance; with every fingerprint equal the bytes decide."""
    rng = np.random.default_rng(0)
    clips = rng.standard_normal((50, 39, 13)).astype(dtype)
    clips[0, 0, 0] = 0.0
    clips[1], clips[2] = clips[0], clips[0]
    clips[1, 0, 0] = -0.0
    clips[2, 5, 5] = np.nextafter(clips[0, 5, 5], dtype(10))
    rows = rng.integers(0, 50, 400)
    rows[:3] = [2, 1, 0]
    first_seen = {clip: rank for rank, clip in enumerate(dict.fromkeys(rows.tolist()))}
    expected = np.array([first_seen[clip] for clip in rows.tolist()])
    assert np.array_equal(audio_groups(clips[rows]), expected)
    monkeypatch.setattr(data_module, "fingerprints", lambda words: np.zeros(len(words), dtype=np.uint64))
    assert np.array_equal(audio_groups(clips[rows]), expected)


def test_folds_cover_every_row_once():
    rng = np.random.default_rng(0)
    audio = rng.random((500, 39, 13)).astype(np.float32)[rng.integers(0, 200, 1000)]
    labels = rng.integers(0, 10, 1000)
    folds = fold_ids(labels, audio, 5, seed=0)
    assert set(folds) == set(range(5))
    groups = audio_groups(audio)
    for group in np.unique(groups):
        assert len(set(folds[groups == group])) == 1
    assert np.bincount(folds).min() > 150


def test_label_rows_follow_row_id(tiny_data, tmp_path):
    folder = copy_of(tiny_data, tmp_path)
    table = pd.read_csv(folder / "y_train.csv")
    table.iloc[::-1].to_csv(folder / "y_train.csv", index=False)  # same labels, reversed lines
    assert np.array_equal(load_train(folder).labels, table["label"].to_numpy())

"""The shipped-data generator: the competition's format, unseen test speakers and writers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from mmdigits.errors import UsageError
from mmdigits.features import spoken_digit_table
from mmdigits.profiles import make_dataset
from mmdigits.synth import CONDITIONS, NOISE


def test_files_match_the_competition_format(tiny_data):
    assert np.load(tiny_data / "x_train_wr.npy").shape == (200, 784)
    assert np.load(tiny_data / "x_train_sp.npy").shape == (200, 507)
    assert np.load(tiny_data / "x_test_wr.npy").shape == (40, 28, 28)
    assert np.load(tiny_data / "x_test_sp.npy").dtype == np.float64
    train_labels = pd.read_csv(tiny_data / "y_train.csv")
    assert list(train_labels.columns) == ["row_id", "label"] and len(train_labels) == 200
    test_labels = pd.read_csv(tiny_data / "y_test.csv")
    assert list(test_labels.columns) == ["row_id", "label", "condition"]
    assert set(test_labels["condition"]) <= set(CONDITIONS)
    images = np.load(tiny_data / "x_train_wr.npy")
    assert images.min() >= 0 and images.max() <= 1


def test_test_audio_comes_from_unseen_speakers(tmp_path):
    make_dataset(tmp_path, 600, 300, seed=2)
    train = np.load(tmp_path / "x_train_sp.npy")
    test = np.load(tmp_path / "x_test_sp.npy")
    conditions = pd.read_csv(tmp_path / "y_test.csv")["condition"].to_numpy()
    clean_test = test[np.isin(conditions, ["clean", "image_noisy"])]  # audio left untouched
    table = spoken_digit_table()["features"].reshape(-1, 507).astype(np.float64)
    train_rows = {row.tobytes() for row in train}
    assert not any(row.tobytes() in train_rows for row in clean_test)
    table_rows = {row.tobytes() for row in table}
    assert all(row.tobytes() in table_rows for row in clean_test)  # real clips, duplicated


def test_same_seed_same_data(tmp_path):
    make_dataset(tmp_path / "a", 50, 10, seed=4)
    make_dataset(tmp_path / "b", 50, 10, seed=4)
    for name in ("x_train_wr.npy", "x_test_sp.npy", "y_test.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_noise_conditions_corrupt_only_their_modality():
    assert NOISE["clean"][0].std == 0 and NOISE["clean"][1].std == 0
    assert NOISE["image_noisy"][1].std == 0 and NOISE["audio_noisy"][0].std == 0


def test_rejects_tiny_sizes(tmp_path):
    with pytest.raises(UsageError):
        make_dataset(tmp_path, 5, 1)


def test_data_make_never_writes_over_files_already_in_its_folder(tmp_path):
    mine = tmp_path / "kaggle"
    mine.mkdir()
    original = np.random.default_rng(0).random((3, 784))
    np.save(mine / "x_train_wr.npy", original)  # the user's own competition file
    refused = run_cli("data", "make", "--out", mine, "--train", 50, "--test", 10)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "kaggle/ already holds a dataset (x_train_wr.npy); pass --overwrite to replace it" in refused.stderr
    assert [p.name for p in mine.iterdir()] == ["x_train_wr.npy"]
    assert np.array_equal(np.load(mine / "x_train_wr.npy"), original)
    replaced = run_cli("data", "make", "--out", mine, "--train", 50, "--test", 10, "--overwrite")
    assert replaced.exit_code == 0 and np.load(mine / "x_train_wr.npy").shape == (50, 784)

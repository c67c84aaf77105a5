"""Checkpoints load only as tensors and plain values; bad files fail with one clear line."""

from __future__ import annotations

import pickle
import random
import warnings

import numpy as np
import pytest
import torch

from mmdigits.artifacts import atomic_path, write_text
from mmdigits.checkpoint import FORMAT_VERSION, load_checkpoint, load_model, save_checkpoint
from mmdigits.errors import CheckpointError
from mmdigits.models import create_model, model_arguments


class CreatesFile:
    """A pickle payload that would create a file when unpickled (what an attacker ships)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def valid_payload(name: str = "cnn_rnn_linear") -> dict:
    model = create_model(name)
    return {
        "model": name,
        "model_kwargs": model_arguments(name),
        "state_dict": model.state_dict(),
        "config": {},
        "metrics": {},
        "epoch": 1,
    }


def test_round_trip_rebuilds_the_same_model(tmp_path):
    payload = valid_payload()
    path = save_checkpoint(tmp_path / "best.pth", payload)
    model, loaded = load_model(path)
    assert loaded["format_version"] == FORMAT_VERSION and isinstance(loaded["torch_version"], str)
    for key, value in payload["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value)


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"format_version": 1, "evil": CreatesFile(str(target))}, path)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    assert str(refused.value).startswith(f"{path}: refused: it asks to run code, not just load tensors (")
    assert str(refused.value).endswith("was not an allowed global by default)")  # not torch's advice
    assert not target.exists()
    path.write_bytes(pickle.dumps(CreatesFile(str(target))))  # a bare pickle, not a zip
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not target.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        *[(random.Random(seed).randbytes(4096), "not a readable checkpoint") for seed in range(20)],
        (b"", "not a readable checkpoint"),
    ],
)
def test_garbage_files(tmp_path, content, message):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def wrong_files(folder):
    """Files a user may pass as a checkpoint by mistake, each with what its one line should call it."""
    np.save(folder / "x_test_wr.npy", np.zeros((2, 784)))
    (folder / "y_train.csv").write_text("row_id,label\n0,7\n")
    (folder / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))  # pickle's protocol 4+
    (folder / "empty.pth").write_bytes(b"")
    whole = save_checkpoint(folder / "whole.pth", valid_payload()).read_bytes()
    (folder / "cut.pth").write_bytes(whole[: len(whole) // 2])  # a copy or download cut short
    return [
        ("x_test_wr.npy", "a NumPy array (.npy), not a file torch.save wrote"),
        ("y_train.csv", "a text file, not a file torch.save wrote"),
        ("model.pkl", "a plain pickle, not a file torch.save wrote"),
        ("empty.pth", "an empty file"),
        ("cut.pth", "a zip archive torch cannot read: cut short, damaged, or not written by torch.save"),
    ]


def test_a_wrong_file_is_named_for_what_it_is_without_torchs_warnings(tmp_path):
    for name, what in wrong_files(tmp_path):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's note on the pickle's protocol would raise here
            with pytest.raises(CheckpointError) as raised:
                load_checkpoint(tmp_path / name)
        assert str(raised.value) == f"{tmp_path / name}: not a readable checkpoint ({what})"


def test_newer_format_and_foreign_dicts(tmp_path):
    path = save_checkpoint(tmp_path / "new.pth", valid_payload())
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match="newer than this mmdigits reads"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not an mmdigits checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth")


def test_weights_that_do_not_fit_the_model(tmp_path):
    payload = valid_payload()
    payload["model"] = "cnn_transformer_attention"
    payload["model_kwargs"] = model_arguments("cnn_transformer_attention")
    path = save_checkpoint(tmp_path / "mixed.pth", payload)
    with pytest.raises(CheckpointError, match="do not fit model 'cnn_transformer_attention'"):
        load_model(path)
    payload["model_kwargs"] = {**payload["model_kwargs"], "audio_pool": "sideways"}  # an argument no model takes
    path = save_checkpoint(tmp_path / "edited.pth", payload)
    with pytest.raises(CheckpointError, match="pool must be mean_max or cls_mean"):
        load_model(path)


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = write_text(tmp_path / "best.pth", "previous")
    with pytest.raises(OSError), atomic_path(path) as temporary:
        temporary.write_text("half of a new checkpoint")
        raise OSError("disk full")
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["best.pth"]


def test_failed_torch_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "best.pth", valid_payload())
    before = path.read_bytes()

    def broken_save(obj, target):
        with open(target, "wb") as handle:
            handle.write(b"partial")
        raise OSError("killed mid-write")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, valid_payload())
    assert path.read_bytes() == before

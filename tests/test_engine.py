"""The training loop: divergence handling, the automatic schedule, batching."""

from __future__ import annotations

import pytest
import torch
from conftest import FAST_MODEL, run_cli

from mmdigits import engine
from mmdigits.config import TrainConfig
from mmdigits.errors import TrainingDiverged
from mmdigits.runs import train_run


def test_nan_loss_stops_and_keeps_the_best_checkpoint(tiny_data, tmp_path, monkeypatch):
    config = TrainConfig(data=str(tiny_data), model=FAST_MODEL, epochs=3, batch_size=256, out=str(tmp_path))
    real_loss = engine.training_loss
    calls = {"n": 0}

    def loss_that_diverges_in_epoch_two(*args):
        calls["n"] += 1
        loss = real_loss(*args)
        return loss * float("nan") if calls["n"] > 1 else loss  # the first epoch has one batch

    monkeypatch.setattr(engine, "training_loss", loss_that_diverges_in_epoch_two)
    with pytest.raises(TrainingDiverged, match="training loss became nan in epoch 2"):
        train_run(config)
    best = torch.load(tmp_path / "best.pth", weights_only=True)
    assert best["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in best["state_dict"].values() if value.is_floating_point())


def test_nan_loss_is_one_line_on_the_cli(tiny_data, tmp_path):
    result = run_cli(
        "train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "2", "--lr", "1e30", "--out", tmp_path
    )
    assert result.exit_code == 1
    assert "training loss became" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("pairs", "batch", "epochs"), [(160, 32, 40), (4480, 128, 20), (12800, 256, 15), (48000, 256, 15)]
)
def test_automatic_schedule_gives_small_data_enough_steps(pairs, batch, epochs):
    config = TrainConfig().resolved(pairs)
    assert (config.batch_size, config.epochs) == (batch, epochs)
    assert TrainConfig(batch_size=64, epochs=3).resolved(pairs) == TrainConfig(batch_size=64, epochs=3)


def test_batches_skip_tiny_remainders_alike_on_every_rank():
    assert engine.batch_bounds(10, 4, 1) == [(0, 4), (4, 8), (8, 10)]
    assert engine.batch_bounds(9, 4, 1) == [(0, 4), (4, 8)]  # a lone row cannot train batch norm
    assert engine.batch_bounds(10, 4, 2) == [(0, 4), (4, 8)]  # 2 rows cannot give 2 ranks 2 each

"""bench's figures from per-epoch rows; the command itself runs end to end in test_workflows.py."""

import pytest

from mmdigits.bench import TARGET_ACCURACY, speed_figures


def test_speed_figures_separate_the_first_epoch_and_find_the_target():
    history = [
        {"train_seconds": 5.0, "val_acc": 0.90},  # compilation or autotuning in the first epoch
        {"train_seconds": 1.0, "val_acc": TARGET_ACCURACY},
        {"train_seconds": 1.2, "val_acc": 0.995},
        {"train_seconds": 0.8, "val_acc": 0.996},
    ]
    figures = speed_figures(1000, history)
    assert figures["epochs"] == 4 and figures["val_acc"] == 0.996
    assert figures["samples_per_s"] == pytest.approx(4000 / 8.0)
    assert figures["steady_samples_per_s"] == pytest.approx(1000 / 1.0)  # the median epoch after the first
    assert figures["warmup_s"] == pytest.approx(4.0)
    assert figures["seconds_to_target"] == pytest.approx(6.0)  # training seconds until the target was reached


def test_a_target_never_reached_is_none_and_one_epoch_is_its_own_steady_state():
    figures = speed_figures(10, [{"train_seconds": 2.0, "val_acc": 0.5}])
    assert figures["seconds_to_target"] is None
    assert figures["warmup_s"] == 0 and figures["steady_samples_per_s"] == pytest.approx(5.0)

"""Stopping a run: SIGINT/SIGTERM set a flag checked between batches; the run keeps last.pth, prints
the resume command and exits 130, whether the parent left SIGINT alone or ignored it (as a
background job of a non-interactive shell inherits it); a second signal quits at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import FAST_MODEL

from mmdigits import engine, stopping
from mmdigits.config import TrainConfig
from mmdigits.runs import train_run
from mmdigits.stopping import RunStopped, stop_on_signals


def ignore_sigint() -> None:
    """What a background job of a non-interactive shell inherits: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_until(ready, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, "the run never reached the moment to signal"
        time.sleep(0.05)


@pytest.mark.parametrize("parent_ignores_sigint", [False, True], ids=["foreground", "sigint-ignored"])
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["start-up", "mid-run"])
def test_a_signal_stops_training_with_last_checkpoint_and_exit_130(
    tiny_data, tmp_path, moment, signal_number, parent_ignores_sigint
):
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    command = [sys.executable, "-m", "mmdigits", "train", "--data", str(tiny_data), "--model", FAST_MODEL,
               "--epochs", "500", "--out", str(out)]  # fmt: skip
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            preexec_fn=ignore_sigint if parent_ignores_sigint else None,
        )
    try:
        if moment == "start-up":  # the schedule is logged after the handlers are in, before epoch 1
            wait_until(lambda: "schedule:" in log.read_text() or process.poll() is not None)
        else:
            wait_until(lambda: (out / "metrics.csv").exists() or process.poll() is not None)
        process.send_signal(signal_number)
        process.wait(timeout=60)  # a few seconds at most in practice: the flag is read every batch
    finally:
        process.kill()
    message = log.read_text()
    assert process.returncode == 130, message
    assert "Traceback" not in message
    if (out / "last.pth").exists():
        assert "resume with: mmdigits train --resume" in message
        assert torch.load(out / "last.pth", weights_only=True)["epoch"] >= 1
    else:
        assert moment == "start-up" and "before an epoch finished" in message


def test_a_signal_while_checkpointing_finishes_the_checkpoint_then_stops(tiny_data, tmp_path, monkeypatch):
    config = TrainConfig(data=str(tiny_data), model=FAST_MODEL, epochs=50, batch_size=64, out=str(tmp_path))
    real_save, saves = engine.save_checkpoint, []

    def save_while_signalled(path, payload):
        saves.append(path.name)
        if len(saves) == 1:  # Ctrl-C arrives as epoch 1's best.pth is being written
            os.kill(os.getpid(), signal.SIGINT)
        return real_save(path, payload)

    monkeypatch.setattr(engine, "save_checkpoint", save_while_signalled)
    with stop_on_signals() as stop, pytest.raises(RunStopped, match="resume with: mmdigits train --resume"):
        train_run(config, stop=stop)
    last = torch.load(tmp_path / "last.pth", weights_only=True)
    assert saves == ["best.pth", "last.pth"]  # both of epoch 1's checkpoints written, then stopped
    assert last["epoch"] == 1 and "optimizer" in last
    assert (tmp_path / "loss_acc.png").is_file()  # the curves of the epochs that finished


def test_the_second_signal_quits_at_once_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_one_ctrl_c_delivered_twice_is_one_request(monkeypatch):
    """Under torchrun the terminal's Ctrl-C reaches each worker and the launcher forwards it again
    milliseconds later: that copy is not a second request. The same signal a second later is, and
    so is another signal at once (the test above)."""
    clock = [100.0]
    monkeypatch.setattr(stopping, "monotonic", lambda: clock[0])
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        clock[0] += 0.05
        os.kill(os.getpid(), signal.SIGINT)  # the launcher's copy
        assert stop.signal_name == "SIGINT"
        clock[0] += stopping.DUPLICATE_SECONDS
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)

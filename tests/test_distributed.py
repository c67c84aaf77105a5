"""torchrun with two Gloo processes on CPU: one set of artifacts, the same result as one process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from conftest import FAST_MODEL, run_cli

from mmdigits.config import TrainConfig
from mmdigits.errors import UsageError
from mmdigits.profiles import make_dataset
from mmdigits.runs import train_run
from mmdigits.runtime import Distributed, init_distributed
from mmdigits.stopping import RunStopped, StopRequest


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp_data")
    make_dataset(folder, 800, 40, seed=1)
    return folder


def train_args(data, out):
    return [
        "train",
        "--data",
        str(data),
        "--model",
        FAST_MODEL,
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--seed",
        "0",
        "--no-augment",  # augmentation draws per-rank streams: two short runs would differ by their draws
        "--self-train",  # and a third epoch on the test pairs all ranks chose alike
        "--out",
        str(out),
    ]


# Every test pair joins --self-train's second phase, however sure two short epochs leave the model: the
# phase (all ranks training on the pairs they chose alike) must run in both runs whatever their draws.
EVERY_TEST_PAIR = "import mmdigits.selftraining as chosen; chosen.SELF_TRAIN_CONFIDENCE = 0.0\n"


# Each worker says, as it exits, how many of Gloo's threads still run. A group that torch._dynamo was first
# imported into outlives destroy_process_group with its threads (torch 2.13), and about one exit in 200
# then aborted ("terminate called without an active exception") after the run's last file was written.
GLOO_THREADS_AT_EXIT = """
import atexit, os, sys

def gloo_threads() -> None:
    names = [open(f"/proc/self/task/{task}/comm").read() for task in os.listdir("/proc/self/task")]
    print(f"gloo threads at exit: {sum('gloo' in name for name in names)}", file=sys.stderr)

if os.path.isdir("/proc/self/task"):  # Linux
    atexit.register(gloo_threads)
"""


def torchrun_environment() -> dict[str, str]:
    """This process's environment for a torchrun job of its own: one thread a worker, and every thread's
    Python stack printed if a worker dies of a signal, so that a rare crash names where it happened."""
    environment = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    return environment | {"OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}


def test_two_process_gloo_run_matches_one_process(ddp_data, tmp_path, monkeypatch):
    distributed, single = tmp_path / "ddp", tmp_path / "single"
    entry = tmp_path / "every_test_pair.py"  # python -m mmdigits, with the threshold above
    entry.write_text(EVERY_TEST_PAIR + GLOO_THREADS_AT_EXIT + "from mmdigits.cli import run\n\nrun()\n")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(entry),
        *train_args(ddp_data, distributed),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=torchrun_environment())
    assert done.returncode == 0, done.stderr[-6000:]
    assert sorted(path.name for path in distributed.iterdir()) == [
        "best.pth",
        "config.json",
        "last.pth",
        "loss_acc.png",
        "metrics.csv",
    ]
    assert done.stdout.count("best epoch") == 1  # only rank 0 prints
    if sys.platform == "linux":  # each rank has left its group whole: no Gloo thread outlives it
        assert done.stderr.count("gloo threads at exit: 0") == 2, done.stderr[-3000:]
    assert done.stderr.count("self-training: 40 of 40 test pairs labelled") == 1
    state = torch.load(distributed / "best.pth", weights_only=True)["state_dict"]
    assert not any(key.startswith("module.") for key in state)

    monkeypatch.setattr("mmdigits.selftraining.SELF_TRAIN_CONFIDENCE", 0.0)
    assert run_cli(*train_args(ddp_data, single)).exit_code == 0
    ddp_metrics, single_metrics = pd.read_csv(distributed / "metrics.csv"), pd.read_csv(single / "metrics.csv")
    assert len(ddp_metrics) == len(single_metrics) == 3
    # The same steps of the same global batch, but batch norm sees each rank's half of it, so the two
    # runs part early: the first epoch's loss agrees (1 % apart, measured), later figures need not (the
    # last validation accuracy was 0.566 against 0.648, and moved with the threads of the process).
    first_ddp, first_single = ddp_metrics["train_loss"].iloc[0], single_metrics["train_loss"].iloc[0]
    assert abs(first_ddp - first_single) < 0.05 * first_single
    assert (ddp_metrics["val_acc"] > 0.3).all() and (single_metrics["val_acc"] > 0.3).all()  # both learn (chance: 0.1)

    predicted = run_cli("predict", "-c", distributed / "best.pth", "--data", ddp_data, "--out", tmp_path / "s.csv")
    assert predicted.exit_code == 0, predicted.output


def test_ctrl_c_on_a_torchrun_job_stops_every_rank_with_last_checkpoint(ddp_data, tmp_path):
    """A terminal's Ctrl-C reaches the launcher and both workers, and the launcher forwards it to
    them again: the copy must not make the workers quit at once. They stop together at the end of
    an epoch, keep last.pth and one of them prints the resume command."""
    out, log = tmp_path / "ddp", tmp_path / "stderr.log"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "mmdigits", *train_args(ddp_data, out), "--epochs", "500"]  # fmt: skip
    with open(log, "w") as stderr:
        job = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=torchrun_environment(),
            start_new_session=True,  # its own process group, as a terminal gives a foreground job
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (out / "metrics.csv").exists() and job.poll() is None:
            assert time.monotonic() < deadline, "the job never finished an epoch"
            time.sleep(0.1)
        os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
        job.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
    ours = [line for line in log.read_text().splitlines() if line.startswith("Interrupted:")]
    assert ours == [f"Interrupted: stopped by SIGINT: {out / 'last.pth'} is kept; resume with: mmdigits train "
                    f"--resume {out / 'last.pth'}"], log.read_text()[-3000:]  # fmt: skip
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] >= 1


def test_a_one_process_torchrun_job_is_a_plain_run_that_may_record_the_step(monkeypatch):
    """torchrun --nproc-per-node=1 sets WORLD_SIZE=1: no process group and no DDP wrapper, so
    --cuda-graph is allowed there as in a plain run; a job of several processes is refused."""
    for name, value in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    dist, _ = init_distributed("cpu")
    assert not dist.enabled and not torch.distributed.is_initialized()
    recorded = TrainConfig(cuda_graph=True)
    recorded.check_place("cuda", dist.enabled)  # allowed
    with pytest.raises(UsageError, match="one of several torchrun processes"):
        recorded.check_place("cuda", distributed=True)


def test_ranks_leave_together_after_the_last_file_and_at_once_after_a_failure(tiny_data, tmp_path, monkeypatch):
    """The barrier before leaving the group comes after rank 0 draws the curves, its last file: a rank
    must not tear its group down while rank 0 still writes. A stopped run leaves without it."""
    calls = []
    monkeypatch.setattr("mmdigits.runs.plot_curves", lambda path, *rest: calls.append(f"curves {path.name}"))
    monkeypatch.setattr(Distributed, "leave", lambda self, together: calls.append(f"leave together={together}"))
    config = TrainConfig(data=str(tiny_data), model=FAST_MODEL, epochs=1, out=str(tmp_path / "run"), device="cpu")
    train_run(config)
    assert calls == ["curves loss_acc.png", "leave together=True"]

    calls.clear()
    with pytest.raises(RunStopped):
        train_run(config, stop=StopRequest("SIGTERM"))
    assert calls == ["leave together=False"]  # stopped before an epoch: no curves, and no waiting for the others

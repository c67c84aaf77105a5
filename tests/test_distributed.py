"""torchrun with two Gloo processes on CPU: one set of artifacts, the same result as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import FAST_MODEL, run_cli

from mmdigits.config import TrainConfig
from mmdigits.errors import UsageError
from mmdigits.profiles import make_dataset
from mmdigits.runtime import init_distributed


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
        "--out",
        str(out),
    ]


def test_two_process_gloo_run_matches_one_process(ddp_data, tmp_path):
    distributed, single = tmp_path / "ddp", tmp_path / "single"
    environment = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    environment["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "mmdigits",
        *train_args(ddp_data, distributed),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(path.name for path in distributed.iterdir()) == [
        "best.pth",
        "config.json",
        "last.pth",
        "loss_acc.png",
        "metrics.csv",
    ]
    assert done.stdout.count("best epoch") == 1  # only rank 0 prints
    state = torch.load(distributed / "best.pth", weights_only=True)["state_dict"]
    assert not any(key.startswith("module.") for key in state)

    assert run_cli(*train_args(ddp_data, single)).exit_code == 0
    ddp_metrics, single_metrics = pd.read_csv(distributed / "metrics.csv"), pd.read_csv(single / "metrics.csv")
    assert len(ddp_metrics) == len(single_metrics) == 2
    assert abs(ddp_metrics["val_acc"].iloc[-1] - single_metrics["val_acc"].iloc[-1]) < 0.1

    predicted = run_cli("predict", "-c", distributed / "best.pth", "--data", ddp_data, "--out", tmp_path / "s.csv")
    assert predicted.exit_code == 0, predicted.output


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

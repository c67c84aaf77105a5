"""Shared fixtures: a tiny generated dataset and one tiny trained run, made once per session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmdigits.cli import app
from mmdigits.profiles import make_dataset

FAST_MODEL = "cnn_rnn_linear"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """200 training and 40 test pairs in the competition's format (+ y_test.csv)."""
    folder = tmp_path_factory.mktemp("data")
    make_dataset(folder, 200, 40, seed=0)
    return folder


@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory) -> Path:
    """One epoch of the fast model through the CLI; returns the run folder."""
    out = tmp_path_factory.mktemp("runs") / "run"
    result = CliRunner().invoke(
        app, ["train", "--data", str(tiny_data), "--model", FAST_MODEL, "--epochs", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def run_cli(*args: str):
    """Invoke the CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def run_cli_fresh(*args: str) -> tuple[subprocess.CompletedProcess, bool]:
    """Run the CLI in a new interpreter; returns the finished process and whether torch was imported
    (which in-process tests cannot tell: their interpreter has torch already)."""
    script = (
        "import atexit, sys\n"
        "from mmdigits.cli import run\n"
        "atexit.register(lambda: print('torch' in sys.modules, file=sys.stderr))\n"
        "sys.argv = ['mmdigits', *sys.argv[1:]]\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=120)
    *said, torch_loaded = done.stderr.strip().splitlines() or [""]
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "\n".join(said)), torch_loaded == "True"

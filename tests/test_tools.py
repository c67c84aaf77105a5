"""tools/: the variants of the CLI that tools/gpu_bench.sh runs on a lent GPU. Each replaces pieces
of mmdigits by name, so a rename must fail here on the CPU, not in the device's scarce minutes."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST_MODEL

from mmdigits.models import list_models

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def train_with(tool: str, data: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(TOOLS / tool), "train", "--data", str(data), "--model", FAST_MODEL]
    command += ["--epochs", "2", "--device", "cpu", "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("tool", ["cudnn_heuristics.py", "cold_start.py"])
def test_the_gpu_variants_of_the_cli_train_as_the_cli_does_on_a_cpu(tool, tiny_data, tmp_path):
    done = train_with(tool, tiny_data, tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "best.pth").is_file()


def test_the_trace_gives_the_seconds_of_every_piece_of_a_run(tiny_data, tmp_path):
    done = train_with("trace_run.py", tiny_data, tmp_path / "run")
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("trace: ")]
    words = line.split()[1:]
    pieces = dict(zip(words[::2], words[1::2], strict=True))
    for piece in ("wall", "import_torch", "load_train", "split_for", "model_to_device", "tensors_to_device"):
        assert piece in pieces
    for piece in ("make_optimizer", "first_epoch", "evaluate", "save_epoch", "calibrate_best", "plot_curves"):
        assert piece in pieces
    assert pieces["other_epochs"].endswith("x1") and pieces["evaluate"].endswith("x2")
    assert float(pieces["first_epoch"]) < float(pieces["wall"])


def test_every_model_trains_through_the_run_that_records_the_step_on_a_gpu(tiny_data, tmp_path):
    command = [sys.executable, str(TOOLS / "graph_every_model.py"), str(tiny_data), str(tmp_path), "64", "16"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == list_models()
    assert all("val acc" in line and line.endswith("CUDA graph: False") for line in lines)  # the CPU: op by op


def test_the_pieces_of_a_gpu_run_are_each_timed_beside_their_alternative(tiny_data, tmp_path):
    command = [sys.executable, str(TOOLS / "gpu_pieces.py"), str(tiny_data), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["split", "validation", "checkpoint save", "curves"]
    assert "whole arrays copied" in lines[0] and lines[1].count("chunks of") == 2 and "batched copy first" in lines[2]
    assert (tmp_path / "last.pth").is_file() and (tmp_path / "curves.png").is_file()


def test_the_pieces_tool_names_bad_data_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(TOOLS / "gpu_pieces.py"), str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'missing'}: no such folder (pass --data DIR with the competition files)"
    ]

"""TrainConfig is the single source of the training options: every field is an option of every
training command, --config files are checked field by field, and the command line wins."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest
import typer
from conftest import FAST_MODEL, run_cli
from typer.testing import CliRunner

from mmdigits.cli import app
from mmdigits.config import GROUPS, TrainConfig

FIELDS = {field.name for field in fields(TrainConfig)}
# command -> (fields it leaves out, the options of its own)
TRAINING_COMMANDS = {
    "train": ((), {"resume", "overwrite"}),
    "cv": (("out",), {"folds", "out", "overwrite"}),
    "compare": (("model", "out"), {"models", "seeds", "out", "runs", "overwrite"}),
    "matrix": (
        ("data", "model", "out", "self_train"),
        {"models", "train_pairs", "test_pairs", "runs", "out", "overwrite"},
    ),
    "demo": (("data", "out"), {"out", "train_pairs", "test_pairs", "overwrite"}),
    "tune": (("out",), {"trials", "timeout", "out", "storage", "study", "jobs"}),
}


@pytest.mark.parametrize("name", TRAINING_COMMANDS)
def test_every_field_is_an_option_and_every_option_a_field_or_the_commands_own(name):
    command = typer.main.get_command(app).commands[name]
    options = {parameter.name for parameter in command.params} - {"config_file"}
    left_out, own = TRAINING_COMMANDS[name]
    assert options - own == FIELDS - set(left_out)
    help_texts = {parameter.name: parameter.help for parameter in command.params}
    for field in fields(TrainConfig):
        if field.name not in left_out:
            assert help_texts[field.name] == field.metadata["help"]


@pytest.mark.parametrize("name", TRAINING_COMMANDS)
def test_the_training_options_are_shown_in_groups_in_order(name):
    """-h shows the two dozen training options under four headings (data and model, optimisation,
    augmentation, hardware), each group's own columns: in one list an 80-column terminal left 23
    characters a line for the help beside the widest option (--deterministic --no-deterministic)."""
    command = typer.main.get_command(app).commands[name]
    groups = {parameter.name: getattr(parameter, "rich_help_panel", None) for parameter in command.params}
    for field in fields(TrainConfig):
        if field.name not in TRAINING_COMMANDS[name][0]:
            assert groups[field.name] == field.metadata["group"]
    output = CliRunner().invoke(app, [name, "-h"], terminal_width=80).output
    help_text = re.sub(r"\x1b\[[0-9;]*m", "", output)  # colours, where FORCE_COLOR asks for them
    headings = [help_text.index(f"─ {group} ─") for group in ("Options", *GROUPS)]
    assert headings == sorted(headings)


def test_the_command_line_beats_the_config_file_which_beats_the_defaults(tiny_data, tmp_path):
    config_file = tmp_path / "best.json"
    config_file.write_text(json.dumps({"model": FAST_MODEL, "lr": 0.01, "epochs": 1, "augment": False}))
    out = tmp_path / "run"
    result = run_cli("train", "--data", tiny_data, "--config", config_file, "--lr", "0.002", "--out", out)
    assert result.exit_code == 0, result.output
    used = json.loads((out / "config.json").read_text())
    assert (used["model"], used["epochs"], used["augment"]) == (FAST_MODEL, 1, False)  # from the file
    assert used["lr"] == 0.002  # typed on the command line
    assert used["weight_decay"] == TrainConfig.weight_decay  # in neither: the default


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('["lr", 0.01]', "expected a JSON object"),
        ('{"learning_rate": 0.01}', "unknown option 'learning_rate'"),
        ('{"lr": "fast"}', "'lr' must be float"),
        ('{"epochs": true}', "'epochs' must be int"),
        ('{"cuda_graph": 1}', "'cuda_graph' must be bool or null"),
        ("", "not JSON (an empty file)"),
        (b"\x93NUMPY\x01\x00" + bytes(8), "not JSON (a NumPy array (.npy))"),  # an array given as the config
        ('{"lr": "\xe9"}'.encode("latin-1"), "not JSON (not UTF-8: invalid continuation byte at byte 8)"),
    ],
)
def test_bad_config_files_give_one_line(tiny_data, tmp_path, content, message):
    config_file = tmp_path / "bad.json"
    config_file.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run_cli("train", "--data", tiny_data, "--config", config_file, "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in result.stderr and str(config_file) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_an_option_left_to_the_run_is_neither_on_nor_off_until_the_run_decides(tiny_data, tmp_path):
    """--cuda-graph/--no-cuda-graph, or neither: then the run records the step where it can (one
    CUDA GPU), so a CPU run records false in config.json, and a --config file's `true`, which a CPU
    refuses, is overridden by --no-cuda-graph typed on the command line."""
    config_file = tmp_path / "graph.json"
    config_file.write_text(json.dumps({"model": FAST_MODEL, "epochs": 1, "cuda_graph": True}))
    refused = run_cli("train", "--data", tiny_data, "--config", config_file, "--out", tmp_path / "refused")
    assert refused.exit_code == 2 and "--cuda-graph records the training step on one CUDA GPU" in refused.stderr
    for name, options in (("off", ["--config", config_file, "--no-cuda-graph"]), ("auto", ["--epochs", "1"])):
        result = run_cli("train", "--data", tiny_data, "--model", FAST_MODEL, *options, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / name / "config.json").read_text())["cuda_graph"] is False

"""The CLI end to end on tiny generated data: train -> predict -> tsne -> evaluate, and errors."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST_MODEL, run_cli, run_cli_fresh

from mmdigits.errors import DataWarning
from mmdigits.reporting import data_warnings_as_lines


def test_help_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "mmdigits", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("train", "predict", "tsne", "evaluate", "demo", "models"):
        assert command in done.stdout


@pytest.mark.parametrize("triton", [False, True], ids=["cpu-build", "triton-loaded"])
def test_the_entry_point_freezes_the_heap_when_a_command_ends(tmp_path, triton):
    """Failed or not, a command leaves its objects to the operating system: the interpreter's last
    garbage collection over torch's heap cost 0.3-0.9 s a command (docs/benchmarks.md); except where
    triton is loaded (a stand-in module here, absent in the other case whatever is installed), whose
    bindings would report every object frozen alive as a leak. Here the training images are
    unreadable while train's background import (runtime.import_while_loading) still runs: the error
    stays one line."""
    (tmp_path / "x_train_wr.npy").write_text("not an array")
    stand_in = "types.ModuleType('triton')" if triton else "None"  # None: `import triton` fails
    script = (
        "import gc, sys, types\n"
        f"sys.modules['triton'] = {stand_in}\n"
        "from mmdigits.cli import run\n"
        "sys.argv = ['mmdigits', 'train', '--data', sys.argv[1], '--out', sys.argv[2]]\n"
        "try:\n"
        "    run()\n"
        "except SystemExit as done:\n"
        "    print(done.code, gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(tmp_path / "run")], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["1", str(not triton)], done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'x_train_wr.npy'}: a text file, not a .npy array (np.save writes one)"
    ]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="torch's CPU builds come without triton")
def test_training_ends_without_a_report_of_leaks_where_torch_brings_triton(tiny_data, tmp_path):
    """torch 2.15's CUDA build (triton 3.9): with the heap frozen at exit, every `train` ended in 30
    lines of "nanobind: leaked ..." on stderr."""
    command = ["train", "--data", str(tiny_data), "--model", FAST_MODEL, "--epochs", "1", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "mmdigits", *command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("command", ["train", "cv", "compare", "tune", "predict", "evaluate", "tsne", "analyze"])
def test_a_missing_data_folder_is_refused_before_torch_loads(tmp_path, command):
    """A mistyped --data is answered in half a second, not after torch's import (2-5 s)."""
    missing = tmp_path / "missing"
    done, torch_loaded = run_cli_fresh(command, "--data", missing)
    assert (done.returncode, torch_loaded) == (1, False), done.stderr
    assert done.stderr.strip() == f"Error: {missing}: no such folder (pass --data DIR with the competition files)"


def test_version_and_short_help():
    assert run_cli("--version").stdout.startswith("mmdigits ")
    assert "Usage" in run_cli("train", "-h").stdout


def test_help_shows_no_value_to_give_a_flag():
    """typer 0.29 prints `<bool>` beside a flag (`--overwrite <bool>`, `--help -h <bool>`), which reads
    as a value to give; ours show none."""
    for command, flags in (
        (["train"], ["--overwrite", "--no-augment", "--help"]),
        (["bench"], ["--cuda-graph", "--help"]),
        (["data", "make"], ["--overwrite", "--help"]),
        (["data"], ["--help"]),
        ([], ["--version", "--help"]),
    ):
        shown = run_cli(*command, "-h").stdout
        assert all(flag in shown for flag in flags)
        assert [line for line in shown.splitlines() if "<bool>" in line] == [], command


def test_help_names_every_file_or_folder_option_a_path():
    """train's --data/--out are strings in TrainConfig (JSON holds no Path): typer showed `<str>`
    there, `<path>` for the same --data of predict, and `<list[Path]>` for a repeatable -c."""
    for command in ("train", "cv", "compare", "tune", "predict", "evaluate", "tsne"):
        lines = run_cli(command, "-h").stdout.splitlines()
        shown = [line for line in lines if any(f"{name} " in line for name in ("--data", "--out", "-c"))]
        assert shown and [line for line in shown if "<str>" in line or "list[" in line] == [], command


def test_train_writes_the_run_folder(trained_run):
    for name in ("best.pth", "last.pth", "metrics.csv", "loss_acc.png", "config.json"):
        assert (trained_run / name).is_file(), name
    metrics = pd.read_csv(trained_run / "metrics.csv")
    assert list(metrics["epoch"]) == [1]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "seconds"} <= set(metrics.columns)
    payload = torch.load(trained_run / "best.pth", weights_only=True, map_location="cpu")
    assert payload["model"] == FAST_MODEL and payload["format_version"] == 1
    assert len(payload["normalisation"]["audio_mean"]) == 13


def test_predict_writes_a_valid_submission(trained_run, tiny_data, tmp_path):
    out = tmp_path / "submission.csv"
    result = run_cli(
        "predict", "-c", trained_run / "best.pth", "--data", tiny_data, "--out", out, "--probs", tmp_path / "probs.csv"
    )
    assert result.exit_code == 0, result.output
    submission = pd.read_csv(out)
    assert list(submission.columns) == ["row_id", "label"]
    assert list(submission["row_id"]) == list(range(40))
    assert submission["label"].between(0, 9).all()
    probs = pd.read_csv(tmp_path / "probs.csv")
    assert np.allclose(probs[[f"p{d}" for d in range(10)]].sum(axis=1), 1.0, atol=1e-4)
    assert "kaggle competitions submit" in result.stdout


def test_predict_is_byte_identical_and_renames_column(trained_run, tiny_data, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (first, second):
        assert (
            run_cli(
                "predict",
                "-c",
                trained_run / "best.pth",
                "--data",
                tiny_data,
                "--out",
                out,
                "--label-column",
                "Digit_Probability",
            ).exit_code
            == 0
        )
    assert first.read_bytes() == second.read_bytes()
    assert first.read_text().startswith("row_id,Digit_Probability\n")


def test_ensemble_of_a_folder_and_tta(trained_run, tiny_data, tmp_path):
    out = tmp_path / "s.csv"
    result = run_cli(
        "predict", "-c", trained_run.parent, "-c", trained_run / "best.pth", "--data", tiny_data, "--out", out, "--tta"
    )
    assert result.exit_code == 0, result.output
    assert "2 models, TTA" in result.stdout


def test_tsne_writes_plots_and_scores(trained_run, tiny_data, tmp_path):
    result = run_cli(
        "tsne",
        "-c",
        trained_run / "best.pth",
        "--data",
        tiny_data,
        "--split",
        "val",
        "--samples",
        "40",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    for name in ("image.png", "audio.png", "fused.png", "tsne_coordinates.csv"):
        assert (tmp_path / name).is_file()
    coords = pd.read_csv(tmp_path / "tsne_coordinates.csv")
    assert len(coords) == 40 and {"label", "fused_x", "fused_cluster"} <= set(coords.columns)
    assert "NMI" in result.stdout
    # each point names its row of the training files: a validation row, with that row's digit
    labels = pd.read_csv(tiny_data / "y_train.csv").set_index("row_id")["label"]
    assert coords["row_id"].is_unique and (labels[coords["row_id"]].to_numpy() == coords["label"]).all()
    assert coords["row_id"].max() >= 40  # rows of the files, not of the sample


def test_evaluate_reads_the_labels_beside_the_test_files_by_default(trained_run, tiny_data, tmp_path):
    """`evaluate --data DIR` scores against DIR/y_test.csv (what `data make` and `demo` write), not
    a y_test.csv wherever the command happens to run."""
    result = run_cli("evaluate", "-c", trained_run / "best.pth", "--data", tiny_data, "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    assert "audio_noisy" in result.stdout
    (tiny_data / "y_test.csv").rename(tmp_path / "elsewhere.csv")
    try:
        missing = run_cli("evaluate", "-c", trained_run / "best.pth", "--data", tiny_data, "--out", tmp_path / "ev2")
    finally:
        (tmp_path / "elsewhere.csv").rename(tiny_data / "y_test.csv")
    assert missing.exit_code != 0 and str(tiny_data / "y_test.csv") in missing.output
    assert "Traceback" not in missing.output


def test_tsne_of_the_test_split_colours_by_the_labels_beside_it(trained_run, tiny_data, tmp_path):
    """`tsne --split test` on a folder holding y_test.csv colours its maps by digit (and scores the
    clusters) without being told where the labels are; without the file, by cluster only."""
    arguments = ["tsne", "-c", trained_run / "best.pth", "--data", tiny_data, "--split", "test", "--samples", "20"]
    result = run_cli(*arguments, "--out", tmp_path / "with")
    assert result.exit_code == 0, result.output
    coords = pd.read_csv(tmp_path / "with" / "tsne_coordinates.csv")
    truth = pd.read_csv(tiny_data / "y_test.csv").set_index("row_id").loc[coords["row_id"]]
    assert (truth["label"].to_numpy() == coords["label"]).all()
    assert (truth["condition"].to_numpy() == coords["condition"]).all()  # the map's points by noise condition
    (tiny_data / "y_test.csv").rename(tmp_path / "elsewhere.csv")
    try:
        unlabelled = run_cli(*arguments, "--out", tmp_path / "without")
    finally:
        (tmp_path / "elsewhere.csv").rename(tiny_data / "y_test.csv")
    assert unlabelled.exit_code == 0, unlabelled.output
    assert list(pd.read_csv(tmp_path / "without" / "tsne_coordinates.csv").columns[:2]) == ["row_id", "image_x"]


def test_evaluate_reports_conditions(trained_run, tiny_data, tmp_path):
    result = run_cli(
        "evaluate",
        "-c",
        trained_run / "best.pth",
        "--data",
        tiny_data,
        "--labels",
        tiny_data / "y_test.csv",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    assert "audio_noisy" in result.stdout and "macro-F1" in result.stdout
    assert (tmp_path / "confusion_matrix.png").is_file()


def test_pairs_whose_condition_cell_is_blank_are_reported_as_blank(trained_run, tiny_data, tmp_path):
    """With pandas 3 these pairs fell out of every condition's row, and a row 'nan' of 0 pairs at
    accuracy 0 stood in for them."""
    table = pd.read_csv(tiny_data / "y_test.csv")
    table.loc[:4, "condition"] = None
    table.to_csv(tmp_path / "labels.csv", index=False)
    result = run_cli(
        "evaluate",
        "-c",
        trained_run / "best.pth",
        "--data",
        tiny_data,
        "--labels",
        tmp_path / "labels.csv",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:3] for line in result.stdout.splitlines() if line.count("│") == 5]
    pairs = {name.strip(): int(count) for name, count in rows if count.strip().isdigit()}
    assert pairs["(blank)"] == 5 and sum(pairs.values()) == len(table) and "nan" not in pairs


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train", "--data", "nowhere"], 1, "nowhere: no such folder"),
        (["train", "--model", "cnn_lstm"], 2, "unknown model 'cnn_lstm'"),
        (["train", "--epochs", "-1"], 2, "--epochs must be at least 1 (or 0: auto)"),
        (["train", "--batch-size", "-3"], 2, "--batch-size must be at least 1"),
        (["train", "--cuda-graph", "--device", "cpu"], 2, "--cuda-graph records the training step on one CUDA GPU"),
        (["train", "--cuda-graph", "--compile"], 2, "--cuda-graph and --compile both record CUDA graphs"),
        (["bench", "--cuda-graph", "--device", "cpu"], 2, "--cuda-graph records the training step on one CUDA GPU"),
        (["predict", "-c", "missing.pth"], 1, "missing.pth: no such checkpoint (`mmdigits train` writes runs/"),
        (["tsne", "--split", "dev"], 2, "--split dev"),
    ],
)
def test_bad_options_give_one_line(args, code, message, tiny_data):
    if "--data" not in args and args[0] == "train":
        args = [*args, "--data", str(tiny_data)]
    result = run_cli(*args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_too_few_pairs_for_the_split_or_a_step_are_refused_in_one_line(tiny_data, tmp_path):
    """Where the data, --max-samples, --val-fraction or --folds leave a part empty or no step to take,
    the run is refused before it writes anything (it was a traceback, or a silent run without
    validation; tune's in tests/test_tuning.py)."""
    cases = [
        (
            ["train", "--max-samples", "5"],
            2,
            "--val-fraction 0.2 of 5 pairs (5 distinct audio clips) leaves none to validate on",
        ),
        (
            ["train", "--val-fraction", "0.99"],
            2,
            "--val-fraction 0.99 of 200 pairs (200 distinct audio clips) leaves none to train on",
        ),
        (
            ["train", "--max-samples", "1", "--val-fraction", "0"],
            1,
            "too few training pairs for one step (1; batch norm needs at least 2)",
        ),
        (["cv", "--max-samples", "4", "--folds", "5"], 2, "--folds 5 of 4 pairs leaves a fold empty"),
    ]
    for number, (args, code, message) in enumerate(cases):
        out = tmp_path / f"run{number}"
        result = run_cli(*args, "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "1", "--out", out)
        said = result.stderr.strip().splitlines()  # the data's summary lines may come first
        assert result.exit_code == code and message in said[-1] and said[-1].startswith("Error: "), result.output
        assert "Traceback" not in result.output and not out.exists()
    result = run_cli(
        "train",
        "--data",
        tiny_data,
        "--model",
        FAST_MODEL,
        "--epochs",
        "1",
        "--val-fraction",
        "0",
        "--out",
        tmp_path / "all",
    )
    assert result.exit_code == 0 and "no validation: best.pth holds the last epoch's model (1)" in result.stdout
    # the reports that read the checkpoint's own validation split say what to read instead
    unvalidated = ["-c", tmp_path / "all" / "best.pth", "--data", tiny_data]
    for args, instead in (
        (["tsne", *unvalidated], "map the test pairs (--split test) instead"),  # said "pass --labels", ignored there
        (["tsne", *unvalidated, "--labels", tiny_data / "y_test.csv"], "--labels labels the test pairs; add --split"),
        (["analyze", *unvalidated], "(--val-fraction 0); pass --labels y_test.csv"),
    ):
        refused = run_cli(*args, "--out", tmp_path / "report")
        assert refused.exit_code == 2 and instead in refused.stderr and "Traceback" not in refused.output
        assert not (tmp_path / "report").exists()


def test_failed_predict_keeps_existing_submission(trained_run, tiny_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("x_test_wr.npy", "x_test_sp.npy"):
        (data / name).write_bytes((tiny_data / name).read_bytes())
    np.save(data / "x_test_sp.npy", np.zeros((39, 507)))  # one row short
    out = tmp_path / "submission.csv"
    out.write_text("precious\n")
    result = run_cli("predict", "-c", trained_run / "best.pth", "--data", data, "--out", out)
    assert result.exit_code == 1 and "39 rows, but x_test_wr.npy has 40" in result.stderr
    assert out.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_refused_probabilities_path_leaves_the_submission_alone(trained_run, tiny_data, tmp_path):
    """--probs naming the submission itself would have replaced it with probabilities (and the
    command then said to submit it); a --probs that is a folder failed after the submission was written."""
    out = tmp_path / "submission.csv"
    out.write_text("precious\n")
    for probs, code, message in ((out, 2, "the submission's own file (--out)"), (tmp_path, 1, "is a folder")):
        result = run_cli("predict", "-c", trained_run / "best.pth", "--data", tiny_data, "--out", out, "--probs", probs)
        assert result.exit_code == code and message in result.stderr
        assert out.read_text() == "precious\n"


def test_same_seed_gives_identical_metrics_and_submission(tiny_data, tmp_path):
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert (
            run_cli(
                "train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "1", "--seed", "3", "--out", out
            ).exit_code
            == 0
        )
        assert run_cli("predict", "-c", out / "best.pth", "--data", tiny_data, "--out", out / "s.csv").exit_code == 0
        metrics = pd.read_csv(out / "metrics.csv").drop(columns=["seconds", "train_seconds"])
        outputs.append((metrics, (out / "s.csv").read_bytes()))
    pd.testing.assert_frame_equal(outputs[0][0], outputs[1][0])
    assert outputs[0][1] == outputs[1][1]


def stop_after_epoch(epoch: int, **options) -> None:
    """Train (train_run, as the CLI does) until `epoch` is saved, then stop as Ctrl-C does."""
    from mmdigits.config import TrainConfig
    from mmdigits.runs import train_run

    def stop(row, result):
        if row["epoch"] == epoch:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(TrainConfig(**options), on_epoch=stop)


def train_first_of_two_epochs(data: Path, out: Path, **options) -> Path:
    """A run stopped as by Ctrl-C right after its first of two epochs was saved; returns its last.pth."""
    stop_after_epoch(1, data=str(data), model=FAST_MODEL, epochs=2, seed=5, out=str(out), **options)
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] == 1
    return out / "last.pth"


def assert_same_training(expected: Path, found: Path) -> None:
    """Two run folders hold the same final weights and the same metrics."""
    final = torch.load(found / "last.pth", weights_only=True)
    for key, value in torch.load(expected / "last.pth", weights_only=True)["state_dict"].items():
        assert torch.equal(value, final["state_dict"][key]), key
    columns = ["seconds", "train_seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(expected / "metrics.csv").drop(columns=columns),
        pd.read_csv(found / "metrics.csv").drop(columns=columns),
    )


def resume_to_the_end(straight: Path, stopped: Path, epochs: int) -> None:
    """--resume finishes the stopped run as the straight run went; a second --resume has nothing left."""
    result = run_cli("train", "--resume", stopped / "last.pth")
    assert result.exit_code == 0, result.output
    assert_same_training(straight, stopped)
    done = run_cli("train", "--resume", stopped / "last.pth")
    assert done.exit_code == 2
    assert f"the run has trained all its {epochs} epochs" in done.stderr


def test_resume_replays_the_same_training(tiny_data, tmp_path):
    """2 epochs straight == 1 epoch, interrupted, then --resume for the second (CPU)."""
    straight = tmp_path / "straight"
    assert (
        run_cli(
            "train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "2", "--seed", "5", "--out", straight
        ).exit_code
        == 0
    )
    last = train_first_of_two_epochs(tiny_data, tmp_path / "interrupted")
    result = run_cli("train", "--resume", last)
    assert result.exit_code == 0, result.output
    assert_same_training(straight, last.parent)


def without(data: Path, name: str, folder: Path) -> Path:
    """A copy of a data folder lacking one file."""
    shutil.copytree(data, folder)
    (folder / name).unlink()
    return folder


def test_self_train_adds_the_test_pairs_it_is_sure_of_for_a_fifth_more_epochs(tiny_data, tmp_path, monkeypatch):
    """Every test pair passes a threshold of 0; no test label is read (the folder has no y_test.csv)."""
    monkeypatch.setattr("mmdigits.selftraining.SELF_TRAIN_CONFIDENCE", 0.0)
    data, out = without(tiny_data, "y_test.csv", tmp_path / "data"), tmp_path / "run"
    result = run_cli("train", "--data", data, "--model", FAST_MODEL, "--epochs", "5", "--self-train", "--out", out)
    assert result.exit_code == 0, result.output
    joined = "self-training: 40 of 40 test pairs labelled with >= 99% confidence join the 159 training pairs"
    assert f"{joined} for 1 more epoch\n" in result.stderr
    assert len(pd.read_csv(out / "metrics.csv")) == 6  # 5 + a fifth of 5
    last = torch.load(out / "last.pth", weights_only=True)
    assert last["pseudo_labels"]["rows"] == list(range(40))
    # best.pth: the best validation F1 of both phases; the first of equals, but the self-trained one wins a
    # tie, which is anything within half a validation pair's worth (40 validation pairs)
    f1 = [row["val_f1"] for row in last["history"]]
    expected = 6 if f1[5] >= max(f1) - 0.5 / 40 else 1 + f1.index(max(f1))
    assert torch.load(out / "best.pth", weights_only=True)["epoch"] == expected


def test_self_train_with_no_test_pair_it_is_sure_of_says_so_and_trains_no_second_phase(
    tiny_data, tmp_path, monkeypatch
):
    """More epochs on the training pairs alone would be a longer run, not self-training."""
    monkeypatch.setattr("mmdigits.selftraining.SELF_TRAIN_CONFIDENCE", 1.1)  # no probability reaches it
    out = tmp_path / "run"
    result = run_cli("train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "3", "--self-train", "--out", out)
    assert result.exit_code == 0, result.output
    assert (
        "self-training: none of the 40 test pairs reached 99% confidence, so none joins training and there is "
        "no second phase; the first phase's model stands\n"
    ) in result.stderr
    assert list(pd.read_csv(out / "metrics.csv")["epoch"]) == [1, 2, 3]
    assert "pseudo_labels" not in torch.load(out / "last.pth", weights_only=True)


def scripted_validation(monkeypatch, macro_f1: Iterable[float]) -> None:
    """Epoch k validates with macro-F1 macro_f1[k - 1]."""
    scores = iter(macro_f1)
    monkeypatch.setattr(
        "mmdigits.engine.evaluate", lambda *args, **kwargs: {"loss": 1.0, "accuracy": 0.5, "macro_f1": next(scores)}
    )


@pytest.mark.parametrize(("behind", "kept"), [(0.1, 6), (0.6, 3), (0.0, 6)])
def test_self_train_keeps_the_first_phases_model_only_when_it_validates_better_by_half_a_pair(
    tiny_data, tmp_path, monkeypatch, behind, kept
):
    """Epochs 1-5, then 6 self-trained (40 validation pairs: one pair is worth about 1/40 of macro-F1). A
    self-trained epoch `behind` pairs' worth below the first phase's best (epoch 3) is as good: it is kept."""
    monkeypatch.setattr("mmdigits.selftraining.SELF_TRAIN_CONFIDENCE", 0.0)
    scripted_validation(monkeypatch, [0.5, 0.8, 0.9, 0.85, 0.9, 0.9 - behind / 40])
    out = tmp_path / "run"
    result = run_cli("train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "5", "--self-train", "--out", out)
    assert result.exit_code == 0, result.output
    assert torch.load(out / "best.pth", weights_only=True)["epoch"] == kept


def test_self_train_resumes_its_second_phase_exactly(tiny_data, tmp_path, monkeypatch):
    """6 epochs + 2 of self-training straight == stopped after the first of those 2, then --resume:
    the resumed run trains on the test pairs the first run labelled, read back from last.pth."""
    monkeypatch.setattr("mmdigits.selftraining.SELF_TRAIN_CONFIDENCE", 0.5)
    options = ["--data", tiny_data, "--model", FAST_MODEL, "--epochs", "6", "--seed", "5", "--self-train"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_cli("train", *options, "--out", straight).exit_code == 0
    chosen = torch.load(straight / "last.pth", weights_only=True)["pseudo_labels"]["rows"]
    assert 0 < len(chosen) < 40  # some pairs, not all: which ones matters
    stop_after_epoch(7, data=str(tiny_data), model=FAST_MODEL, epochs=6, seed=5, self_train=True, out=str(stopped))
    monkeypatch.setattr("mmdigits.selftraining.SELF_TRAIN_CONFIDENCE", 1.1)  # labelling again would choose none
    resume_to_the_end(straight, stopped, 8)


def never_better(monkeypatch) -> None:
    """Every epoch validates alike: --patience P ends a run after epoch 1 + P (a tie is no improvement,
    except in --self-train's second phase)."""
    scripted_validation(monkeypatch, itertools.repeat(0.5))


def test_resume_refuses_a_run_that_patience_ended(tiny_data, tmp_path, monkeypatch):
    never_better(monkeypatch)
    out = tmp_path / "run"
    options = ["--data", tiny_data, "--model", FAST_MODEL, "--epochs", "6", "--patience", "2", "--out", out]
    result = run_cli("train", *options)
    assert result.exit_code == 0, result.output
    assert "stopped early after epoch 3: no better validation macro-F1 in --patience 2 epochs since epoch 1" in (
        result.stderr
    )
    assert len(pd.read_csv(out / "metrics.csv")) == 3
    before = (out / "last.pth").read_bytes()
    resumed = run_cli("train", "--resume", out / "last.pth")
    assert resumed.exit_code == 2
    assert resumed.stderr.strip() == (
        f"Error: --resume {out / 'last.pth'}: --patience 2 ended the run after epoch 3 (no better validation "
        f"macro-F1 since epoch 1); its model is {out / 'best.pth'}"
    )
    assert (out / "last.pth").read_bytes() == before


def test_self_train_after_patience_resumes_into_its_second_phase(tiny_data, tmp_path, monkeypatch):
    """--patience ends the first phase after epoch 3 of 10; the second phase's 2 epochs follow. Stopped
    right at that end, --resume goes on to the second phase (no more first-phase epochs), as the
    straight run did; once both are done, it says so."""
    never_better(monkeypatch)
    monkeypatch.setattr("mmdigits.selftraining.SELF_TRAIN_CONFIDENCE", 0.0)
    options = ["--data", tiny_data, "--model", FAST_MODEL, "--epochs", "10", "--seed", "5", "--patience", "2"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_cli("train", *options, "--self-train", "--out", straight).exit_code == 0
    assert list(pd.read_csv(straight / "metrics.csv")["epoch"]) == [1, 2, 3, 4, 5]
    recipe = {"model": FAST_MODEL, "epochs": 10, "seed": 5, "patience": 2, "self_train": True}
    stop_after_epoch(3, data=str(tiny_data), out=str(stopped), **recipe)
    resume_to_the_end(straight, stopped, 5)


def test_self_train_warns_of_test_files_in_other_units(tiny_data, tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tiny_data, data)
    np.save(data / "x_test_sp.npy", np.load(data / "x_test_sp.npy") * 100)  # unscaled MFCC beside scaled ones
    result = run_cli("train", "--data", data, "--model", FAST_MODEL, "--epochs", "1", "--self-train", "--out", out)
    assert result.exit_code == 0, result.output
    assert "warning: x_test_sp.npy: the audio is unlike the model's training data" in result.stderr


def test_self_train_refuses_before_training_without_the_test_files_or_a_validation_split(tiny_data, tmp_path):
    data, out = without(tiny_data, "x_test_sp.npy", tmp_path / "data"), tmp_path / "run"
    result = run_cli("train", "--data", data, "--model", FAST_MODEL, "--epochs", "1", "--self-train", "--out", out)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"Error: {data / 'x_test_sp.npy'}: no such file"]
    assert not out.exists()
    result = run_cli("train", "--data", tiny_data, "--self-train", "--val-fraction", "0", "--out", out)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "Error: --self-train needs a validation split (--val-fraction above 0): the model's confidence is "
        "calibrated on it"
    ]


def test_resume_continues_the_folder_it_reads_from_wherever_it_was_moved(tiny_data, tmp_path):
    """A run folder copied elsewhere (from a Kaggle notebook, say) continues where its last.pth now
    is; the folder its config names, here the original, perhaps another run, is never written to.
    Its data may have moved too: --data finds it, and other data is refused before anything is written."""
    original = train_first_of_two_epochs(tiny_data, tmp_path / "started").parent
    copy, moved_data = tmp_path / "copied", tmp_path / "moved-data"
    shutil.copytree(original, copy)
    shutil.copytree(tiny_data, moved_data)
    before = {path.name: path.read_bytes() for path in original.iterdir()}
    other_data = tmp_path / "other-data"
    shutil.copytree(tiny_data, other_data)
    np.save(other_data / "x_train_wr.npy", np.load(other_data / "x_train_wr.npy") * 0.9)  # fainter ink
    refused = run_cli("train", "--resume", copy / "last.pth", "--data", other_data)
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"Error: --resume: the training split of {other_data} is not the one this run trained on (its statistics "
        "differ); give --data the folder it trained on"
    )
    assert "Traceback" not in refused.output
    assert (copy / "config.json").read_bytes() == (original / "config.json").read_bytes()
    resumed = run_cli("train", "--resume", copy / "last.pth", "--data", moved_data)
    assert resumed.exit_code == 0, resumed.output
    assert {path.name: path.read_bytes() for path in original.iterdir()} == before
    assert torch.load(copy / "last.pth", weights_only=True)["epoch"] == 2
    assert json.loads((copy / "config.json").read_text())["data"] == str(moved_data)


def test_a_run_started_on_one_gpu_resumes_on_a_cpu_with_its_recipe(tiny_data, tmp_path, monkeypatch):
    """A run whose step was recorded as a CUDA graph (AdamW capturable, its learning rate a tensor, its
    momentum held at 0.9) continues op by op where no GPU is, as it would have gone on: the recording
    is emulated on the CPU by a "graph" that runs the step as called."""
    from mmdigits import engine
    from mmdigits.config import TrainConfig
    from mmdigits.runs import train_run

    monkeypatch.setattr(TrainConfig, "check_place", lambda self, device_type, distributed: None)
    monkeypatch.setattr(engine, "capture_cuda_graph", lambda step, generator: step)
    recorded = {"cuda_graph": True, "precision": "fp32"}  # fp32: bf16 rounds otherwise where autocast caches
    straight = tmp_path / "straight"
    train_run(TrainConfig(data=str(tiny_data), model=FAST_MODEL, epochs=2, seed=5, out=str(straight), **recorded))
    last = train_first_of_two_epochs(tiny_data, tmp_path / "started-on-a-gpu", **recorded)
    monkeypatch.undo()
    started = torch.load(last, weights_only=True)
    assert started["config"]["cuda_graph"] and not started["scheduler"]["cycle_momentum"]
    result = run_cli("train", "--resume", last)
    assert result.exit_code == 0, result.output
    assert_same_training(straight, last.parent)
    assert json.loads((last.parent / "config.json").read_text())["cuda_graph"] is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--epochs", "4", "--lr", "0.01"], "--epochs, --lr cannot change, only --data and --device"),
        (["--out", "elsewhere"], "--out cannot change, only --data and --device"),
    ],
)
def test_options_given_with_resume_are_refused_not_ignored(tiny_data, tmp_path, options, message):
    last = train_first_of_two_epochs(tiny_data, tmp_path / "run")
    before = last.read_bytes()
    result = run_cli("train", "--resume", last, *options)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: --resume continues {last.parent} with the options it started with ({last.parent / 'config.json'}); "
        f"{message}: start a new run to train otherwise"
    ]
    assert last.read_bytes() == before
    said_again = ("--out", last.parent, "--epochs", "2", "--seed", "5")  # the run's own values, as a --config gives
    assert run_cli("train", "--resume", last, *said_again).exit_code == 0
    finished = run_cli("train", "--resume", last)
    assert finished.exit_code == 2
    assert finished.stderr.strip() == (
        f"Error: --resume {last}: the run has trained all its 2 epochs; its model is {last.parent / 'best.pth'}"
    )


@pytest.mark.parametrize(
    "model", ["cnn_rnn_linear", "cnn_rnn_attention", "cnn_transformer_linear", "cnn_transformer_attention"]
)
def test_each_reference_architecture_trains_predicts_and_plots(model, tiny_data, tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--data", tiny_data, "--model", model, "--epochs", "1", "--out", run).exit_code == 0
    assert run_cli("predict", "-c", run / "best.pth", "--data", tiny_data, "--out", tmp_path / "s.csv").exit_code == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) == 40
    result = run_cli("tsne", "-c", run / "best.pth", "--data", tiny_data, "--samples", "30", "--out", tmp_path)
    assert result.exit_code == 0 and (tmp_path / "fused.png").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x00\x01garbage" * 100, "not a readable checkpoint"), (None, "is newer than this mmdigits reads")],
)
def test_bad_checkpoints_on_the_cli(trained_run, tiny_data, tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if content is None:
        payload = torch.load(trained_run / "best.pth", weights_only=True)
        torch.save({**payload, "format_version": 99}, path)
    else:
        path.write_bytes(content)
    result = run_cli("predict", "-c", path, "--data", tiny_data, "--out", tmp_path / "s.csv")
    assert result.exit_code == 1 and message in result.stderr
    assert not (tmp_path / "s.csv").exists()


def test_a_plain_pickle_as_checkpoint_is_one_line(tiny_data, tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    command = ["predict", "-c", str(path), "--data", str(tiny_data), "--out", str(tmp_path / "s.csv")]
    # a fresh process: Python shows each warning once per process, so an in-process run could miss torch's
    done = subprocess.run([sys.executable, "-m", "mmdigits", *command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and not (tmp_path / "s.csv").exists()
    assert done.stderr.strip().splitlines() == [
        f"Error: {path}: not a readable checkpoint (a plain pickle, not a file torch.save wrote)"
    ]


def test_lowrank_rank_option_reaches_the_checkpoint(tiny_data, tmp_path):
    result = run_cli(
        "train", "--data", tiny_data, "--model", "cnn_rnn_lowrank", "--rank", "2", "--epochs", "1", "--out", tmp_path
    )
    assert result.exit_code == 0, result.output
    payload = torch.load(tmp_path / "best.pth", weights_only=True)
    assert payload["model_kwargs"]["rank"] == 2
    assert payload["state_dict"]["fusion.image_factor"].shape[0] == 2
    assert (
        run_cli("predict", "-c", tmp_path / "best.pth", "--data", tiny_data, "--out", tmp_path / "s.csv").exit_code == 0
    )


@pytest.mark.parametrize("script", ["train.py", "predict.py"])
def test_top_level_scripts_are_the_cli(script):
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / script), "-h"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"Usage: python {script} [OPTIONS]" in done.stdout  # not "train.py train"


def test_debug_variable_shows_the_traceback(tmp_path):
    """Every command reports through the same wrapper; `data check` reaches it before torch loads."""
    command = [sys.executable, "-m", "mmdigits", "data", "check", "--data", str(tmp_path / "nowhere")]
    environment = {**os.environ, "MMDIGITS_DEBUG": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode != 0 and "Traceback" in done.stderr and "DataError" in done.stderr
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr and "no such folder" in quiet.stderr


@pytest.mark.parametrize("where", ["folder", "file_in_the_way"])
def test_unwritable_outputs_give_one_line(trained_run, tiny_data, tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = tmp_path if where == "folder" else blocker / "s.csv"
    result = run_cli("predict", "-c", trained_run / "best.pth", "--data", tiny_data, "--out", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        ("is a folder" in result.stderr) if where == "folder" else ("cannot create the output folder" in result.stderr)
    )
    trained = run_cli("train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "1", "--out", blocker)
    assert trained.exit_code == 1 and "cannot create the output folder" in trained.stderr
    assert blocker.read_text() == "a file, not a folder"


def test_a_finished_run_is_never_replaced_without_overwrite(tiny_data, tmp_path):
    out = tmp_path / "run"
    arguments = ["train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "1", "--out", out]
    assert run_cli(*arguments).exit_code == 0
    first = (out / "best.pth").read_bytes()
    again = run_cli(*arguments)
    assert again.exit_code == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "--overwrite" in again.stderr and f"--resume {out / 'last.pth'}" in again.stderr
    assert (out / "best.pth").read_bytes() == first
    replaced = run_cli(*arguments, "--seed", "1", "--overwrite")
    assert replaced.exit_code == 0 and (out / "best.pth").read_bytes() != first


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("evaluate", ["--labels", "y_test.csv"]),
        ("analyze", []),
        ("tsne", ["--split", "test", "--samples", "20"]),
    ],
)
def test_a_report_folder_is_never_replaced_without_overwrite(trained_run, tiny_data, tmp_path, command, options):
    options = [tiny_data / option if option.endswith(".csv") else option for option in options]
    arguments = [command, "-c", trained_run / "best.pth", "--data", tiny_data, "--out", tmp_path, *options]
    assert run_cli(*arguments).exit_code == 0
    written = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    again = run_cli(*arguments)
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == written
    assert run_cli(*arguments, "--overwrite").exit_code == 0


def test_commands_on_test_files_warn_when_their_audio_is_in_other_units(trained_run, tiny_data, tmp_path):
    """Test audio in other units than the training files (x 100 + 5 here) still gets an answer, the
    model leaning on the images, but predict, evaluate, analyze and tsne say so in a line naming
    the file on stderr; the files in the training units get no warning."""
    rescaled = tmp_path / "rescaled"
    rescaled.mkdir()
    for name in ("x_test_wr.npy", "y_test.csv"):
        (rescaled / name).write_bytes((tiny_data / name).read_bytes())
    np.save(rescaled / "x_test_sp.npy", np.load(tiny_data / "x_test_sp.npy") * 100 + 5)
    checkpoint = trained_run / "best.pth"
    as_trained = run_cli("predict", "-c", checkpoint, "--data", tiny_data, "--out", tmp_path / "a.csv")
    assert as_trained.exit_code == 0 and "warning" not in as_trained.stderr, as_trained.stderr
    expected = "warning: x_test_sp.npy: the audio is unlike the model's training data"
    other = run_cli("predict", "-c", checkpoint, "--data", rescaled, "--out", tmp_path / "b.csv")
    assert other.exit_code == 0, other.output
    assert expected in " ".join(other.stderr.split()) and "x_test_wr.npy:" not in other.stderr
    assert len(pd.read_csv(tmp_path / "b.csv")) == 40
    scored = run_cli(
        "evaluate", "-c", checkpoint, "--data", rescaled, "--labels", rescaled / "y_test.csv", "--out", tmp_path / "ev"
    )
    assert scored.exit_code == 0, scored.output
    assert expected in " ".join(scored.stderr.split())
    labels = ["--data", rescaled, "--labels", rescaled / "y_test.csv"]
    analysed = run_cli("analyze", "-c", checkpoint, *labels, "--out", tmp_path / "an")
    mapped = run_cli("tsne", "-c", checkpoint, *labels, "--split", "test", "--samples", 40, "--out", tmp_path / "maps")
    for result in (analysed, mapped):
        assert result.exit_code == 0, result.output
        assert expected in " ".join(result.stderr.split())


def test_pixels_read_as_0_to_255_are_said_and_unknown_scales_refused(trained_run, tiny_data, tmp_path):
    """Images saved as 0..255 train as [0, 1] with one warning line naming the file (train and data
    check say it); test images whose values reach 2 are refused in one line, the old submission kept."""
    folder = tmp_path / "bytes"
    shutil.copytree(tiny_data, folder)
    np.save(folder / "x_train_wr.npy", np.round(np.load(tiny_data / "x_train_wr.npy") * 255).astype(np.uint8))
    trained = run_cli("train", "--data", folder, "--model", FAST_MODEL, "--epochs", "1", "--out", tmp_path / "run")
    assert trained.exit_code == 0, trained.output
    said = "x_train_wr.npy: pixels are whole numbers 0..255: read as 0..255, divided by 255"
    assert [line for line in trained.stderr.splitlines() if "warning:" in line] == [f"warning: {folder}/{said}"]
    checked = run_cli("data", "check", "--data", folder)
    assert checked.exit_code == 0 and said in checked.stdout and "1 warning(s)" in checked.stdout
    np.save(folder / "x_test_wr.npy", np.load(tiny_data / "x_test_wr.npy") * 2)
    submission = tmp_path / "submission.csv"
    submission.write_text("kept\n")
    refused = run_cli("predict", "-c", trained_run / "best.pth", "--data", folder, "--out", submission)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.stderr.strip().startswith("Error: ") and "x_test_wr.npy: pixel values span [0, " in refused.stderr
    assert submission.read_text() == "kept\n"


def test_a_digit_missing_from_the_training_labels_is_said_by_train_and_data_check(tiny_data, tmp_path):
    """Labels without a digit still train, into a model that never predicts it: one warning line that
    names the file and the digit, from train and from data check (which does not count it twice)."""
    folder = tmp_path / "no_sevens"
    shutil.copytree(tiny_data, folder)
    labels = pd.read_csv(tiny_data / "y_train.csv")
    labels.assign(label=labels["label"].replace(7, 6)).to_csv(folder / "y_train.csv", index=False)
    said = f"warning: {folder}/y_train.csv: no rows of digit 7; the model will never predict it"
    trained = run_cli("train", "--data", folder, "--model", FAST_MODEL, "--epochs", "1", "--out", tmp_path / "run")
    assert trained.exit_code == 0, trained.output
    assert [line for line in trained.stderr.splitlines() if "warning:" in line] == [said]
    checked = run_cli("data", "check", "--data", folder)
    assert checked.exit_code == 0 and said in checked.stdout and "1 warning(s)" in checked.stdout


def test_a_data_warning_is_one_line_said_again_by_the_next_command_and_by_rank_0_only(monkeypatch, capsys):
    for rank, said in (("0", True), ("0", True), ("1", False)):  # the same message twice: two commands
        monkeypatch.setenv("RANK", rank)
        with data_warnings_as_lines():
            warnings.warn(DataWarning("x.npy: read as 0..255"), stacklevel=1)
        assert (capsys.readouterr().err == "warning: x.npy: read as 0..255\n") == said

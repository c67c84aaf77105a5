"""`mmdigits tune`: an Optuna study on tiny data that continues where it stopped, a best.json that
`train --config` retrains, one-line errors, and Ctrl-C that keeps the finished trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import FAST_MODEL, run_cli

from mmdigits.config import TrainConfig
from mmdigits.tuning import schedule_step

pytest.importorskip("optuna")


def test_a_study_continues_and_its_best_config_retrains(tiny_data, tmp_path):
    study = tmp_path / "study"
    arguments = ["tune", "--data", tiny_data, "--model", FAST_MODEL, "--trials", "3", "--epochs", "1", "--out", study]
    first = run_cli(*arguments)
    assert first.exit_code == 0, first.output
    assert (study / "study.db").is_file() and (study / "history.png").is_file()
    second = run_cli(*arguments)
    assert second.exit_code == 0, second.output
    assert "3 earlier trials" in second.stderr and "best of 6 trials" in second.stdout
    trials = pd.read_csv(study / "trials.csv")
    assert len(trials) == 6 and trials["number"].tolist() == list(range(6))
    best = json.loads((study / "best.json").read_text())
    assert best["epochs"] == 1  # given on the command line: held fixed, not searched
    chosen = trials.loc[(trials["params_lr"] - best["lr"]).abs().idxmin()]  # pandas 2.0 parses the last digits off
    assert chosen["params_lr"] == pytest.approx(best["lr"], rel=1e-9)
    assert chosen["val_macro_f1"] == pytest.approx(trials["val_macro_f1"].max())  # best.json: the best trial
    assert not {"data", "out", "device", "max_samples"} & set(best)  # where and on how much: not the recipe
    retrained = run_cli("train", "--data", tiny_data, "--config", study / "best.json", "--out", tmp_path / "run")
    assert retrained.exit_code == 0, retrained.output
    used = json.loads((tmp_path / "run" / "config.json").read_text())
    assert all(used[key] == value for key, value in best.items())


def test_a_bad_storage_url_is_one_line(tiny_data, tmp_path):
    result = run_cli("tune", "--data", tiny_data, "--model", FAST_MODEL, "--storage", "nosuchdb://x", "--out", tmp_path)
    assert result.exit_code == 2 and "--storage nosuchdb://x: cannot open the study's database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--trials", "0"], "--trials and --jobs must be at least 1"),
        (["--timeout", "-5"], "--timeout must be a positive"),
        (["--jobs", "2", "--cuda-graph"], "--cuda-graph records a step with nothing else on the GPU; --jobs runs"),
        (["--val-fraction", "0"], "--val-fraction 0: tune scores every trial on validation"),  # was a KeyError
        (["--max-samples", "5"], "--val-fraction 0.2 of 5 pairs (5 distinct audio clips) leaves none to validate on"),
    ],
)
def test_bad_study_options_are_refused_before_anything_is_written(tiny_data, tmp_path, options, message):
    result = run_cli("tune", "--data", tiny_data, "--model", FAST_MODEL, "--out", tmp_path / "study", *options)
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "study").exists()


def test_trials_side_by_side_launch_op_by_op_where_one_alone_would_record_its_step(tiny_data, tmp_path, monkeypatch):
    """With --jobs 2 another trial may launch work on the GPU while one records its step as a CUDA
    graph, which CUDA refuses: the trials' step is left unrecorded, where a single job leaves the
    choice to the run (recorded on one GPU)."""
    from mmdigits import tuning

    chosen = []

    def train_run(config, **kwargs):
        chosen.append(config.cuda_graph)
        return SimpleNamespace(result=SimpleNamespace(history=[{"val_f1": 0.5}], best_epoch=1))

    monkeypatch.setattr(tuning, "train_run", train_run)
    base = TrainConfig(model=FAST_MODEL, data=str(tiny_data), epochs=1)
    for jobs in (2, 1):
        tuning.run_tune(base, set(), trials=1, out=tmp_path / f"study{jobs}", jobs=jobs)
    assert chosen == [False, None]
    assert "cuda_graph" not in json.loads((tmp_path / "study1" / "best.json").read_text())  # the machine's choice


def test_a_missing_data_folder_creates_no_study(tmp_path):
    result = run_cli("tune", "--data", tmp_path / "nowhere", "--out", tmp_path / "study")
    assert result.exit_code == 1 and "nowhere" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "study").exists()


def test_without_the_extra_tune_names_it(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what `import optuna` meets when it is not installed
    result = run_cli("tune", "--data", tiny_data, "--model", FAST_MODEL, "--out", tmp_path)
    assert result.exit_code == 1 and "pip install 'mmdigits[tune]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("parent_ignores_sigint", [False, True], ids=["foreground", "sigint-ignored"])
def test_ctrl_c_ends_the_study_and_keeps_the_finished_trials(tiny_data, tmp_path, parent_ignores_sigint):
    study, log = tmp_path / "study", tmp_path / "stderr.log"
    command = [sys.executable, "-m", "mmdigits", "tune", "--data", str(tiny_data), "--model", FAST_MODEL,
               "--trials", "200", "--epochs", "3", "--out", str(study)]  # fmt: skip
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if parent_ignores_sigint else None
    with open(log, "w") as stderr:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env, preexec_fn=ignore)
    try:
        deadline = time.monotonic() + 180
        while "trial 1:" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        process.kill()
    message = log.read_text()
    assert process.returncode == 130, message
    assert "finished trials are kept" in message and "Traceback" not in message
    trials = pd.read_csv(study / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() >= 2 and (study / "best.json").is_file()


def test_the_trials_table_shows_every_parameter_whole_at_80_columns():
    from rich.console import Console

    from mmdigits.tables import trials_table
    from mmdigits.tuning import suggest

    draw = lambda name, *args, **kwargs: 0.5  # noqa: E731
    trial = SimpleNamespace(suggest_float=draw, suggest_int=draw, suggest_categorical=draw)
    names = suggest(trial, "cnn_rnn_lowrank", set())  # every parameter tuned
    console = Console(width=80, record=True)
    best = [{"number": number, "value": 0.9, "state": "complete", "params": names} for number in range(5)]
    console.print(trials_table(best, "best"))
    shown = console.export_text()  # it showed "modality_dropou" over "t", and at 80 columns a letter or two a line
    assert all(name.replace("_", " ") in shown for name in names) and "trial 4" in shown, shown


def test_the_pruner_compares_trials_at_the_same_share_of_their_schedule():
    """A 30-epoch one-cycle trial at epoch 3 is where a 10-epoch one is at epoch 1 (both still
    warming up); comparing them by epoch number pruned every long trial of a real study."""
    assert schedule_step(3, 30) == schedule_step(1, 10) == 10
    assert schedule_step(15, 30) == schedule_step(5, 10) == 50
    assert schedule_step(30, 30) == schedule_step(10, 10) == 100
    assert [schedule_step(epoch, 25) for epoch in (1, 2, 3, 25)] == [0, 0, 10, 100]

"""compare, cv, bench and demo end to end on tiny data."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import FAST_MODEL, run_cli

from mmdigits.compare import seconds_to


def test_seconds_to_target():
    history = [{"seconds": 2.0, "val_acc": 0.9}, {"seconds": 3.0, "val_acc": 0.975}, {"seconds": 1.0, "val_acc": 0.99}]
    assert seconds_to(history) == 5.0
    assert seconds_to(history, 0.999) is None


def test_compare_writes_table_and_curves(tiny_data, tmp_path):
    result = run_cli(
        "compare",
        "--data",
        tiny_data,
        "--models",
        f"{FAST_MODEL},cnn_image_only",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--out",
        tmp_path / "other",
        "--runs",
        tmp_path / "runs",
    )
    assert result.exit_code == 0, result.output
    table = (tmp_path / "other" / "README.md").read_text()
    assert f"[{FAST_MODEL}]" in table and "+-" in table and "torch" in table
    metrics = json.loads((tmp_path / "other" / FAST_MODEL / "metrics.json").read_text())
    assert metrics["seeds"] == 2 and len(metrics["histories"]) == 2
    assert (tmp_path / "other" / "cnn_image_only" / "loss_acc.png").is_file()
    again = run_cli("compare", "--data", tiny_data, "--models", FAST_MODEL, "--runs", tmp_path / "runs")
    assert again.exit_code == 2 and "seed0/ already holds a trained run" in again.stderr


def test_cv_then_ensemble_predict(tiny_data, tmp_path):
    out = tmp_path / "cv"
    result = run_cli("cv", "--data", tiny_data, "--model", FAST_MODEL, "--folds", "3", "--epochs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == 200 and set(oof["fold"]) == {0, 1, 2}
    summary = json.loads((out / "cv.json").read_text())
    assert len(summary["per_fold"]) == 3 and 0 <= summary["pooled_oof"]["accuracy"] <= 1
    predicted = run_cli("predict", "-c", out, "--data", tiny_data, "--out", tmp_path / "s.csv")
    assert predicted.exit_code == 0 and "3 models" in predicted.stdout
    again = run_cli("cv", "--data", tiny_data, "--model", FAST_MODEL, "--folds", "3", "--out", out)
    assert again.exit_code == 2 and "fold0/ already holds a trained run" in again.stderr


def test_cv_rejects_one_fold(tiny_data, tmp_path):
    result = run_cli("cv", "--data", tiny_data, "--folds", "1", "--out", tmp_path)
    assert result.exit_code == 2 and "--folds must be at least 2" in result.stderr


def test_bench_prints_side_by_side(tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli(
        "bench",
        "--models",
        FAST_MODEL,
        "--samples",
        "200",
        "--epochs",
        "2",
        "--reference-epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    rows = figures["rows"]
    assert set(rows) == {"reference (competition solution)", FAST_MODEL}
    assert rows["reference (competition solution)"]["parameters"] > 16_000_000
    assert rows[FAST_MODEL]["speedup"] == pytest.approx(
        rows[FAST_MODEL]["samples_per_s"] / rows["reference (competition solution)"]["samples_per_s"]
    )
    assert rows["reference (competition solution)"]["epochs"] == 1 and rows[FAST_MODEL]["epochs"] == 2
    assert rows[FAST_MODEL]["fit_seconds"] > 0 and rows["reference (competition solution)"]["inference_per_s"] is None
    assert figures["step_options"] == {"compile": False, "cuda_graph": False}  # as resolved: no graph on a CPU
    assert (
        "speed-" in result.stdout
        and "warm-" in result.stdout
        and f"{rows[FAST_MODEL]['speedup']:.2f}x" in result.stdout
    )
    again = run_cli("bench", "--models", FAST_MODEL, "--samples", "200", "--device", "cpu", "--out", out)
    assert again.exit_code == 2 and "already holds benchmark figures (bench.json)" in again.stderr
    assert json.loads(out.read_text()) == figures  # the figures of the first run are kept


def test_bench_rejects_a_negative_reference_epochs(tmp_path):
    result = run_cli("bench", "--samples", "200", "--reference-epochs", "-1", "--out", tmp_path / "bench.json")
    assert result.exit_code == 2 and "--reference-epochs at least 0" in result.stderr
    assert not (tmp_path / "bench.json").exists()
    folder = run_cli("bench", "--models", FAST_MODEL, "--samples", "200", "--device", "cpu", "--out", tmp_path)
    assert folder.exit_code == 1 and "is a folder; give a file name" in folder.stderr  # said before the work
    assert "reference loop" not in folder.stdout
    (tmp_path / "a_file").write_text("")
    under = run_cli("bench", "--models", FAST_MODEL, "--samples", "200", "--out", tmp_path / "a_file" / "b.json")
    assert under.exit_code == 1 and "cannot create the output folder" in under.stderr
    assert "reference loop" not in under.stdout


def test_demo_runs_end_to_end(tmp_path):
    result = run_cli(
        "demo", "--out", tmp_path, "--train", "120", "--test", "30", "--epochs", "1", "--model", FAST_MODEL
    )
    assert result.exit_code == 0, result.output
    for name in ("submission.csv", "run/best.pth", "plots/fused.png", "evaluation/confusion_matrix.png"):
        assert (tmp_path / name).is_file(), name
    assert "demo finished" in result.stdout and "audio_noisy" in result.stdout
    again = run_cli("demo", "--out", tmp_path, "--train", "120", "--test", "30", "--epochs", "1")
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    shutil.rmtree(tmp_path / "run")  # a demo stopped after making its data: the data refuses
    again = run_cli("demo", "--out", tmp_path, "--train", "120", "--test", "30", "--epochs", "1")
    assert again.exit_code == 2 and "data/ already holds a dataset" in again.stderr
    replaced = ["demo", "--out", tmp_path, "--train", "120", "--test", "30", "--epochs", "1", "--model", FAST_MODEL]
    assert run_cli(*replaced, "--overwrite").exit_code == 0

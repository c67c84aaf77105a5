"""`mmdigits matrix`: how a recipe travels. Train every model on each data profile, test it on each
profile's test set (unseen writers and voices), per noise condition.

A test set of another profile is given to a model in the audio units of the profile it was trained
on (a linear re-expression, never clipped): units are a property of a user's pipeline, which keeps
train and test alike; writers, voices and noise are what must travel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmdigits.artifacts import refuse_file_overwrite, write_json
from mmdigits.checkpoint import load_model
from mmdigits.config import TrainConfig
from mmdigits.evaluation import report
from mmdigits.inference import ensemble_probabilities
from mmdigits.profiles import PROFILES, generate, profile
from mmdigits.runs import refuse_runs, train_run
from mmdigits.runtime import pick_device

UNIMODAL = ("cnn_image_only", "rnn_audio_only")


def run_matrix(
    models: list[str],
    base: TrainConfig,
    n_train: int,
    n_test: int,
    runs: Path,
    out: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
    overwrite: bool = False,
    profiles: tuple[str, ...] = tuple(PROFILES),
) -> dict:
    """{train profile: {model: {"train_seconds", test profile: {"overall", "conditions"}}}, and
    "fusion_deficits"}; written to `out` (JSON) when given."""
    refuse_runs([runs / train_profile / name for train_profile in profiles for name in models], overwrite)
    if out is not None:
        refuse_file_overwrite(out, overwrite, "matrix figures")
    device = pick_device(base.device)
    matrix: dict = {}
    for train_profile in profiles:
        units = profile(train_profile).audio_units
        train, _, _ = generate(train_profile, n_train, 1, base.seed)
        tests = {name: generate(name, 10, n_test, base.seed, units=units)[1:] for name in profiles}
        matrix[train_profile] = {}
        for name in models:
            log(f"train on {train_profile} ({n_train} pairs): {name}")
            config = TrainConfig(**{**base.to_dict(), "model": name, "out": str(runs / train_profile / name)})
            summary = train_run(config, data=train)
            model, _ = load_model(runs / train_profile / name / "best.pth", device)
            cells = {"train_seconds": sum(row["seconds"] for row in summary.result.history)}
            for test_profile, (test, conditions) in tests.items():
                predictions = ensemble_probabilities([model], test.image, test.audio, device).argmax(dim=1).numpy()
                found = report(predictions, test.labels, conditions)
                wrong = predictions != test.labels
                by_condition = {
                    condition: {**scores, "wrong": np.flatnonzero(wrong & (conditions == condition)).tolist()}
                    for condition, scores in found.conditions.items()
                }
                cells[test_profile] = {"overall": found.overall, "conditions": by_condition}
            matrix[train_profile][name] = cells
    figures = {"train_pairs": n_train, "test_pairs": n_test, "epochs": base.epochs, "torch": str(torch.__version__),
               "matrix": matrix}  # fmt: skip
    figures["fusion_deficits"] = fusion_deficits(figures)
    if out is not None:
        write_json(out, figures)
    return figures


def fusion_deficits(matrix: dict) -> list[str] | None:
    """Cells where a fused model scores below the better unimodal baseline on a condition; None
    where the matrix lacks the two baselines, so that nothing was compared. Where the cells list
    their wrong test rows, each deficit says how many pairs only one of the two gets right and the
    exact McNemar p-value of that split: a deficit of a pair or two in a few hundred is what two
    equally good models show by chance (p near 1); p < 0.05 is one to act on."""
    if not all(name in rows for rows in matrix["matrix"].values() for name in UNIMODAL):
        return None
    found = []
    for train_profile, rows in matrix["matrix"].items():
        for name, cells in rows.items():
            if name in UNIMODAL:
                continue
            for test_profile in PROFILES:
                for condition, fused in cells.get(test_profile, {}).get("conditions", {}).items():
                    base = max(UNIMODAL, key=lambda b: rows[b][test_profile]["conditions"][condition]["accuracy"])
                    best = rows[base][test_profile]["conditions"][condition]
                    if fused["accuracy"] < best["accuracy"]:
                        where = f"{name} trained on {train_profile}, {test_profile}/{condition}"
                        found.append(
                            f"{where}: {fused['accuracy']:.4f} < {best['accuracy']:.4f}{paired(fused, best, base)}"
                        )
    return found


def paired(fused: dict, best: dict, base: str) -> str:
    """' (b pairs only BASE gets right, c only the fused model; p = ...)' from the cells' wrong rows."""
    if "wrong" not in fused or "wrong" not in best:
        return ""  # a matrix.json from before the rows were recorded
    only_base = len(set(fused["wrong"]) - set(best["wrong"]))
    only_fused = len(set(best["wrong"]) - set(fused["wrong"]))
    p = mcnemar_exact(only_base, only_fused)
    pairs = "pair" if only_base == 1 else "pairs"
    return f" ({only_base} {pairs} only {base} gets right, {only_fused} only the fused model; p = {p:.2f})"


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test: the chance of a split at least this uneven of the pairs that
    two classifiers disagree on, if either were as likely to be the one right."""
    disagreements = only_a + only_b
    tail = sum(math.comb(disagreements, k) for k in range(min(only_a, only_b) + 1)) / 2**disagreements
    return min(1.0, 2 * tail)

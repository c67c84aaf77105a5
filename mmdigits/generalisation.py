"""`mmdigits matrix`: how a recipe travels. Train every model on each data profile, test it on each
profile's test set (unseen writers and voices), per noise condition.

A test set of another profile is given to a model in the audio units of the profile it was trained
on (a linear re-expression, never clipped): units are a property of a user's pipeline, which keeps
train and test alike; writers, voices and noise are what must travel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from mmdigits.artifacts import write_json
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
                probabilities = ensemble_probabilities([model], test.image, test.audio, device)
                found = report(probabilities.argmax(dim=1).numpy(), test.labels, conditions)
                cells[test_profile] = {"overall": found.overall, "conditions": found.conditions}
            matrix[train_profile][name] = cells
    figures = {"train_pairs": n_train, "test_pairs": n_test, "epochs": base.epochs, "torch": str(torch.__version__),
               "matrix": matrix}  # fmt: skip
    figures["fusion_deficits"] = fusion_deficits(figures)
    if out is not None:
        write_json(out, figures)
    return figures


def fusion_deficits(matrix: dict) -> list[str]:
    """Cells where a fused model scores below the better unimodal baseline on a condition."""
    found = []
    for train_profile, rows in matrix["matrix"].items():
        baselines = [rows[name] for name in UNIMODAL if name in rows]
        if len(baselines) < 2:
            continue
        for name, cells in rows.items():
            if name in UNIMODAL:
                continue
            for test_profile in PROFILES:
                if test_profile not in cells:
                    continue
                for condition, scores in cells[test_profile]["conditions"].items():
                    best = max(base[test_profile]["conditions"][condition]["accuracy"] for base in baselines)
                    if scores["accuracy"] < best:
                        found.append(
                            f"{name} trained on {train_profile}, {test_profile}/{condition}: "
                            f"{scores['accuracy']:.4f} < {best:.4f}"
                        )
    return found

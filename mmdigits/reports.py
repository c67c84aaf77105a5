"""Report folders of a trained model: `evaluate` (scores on labelled test files), `analyze` (does
fusion pay?) and `tsne` (embedding maps and clusters). Each returns its figures for the CLI to
print and writes its files atomically, refusing to replace an earlier report unless told to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdigits import analysis
from mmdigits.artifacts import atomic_path, refuse_overwrite, write_json
from mmdigits.checkpoint import load_ensemble, load_model
from mmdigits.config import TrainConfig
from mmdigits.data import TEST_AUDIO, TEST_IMAGE, TEST_LABELS, Split, load_test, load_train, read_label_table
from mmdigits.embeddings import cluster, cluster_scores, embeddings_for, numbered_by_digit, plot_map, tsne_2d
from mmdigits.errors import DataError, UsageError
from mmdigits.evaluation import Report, plot_confusion, report
from mmdigits.inference import ensemble_probabilities, probabilities, unlike_training
from mmdigits.metrics import expected_calibration_error
from mmdigits.runs import split_for
from mmdigits.runtime import pick_device

EVALUATE_FILES = ("confusion_matrix.png", "per_class.csv")
ANALYZE_FILES = ("report.json", *EVALUATE_FILES, "robustness.png", "reliability.png", "errors.png")
TSNE_FILES = ("tsne_coordinates.csv", "image.png", "audio.png", "fused.png")


def labelled_pairs(
    payload: dict, data: Path, labels: Path | None, instead: str = "pass --labels y_test.csv"
) -> tuple[Split, np.ndarray | None, str]:
    """The labelled test files when a labels CSV is given, else the checkpoint's own validation
    split (`instead` says what to do where it has none); returns (split, conditions or None, description)."""
    if labels is not None:
        test = load_test(data)
        table = read_label_table(labels)
        if len(table) != len(test):
            raise DataError(f"{labels}: {len(table)} labels, but the test files have {len(test)} rows")
        test.labels = table["label"].to_numpy()
        conditions = None
        if "condition" in table.columns:  # an empty cell is NaN, which pandas 3 keeps through astype(str)
            conditions = table["condition"].fillna("(blank)").astype(str).to_numpy()
        return test, conditions, f"{len(test)} labelled test pairs"
    config = TrainConfig.from_dict({**payload["config"], "data": str(data)})
    _, val, _ = split_for(config, load_train(data))
    if val is None:
        raise UsageError(f"the checkpoint was trained without a validation split (--val-fraction 0); {instead}")
    return val, None, f"{len(val)} validation pairs (the checkpoint's own split)"


def write_scores(out: Path, predictions: np.ndarray, labels: np.ndarray, result: Report, title: str) -> None:
    plot_confusion(out / "confusion_matrix.png", predictions, labels, title)
    with atomic_path(out / "per_class.csv") as temporary:
        result.classes.to_csv(temporary, index=False, float_format="%.4f")


def evaluate_report(
    checkpoints: list[Path],
    data: Path,
    labels: Path | None,
    out: Path,
    tta: bool = False,
    device: str = "auto",
    overwrite: bool = False,
) -> tuple[Report, str, list[str]]:
    """Score a model or an ensemble on labelled test files (`labels`, else y_test.csv beside them);
    returns the report, its title and warnings about test inputs unlike the training data."""
    labels = data / TEST_LABELS if labels is None else labels
    refuse_overwrite(out, EVALUATE_FILES, overwrite, "an evaluation")
    models, torch_device = load_ensemble(checkpoints, device)
    test, conditions, _ = labelled_pairs({}, data, labels)
    predictions = ensemble_probabilities(models, test.image, test.audio, torch_device, tta=tta).numpy().argmax(axis=1)
    result = report(predictions, test.labels, conditions)
    write_scores(out, predictions, test.labels, result, "confusion matrix (test)")
    warnings = unlike_training(models[0], test.image, test.audio, (TEST_IMAGE, TEST_AUDIO))
    return result, f"{len(test)} test pairs, {len(models)} model(s){' + TTA' if tta else ''}", warnings


@dataclass
class Analysis:
    findings: dict[str, Any]  # what report.json holds
    summary: Report


def analyze_report(
    checkpoint: Path,
    data: Path,
    labels: Path | None = None,
    image_model: Path | None = None,
    audio_model: Path | None = None,
    out: Path = Path("analysis"),
    device: str = "auto",
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> Analysis:
    """Ablations, utilisation, each head alone, robustness curves, calibration, errors, and (given
    both unimodal checkpoints) how often fusion is wrong where a single modality is right."""
    if (image_model is None) != (audio_model is None):
        raise UsageError("--image-model and --audio-model go together")
    refuse_overwrite(out, ANALYZE_FILES, overwrite, "an analysis")
    torch_device = pick_device(device)
    model, payload = load_model(checkpoint, torch_device)
    pairs, conditions, description = labelled_pairs(payload, data, labels)
    log(f"analysing {payload['model']} on {description}")
    warnings = unlike_training(model, pairs.image, pairs.audio, (TEST_IMAGE, TEST_AUDIO)) if labels is not None else []
    for line in warnings:
        log(f"warning: {line}")
    probs = probabilities(model, pairs.image, pairs.audio, torch_device).numpy()
    predictions = probs.argmax(axis=1)
    summary = report(predictions, pairs.labels, conditions)
    ablated = analysis.ablation(model, pairs, torch_device)
    log("robustness curves...")
    curves = analysis.robustness(model, pairs, torch_device)
    ece = expected_calibration_error(probs, pairs.labels)
    findings = {
        "model": payload["model"],
        "evaluated_on": description,
        "overall": summary.overall,
        "conditions": summary.conditions,
        "ablation": ablated,
        "utilisation": analysis.utilisation(ablated),
        "robustness": {"levels": analysis.NOISE_LEVELS, **curves},
        "ece": ece,
        "warnings": warnings,
    }
    if model.bimodal:
        answers = {**analysis.head_predictions(model, pairs, torch_device), "whole model": predictions}
        findings["heads"] = {
            name: analysis.accuracy_by_condition(found, pairs.labels, conditions) for name, found in answers.items()
        }
    if image_model is not None and audio_model is not None:
        single = [load_model(path, torch_device)[0] for path in (image_model, audio_model)]
        image_only, audio_only = (probabilities(m, pairs.image, pairs.audio, torch_device).argmax(1) for m in single)
        findings["fusion_hurts"] = analysis.fusion_hurts(
            predictions, image_only.numpy(), audio_only.numpy(), pairs.labels
        )
    write_scores(out, predictions, pairs.labels, summary, f"{payload['model']}: confusion")
    analysis.plot_robustness(out / "robustness.png", curves, f"{payload['model']}: noise robustness")
    analysis.plot_reliability(out / "reliability.png", probs, pairs.labels, ece)
    analysis.plot_error_gallery(out / "errors.png", pairs, predictions)
    write_json(out / "report.json", findings)
    return Analysis(findings, summary)


@dataclass
class EmbeddingMaps:
    model: str
    pairs: int
    dims: dict[str, int] = field(default_factory=dict)  # embedding -> its width
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # embedding -> NMI, ARI, purity
    files: list[Path] = field(default_factory=list)


def tsne_report(
    checkpoint: Path,
    data: Path,
    split: str = "val",
    samples: int = 5000,
    out: Path = Path("plots"),
    seed: int = 0,
    labels: Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> EmbeddingMaps:
    """t-SNE maps coloured by digit (or by cluster without labels), k-means scores per embedding,
    and the coordinates as CSV."""
    if split not in ("val", "test", "train"):
        raise UsageError(f"--split {split}: choose val, test or train")
    if samples < 10:
        raise UsageError("--samples must be at least 10")
    if labels is not None and split != "test":
        raise UsageError(f"--labels labels the test pairs; add --split test (--split {split} has its own labels)")
    refuse_overwrite(out, TSNE_FILES, overwrite, "t-SNE maps")
    torch_device = pick_device(device)
    model, payload = load_model(checkpoint, torch_device)
    if split == "test" and labels is None and (data / TEST_LABELS).is_file():
        labels = data / TEST_LABELS  # what `data make` and `demo` write beside the test files
        log(f"colouring the test pairs by digit from {labels}")
    conditions = None
    if split == "train":
        config = TrainConfig.from_dict({**payload["config"], "data": str(data)})
        chosen = split_for(config, load_train(data))[0]
    elif split == "test" and labels is None:
        chosen = load_test(data)  # no labels: the maps are coloured by cluster only
    else:
        chosen, conditions, _ = labelled_pairs(payload, data, labels, "map the test pairs (--split test) instead")
    rows = np.sort(np.random.default_rng(seed).permutation(len(chosen))[:samples])
    chosen = chosen.subset(rows)
    conditions = None if conditions is None else conditions[rows]
    log(f"embedding {len(chosen)} {split} pairs with {payload['model']}")
    if split == "test":
        for line in unlike_training(model, chosen.image, chosen.audio, (TEST_IMAGE, TEST_AUDIO)):
            log(f"warning: {line}")
    maps = EmbeddingMaps(payload["model"], len(chosen))
    coordinates = {}
    for name, embedding in embeddings_for(model, chosen.image, chosen.audio, torch_device).items():
        log(f"t-SNE of the {name} embedding ({embedding.shape[1]} dims)...")
        coords, clusters = tsne_2d(embedding, seed), cluster(embedding, seed)
        if chosen.labels is not None:
            clusters = numbered_by_digit(clusters, chosen.labels)
        coordinates |= {f"{name}_x": coords[:, 0], f"{name}_y": coords[:, 1], f"{name}_cluster": clusters}
        title = f"{payload['model']}: {name} embedding ({split})"
        maps.files.append(plot_map(out / f"{name}.png", coords, clusters, chosen.labels, title))
        maps.dims[name] = embedding.shape[1]
        if chosen.labels is not None:
            maps.scores[name] = cluster_scores(clusters, chosen.labels)
    maps.files.append(write_coordinates(out / "tsne_coordinates.csv", coordinates, chosen, conditions))
    return maps


def write_coordinates(
    path: Path, coordinates: dict[str, np.ndarray], pairs: Split, conditions: np.ndarray | None
) -> Path:
    """Each point's row in its files (and its digit and noise condition, where known) beside its
    coordinates and clusters, so that a group on a map can be traced to its pairs."""
    import pandas as pd

    known = {"row_id": pairs.file_rows(), "label": pairs.labels, "condition": conditions}
    frame = pd.DataFrame({name: values for name, values in known.items() if values is not None} | coordinates)
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.4f")
    return path

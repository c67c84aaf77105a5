"""The command line: the only place that reads argv, prints results and maps errors to exit codes.

Heavy imports (torch, sklearn) happen inside the commands so that `mmdigits --help` is instant.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mmdigits import __version__
from mmdigits.config import DEFAULT_MODEL, TrainConfig
from mmdigits.errors import MmdigitsError, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    help="Multimodal digit classification: handwritten image + spoken digit, trained together.",
    context_settings=CONTEXT,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Make datasets in the competition's format.", context_settings=CONTEXT, no_args_is_help=True
)
app.add_typer(data_app, name="data")
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)  # results
DEFAULT_CHECKPOINT = Path(f"runs/{DEFAULT_MODEL}/best.pth")
MAIN_MODELS = ["cnn_rnn_linear", "cnn_rnn_attention", "cnn_transformer_linear", "cnn_transformer_attention"]


def friendly(command):
    """Turn the project's errors into one line on stderr and an exit code; MMDIGITS_DEBUG=1 shows
    the traceback instead."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MmdigitsError as error:
            if os.environ.get("MMDIGITS_DEBUG"):
                raise
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(2 if isinstance(error, UsageError) else 1) from None
        except KeyboardInterrupt:
            if os.environ.get("MMDIGITS_DEBUG"):
                raise
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None

    return wrapper


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mmdigits {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Multimodal digit classification: handwritten image + spoken digit, trained together."""


# Options shared by several commands
DataOption = Annotated[Path, typer.Option("--data", help="Folder with the competition's .npy/.csv files.")]
DeviceOption = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
CheckpointsOption = Annotated[
    list[Path],
    typer.Option(
        "--checkpoint",
        "-c",
        help="A .pth file, or a folder of runs (every best.pth under it). "
        "Repeat to average an ensemble's probabilities.",
    ),
]


@app.command()
@friendly
def train(
    data: DataOption = Path("."),
    model: Annotated[str, typer.Option(help="Registered model name; see `mmdigits models`.")] = DEFAULT_MODEL,
    epochs: Annotated[
        int, typer.Option(help="Passes over the training split; 0: auto (700+ optimiser steps, 15-40 epochs).")
    ] = TrainConfig.epochs,
    batch_size: Annotated[
        int, typer.Option(help="Pairs per optimisation step; 0: auto (about 35 steps an epoch, 32-256).")
    ] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the one-cycle schedule (AdamW).")] = TrainConfig.lr,
    seed: Annotated[int, typer.Option(help="Seed for the split, initialisation, shuffles and augmentation.")] = 0,
    device: DeviceOption = "auto",
    val_fraction: Annotated[float, typer.Option(help="Share held out for validation (0 trains on all).")] = 0.2,
    out: Annotated[Optional[Path], typer.Option(help="Run folder [default: runs/<model>].")] = None,
    modality_dropout: Annotated[float, typer.Option(help="Chance of blanking one modality of a pair.")] = (
        TrainConfig.modality_dropout
    ),
    aux_weight: Annotated[float, typer.Option(help="Weight of the per-modality heads' loss (0: off).")] = (
        TrainConfig.aux_weight
    ),
    rank: Annotated[int, typer.Option(help="Rank of the low-rank tensor fusion (*_lowrank models).")] = 4,
    augment: Annotated[bool, typer.Option(help="Affine image warps, MFCC frame shifts/masks, input noise.")] = True,
    image_noise: Annotated[
        float, typer.Option(help="Strongest training noise on images, in units of the pixels' spread.")
    ] = TrainConfig.image_noise,
    audio_noise: Annotated[
        float, typer.Option(help="Strongest training noise on audio, in units of each coefficient's spread.")
    ] = TrainConfig.audio_noise,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the loss.")] = TrainConfig.label_smoothing,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = TrainConfig.weight_decay,
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16 (autocast).")] = "auto",
    patience: Annotated[int, typer.Option(help="Stop after N epochs without a better val F1; 0: never.")] = 0,
    max_samples: Annotated[int, typer.Option(help="Use only the first N training rows (quick trials).")] = 0,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Deterministic kernels (GPU).")] = False,
    resume: Annotated[Optional[Path], typer.Option(help="Continue from a run's last.pth.")] = None,
) -> None:
    """Train a model on x_train_wr.npy / x_train_sp.npy / y_train.csv; writes best.pth and last.pth."""
    from mmdigits.checkpoint import load_checkpoint
    from mmdigits.reporting import console, epoch_line, progress_bar
    from mmdigits.runs import train_run

    resume_payload = None
    if resume is not None:
        resume_payload = load_checkpoint(resume)
        if "optimizer" not in resume_payload:
            raise UsageError(f"--resume {resume}: holds no optimizer state; resume from a run's last.pth")
        config = TrainConfig.from_dict(resume_payload["config"])
        console.print(f"resuming {config.model} from {resume} after epoch {resume_payload['epoch']}")
    else:
        config = TrainConfig(
            data=str(data),
            model=model,
            out=str(out or ""),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            label_smoothing=label_smoothing,
            val_fraction=val_fraction,
            seed=seed,
            device=device,
            precision=precision,
            augment=augment,
            image_noise=image_noise,
            audio_noise=audio_noise,
            modality_dropout=modality_dropout,
            aux_weight=aux_weight,
            rank=rank,
            patience=patience,
            max_samples=max_samples,
            compile=compile,
            deterministic=deterministic,
        )
    # Ctrl-C and SIGTERM stop training the same way, whatever the parent left: a background job of
    # a non-interactive shell inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with progress_bar("training") as advance:

        def on_epoch(row, result):
            console.print(epoch_line(row, best=result.best_epoch == row["epoch"]))

        try:
            summary = train_run(config, resume_payload, log=console.print, on_epoch=on_epoch, on_batch=advance)
        except KeyboardInterrupt:
            last = Path(config.out) / "last.pth"
            hint = f"; resume with: mmdigits train --resume {last}" if last.exists() else ""
            typer.echo(f"Interrupted: {last if last.exists() else 'no epoch finished'}{hint}", err=True)
            raise typer.Exit(130) from None
    if not summary.is_main:
        return
    best = summary.result.history[summary.result.best_epoch - 1]
    stdout.print(
        f"best epoch {summary.result.best_epoch}: "
        + ", ".join(f"{key} {best[key]:.4f}" for key in ("val_acc", "val_f1") if key in best)
    )
    stdout.print(f"wrote {summary.out}/best.pth, last.pth, metrics.csv, loss_acc.png, config.json")


def load_ensemble(checkpoints: list[Path], device: str):
    """Resolve checkpoint paths and load every model onto the chosen device."""
    from mmdigits.checkpoint import load_model, resolve_checkpoints
    from mmdigits.runtime import pick_device

    torch_device = pick_device(device)
    models = [load_model(path, torch_device)[0] for path in resolve_checkpoints(checkpoints)]
    return models, torch_device


@app.command()
@friendly
def predict(
    checkpoint: CheckpointsOption = [DEFAULT_CHECKPOINT],  # noqa: B006 (typer reads the default)
    data: DataOption = Path("."),
    out: Annotated[Path, typer.Option(help="Submission CSV to write.")] = Path("submission.csv"),
    label_column: Annotated[str, typer.Option(help="Name of the prediction column.")] = "label",
    probs: Annotated[Optional[Path], typer.Option(help="Also write class probabilities here.")] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Average over digit-safe test-time augmentations.")] = False,
    image: Annotated[Optional[Path], typer.Option(help="Classify one picture (PNG/JPEG) instead...")] = None,
    audio: Annotated[Optional[Path], typer.Option(help="...with one recording (WAV).")] = None,
    device: DeviceOption = "auto",
) -> None:
    """Predict the test set (x_test_wr.npy, x_test_sp.npy) into a Kaggle submission CSV."""
    import numpy as np

    from mmdigits.data import load_test
    from mmdigits.inference import ensemble_probabilities
    from mmdigits.submission import write_probabilities, write_submission

    if (image is None) != (audio is None):
        raise UsageError("--image and --audio go together: give both, or neither to predict the test set")
    models, torch_device = load_ensemble(checkpoint, device)
    if image is not None:
        image_vector, audio_vector = featurize_pair(image, audio)
        probabilities = ensemble_probabilities(
            models, image_vector.reshape(1, 28, 28), audio_vector.reshape(1, 39, 13), torch_device, tta=tta
        )[0]
        stdout.print(f"digit {int(probabilities.argmax())}  (p = {float(probabilities.max()):.3f})")
        stdout.print("  ".join(f"{digit}: {float(p):.3f}" for digit, p in enumerate(probabilities)))
        return
    test = load_test(data)
    probabilities = ensemble_probabilities(models, test.image, test.audio, torch_device, tta=tta).numpy()
    predictions = probabilities.argmax(axis=1)
    write_submission(out, predictions, label_column)
    if probs is not None:
        write_probabilities(probs, probabilities)
    counts = np.bincount(predictions, minlength=10)
    stdout.print(
        f"wrote {out}: {len(predictions)} rows ({len(models)} model{'s' * (len(models) > 1)}{', TTA' if tta else ''})"
    )
    stdout.print("predicted digits: " + "  ".join(f"{digit}:{count}" for digit, count in enumerate(counts)))
    stdout.print(
        f'submit: kaggle competitions submit -c sp24-tamu-csce-633-600-machine-learning -f {out} -m "mmdigits"'
    )


def featurize_pair(image: Path, audio: Path):
    from mmdigits.features import read_digit_image, read_spoken_digit
    from mmdigits.synth import spoken_digit_table

    return read_digit_image(image), read_spoken_digit(audio, spoken_digit_table())


@app.command()
@friendly
def featurize(
    image: Annotated[Path, typer.Option(help="A picture of one digit (PNG/JPEG).")],
    audio: Annotated[Path, typer.Option(help="A recording of one spoken digit (WAV).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder to write x_test_wr.npy / x_test_sp.npy.")] = None,
) -> None:
    """Turn a real picture and recording into the competition's 784 and 507 vectors."""
    import numpy as np

    from mmdigits.artifacts import save_npy

    image_vector, audio_vector = featurize_pair(image, audio)
    if out is not None:
        save_npy(out / "x_test_wr.npy", image_vector.reshape(1, 28, 28).astype(np.float64))
        save_npy(out / "x_test_sp.npy", audio_vector.reshape(1, 507).astype(np.float64))
        stdout.print(f"wrote {out}/x_test_wr.npy (1, 28, 28) and {out}/x_test_sp.npy (1, 507)")
    stdout.print(
        f"image: 784 values, mean {image_vector.mean():.3f}; audio: 507 values, mean {audio_vector.mean():.3f}"
    )


@app.command()
@friendly
def tsne(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A trained .pth file.")] = DEFAULT_CHECKPOINT,
    data: DataOption = Path("."),
    split: Annotated[str, typer.Option(help="val (the checkpoint's own validation split), test or train.")] = "val",
    samples: Annotated[int, typer.Option(help="Points to embed (a random subset).")] = 5000,
    out: Annotated[Path, typer.Option(help="Folder for the PNGs and coordinates CSV.")] = Path("plots"),
    seed: Annotated[int, typer.Option(help="Seed for the subset, t-SNE and k-means.")] = 0,
    labels: Annotated[Optional[Path], typer.Option(help="Labels CSV for the test split (colours by digit).")] = None,
    device: DeviceOption = "auto",
) -> None:
    """t-SNE maps and k-means clusters of the image, audio and fused embeddings."""
    import numpy as np
    import pandas as pd

    from mmdigits.artifacts import atomic_path
    from mmdigits.checkpoint import load_model
    from mmdigits.data import load_test, load_train
    from mmdigits.embeddings import cluster, cluster_scores, embeddings_for, plot_map, tsne_2d
    from mmdigits.reporting import console
    from mmdigits.runs import split_for
    from mmdigits.runtime import pick_device

    if split not in ("val", "test", "train"):
        raise UsageError(f"--split {split}: choose val, test or train")
    if samples < 10:
        raise UsageError("--samples must be at least 10")
    torch_device = pick_device(device)
    model, payload = load_model(checkpoint, torch_device)
    if split == "train":
        config = TrainConfig.from_dict({**payload["config"], "data": str(data)})
        chosen = split_for(config, load_train(data))[0]
    elif split == "test" and labels is None:
        chosen = load_test(data)  # no labels: the maps are coloured by cluster only
    else:
        chosen = labelled_pairs(payload, data, labels if split == "test" else None)[0]
    rows = np.random.default_rng(seed).permutation(len(chosen))[:samples]
    chosen = chosen.subset(np.sort(rows))
    console.print(f"embedding {len(chosen)} {split} pairs with {payload['model']}")
    embeddings = embeddings_for(model, chosen.image, chosen.audio, torch_device)
    table = Table(title=f"k-means (k=10) on the {split} embeddings vs the true digits")
    for column in ("embedding", "dims", "NMI", "ARI", "purity"):
        table.add_column(column, justify="right" if column != "embedding" else "left")
    coordinates = {}
    for name, embedding in embeddings.items():
        with console.status(f"t-SNE of the {name} embedding ({embedding.shape[1]} dims)..."):
            coords = tsne_2d(embedding, seed)
        clusters = cluster(embedding, seed)
        coordinates |= {f"{name}_x": coords[:, 0], f"{name}_y": coords[:, 1], f"{name}_cluster": clusters}
        plot_map(
            out / f"{name}.png", coords, clusters, chosen.labels, f"{payload['model']}: {name} embedding ({split})"
        )
        if chosen.labels is not None:
            scores = cluster_scores(clusters, chosen.labels)
            table.add_row(name, str(embedding.shape[1]), *(f"{scores[key]:.3f}" for key in ("nmi", "ari", "purity")))
    frame = pd.DataFrame(coordinates)
    if chosen.labels is not None:
        frame.insert(0, "label", chosen.labels)
    with atomic_path(out / "tsne_coordinates.csv") as temporary:
        frame.to_csv(temporary, index=False, float_format="%.4f")
    if chosen.labels is not None:
        stdout.print(table)
    stdout.print(
        f"wrote {', '.join(str(out / f'{name}.png') for name in embeddings)} and {out / 'tsne_coordinates.csv'}"
    )


@app.command()
@friendly
def evaluate(
    checkpoint: CheckpointsOption = [DEFAULT_CHECKPOINT],  # noqa: B006
    data: DataOption = Path("."),
    labels: Annotated[Path, typer.Option(help="row_id,label[,condition] CSV for the test files.")] = Path("y_test.csv"),
    out: Annotated[Path, typer.Option(help="Folder for confusion_matrix.png and per_class.csv.")] = Path("evaluation"),
    tta: Annotated[bool, typer.Option("--tta", help="Average over digit-safe test-time augmentations.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Score a model (or ensemble) on labelled test files: accuracy, macro F1, per class and condition."""
    from mmdigits.artifacts import atomic_path
    from mmdigits.evaluation import plot_confusion, report
    from mmdigits.inference import ensemble_probabilities

    models, torch_device = load_ensemble(checkpoint, device)
    test, conditions, _ = labelled_pairs({}, data, labels)
    predictions = ensemble_probabilities(models, test.image, test.audio, torch_device, tta=tta).numpy().argmax(axis=1)
    result = report(predictions, test.labels, conditions)
    print_report(result, title=f"{len(test)} test pairs, {len(models)} model(s){' + TTA' if tta else ''}")
    plot_confusion(out / "confusion_matrix.png", predictions, test.labels, "confusion matrix (test)")
    with atomic_path(out / "per_class.csv") as temporary:
        result.classes.to_csv(temporary, index=False, float_format="%.4f")
    stdout.print(f"wrote {out / 'confusion_matrix.png'} and {out / 'per_class.csv'}")


def print_report(result, title: str) -> None:
    stdout.print(
        f"[bold]{title}[/bold]: accuracy {result.overall['accuracy']:.4f}, macro-F1 {result.overall['macro_f1']:.4f}"
    )
    if result.conditions:
        table = Table(title="by noise condition")
        for column in ("condition", "pairs", "accuracy", "macro-F1"):
            table.add_column(column, justify="left" if column == "condition" else "right")
        for name, values in result.conditions.items():
            table.add_row(name, str(values["n"]), f"{values['accuracy']:.4f}", f"{values['macro_f1']:.4f}")
        stdout.print(table)
    table = Table(title="per digit")
    for column in ("digit", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    for row in result.classes.itertuples():
        table.add_row(str(row.digit), f"{row.precision:.4f}", f"{row.recall:.4f}", f"{row.f1:.4f}", str(row.support))
    stdout.print(table)


def labelled_pairs(payload: dict, data: Path, labels: Path | None):
    """The labelled test files when a labels CSV is given, else the checkpoint's own validation
    split; returns (split, conditions or None, description)."""
    from mmdigits.data import load_test, load_train, read_label_table
    from mmdigits.errors import DataError
    from mmdigits.runs import split_for

    if labels is not None:
        test = load_test(data)
        table = read_label_table(labels)
        if len(table) != len(test):
            raise DataError(f"{labels}: {len(table)} labels, but the test files have {len(test)} rows")
        test.labels = table["label"].to_numpy()
        conditions = table["condition"].astype(str).to_numpy() if "condition" in table.columns else None
        return test, conditions, f"{len(test)} labelled test pairs"
    config = TrainConfig.from_dict({**payload["config"], "data": str(data)})
    _, val, _ = split_for(config, load_train(data))
    if val is None:
        raise UsageError("the checkpoint was trained without a validation split; pass --labels y_test.csv")
    return val, None, f"{len(val)} validation pairs (the checkpoint's own split)"


@app.command()
@friendly
def analyze(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="The model to analyse.")] = DEFAULT_CHECKPOINT,
    data: DataOption = Path("."),
    labels: Annotated[Optional[Path], typer.Option(help="Analyse the labelled test set instead of validation.")] = None,
    image_model: Annotated[
        Optional[Path], typer.Option(help="An image-only checkpoint, for 'does fusion hurt?'.")
    ] = None,
    audio_model: Annotated[
        Optional[Path], typer.Option(help="An audio-only checkpoint, for 'does fusion hurt?'.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("analysis"),
    device: DeviceOption = "auto",
) -> None:
    """Ablations, modality utilisation, noise robustness, calibration, errors: does fusion pay?"""
    from mmdigits import analysis
    from mmdigits.artifacts import atomic_path, write_json
    from mmdigits.checkpoint import load_model
    from mmdigits.evaluation import plot_confusion, report
    from mmdigits.metrics import expected_calibration_error
    from mmdigits.reporting import console
    from mmdigits.runtime import pick_device

    torch_device = pick_device(device)
    model, payload = load_model(checkpoint, torch_device)
    pairs, conditions, description = labelled_pairs(payload, data, labels)
    console.print(f"analysing {payload['model']} on {description}")
    probs = analysis.probabilities(model, pairs, torch_device)
    predictions = probs.argmax(axis=1)
    summary = report(predictions, pairs.labels, conditions)
    print_report(summary, title=f"{payload['model']} on {description}")
    ablated = analysis.ablation(model, pairs, torch_device)
    rates = analysis.utilisation(ablated)
    table = Table(title="ablation: accuracy with an input removed")
    table.add_column("inputs")
    table.add_column("accuracy", justify="right")
    for name, value in ablated.items():
        table.add_row(name, f"{value:.4f}")
    stdout.print(table)
    stdout.print("conditional utilisation (Wu et al. 2022): " + ", ".join(f"{k} {v:+.4f}" for k, v in rates.items()))
    with console.status("robustness curves..."):
        curves = analysis.robustness(model, pairs, torch_device)
    table = Table(title="accuracy under Gaussian noise (std in units of the feature's training spread)")
    table.add_column("std", justify="right")
    for name in curves:
        table.add_column(f"noise on {name}", justify="right")
    for index, level in enumerate(analysis.NOISE_LEVELS):
        table.add_row(f"{level:.1f}", *(f"{curves[name][index]:.4f}" for name in curves))
    stdout.print(table)
    ece = expected_calibration_error(probs, pairs.labels)
    stdout.print(f"expected calibration error: {ece:.4f}")
    findings = {
        "model": payload["model"],
        "evaluated_on": description,
        "overall": summary.overall,
        "conditions": summary.conditions,
        "ablation": ablated,
        "utilisation": rates,
        "robustness": {"levels": analysis.NOISE_LEVELS, **curves},
        "ece": ece,
    }
    if image_model is not None and audio_model is not None:
        image_net, _ = load_model(image_model, torch_device)
        audio_net, _ = load_model(audio_model, torch_device)
        findings["fusion_hurts"] = analysis.fusion_hurts(
            predictions,
            analysis.probabilities(image_net, pairs, torch_device).argmax(axis=1),
            analysis.probabilities(audio_net, pairs, torch_device).argmax(axis=1),
            pairs.labels,
        )
        stdout.print("does fusion hurt? " + ", ".join(f"{k}: {v}" for k, v in findings["fusion_hurts"].items()))
    elif (image_model is None) != (audio_model is None):
        raise UsageError("--image-model and --audio-model go together")
    plot_confusion(out / "confusion_matrix.png", predictions, pairs.labels, f"{payload['model']}: confusion")
    analysis.plot_robustness(out / "robustness.png", curves, f"{payload['model']}: noise robustness")
    analysis.plot_reliability(out / "reliability.png", probs, pairs.labels, ece)
    analysis.plot_error_gallery(out / "errors.png", pairs, predictions)
    with atomic_path(out / "per_class.csv") as temporary:
        summary.classes.to_csv(temporary, index=False, float_format="%.4f")
    write_json(out / "report.json", findings)
    stdout.print(
        f"wrote {out}/: report.json, per_class.csv, confusion_matrix.png, robustness.png, reliability.png, errors.png"
    )


@app.command()
@friendly
def models() -> None:
    """List the registered models with their parameter counts."""
    from mmdigits.models import create_model, list_models, model_arguments

    table = Table(title="registered models (<image>_<audio>_<fusion>)")
    for column in ("name", "image", "audio", "fusion", "parameters"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for name in list_models():
        arguments = model_arguments(name)
        parameters = sum(p.numel() for p in create_model(name).parameters())
        fusion = arguments.get("fusion", "-") if arguments["image"] and arguments["audio"] else "-"
        table.add_row(name, str(arguments["image"] or "-"), str(arguments["audio"] or "-"), fusion, f"{parameters:,}")
    stdout.print(table)


@app.command()
@friendly
def bench(
    models: Annotated[str, typer.Option(help="Comma-separated names, or 'all' for the four main models.")] = "all",
    samples: Annotated[int, typer.Option(help="Generated training pairs (validation: a sixth as many).")] = 60000,
    epochs: Annotated[int, typer.Option(help="Epochs per model.")] = 2,
    device: DeviceOption = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile our models.")] = False,
    out: Annotated[Path, typer.Option(help="JSON file for the figures.")] = Path("bench.json"),
) -> None:
    """Training/inference speed of our models beside the competition's reference loop, same run."""
    from mmdigits.artifacts import write_json
    from mmdigits.bench import run_bench
    from mmdigits.models import model_arguments
    from mmdigits.reporting import console
    from mmdigits.runtime import pick_device
    from mmdigits.synth import generate

    names = MAIN_MODELS if models == "all" else [name.strip() for name in models.split(",") if name.strip()]
    for name in names:
        model_arguments(name)  # unknown names fail before any work
    if samples < 100 or epochs < 1:
        raise UsageError("--samples must be at least 100 and --epochs at least 1")
    with console.status(f"generating {samples} + {samples // 6} pairs..."):
        train_split, val_split, _ = generate(samples, max(samples // 6, 10), seed=0)
    figures = run_bench(names, train_split, val_split, epochs, pick_device(device), compile=compile, log=console.print)
    table = Table(
        title=f"{figures['train_pairs']} train pairs x {epochs} epochs on {figures['device']}, torch {figures['torch']}"
    )
    for column in ("model", "params", "train pairs/s", "s/epoch", "speed-up", "val acc", "infer pairs/s", "peak MB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, row in figures["rows"].items():
        inference = "-" if row["inference_per_s"] != row["inference_per_s"] else f"{row['inference_per_s']:,.0f}"
        table.add_row(
            name,
            f"{row['parameters']:,}",
            f"{row['samples_per_s']:,.0f}",
            f"{row['seconds_per_epoch']:.1f}",
            f"{row['speedup']:.2f}x",
            f"{row['val_acc']:.4f}",
            inference,
            f"{row['peak_memory_mb']:,.0f}",
        )
    stdout.print(table)
    write_json(out, figures)
    stdout.print(f"wrote {out}")


@app.command()
@friendly
def matrix(
    models: Annotated[
        str, typer.Option(help="Comma-separated names, or 'all': the four main models and both unimodal baselines.")
    ] = "all",
    train_pairs: Annotated[int, typer.Option("--train", help="Training pairs generated per profile.")] = 5600,
    test_pairs: Annotated[int, typer.Option("--test", help="Test pairs per profile.")] = 2000,
    epochs: Annotated[int, typer.Option(help="Epochs per model; 0: auto, as train.")] = TrainConfig.epochs,
    seed: Annotated[int, typer.Option(help="Seed for the data and the training.")] = 0,
    runs: Annotated[Path, typer.Option(help="Where the runs' checkpoints go.")] = Path("runs/matrix"),
    out: Annotated[Path, typer.Option(help="JSON file for the figures.")] = Path("matrix.json"),
    device: DeviceOption = "auto",
) -> None:
    """Train on each data profile, test on each, per noise condition: how the recipe travels."""
    from mmdigits.artifacts import write_json
    from mmdigits.generalisation import UNIMODAL, fusion_deficits, run_matrix
    from mmdigits.reporting import console
    from mmdigits.synth import CONDITIONS

    names = [*MAIN_MODELS, *UNIMODAL] if models == "all" else [n.strip() for n in models.split(",") if n.strip()]
    for name in names:
        TrainConfig(model=name).validate()
    base = TrainConfig(epochs=epochs, seed=seed, device=device).validate()
    figures = run_matrix(names, base, train_pairs, test_pairs, runs, log=console.print)
    for train_profile, rows in figures["matrix"].items():
        table = Table(title=f"trained on {train_profile} ({train_pairs} pairs): test accuracy")
        table.add_column("model")
        table.add_column("train s", justify="right")
        for test_profile in rows[names[0]]:
            if test_profile != "train_seconds":
                for column in ("all", *CONDITIONS):
                    table.add_column(f"{test_profile} {column}", justify="right")
        for name, cells in rows.items():
            values = [f"{cells['train_seconds']:.0f}"]
            for test_profile, cell in cells.items():
                if test_profile != "train_seconds":
                    values.append(f"{cell['overall']['accuracy']:.4f}")
                    values += [f"{cell['conditions'].get(c, {}).get('accuracy', float('nan')):.4f}" for c in CONDITIONS]
            table.add_row(name, *values)
        stdout.print(table)
    deficits = fusion_deficits(figures)
    stdout.print("fused below the better unimodal baseline: " + ("; ".join(deficits) if deficits else "nowhere"))
    write_json(out, figures | {"fusion_deficits": deficits})
    stdout.print(f"wrote {out}")


@app.command()
@friendly
def compare(
    data: DataOption = Path("."),
    models: Annotated[str, typer.Option(help="Comma-separated model names, or 'all' for the four main ones.")] = "all",
    seeds: Annotated[int, typer.Option(help="Seeds per model (0..N-1); the split stays the same.")] = 3,
    epochs: Annotated[int, typer.Option(help="Epochs per run; 0: auto, as train.")] = TrainConfig.epochs,
    max_samples: Annotated[int, typer.Option(help="Use only the first N training rows; 0: all.")] = 0,
    out: Annotated[Path, typer.Option(help="Where the table and per-model curves go.")] = Path("othermodels"),
    runs: Annotated[Path, typer.Option(help="Where the runs' checkpoints go.")] = Path("runs/compare"),
    device: DeviceOption = "auto",
) -> None:
    """Train several models x seeds on one split; write othermodels/README.md and curves."""
    import torch

    from mmdigits.compare import compare_models, hardware, write_table
    from mmdigits.data import load_train
    from mmdigits.reporting import console

    names = MAIN_MODELS if models == "all" else [name.strip() for name in models.split(",") if name.strip()]
    if seeds < 1:
        raise UsageError("--seeds must be at least 1")
    base = TrainConfig(data=str(data), epochs=epochs, max_samples=max_samples, device=device).validate()
    for name in names:
        TrainConfig(model=name).validate()
    results = compare_models(names, seeds, base, load_train(data), out, runs, log=console.print)
    command = "mmdigits " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else "mmdigits compare"
    write_table(out / "README.md", results, command, hardware(), str(torch.__version__))
    stdout.print((out / "README.md").read_text())


@app.command()
@friendly
def cv(
    data: DataOption = Path("."),
    model: Annotated[str, typer.Option(help="Registered model name.")] = DEFAULT_MODEL,
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    epochs: Annotated[int, typer.Option(help="Epochs per fold; 0: auto, as train.")] = TrainConfig.epochs,
    seed: Annotated[int, typer.Option(help="Seed for the folds and the training.")] = 0,
    max_samples: Annotated[int, typer.Option(help="Use only the first N training rows; 0: all.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for fold<k>/ runs, oof.csv and cv.json.")] = Path("runs/cv"),
    device: DeviceOption = "auto",
) -> None:
    """k-fold cross-validation: a checkpoint per fold and out-of-fold predictions; then
    `mmdigits predict -c runs/cv` averages the folds into one submission."""
    from mmdigits.crossval import cross_validate
    from mmdigits.data import load_train
    from mmdigits.reporting import console

    config = TrainConfig(
        data=str(data), model=model, epochs=epochs, seed=seed, max_samples=max_samples, device=device, out=str(out)
    ).validate()
    summary = cross_validate(config, load_train(data), folds, out, log=console.print)
    for index, fold in enumerate(summary["per_fold"]):
        stdout.print(f"fold {index}: accuracy {fold['accuracy']:.4f}, macro-F1 {fold['macro_f1']:.4f}")
    stdout.print(
        f"CV accuracy {summary['accuracy']['mean']:.4f} +- {summary['accuracy']['std']:.4f}, "
        f"macro-F1 {summary['macro_f1']['mean']:.4f} +- {summary['macro_f1']['std']:.4f}; "
        f"pooled out-of-fold accuracy {summary['pooled_oof']['accuracy']:.4f}, "
        f"macro-F1 {summary['pooled_oof']['macro_f1']:.4f}"
    )
    stdout.print(
        f"wrote {out}/fold0..{folds - 1}/best.pth, {out}/oof.csv, {out}/cv.json; ensemble: mmdigits predict -c {out}"
    )


@data_app.command("make")
@friendly
def data_make(
    out: Annotated[Path, typer.Option(help="Folder to write the competition files into.")] = Path("mmdigits-data"),
    train: Annotated[
        Optional[int], typer.Option("--train", help="Training pairs [default: shipped 60000, foreign 5600].")
    ] = None,
    test: Annotated[
        Optional[int], typer.Option("--test", help="Test pairs [default: shipped 10000, foreign 2000].")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the whole dataset.")] = 0,
    profile: Annotated[
        str,
        typer.Option(
            help="shipped: the demo's data, audio in [0, 1]. foreign: other writers, voices and noise "
            "families, raw MFCC units, 5,600 pairs; for checking that a recipe travels."
        ),
    ] = "shipped",
) -> None:
    """Write a realistic dataset: real handwriting, synthesised voices, four noise conditions."""
    from mmdigits.profiles import make_dataset
    from mmdigits.reporting import console

    with console.status(f"making the {profile} profile..."):
        written = make_dataset(out, train, test, seed, profile)
    stdout.print(f"wrote {', '.join(path.name for path in written)} to {out}/ ({profile} profile)")


@data_app.command("check")
@friendly
def data_check(data: DataOption = Path(".")) -> None:
    """Shape, dtype, range and spread per file; label balance, duplicated clips, train/test overlap and shift."""
    from mmdigits.datacheck import check_folder

    report = check_folder(data)
    table = Table(title=f"{data}/")
    for column in report.files[0] if report.files else ():
        table.add_column(column, justify="left" if column in ("file", "dtype") else "right")
    for row in report.files:
        table.add_row(*row.values())
    stdout.print(table)
    for fact in report.facts:
        stdout.print(fact)
    for warning in report.warnings:
        stdout.print(f"warning: {warning}")
    stdout.print("no warnings" if not report.warnings else f"{len(report.warnings)} warning(s)")


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the data, the run, the submission and the plots.")] = Path(
        "mmdigits-demo"
    ),
    train_pairs: Annotated[int, typer.Option("--train", help="Training pairs to generate.")] = 16000,
    test_pairs: Annotated[int, typer.Option("--test", help="Test pairs to generate.")] = 2000,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    model: Annotated[str, typer.Option(help="Model to train.")] = DEFAULT_MODEL,
    device: DeviceOption = "auto",
) -> None:
    """Make data, train, predict, draw t-SNE maps and score the test set: the whole tool in one go."""
    import time

    started = time.perf_counter()
    data = out / "data"
    data_make(out=data, train=train_pairs, test=test_pairs, seed=0, profile="shipped")
    run = out / "run"
    train(data=data, model=model, epochs=epochs, out=run, device=device)
    predict(checkpoint=[run / "best.pth"], data=data, out=out / "submission.csv", device=device)
    tsne(
        checkpoint=run / "best.pth",
        data=data,
        split="test",
        samples=2000,
        out=out / "plots",
        labels=data / "y_test.csv",
        device=device,
    )
    evaluate(
        checkpoint=[run / "best.pth"], data=data, labels=data / "y_test.csv", out=out / "evaluation", device=device
    )
    stdout.print(f"demo finished in {time.perf_counter() - started:.0f} s; everything is under {out}/")


def run() -> None:
    """Console-script entry point."""
    app(prog_name="mmdigits")


if __name__ == "__main__":
    sys.exit(run())

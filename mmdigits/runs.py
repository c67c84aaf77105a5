"""A training run end to end: competition folder -> split -> model -> fit -> run folder.

The run folder holds config.json, metrics.csv, loss_acc.png, best.pth and last.pth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmdigits.artifacts import ensure_folder, refuse_overwrite, write_json
from mmdigits.checkpoint import load_resume
from mmdigits.config import SELF_TRAIN_CONFIDENCE, TrainConfig, flag
from mmdigits.data import Split, load_test, load_train, train_val_indices
from mmdigits.engine import FitResult, Tensors, batch_bounds, fit
from mmdigits.errors import DataError, UsageError
from mmdigits.models import MultimodalNet, create_model
from mmdigits.reporting import plot_curves, write_metrics_csv
from mmdigits.runtime import configure, import_while_loading, init_distributed, seed_everything, start_warm_up, use_bf16
from mmdigits.selftraining import PseudoLabels, label_confident, with_pseudo_labels
from mmdigits.stopping import NEVER, StopRequest

RUN_FILES = ("best.pth", "last.pth", "metrics.csv")  # what a run has once an epoch finished
RESUMABLE_ELSEWHERE = ("data", "device")  # options a resumed run may change: where, not what, it trains


@dataclass
class RunSummary:
    out: Path
    result: FitResult
    parameters: int
    n_train: int
    n_val: int
    n_groups: int
    is_main: bool = True  # False on the other ranks of a torchrun job


def input_summary(train: Split) -> str:
    """One line on the units of both modalities, so that unscaled audio shows. In torch, whose
    reductions make no temporary copy: numpy's spread of 60,000 pairs took 0.5 s."""
    image, audio = torch.from_numpy(train.image), torch.from_numpy(train.audio)
    (image_low, image_high), (audio_low, audio_high) = torch.aminmax(image), torch.aminmax(audio)
    audio_spread = audio.std(dim=(0, 1))
    return (
        f"inputs: images in [{image_low:.3g}, {image_high:.3g}] (spread {image.std():.3g}); "
        f"audio in [{audio_low:.3g}, {audio_high:.3g}] (spread per coefficient "
        f"{audio_spread.min():.3g}..{audio_spread.max():.3g}); the model standardises both with these training "
        "statistics"
    )


def split_for(config: TrainConfig, data: Split) -> tuple[Split, Split | None, int]:
    """The run's train/validation split (stratified, duplicate-audio grouped, seeded)."""
    if config.max_samples:
        data = data.subset(np.arange(min(config.max_samples, len(data))))
    train_rows, val_rows, n_groups = train_val_indices(data.labels, data.audio, config.val_fraction, config.seed)
    if config.val_fraction and not (len(train_rows) and len(val_rows)):  # too few pairs (or clips) for two parts
        left = "to train on" if len(val_rows) else "to validate on"
        raise UsageError(
            f"--val-fraction {config.val_fraction:g} of {len(data)} pairs ({n_groups} distinct audio clips) leaves "
            f"none {left}: give more pairs or another --val-fraction"
        )
    val = data.subset(val_rows) if len(val_rows) else None
    return data.subset(train_rows), val, n_groups


def plan_run(
    config: TrainConfig, resume: Path | None, overwrite: bool, given: frozenset[str] = frozenset()
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config and last.pth payload a `train` call runs with; otherwise a folder that already
    holds a run is refused unless --overwrite. `given`: the options the user set."""
    if resume is not None:
        payload = load_resume(resume)
        recorded = TrainConfig.from_dict(payload["config"])
        return resumed_config(recorded, payload, resume, config, given), payload
    out = Path(config.out)
    hint = f", --resume {out / 'last.pth'} to continue it" if (out / "last.pth").exists() else ""
    refuse_overwrite(out, RUN_FILES, overwrite, "a trained run", hint)
    return config, None


def resumed_config(
    recorded: TrainConfig, payload: dict[str, Any], resume: Path, config: TrainConfig, given: frozenset[str]
) -> TrainConfig:
    """--resume continues a run in the folder of the last.pth it reads, which may have been moved or
    copied since (its config then names another folder, perhaps another run's), with the options it
    started with. Only where it reads its data and where it runs may change; other options given are
    refused, not ignored. A step recorded as a CUDA graph is recorded again where it can be and runs
    op by op elsewhere: the recipe (AdamW's fixed momentum) travels in the optimizer's and
    scheduler's state."""
    folder = resume.parent

    def changes(name: str) -> bool:  # a value said again is no change (a --config file says them all)
        if name == "out":
            return Path(config.out).resolve() != folder.resolve()
        return getattr(config, name) != getattr(recorded, name)

    fixed = sorted(name for name in given if name not in RESUMABLE_ELSEWHERE and changes(name))
    if fixed:
        flags = ", ".join(flag(name) for name in fixed)
        raise UsageError(
            f"--resume continues {folder} with the options it started with ({folder / 'config.json'}); "
            f"{flags} cannot change, only --data and --device: start a new run to train otherwise"
        )
    ended = why_ended(recorded, payload)
    if ended:
        raise UsageError(f"--resume {resume}: {ended}; its model is {folder / 'best.pth'}")
    moved = {name: getattr(config, name) for name in given if name in RESUMABLE_ELSEWHERE}
    return replace(recorded, out=str(folder), cuda_graph=None if recorded.cuda_graph else False, **moved)


def why_ended(recorded: TrainConfig, payload: dict[str, Any]) -> str:
    """Why the run of a last.pth has no epoch left ("" while it has): it trained them all, or
    --patience ended it. A --self-train run's second phase follows its first however that ended,
    and has its own count of epochs after the first phase's last."""
    epoch, labelled = payload["epoch"], payload.get("pseudo_labels")
    if recorded.self_train and labelled is None:
        return ""  # the self-training phase is still to come
    total = labelled["after_epoch"] + recorded.self_train_epochs() if labelled else recorded.epochs
    if epoch >= total:
        return f"the run has trained all its {epoch} epochs"
    if recorded.out_of_patience(epoch, payload["best_epoch"]):
        return (
            f"--patience {recorded.patience} ended the run after epoch {epoch} (no better validation macro-F1 "
            f"since epoch {payload['best_epoch']})"
        )
    return ""


def refuse_other_data(model: MultimodalNet, train: Split, recorded: dict[str, Any], data: str) -> None:
    """A resumed run trains on the split it started on, read wherever --data now finds it: the
    statistics the model fits on this training split are last.pth's, up to the rounding of another
    device's reductions. Checked before the run folder is written to."""
    tensors = Tensors.from_split(train, torch.device("cpu"))
    fitted = model.fit_normalisation(tensors.image, tensors.audio)
    pairs = [(torch.tensor(fitted[key]), torch.tensor(recorded[key])) for key in fitted]
    if not all(torch.allclose(new.double(), old.double(), rtol=1e-4) for new, old in pairs):
        raise UsageError(
            f"--resume: the training split of {data} is not the one this run trained on (its statistics differ); "
            "give --data the folder it trained on"
        )


def log_fit_end(result: FitResult, config: TrainConfig, log: Callable[[str], None]) -> None:
    """How a phase of training ended: early, by --patience, and the temperature fitted afterwards."""
    if result.stopped_early:
        log(
            f"stopped early after epoch {result.history[-1]['epoch']}: no better validation macro-F1 in "
            f"--patience {config.patience} epochs since epoch {result.best_epoch}"
        )
    if result.calibration:
        found = result.calibration
        log(
            f"calibration: temperature {found['temperature']:.3f} fitted on validation; "
            f"val ECE {found['val_ece_before']:.4f} -> {found['val_ece_after']:.4f} (stored in best.pth)"
        )


def refuse_runs(folders: list[Path], overwrite: bool) -> None:
    """Before a command trains many runs (cv, compare, matrix): none of their folders holds one."""
    for folder in folders:
        refuse_overwrite(folder, RUN_FILES, overwrite, "a trained run")


def train_run(
    config: TrainConfig,
    resume: dict[str, Any] | None = None,
    data: Split | None = None,
    log: Callable[[str], None] = lambda message: None,
    on_epoch: Callable[[dict[str, float], FitResult], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    splits: tuple[Split, Split | None] | None = None,
    stop: StopRequest = NEVER,
) -> RunSummary:
    """Validate, load, split, build, fit; write the run folder's artifacts after every epoch.
    `splits` gives the (train, validation) pairs directly, as cross-validation does; `stop` is
    checked between batches (see stopping.py)."""
    config.validate()
    dist, device = init_distributed(config.device)
    config.check_place(device.type, dist.enabled)
    configure(device, config.deterministic, autotune=not config.records_graph(device.type == "cuda", dist.enabled))
    warming = start_warm_up(device)  # CUDA's start-up while the data loads
    if not dist.is_main:  # only global rank 0 speaks and writes
        log, on_epoch, on_batch = (lambda message: None), None, None
    import_while_loading("torch._dynamo")  # the optimizer's; 0.85 s otherwise spent after the split
    test = load_test(Path(config.data)) if config.self_train else None  # before training: a missing file stops it
    if splits is None:
        data = load_train(Path(config.data)) if data is None else data
        train, val, n_groups = split_for(config, data)
        log(input_summary(train))
        log(
            f"data: {len(train)} train / {len(val) if val else 0} val pairs; "
            f"{n_groups} distinct audio clips grouped so none is on both sides"
        )
    else:
        (train, val), n_groups = splits, 0
    config = config.resolved(len(train), device.type == "cuda", dist.enabled)
    steps = len(batch_bounds(len(train), config.batch_size, dist.world))
    if not steps:  # batch norm needs two rows in each process's batch
        each = f", two in each of {dist.world} processes" if dist.enabled else ""
        raise DataError(
            f"{config.data}: too few training pairs for one step ({len(train)}; batch norm needs at least "
            f"{2 * dist.world}{each}): give more pairs"
        )
    epochs = f"{config.epochs} epoch" + "s" * (config.epochs != 1)
    step_pairs = f"{config.batch_size} pairs"
    if len(train) < config.batch_size:
        step_pairs = f"all {len(train)} training pairs (fewer than the batch size, {config.batch_size})"
    total = config.epochs * steps
    log(
        f"schedule: {epochs} x {steps} step{'s' * (steps != 1)} of {step_pairs} = {total} "
        f"optimiser step{'s' * (total != 1)} (one-cycle, {int(0.2 * total)} warm-up steps, peak lr {config.lr:g})"
    )
    seed_everything(config.seed)
    model = create_model(config.model, **config.model_overrides())
    if resume is not None:
        refuse_other_data(model, train, resume["normalisation"], config.data)
    parameters = sum(p.numel() for p in model.parameters())
    ranks = f" x {dist.world} processes" if dist.enabled else ""
    graph = ", each step one CUDA graph replay (--no-cuda-graph: launched op by op)" if config.cuda_graph else ""
    log(f"model: {config.model}, {parameters:,} parameters, on {device}{ranks}{graph}")
    out = Path(config.out)
    if dist.is_main:
        ensure_folder(out)
        write_json(out / "config.json", config.to_dict())

    history: list[dict[str, float]] = []  # the rows so far, for the curves when the run ends or stops

    def after_epoch(row: dict[str, float], result: FitResult) -> None:
        write_metrics_csv(out / "metrics.csv", result.history)
        history[:] = result.history
        if on_epoch is not None:
            on_epoch(row, result)

    if warming is not None:
        warming.join()
    finished = False
    try:
        second_phase = resume is not None and "pseudo_labels" in resume
        if not second_phase:
            result = fit(model, train, val, config, device, resume, after_epoch, on_batch, dist, stop)
            log_fit_end(result, config, log)
        if test is not None:
            if second_phase:
                pseudo = PseudoLabels.recorded(resume)
            else:
                bf16 = use_bf16(config.precision, device)
                pseudo = label_confident(model, test, device, bf16, result.history, dist)
            if len(pseudo.rows):
                log(
                    f"self-training: {len(pseudo.rows)} of {len(test)} test pairs labelled with >= "
                    f"{SELF_TRAIN_CONFIDENCE:.0%} confidence join the {len(train)} training pairs for "
                    f"{config.self_train_epochs()} more epoch{'s' * (config.self_train_epochs() != 1)}"
                )
                both = with_pseudo_labels(train, test, pseudo)
                resumed = resume if second_phase else None
                result = fit(model, both, val, config, device, resumed, after_epoch, on_batch, dist, stop, pseudo)
                log_fit_end(result, config, log)
            else:  # more epochs on the training pairs alone would be another, longer run, not self-training
                log(
                    f"self-training: none of the {len(test)} test pairs reached {SELF_TRAIN_CONFIDENCE:.0%} "
                    "confidence, so none joins training and there is no second phase; the first phase's model stands"
                )
        finished = True
    finally:
        if history:  # drawn once, not every epoch: a plot costs more than a GPU epoch
            plot_curves(out / "loss_acc.png", history, f"{config.model}: training curves")
        dist.leave(together=finished)  # after the curves, rank 0's last file
    return RunSummary(out, result, parameters, len(train), len(val) if val else 0, n_groups, dist.is_main)

"""Training: fit / train_one_epoch / evaluate, a plain loop over in-memory tensors.

The whole dataset lives on the training device; batches are `randperm` slices, so there is no
DataLoader on the hot path. Each epoch's shuffle, augmentation and dropout draw from RNGs seeded
by (seed, epoch): resuming from last.pth after epoch k replays epoch k+1 exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mmdigits import augment
from mmdigits.calibration import fit_temperature
from mmdigits.checkpoint import load_checkpoint, restore_training, resume_state, save_checkpoint, training_payload
from mmdigits.config import SELF_TRAIN_LR, TrainConfig
from mmdigits.data import Split
from mmdigits.errors import TrainingDiverged, UsageError
from mmdigits.inference import as_tensor, logits_for
from mmdigits.metrics import expected_calibration_error, scores_from_confusion
from mmdigits.models import MultimodalNet
from mmdigits.runtime import SINGLE, Distributed, autocast, capture_cuda_graph, side_stream, use_bf16
from mmdigits.selftraining import PseudoLabels
from mmdigits.stopping import NEVER, RunStopped, StopRequest


@dataclass
class Tensors:
    """A split as tensors on the training device."""

    image: torch.Tensor  # (N, 28, 28)
    audio: torch.Tensor  # (N, 39, 13)
    labels: torch.Tensor  # (N,)

    @classmethod
    def from_split(cls, split: Split, device: torch.device) -> Tensors:
        return cls(
            as_tensor(split.image, device), as_tensor(split.audio, device), torch.from_numpy(split.labels).to(device)
        )


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    epochs: int = 0  # how many epochs the run trains, the automatic choice resolved
    stopped_early: bool = False
    calibration: dict[str, float] = field(default_factory=dict)  # temperature, val ECE and NLL before/after


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def augment_batch(
    image: torch.Tensor,
    audio: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    pixel_bounds: tuple[float, float],
    bimodal: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Writer- and speaker-style variation, per-modality noise and modality dropout, all on
    normalised inputs: a strength of 1 is one spread of the feature, a fill of 0 its average.
    Only pixels are clipped, to `pixel_bounds` (the z-scores of 0 and 1); MFCCs have no range.
    Modality dropout only where the model reads both (`bimodal`): blanking a unimodal baseline's
    one input would teach it nothing but the label prior and make the baseline weaker than it is."""
    batch = len(image)
    device = image.device
    if config.augment:
        background = pixel_bounds[0]
        image = augment.random_affine(image, generator, degrees=10, scale=0.1, shear=0.15, shift=0.08, fill=background)
        blotted = augment.occlude(image, 4, 12, generator, bounds=pixel_bounds)  # a blot hides part of the digit
        image = torch.where(torch.rand(batch, 1, 1, generator=generator, device=device) < 0.3, blotted, image)
        image = augment.stroke_width(image, 0.4, generator)  # other pens: bolder or thinner strokes
        audio = augment.offset_channel(audio, 0.5, 0.4, generator)  # other microphones
        audio = augment.mask_blocks(augment.shift_frames(audio, 3, generator), 6, 2, generator)
        audio = augment.overlay(audio, 0.25, (0.2, 0.7), generator)  # another talker underneath
        audio = augment.drown(audio, 0.2, (0.5, 1.0), generator)  # lost in noise: the image must decide
        # Half the pairs get noise of a random strength, independently per modality.
        image_std = torch.rand(batch, generator=generator, device=device) * config.image_noise
        image_std *= torch.rand(batch, generator=generator, device=device) < 0.5
        audio_std = torch.rand(batch, generator=generator, device=device) * config.audio_noise
        audio_std *= torch.rand(batch, generator=generator, device=device) < 0.5
        image = augment.add_noise(image, image_std, generator, bounds=pixel_bounds)
        audio = augment.add_noise(audio, audio_std, generator)
    if bimodal and config.modality_dropout > 0:  # the dropped modality becomes its average input
        dropped = torch.rand(batch, generator=generator, device=device) < config.modality_dropout
        image_side = torch.rand(batch, generator=generator, device=device) < 0.5
        image = image * ~(dropped & image_side).view(-1, 1, 1)
        audio = audio * ~(dropped & ~image_side).view(-1, 1, 1)
    return image, audio


def training_loss(
    logits: torch.Tensor, aux_logits: list[torch.Tensor], labels: torch.Tensor, config: TrainConfig
) -> torch.Tensor:
    """Cross-entropy of the fused head plus `aux_weight` x the mean of the per-modality heads'.
    The heads are scored in one cross-entropy call: a third of the operations of one call each,
    which the host issues one by one (on a GPU each is a kernel launch)."""
    if not aux_logits or config.aux_weight <= 0:
        return F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
    heads = torch.stack([logits, *aux_logits]).float()  # (heads, B, 10)
    per_pair = F.cross_entropy(
        heads.flatten(0, 1), labels.repeat(len(heads)), label_smoothing=config.label_smoothing, reduction="none"
    )
    per_head = per_pair.view(len(heads), -1).mean(dim=1)
    return per_head[0] + config.aux_weight * per_head[1:].mean()


def batch_bounds(n_rows: int, batch_size: int, world: int) -> list[tuple[int, int]]:
    """(start, stop) of every global batch that trains: full batches only, so every step has the
    same shape (what CUDA graphs and compiled kernels need); the rows left over are a different
    random few each epoch. A set smaller than one batch trains as one batch, if that gives each
    rank the two rows batch norm needs."""
    if n_rows < batch_size:
        return [(0, n_rows)] if n_rows >= 2 * world else []
    return [(start, start + batch_size) for start in range(0, n_rows - batch_size + 1, batch_size)]


class TrainStep:
    """One optimisation step on a batch of fixed shape: gather its rows, normalise, augment,
    forward, loss, backward, AdamW, and add its loss and hits to totals kept on the device.

    Nothing in it waits for the host or changes shape, so with `capture` (one CUDA GPU,
    --cuda-graph) the step is recorded once as a CUDA graph after a few ordinary steps, and every
    later step is one copy of its row indices and one replay instead of 500-700 kernel launches.
    `runner` is `model` wrapped for DDP or torch.compile, if it is; `model` gives the statistics."""

    warm_up_steps = 3  # ordinary steps before recording: lazy initialisation, cuDNN's autotuning

    def __init__(
        self,
        model: MultimodalNet,
        optimizer: torch.optim.Optimizer,
        data: Tensors,
        config: TrainConfig,
        bf16: bool,
        dist: Distributed = SINGLE,
        runner: torch.nn.Module | None = None,
        capture: Callable[[Callable[[], None], torch.Generator], Callable[[], None]] | None = None,
    ) -> None:
        self.model, self.optimizer, self.data, self.config = model, optimizer, data, config
        self.bf16, self.dist = bf16, dist
        self.runner = model if runner is None else runner
        self.device = data.image.device
        self.generator = torch.Generator(device=self.device)  # augmentation; one object, so a graph can hold it
        self.totals = torch.zeros(3, device=self.device)  # loss sum, hits, pairs: exact in float32 to 16M pairs
        self.pixel_bounds = model.pixel_bounds()  # fixed with the normalisation, before training
        self.capture = capture
        if capture is not None:  # a graph reads the learning rate where the schedule writes it, in place
            for group in optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
        self.rows: torch.Tensor | None = None  # the recorded step's row indices
        self.replay: Callable[[], None] | None = None
        self.steps = 0

    def begin_epoch(self, epoch: int) -> None:
        """Seed this epoch's dropout and augmentation streams (per rank) and zero the totals."""
        seed = epoch_seed(self.config.seed, epoch)
        torch.manual_seed(seed + self.dist.rank)  # dropout
        self.generator.manual_seed(seed + 7919 * (self.dist.rank + 1))
        self.totals.zero_()

    def __call__(self, rows: torch.Tensor) -> None:
        self.steps += 1
        if self.replay is not None:
            self.rows.copy_(rows)
            self.replay()
        elif self.capture is None or self.steps <= self.warm_up_steps:
            with side_stream(self.device, enabled=self.capture is not None):
                self.run(rows)
        else:  # recording runs nothing: replay it once for this step
            self.rows = rows.clone()
            try:
                self.replay = self.capture(lambda: self.run(self.rows), self.generator)
            except RuntimeError as error:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise UsageError(
                    f"recording the training step as a CUDA graph failed ({reason}); --no-cuda-graph trains op by op"
                ) from error
            self.replay()

    def run(self, rows: torch.Tensor) -> None:
        model, config = self.model, self.config
        image, audio = model.normalise(self.data.image[rows], self.data.audio[rows])  # buffers only: no gradient
        image, audio = augment_batch(image, audio, config, self.generator, self.pixel_bounds, model.bimodal)
        labels = self.data.labels[rows]
        if config.compile:
            torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs may be overwritten
        with autocast(self.device, self.bf16, cache=self.capture is None):
            logits, aux_logits = self.runner(image, audio, aux=True, normalised=True)
        loss = training_loss(logits, aux_logits, labels, config)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        # Accuracy from the training forward pass itself: no second pass over the training set.
        loss_sum, hits, pairs = self.totals  # views: added to in place
        loss_sum.add_(loss.detach() * len(rows))
        hits.add_((logits.argmax(dim=1) == labels).sum())
        pairs.add_(len(rows))


def train_one_epoch(
    step: TrainStep,
    scheduler: Any,
    epoch: int,
    on_batch: Callable[[int, int], None] | None = None,
    stop: StopRequest = NEVER,
) -> tuple[float, float]:
    """One pass over shuffled training rows; returns (mean loss, accuracy) of the training batches.

    --batch-size is the global batch: under torchrun each rank takes its share of every batch of
    one shuffle that all ranks agree on; augmentation and dropout draw per-rank streams. A stop
    request ends a single process's epoch after the current batch (torchrun ranks agree per epoch)."""
    step.model.train()
    dist, config, device = step.dist, step.config, step.device
    step.begin_epoch(epoch)
    order_generator = torch.Generator(device=device).manual_seed(epoch_seed(config.seed, epoch))
    order = torch.randperm(len(step.data.labels), generator=order_generator, device=device)
    bounds = batch_bounds(len(order), config.batch_size, dist.world)
    for index, (first, end) in enumerate(bounds):
        step(order[first:end][dist.rank :: dist.world])
        scheduler.step()
        if on_batch is not None:
            on_batch(index + 1, len(bounds))
        if stop.requested and not dist.enabled:
            raise RunStopped(Path(config.out), stop.signal_name)
    loss_sum, correct_sum, seen_sum = dist.all_sum(step.totals.clone()).tolist()
    mean_loss = loss_sum / seen_sum  # one wait for the host per epoch
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(f"training loss became {mean_loss} in epoch {epoch}; lower --lr (best checkpoint kept)")
    return mean_loss, correct_sum / seen_sum


def evaluate(
    model: torch.nn.Module, data: Tensors, batch_size: int | None = None, bf16: bool = False, dist: Distributed = SINGLE
) -> dict[str, float]:
    """Loss, accuracy and macro F1 on a labelled split, in eval mode. Confusion counts and the loss
    sum stay on the device until one copy at the end; under torchrun each rank scores its shard and
    the counts are added, so that every rank agrees."""
    model.eval()
    shard = slice(dist.rank, None, dist.world)
    device = data.image.device
    logits = logits_for(model, data.image[shard], data.audio[shard], device, batch_size, bf16, on_device=True)
    labels = data.labels[shard]
    counts = torch.bincount(labels * 10 + logits.argmax(dim=1), minlength=100).float()  # as metrics.confusion
    loss_sum = F.cross_entropy(logits, labels, reduction="sum").reshape(1)
    totals = dist.all_sum(torch.cat([counts, loss_sum])).cpu()
    scores = scores_from_confusion(totals[:-1].reshape(10, 10).numpy())
    return {"loss": totals[-1].item() / len(data.labels), **scores}


def make_optimizer(model: torch.nn.Module, config: TrainConfig, steps: int):
    """AdamW (no decay on norms, biases, tokens) with a one-cycle schedule over all steps. On CPU and
    CUDA the fused kernel: one call for every parameter instead of about ten per tensor (on a 2-core
    CPU 1.5 ms a step instead of 9-11 ms for the flagship's 68 tensors). For a step recorded as a
    CUDA graph (--cuda-graph) AdamW keeps its state on the device and its momentum at 0.9: the
    fused kernel takes the betas as numbers, which a recording would freeze where the one-cycle
    schedule moves them."""
    decay = [p for p in model.parameters() if p.dim() >= 2 and p.numel() > 1000]
    rest = [p for p in model.parameters() if not (p.dim() >= 2 and p.numel() > 1000)]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type in ("cpu", "cuda") or None
    optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=fused, capturable=config.cuda_graph)
    # A cycle of at least 10 steps: OneCycleLR divides by its warm-up length, which rounds to zero
    # for the few steps of a smoke test; such a run simply stops early in its cycle.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(10, steps), pct_start=0.2, cycle_momentum=not config.cuda_graph
    )
    return optimizer, scheduler


def fit(
    model: MultimodalNet,
    train: Split,
    val: Split | None,
    config: TrainConfig,
    device: torch.device,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, float], FitResult], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    dist: Distributed = SINGLE,
    stop: StopRequest = NEVER,
    pseudo: PseudoLabels | None = None,
) -> FitResult:
    """Train `model`, writing OUT/best.pth (best val macro-F1) and OUT/last.pth every epoch.
    Under torchrun only rank 0 writes and calls on_epoch; every rank sees the same metrics, so
    early-stopping and divergence decisions agree without extra messages. A stop request raises
    RunStopped between batches, after last.pth of the last finished epoch is safely written.
    With `pseudo`, the second phase of --self-train: the trained model keeps its input statistics and
    trains config.self_train_epochs() more, numbered on from the first phase's, at SELF_TRAIN_LR of the
    peak learning rate, on `train` (the training pairs and the test pairs in `pseudo`)."""
    config = config.resolved(len(train), device.type == "cuda", dist.enabled)  # the automatic choices, if not given
    out = Path(config.out)
    bf16 = use_bf16(config.precision, device)
    model.to_device(device)
    train_tensors = Tensors.from_split(train, device)
    val_tensors = Tensors.from_split(val, device) if val is not None and len(val) else None
    if resume is None and pseudo is None:
        model.fit_normalisation(train_tensors.image, train_tensors.audio)
    if pseudo is not None:  # it trains at temperature 1 like the first phase, and is calibrated afresh
        model.temperature.fill_(1.0)
    before = pseudo.history if pseudo is not None else []
    epochs = config.self_train_epochs() if pseudo is not None else config.epochs
    schedule = replace(config, lr=config.lr * SELF_TRAIN_LR) if pseudo is not None else config
    steps_per_epoch = len(batch_bounds(len(train), config.batch_size, dist.world))
    optimizer, scheduler = make_optimizer(model, schedule, steps_per_epoch * epochs)
    result = FitResult(history=list(before), epochs=len(before) + epochs)
    best_f1, start_epoch = -1.0, len(before) + 1
    if before:  # the first phase's best model stands unless a self-trained epoch validates as well (a tie)
        best_f1 = max(row.get("val_f1", -1.0) for row in before)
        result.best_epoch = next(row["epoch"] for row in before if row.get("val_f1", -1.0) == best_f1)
    if resume is not None:
        result.history, result.best_epoch, best_f1, start_epoch = restore_training(resume, model, optimizer, scheduler)
        # a first phase that --patience ended, resumed for its --self-train phase: nothing more to train
        result.stopped_early = config.out_of_patience(start_epoch - 1, result.best_epoch)
    runner = model
    if dist.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        runner = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if config.compile:  # on CUDA as CUDA graphs too: a step replays its kernels without launching each
        runner = torch.compile(runner, mode="reduce-overhead" if device.type == "cuda" and not dist.enabled else None)
    capture = capture_cuda_graph if config.cuda_graph else None
    step = TrainStep(model, optimizer, train_tensors, config, bf16, dist, runner, capture)
    last_epoch = start_epoch - 1 if result.stopped_early else result.epochs
    for epoch in range(start_epoch, last_epoch + 1):
        if stop_agreed(stop, dist, device):
            raise RunStopped(out, stop.signal_name or "another rank")
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(step, scheduler, epoch, on_batch, stop)
        train_seconds = time.perf_counter() - started
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
        if val_tensors is not None:
            val = evaluate(model, val_tensors, bf16=bf16, dist=dist)
            row |= {"val_loss": val["loss"], "val_acc": val["accuracy"], "val_f1": val["macro_f1"]}
        row |= {
            "lr": float(scheduler.get_last_lr()[0]),
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - started,
        }
        result.history.append(row)
        current_f1 = row.get("val_f1", row["train_acc"])  # no validation: the latest is the best
        # A self-trained epoch has met the test set's writers and voices: it wins a tie, and less than half a
        # validation pair's worth of macro-F1 is a tie (equal counts of pairs wrong differ in the 6th decimal).
        tie = 0.5 / len(val_tensors.labels) if pseudo is not None and val_tensors is not None else 0.0
        improved = current_f1 > best_f1 or (tie > 0 and current_f1 >= best_f1 - tie) or val_tensors is None
        if improved:
            best_f1, result.best_epoch = max(best_f1, current_f1), epoch
        if dist.is_main:
            save_epoch(out, model, config, optimizer, scheduler, result, best_f1, improved, pseudo)
            if on_epoch is not None:
                on_epoch(row, result)
        if config.out_of_patience(epoch, result.best_epoch):
            result.stopped_early = True
            break
    if val_tensors is not None and dist.is_main:
        result.calibration = calibrate_best(out / "best.pth", model, val_tensors, bf16)
    return result


def stop_agreed(stop: StopRequest, dist: Distributed, device: torch.device) -> bool:
    """Whether to stop now; torchrun ranks stop together when any was asked (one sync an epoch)."""
    if not dist.enabled:
        return stop.requested
    return dist.all_sum(torch.tensor([float(stop.requested)], device=device)).item() > 0


def calibrate_best(path: Path, model: MultimodalNet, val: Tensors, bf16: bool) -> dict[str, float]:
    """Fit the temperature of the best checkpoint on the validation split and store it there;
    `model` is left holding the best weights. Returns the temperature, the ECE before/after (what
    users read) and the negative log-likelihood before/after (what the fit lowers: on a small
    validation split the binned ECE can rise while the likelihood improves)."""
    payload = load_checkpoint(path)
    model.load_state_dict(payload["state_dict"])
    model.temperature.fill_(1.0)
    model.eval()
    logits = logits_for(model, val.image, val.audio, val.image.device, bf16=bf16)
    labels = val.labels.cpu()
    temperature = fit_temperature(logits, labels)
    model.temperature.fill_(temperature)
    found = {
        "temperature": temperature,
        "val_ece_before": expected_calibration_error(F.softmax(logits, 1).numpy(), labels.numpy()),
        "val_ece_after": expected_calibration_error(F.softmax(logits / temperature, 1).numpy(), labels.numpy()),
        "val_nll_before": F.cross_entropy(logits.double(), labels).item(),
        "val_nll_after": F.cross_entropy(logits.double() / temperature, labels).item(),
    }
    save_checkpoint(path, payload | {"state_dict": model.state_dict(), "calibration": found})
    return found


def save_epoch(
    out: Path,
    model: MultimodalNet,
    config: TrainConfig,
    optimizer,
    scheduler,
    result: FitResult,
    best_f1: float,
    improved: bool,
    pseudo: PseudoLabels | None = None,
) -> None:
    """best.pth when the epoch improved; last.pth always, with everything --resume needs."""
    payload = training_payload(model, config.to_dict(), result.history[-1])
    if improved:
        save_checkpoint(out / "best.pth", payload)
    resume = resume_state(optimizer, scheduler, result.history, result.best_epoch, best_f1)
    if pseudo is not None:
        resume["pseudo_labels"] = pseudo.record()
    save_checkpoint(out / "last.pth", payload | resume)

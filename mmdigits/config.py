"""Training configuration: every default in one dataclass, validated, JSON round-trip."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args, get_type_hints

from mmdigits.errors import UsageError, kind_of_file

DEFAULT_MODEL = "cnn_transformer_attention"
AUTO_STEPS = 2800  # optimiser steps the automatic schedule gives a small data set
AUTO_EPOCHS = (15, 80)  # ... within these epochs
AUTO_BATCH = (32, 256)  # batch sizes the automatic schedule picks from (powers of two)
AUTO_STEPS_PER_EPOCH = 70  # ... the one nearest to this many steps an epoch
AUTO_LR = 3e-3  # peak learning rate up to batch 256; larger batches scale it by sqrt(batch / 256)
GPU_MAX_BATCH = 1024  # a GPU's step costs launches, not arithmetic: it may take batches this large ...
GPU_MIN_STEPS_PER_EPOCH = 40  # ... while an epoch keeps at least this many steps
# --self-train (docs/benchmarks.md, "Self-training on the test pairs"): the test pairs the calibrated model
# gives at least this probability join training, for this share of the run's epochs again, at this share
# of its peak learning rate.
SELF_TRAIN_CONFIDENCE, SELF_TRAIN_EPOCHS, SELF_TRAIN_LR = 0.99, 0.2, 1 / 3


def flag(name: str) -> str:
    """The command-line option of a TrainConfig field: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


GROUPS = DATA, FIT, AUGMENT, MACHINE = "Data and model", "Optimisation", "Augmentation", "Hardware"  # -h, in order


def option(default: Any, help: str, group: str, metavar: str | None = None) -> Any:
    """A TrainConfig field with its help text, its group in `-h` and, for a path kept as a string
    (JSON holds no Path), the `<path>` to show beside it: the CLI's options are built from these."""
    return field(default=default, metadata={"help": help, "group": group, "metavar": metavar})


@dataclass
class TrainConfig:
    """What `mmdigits train` does. The single source of the training options: the CLI derives its
    options from these fields (cli_options.py), config.json, --config files and checkpoints record them."""

    data: str = option(".", "Folder with the competition's .npy/.csv files.", DATA, "<path>")
    model: str = option(DEFAULT_MODEL, "Registered model name; see `mmdigits models`.", DATA)
    out: str = option("", "Run folder (default: runs/<model>).", DATA, "<path>")
    epochs: int = option(
        0, "Passes over the training split; 0: auto (about 2,800 optimiser steps in 15-80 epochs).", FIT
    )
    batch_size: int = option(
        0,
        "Pairs per optimisation step; 0: auto (about 70 steps an epoch, 32-256; a GPU: up to 1024).",
        FIT,
    )
    lr: float = option(
        0.0,
        "Peak learning rate of the one-cycle schedule (AdamW); 0: auto (3e-3 x sqrt(batch / 256), at least 3e-3).",
        FIT,
    )
    weight_decay: float = option(0.05, "AdamW weight decay.", FIT)
    label_smoothing: float = option(0.1, "Label smoothing of the loss.", FIT)
    val_fraction: float = option(0.2, "Share held out for validation (0 trains on all).", DATA)
    seed: int = option(0, "Seed for the split, initialisation, shuffles and augmentation.", DATA)
    device: str = option("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.", MACHINE)
    precision: str = option(
        "auto", "auto (bf16 autocast where the hardware runs it fast, else fp32), fp32 or bf16.", MACHINE
    )
    augment: bool = option(
        True,
        "Training augmentation, in units of the data's spread: image warps, blots, pen widths and noise; "
        "audio frame shifts, masks, microphone offsets, a talker underneath, drowned clips and noise.",
        AUGMENT,
    )
    image_noise: float = option(1.5, "Strongest training noise on images, in units of the pixels' spread.", AUGMENT)
    audio_noise: float = option(
        1.0, "Strongest training noise on audio, in units of each coefficient's spread.", AUGMENT
    )
    modality_dropout: float = option(0.2, "Chance of blanking one modality of a training pair.", AUGMENT)
    aux_weight: float = option(0.5, "Weight of the per-modality heads' loss (0: fused loss only).", FIT)
    rank: int = option(4, "Rank of the low-rank tensor fusion (the *_lowrank models).", DATA)
    width: int = option(16, "Channels of the image CNN's first block (its width; the next two have 2x and 4x).", DATA)
    patience: int = option(0, "Stop after N epochs without a better val macro-F1; 0: never.", FIT)
    self_train: bool = option(
        False,
        "After training, label the test pairs (x_test_*.npy in --data) the model is >= 99 % sure of and train a "
        "fifth more epochs on them and the training pairs, from the best model at a third of the learning rate "
        "(pseudo-labels: no test label is read).",
        FIT,
    )
    max_samples: int = option(0, "Use only the first N training rows (quick trials); 0: all.", DATA)
    compile: bool = option(False, "torch.compile the model (on one GPU with CUDA graphs).", MACHINE)
    cuda_graph: bool | None = option(
        None,
        "Record the whole training step once as a CUDA graph and replay it, cuDNN picking by heuristics; default: "
        "on for one CUDA GPU without --compile (60,000 pairs x 20 epochs on an H200: 19-25 s from start to exit, "
        "40 s with --no-cuda-graph).",
        MACHINE,
    )
    deterministic: bool = option(False, "Deterministic kernels (GPU).", MACHINE)

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/{self.model}"

    def validate(self) -> TrainConfig:
        """Raise UsageError naming the first bad option."""
        from mmdigits.models import model_arguments

        model_arguments(self.model)  # unknown names raise with the list of choices
        checks = [
            (self.epochs >= 0, "--epochs must be at least 1 (or 0: auto)"),
            (self.batch_size >= 0, "--batch-size must be at least 1 (or 0: auto)"),
            (self.lr >= 0, "--lr must be positive (or 0: auto)"),
            (self.weight_decay >= 0, "--weight-decay must not be negative"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (0 <= self.val_fraction < 1, "--val-fraction must be in [0, 1)"),
            (0 <= self.modality_dropout < 1, "--modality-dropout must be in [0, 1)"),
            (self.image_noise >= 0, "--image-noise must not be negative"),
            (self.audio_noise >= 0, "--audio-noise must not be negative"),
            (self.aux_weight >= 0, "--aux-weight must not be negative"),
            (self.rank >= 1, "--rank must be at least 1"),
            (self.width >= 1, "--width must be at least 1"),
            (self.patience >= 0, "--patience must not be negative"),
            (self.max_samples >= 0, "--max-samples must not be negative"),
            (
                self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:"),
                "--device must be auto, cpu, cuda, cuda:N or mps",
            ),
            (self.precision in ("auto", "fp32", "bf16"), "--precision must be auto, fp32 or bf16"),
            (not (self.cuda_graph and self.compile), "--cuda-graph and --compile both record CUDA graphs: choose one"),
            (
                not (self.self_train and self.val_fraction == 0),
                "--self-train needs a validation split (--val-fraction above 0): the model's confidence is calibrated "
                "on it",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        return self

    def check_place(self, device_type: str, distributed: bool) -> None:
        """Raise UsageError for an option the run's device or launch cannot honour."""
        if self.cuda_graph and (device_type != "cuda" or distributed):
            where = "one of several torchrun processes" if distributed else f"on {device_type}"
            raise UsageError(f"--cuda-graph records the training step on one CUDA GPU; this run is {where}")

    def records_graph(self, gpu: bool, distributed: bool = False) -> bool:
        """Whether the training step is recorded as a CUDA graph: as given, else wherever it can be (one
        CUDA GPU) unless --compile records its own. Measured on an H200 before it became the default:
        60,000 pairs x 20 epochs 24.3 and 18.9 s against 40.6 and 39.4 s, test 0.9962 and 0.9964 against
        0.9966 and 0.9957 (two seeds; docs/benchmarks.md)."""
        if self.cuda_graph is not None:
            return self.cuda_graph
        return gpu and not distributed and not self.compile

    def resolved(self, n_train: int, gpu: bool = False, distributed: bool = False) -> TrainConfig:
        """Fill in the automatic batch size, epochs, learning rate and CUDA graph for `n_train`
        training pairs. Small data sets get smaller batches and more epochs, so 5,000 pairs train as
        many steps as they need and 60,000 pairs keep batch 256 x 15 epochs. On a GPU, where a step's
        cost is its kernel launches, large sets take larger batches for the same epochs (48,000
        pairs: 1024). The learning rate scales with the rows a step takes, not a batch larger than the split."""
        batch = self.batch_size or int(
            min(AUTO_BATCH[1], max(AUTO_BATCH[0], 2 ** round(math.log2(n_train / AUTO_STEPS_PER_EPOCH))))
        )
        steps_per_epoch = max(1, n_train // batch)
        epochs = self.epochs or min(AUTO_EPOCHS[1], max(AUTO_EPOCHS[0], math.ceil(AUTO_STEPS / steps_per_epoch)))
        if gpu and not self.batch_size:
            while batch < GPU_MAX_BATCH and n_train // (2 * batch) >= GPU_MIN_STEPS_PER_EPOCH:
                batch *= 2
        rows = min(batch, n_train)  # a split smaller than the batch trains whole (engine.batch_bounds)
        lr = self.lr or AUTO_LR * math.sqrt(max(1.0, rows / AUTO_BATCH[1]))
        return replace(self, batch_size=batch, epochs=epochs, lr=lr, cuda_graph=self.records_graph(gpu, distributed))

    def self_train_epochs(self) -> int:
        """The epochs --self-train adds after the run's own (resolved) epochs; 0 without it."""
        return math.ceil(self.epochs * SELF_TRAIN_EPOCHS) if self.self_train else 0

    def out_of_patience(self, epoch: int, best_epoch: int) -> bool:
        """--patience: the run ends after `epoch` when no epoch since `best_epoch` validated better."""
        return bool(self.patience) and epoch - best_epoch >= self.patience

    def model_overrides(self) -> dict[str, Any]:
        """Model arguments the CLI can change; they are stored in the checkpoint's model_kwargs."""
        return {"rank": self.rank, "width": self.width}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read_file(cls, path: Path) -> dict[str, Any]:
        """The options a --config JSON file sets (as tune's best.json), each checked against its field."""
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise UsageError(f"--config {path}: cannot read it ({error.strerror or error})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            found = kind_of_file(path)  # a checkpoint or an array given here is named as such
            if found not in (None, "a text file"):
                reason = found
            elif isinstance(error, UnicodeDecodeError):
                reason = f"not UTF-8: {error.reason} at byte {error.start}"
            else:
                reason = f"{error.msg} at line {error.lineno}"
            raise UsageError(f"--config {path}: not JSON ({reason})") from None
        if not isinstance(values, dict):
            raise UsageError(f"--config {path}: expected a JSON object of training options")
        types = get_type_hints(cls)
        for key, value in values.items():
            if key not in types:
                raise UsageError(f"--config {path}: unknown option '{key}' (known: {', '.join(types)})")
            kinds = get_args(types[key]) or (types[key],)  # bool | None: (bool, NoneType)
            fits = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
            if not (fits or (float in kinds and type(value) is int)):
                names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
                raise UsageError(f"--config {path}: '{key}' must be {names}, not {value!r}")
        return {key: float(value) if types[key] is float else value for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from config.json or a checkpoint, ignoring keys this version does not know."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

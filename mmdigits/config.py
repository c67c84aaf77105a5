"""Training configuration: every default in one dataclass, validated, JSON round-trip."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from mmdigits.errors import UsageError

DEFAULT_MODEL = "cnn_transformer_attention"
AUTO_STEPS = 700  # optimiser steps the automatic schedule gives a small data set
AUTO_EPOCHS = (15, 40)  # ... within these epochs
AUTO_BATCH = (32, 256)  # batch sizes the automatic schedule picks from (powers of two)


@dataclass
class TrainConfig:
    """What `mmdigits train` does; the CLI fills it, config.json and checkpoints record it."""

    data: str = "."
    model: str = DEFAULT_MODEL
    out: str = ""  # empty: runs/<model>
    epochs: int = 0  # 0: auto, at least AUTO_STEPS optimiser steps within AUTO_EPOCHS
    batch_size: int = 0  # 0: auto, about 35 steps per epoch within AUTO_BATCH
    lr: float = 3e-3  # peak of the one-cycle schedule
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where the hardware runs it fast, else fp32
    augment: bool = True  # affine image warps, frame shifts/masks, per-modality noise
    image_noise: float = 1.5  # strongest training noise on images, in units of the pixels' spread
    audio_noise: float = 1.0  # strongest training noise on audio, in units of each coefficient's spread
    modality_dropout: float = 0.2  # chance of blanking one modality of a training pair
    aux_weight: float = 0.5  # weight of the per-modality heads' loss (0: fused loss only)
    rank: int = 4  # rank of the low-rank tensor fusion (the *_lowrank models)
    patience: int = 0  # stop after this many epochs without a better val macro-F1; 0: never
    max_samples: int = 0  # train on the first N rows only (smoke tests); 0: all
    compile: bool = False
    deterministic: bool = False

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
            (self.lr > 0, "--lr must be positive"),
            (self.weight_decay >= 0, "--weight-decay must not be negative"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (0 <= self.val_fraction < 1, "--val-fraction must be in [0, 1)"),
            (0 <= self.modality_dropout < 1, "--modality-dropout must be in [0, 1)"),
            (self.image_noise >= 0, "--image-noise must not be negative"),
            (self.audio_noise >= 0, "--audio-noise must not be negative"),
            (self.aux_weight >= 0, "--aux-weight must not be negative"),
            (self.rank >= 1, "--rank must be at least 1"),
            (self.patience >= 0, "--patience must not be negative"),
            (self.max_samples >= 0, "--max-samples must not be negative"),
            (
                self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:"),
                "--device must be auto, cpu, cuda, cuda:N or mps",
            ),
            (self.precision in ("auto", "fp32", "bf16"), "--precision must be auto, fp32 or bf16"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        return self

    def resolved(self, n_train: int) -> TrainConfig:
        """Fill in the automatic batch size and epochs for `n_train` training pairs. Small data sets
        get smaller batches and more epochs, so 5,000 pairs train as many steps as they need and
        60,000 pairs keep batch 256 x 15 epochs."""
        batch = self.batch_size or int(min(AUTO_BATCH[1], max(AUTO_BATCH[0], 2 ** round(math.log2(n_train / 35)))))
        steps_per_epoch = max(1, n_train // batch)
        epochs = self.epochs or min(AUTO_EPOCHS[1], max(AUTO_EPOCHS[0], math.ceil(AUTO_STEPS / steps_per_epoch)))
        return replace(self, batch_size=batch, epochs=epochs)

    def model_overrides(self) -> dict[str, Any]:
        """Model arguments the CLI can change; they are stored in the checkpoint's model_kwargs."""
        return {"rank": self.rank}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from config.json or a checkpoint, ignoring keys this version does not know."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

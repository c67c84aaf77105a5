"""--self-train: the test pairs a trained model is sure of, labelled by it, as more training pairs.

The test set holds writers and voices the training set lacks; training on the pairs the calibrated
model already gets right with >= 99 % confidence teaches it those, and its other test answers move
with them (docs/benchmarks.md). No test label is read: only x_test_wr.npy and x_test_sp.npy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmdigits.config import SELF_TRAIN_CONFIDENCE
from mmdigits.data import TEST_AUDIO, TEST_IMAGE, Split
from mmdigits.errors import DataWarning
from mmdigits.inference import probabilities, unlike_training
from mmdigits.runtime import SINGLE, Distributed


@dataclass
class PseudoLabels:
    """The test rows that join training, the digits the model gave them, and the epochs before."""

    rows: np.ndarray  # (K,) rows of the test files
    labels: np.ndarray  # (K,) int64 digits
    history: list[dict[str, float]] = field(default_factory=list)  # the first phase's epochs

    def record(self) -> dict[str, Any]:
        """What last.pth keeps so that --resume rebuilds the same training pairs."""
        return {"rows": self.rows.tolist(), "labels": self.labels.tolist(), "after_epoch": len(self.history)}

    @classmethod
    def recorded(cls, payload: dict[str, Any]) -> PseudoLabels:
        """From a last.pth written in the second phase."""
        found = payload["pseudo_labels"]
        return cls(np.array(found["rows"], dtype=np.int64), np.array(found["labels"], dtype=np.int64),
                   payload["history"][: found["after_epoch"]])  # fmt: skip


def label_confident(
    model: torch.nn.Module,
    test: Split,
    device: torch.device,
    bf16: bool,
    history: list[dict[str, float]],
    dist: Distributed = SINGLE,
) -> PseudoLabels:
    """The test pairs whose calibrated probability of the model's answer is >= SELF_TRAIN_CONFIDENCE.
    Under torchrun the ranks average their probabilities first, so that every rank picks the same
    pairs: a rank with one batch more than the others would wait for them for ever. Test files in
    other units than the training files are named in a warning, as `predict` names them."""
    for line in unlike_training(model, test.image, test.audio, (TEST_IMAGE, TEST_AUDIO)):
        warnings.warn(line, DataWarning, stacklevel=2)
    model.eval()
    found = dist.all_sum(probabilities(model, test.image, test.audio, device, bf16).to(device)).cpu() / dist.world
    confidence, digits = found.max(dim=1)
    rows = np.flatnonzero(confidence.numpy() >= SELF_TRAIN_CONFIDENCE)
    return PseudoLabels(rows, digits.numpy()[rows].astype(np.int64), list(history))


def with_pseudo_labels(train: Split, test: Split, pseudo: PseudoLabels) -> Split:
    """The training pairs followed by the chosen test pairs with their pseudo-labels."""
    return Split(
        np.concatenate([train.image, test.image[pseudo.rows]]),
        np.concatenate([train.audio, test.audio[pseudo.rows].astype(train.audio.dtype)]),
        np.concatenate([train.labels, pseudo.labels]),
    )

"""--self-train's parts: which test pairs join training, with which labels, and how they are joined."""

from __future__ import annotations

import numpy as np
import torch

from mmdigits.data import Split
from mmdigits.selftraining import PseudoLabels, label_confident, with_pseudo_labels


class FixedAnswers(torch.nn.Module):
    """A model whose logits for the i-th pair of a call are given (it has no encoder whose training
    statistics the test inputs would be compared with)."""

    image_encoder = audio_encoder = None

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(image)]


def pairs(n: int, audio_dtype=np.float64) -> Split:
    return Split(np.zeros((n, 28, 28), np.float32), np.zeros((n, 39, 13), audio_dtype), np.arange(n) % 10)


def test_only_the_pairs_the_model_is_sure_of_join_with_its_answers():
    logits = torch.zeros(4, 10)
    logits[0, 3] = 12.0  # 0.99994 sure of a 3
    logits[1, 5] = 4.0  # 0.86 sure of a 5: left out
    logits[2, 7] = 12.0
    logits[3, 1] = 6.7  # 0.9891: just under 0.99, left out
    chosen = label_confident(FixedAnswers(logits), pairs(4), torch.device("cpu"), False, [{"epoch": 1}])
    assert chosen.rows.tolist() == [0, 2]
    assert chosen.labels.tolist() == [3, 7]
    assert chosen.history == [{"epoch": 1}]


def test_the_chosen_test_pairs_follow_the_training_pairs_and_are_recorded_for_resume():
    train, test = pairs(5, np.float32), pairs(4)
    test.image[2] = 1.0
    pseudo = PseudoLabels(np.array([2]), np.array([9]), [{"epoch": 1}, {"epoch": 2}])
    joined = with_pseudo_labels(train, test, pseudo)
    assert len(joined) == 6 and joined.labels.tolist() == [0, 1, 2, 3, 4, 9]
    assert joined.image[5].min() == 1.0 and joined.audio.dtype == np.float32
    payload = {"pseudo_labels": pseudo.record(), "history": [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]}
    again = PseudoLabels.recorded(payload)
    assert again.rows.tolist() == [2] and again.labels.tolist() == [9] and again.history == pseudo.history

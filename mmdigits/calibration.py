"""Temperature scaling (Guo et al., 2017): one scalar T, fitted on the validation split after
training, so that softmax(logits / T) means what it says. Label smoothing and augmentation leave a
model under-confident; T < 1 sharpens it, and argmax (the submission) never changes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 that minimises the negative log-likelihood of `labels` under softmax(logits / T)."""
    logits, labels = logits.detach().double().cpu(), labels.detach().cpu()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))

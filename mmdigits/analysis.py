"""Does the model use both inputs, and does it survive when one is bad? Ablations, conditional
utilisation rates, each head scored alone, noise-robustness curves, calibration and an error gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmdigits import augment
from mmdigits.artifacts import pyplot, save_figure
from mmdigits.data import Split
from mmdigits.evaluation import report
from mmdigits.inference import as_tensor, probabilities
from mmdigits.metrics import reliability_bins
from mmdigits.models import MultimodalNet

NOISE_LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]  # noise std in units of the feature spread


def accuracy(model: MultimodalNet, image, audio, labels: np.ndarray, device: torch.device) -> float:
    predictions = probabilities(model, image, audio, device).argmax(dim=1).numpy()
    return float(np.mean(predictions == labels))


def ablation(model: MultimodalNet, split: Split, device: torch.device) -> dict[str, float]:
    """Accuracy with both inputs, and with one removed: zeroed, or filled with the training mean."""
    image_mean = np.full_like(split.image, model.image_mean.item())
    audio_mean = np.broadcast_to(model.audio_mean.cpu().numpy(), split.audio.shape).copy()
    cases = {
        "both": (split.image, split.audio),
        "image zeroed": (np.zeros_like(split.image), split.audio),
        "image mean-filled": (image_mean, split.audio),
        "audio zeroed": (split.image, np.zeros_like(split.audio)),
        "audio mean-filled": (split.image, audio_mean),
    }
    return {name: accuracy(model, image, audio, split.labels, device) for name, (image, audio) in cases.items()}


def utilisation(ablated: dict[str, float]) -> dict[str, float]:
    """Conditional utilisation rates (Wu, Jastrzebski, Cho and Geras, ICML 2022):
    u(a|b) = (A(a, b) - A(b)) / A(a, b), the share of accuracy that adding modality a brings over
    b alone. A modality is removed by filling it with its training mean."""
    both = ablated["both"]
    u_audio = (both - ablated["audio mean-filled"]) / both
    u_image = (both - ablated["image mean-filled"]) / both
    return {"u(audio|image)": u_audio, "u(image|audio)": u_image, "difference": u_audio - u_image}


HEAD_NAMES = {"image": "image expert", "audio": "audio expert", "fusion": "fusion head alone"}


class OneHead(nn.Module):
    """One head of a bimodal model as a model of its own, so that the one inference path scores it."""

    def __init__(self, model: MultimodalNet, head: str) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.model.head_logits(image, audio)[self.head]


def head_predictions(model: MultimodalNet, split: Split, device: torch.device) -> dict[str, np.ndarray]:
    """Each head's own answers: the image and audio experts (trained beside the fused head, and in
    the registered models the two votes the fused head's log-odds are added to) and the fusion head."""
    return {
        name: probabilities(OneHead(model, head), split.image, split.audio, device).argmax(dim=1).numpy()
        for head, name in HEAD_NAMES.items()
    }


def accuracy_by_condition(predictions: np.ndarray, labels: np.ndarray, conditions: np.ndarray | None) -> dict:
    """Accuracy on all pairs, then on each noise condition's pairs when they are known."""
    scored = report(predictions, labels, conditions)
    return {"all pairs": scored.overall["accuracy"], **{c: v["accuracy"] for c, v in scored.conditions.items()}}


def robustness(model: MultimodalNet, split: Split, device: torch.device, seed: int = 0) -> dict[str, list[float]]:
    """Accuracy as Gaussian noise is added to image, audio, both; each std is in units of the
    feature's spread on the training split (pixels stay in [0, 1]; audio is never clipped)."""
    generator = torch.Generator().manual_seed(seed)
    image, audio = as_tensor(split.image, torch.device("cpu")), as_tensor(split.audio, torch.device("cpu"))
    image_spread, audio_spread = model.image_std.cpu(), model.audio_std.cpu()  # () and (13,)
    curves: dict[str, list[float]] = {"image": [], "audio": [], "both": []}
    for level in NOISE_LEVELS:
        noisy_image = augment.add_noise(image, level * image_spread, generator, bounds=(0.0, 1.0))
        noisy_audio = audio + torch.randn(audio.shape, generator=generator) * level * audio_spread
        curves["image"].append(accuracy(model, noisy_image, audio, split.labels, device))
        curves["audio"].append(accuracy(model, image, noisy_audio, split.labels, device))
        curves["both"].append(accuracy(model, noisy_image, noisy_audio, split.labels, device))
    return curves


def fusion_hurts(fused: np.ndarray, image_only: np.ndarray, audio_only: np.ndarray, labels: np.ndarray) -> dict:
    """How often the fused model is wrong where a single-modality model is right."""
    fused_wrong = fused != labels
    return {
        "fused wrong, image model right": int(np.sum(fused_wrong & (image_only == labels))),
        "fused wrong, audio model right": int(np.sum(fused_wrong & (audio_only == labels))),
        "fused wrong, either right": int(np.sum(fused_wrong & ((image_only == labels) | (audio_only == labels)))),
        "fused right, both wrong": int(np.sum(~fused_wrong & (image_only != labels) & (audio_only != labels))),
        "pairs": len(labels),
    }


def plot_robustness(path: Path, curves: dict[str, list[float]], title: str) -> Path:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for name, values in curves.items():
        axis.plot(NOISE_LEVELS, values, "-o", markersize=4, label=f"noise on {name}")
    axis.set(
        xlabel="Gaussian noise std (units of the feature's training spread)",
        ylabel="accuracy",
        title=title,
        ylim=(0, 1.02),
    )
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, path)


def plot_reliability(path: Path, probs: np.ndarray, labels: np.ndarray, ece: float, bins: int = 15) -> Path:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    plt = pyplot()
    found = reliability_bins(probs, labels, bins)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.bar(found["centre"], found["accuracy"], width=1 / bins, edgecolor="black", alpha=0.7, label="accuracy in bin")
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    axis.set(xlabel="confidence", ylabel="accuracy", title=f"reliability (ECE {ece:.4f})", xlim=(0, 1), ylim=(0, 1))
    axis.legend(loc="upper left")
    return save_figure(figure, path)


def plot_error_gallery(path: Path, split: Split, predictions: np.ndarray, limit: int = 16) -> Path:
    """Misclassified pairs: the image above its MFCC (39 frames x 13 coefficients) heat map."""
    plt = pyplot()
    wrong = np.flatnonzero(predictions != split.labels)[:limit]
    columns = max(1, min(8, len(wrong)))
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    figure, axes = plt.subplots(2 * rows, columns, figsize=(1.8 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for slot, row in enumerate(wrong):
        top, left = 2 * (slot // columns), slot % columns
        axes[top, left].imshow(split.image[row], cmap="gray", vmin=0, vmax=1)
        axes[top, left].set_title(f"true {split.labels[row]} / pred {predictions[row]}", fontsize=8)
        axes[top + 1, left].imshow(split.audio[row].T, aspect="auto", origin="lower", cmap="magma")
    if not len(wrong):
        axes[0, 0].text(0.5, 0.5, "no errors", ha="center")
    figure.suptitle("misclassified pairs (image; MFCC frames x coefficients)")
    return save_figure(figure, path)

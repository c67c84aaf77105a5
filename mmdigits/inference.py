"""Logits for a whole dataset in large batches, ensembles of checkpoints, test-time augmentation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mmdigits import augment
from mmdigits.runtime import autocast, use_bf16

TTA_VIEWS = 8  # the plain input plus 7 small shifts/rotations of the image and frame shifts
# Inputs whose feature means sit this many training spreads from the training means, or whose spreads
# are this many times larger or smaller, are in other units than the model learned. Measured with the
# flagship (docs/benchmarks.md): every noise condition of either profile's own test set stays within 0.8
# spreads and 0.60-1.65 x, the other profile's writers and voices in the same units within 0.62 and
# 0.44-2.27 x; raw MFCC given to a model trained on [0, 1] ones sit 131 spreads away, and [0, 1] MFCC
# given to a model trained on raw ones have 0.01-0.07 x the spread.
UNITS_SPREADS, UNITS_RATIO = 3.0, 4.0


def as_tensor(values: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """float64 stays float64 (audio far from zero keeps its precision until the model's z-scores),
    except on MPS, which has no float64; everything else becomes float32."""
    float64 = values.dtype == (np.float64 if isinstance(values, np.ndarray) else torch.float64)
    keep_float64 = float64 and device.type != "mps"
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64 if keep_float64 else np.float32))
    return values.to(device, dtype=torch.float64 if keep_float64 else torch.float32, non_blocking=True)


def inference_batch(device: torch.device) -> int:
    """Pairs a forward pass takes at once outside training: 512 on a CPU, where a chunk's
    activations then stay in cache (11-59 % more pairs/s than 2,048 on 2 cores, in bf16 and in
    fp32: docs/benchmarks.md); 2,048 on a GPU, where a pass costs its kernel launches."""
    return 512 if device.type == "cpu" else 2048


@torch.inference_mode()
def logits_for(
    model: torch.nn.Module,
    image,
    audio,
    device: torch.device,
    batch_size: int | None = None,
    bf16: bool = False,
    on_device: bool = False,
) -> torch.Tensor:
    """(N, 10) float32 logits, on the CPU unless `on_device` (then the host never waits for them);
    the model must already be on `device` in eval mode. `batch_size` None: `inference_batch`."""
    batch_size = batch_size or inference_batch(device)
    chunks = []
    for start in range(0, len(image), batch_size):
        image_batch = as_tensor(image[start : start + batch_size], device)
        audio_batch = as_tensor(audio[start : start + batch_size], device)
        with autocast(device, bf16):
            chunks.append(model(image_batch, audio_batch).float())
    logits = torch.cat(chunks)
    return logits if on_device else logits.cpu()


@torch.inference_mode()
def tta_probabilities(
    model: torch.nn.Module,
    image,
    audio,
    device: torch.device,
    views: int = TTA_VIEWS,
    seed: int = 0,
    bf16: bool = False,
) -> torch.Tensor:
    """Mean class probabilities over the plain input and `views - 1` digit-safe distortions
    (small shifts and rotations of the image, up to 2-frame shifts of the MFCC; never flips)."""
    image, audio = as_tensor(image, device), as_tensor(audio, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    total = F.softmax(logits_for(model, image, audio, device, bf16=bf16), dim=1)
    for _ in range(views - 1):
        warped = augment.random_affine(image, generator, degrees=8, scale=0.05, shear=0.0, shift=0.05)
        shifted = augment.shift_frames(audio, 2, generator)
        total += F.softmax(logits_for(model, warped, shifted, device, bf16=bf16), dim=1)
    return total / views


def probabilities(model: torch.nn.Module, image, audio, device: torch.device, bf16: bool | None = None) -> torch.Tensor:
    """(N, 10) class probabilities on the CPU, the one way every command computes them. bf16=None
    autocasts where the hardware runs bf16 natively, as training does; elsewhere fp32."""
    if bf16 is None:
        bf16 = use_bf16("auto", device)
    return F.softmax(logits_for(model, image, audio, device, bf16=bf16), dim=1)


def ensemble_probabilities(
    models: list[torch.nn.Module], image, audio, device: torch.device, tta: bool = False, bf16: bool | None = None
) -> torch.Tensor:
    """Average of the models' class probabilities (not logits: members trained apart can have
    very different logit scales, and averaging probabilities keeps each member's vote bounded).
    bf16=None autocasts where the hardware runs bf16 natively, as training does."""
    if bf16 is None:
        bf16 = use_bf16("auto", device)
    total = None
    for model in models:
        if tta:
            member = tta_probabilities(model, image, audio, device, bf16=bf16)
        else:
            member = probabilities(model, image, audio, device, bf16)
        total = member if total is None else total + member
    return total / len(models)


def unlike_training(model: torch.nn.Module, image: np.ndarray, audio: np.ndarray, names: tuple[str, str]) -> list[str]:
    """One line per modality (its file named by `names`) whose inputs are unlike what the model was
    trained on by far more than noise makes them: other units or scaling, most likely. The model
    still answers, leaning on the other modality, so the user must hear it; nothing is changed."""
    modalities = {
        "image": (image, (28, 28), (0, 1, 2), "the images are"),
        "audio": (audio, (39, 13), (0, 1), "the audio is"),
    }
    found = []
    for (modality, (values, shape, axes, subject)), name in zip(modalities.items(), names, strict=True):
        if getattr(model, f"{modality}_encoder") is None or len(values) < 2:  # unread, or no spread to compare
            continue
        mean, std = (getattr(model, f"{modality}_{stat}").detach().double().cpu().numpy() for stat in ("mean", "std"))
        values = np.asarray(values).reshape(len(values), *shape)
        away = float(np.max(np.abs(values.mean(axis=axes) - mean) / std))
        ratio = values.std(axis=axes) / std
        if away > UNITS_SPREADS or ratio.min() < 1 / UNITS_RATIO or ratio.max() > UNITS_RATIO:
            other = "audio" if modality == "image" else "images"
            found.append(
                f"{name}: {subject} unlike the model's training data (means up to {away:.3g} training spreads "
                f"away, spreads {ratio.min():.3g}-{ratio.max():.3g} x the training ones): other units or scaling? "
                f"The model then decides on the {other}; keep train and test files in the same units"
            )
    return found

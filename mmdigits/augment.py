"""Batched, digit-safe distortions on tensors (no flips: a flipped 2 or 5 is another glyph).

Used for training augmentation, test-time augmentation and the data generator. Training calls
them on normalised inputs (z-scores fitted on the training split), so every strength is in units of
the data's own spread and a fill of 0 is the average input, whatever units the files use.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    image: torch.Tensor,  # (B, 28, 28)
    generator: torch.Generator | None = None,
    degrees: float = 12.0,
    scale: float = 0.12,
    shear: float = 0.15,
    shift: float = 0.1,
    elastic: float = 0.0,
    fill: float = 0.0,
) -> torch.Tensor:
    """Random rotation/scale/shear/translation (+ optional elastic warp) per image; `fill` is the
    value that moves in from outside (the background: 0 for raw pixels, its z-score if normalised)."""
    batch = image.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator, device=image.device) * (high - low) + low

    angle = uniform(-degrees, degrees) * math.pi / 180
    zoom = uniform(1 - scale, 1 + scale)
    shear_x = uniform(-shear, shear)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear_x * cos, uniform(-shift, shift) * 2], dim=1),
            torch.stack([sin, cos + shear_x * sin, uniform(-shift, shift) * 2], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3), maps output coordinates to input coordinates in [-1, 1]
    grid = F.affine_grid(theta, (batch, 1, *image.shape[1:]), align_corners=False)
    if elastic > 0:
        grid = grid + smooth_displacement(batch, image.shape[1:], elastic, generator, image.device)
    warped = F.grid_sample((image - fill).unsqueeze(1), grid, align_corners=False, padding_mode="zeros")
    return warped.squeeze(1) + fill


def smooth_displacement(
    batch: int, size: torch.Size, strength: float, generator: torch.Generator | None, device
) -> torch.Tensor:
    """Gaussian-smoothed random displacement field (B, H, W, 2) in grid units: elastic warping."""
    field = torch.randn(batch, 2, *size, generator=generator, device=device)
    radius = torch.arange(-6, 7, device=device, dtype=torch.float32)
    kernel = torch.exp(-(radius**2) / (2 * 3.0**2))
    kernel = kernel / kernel.sum()
    field = F.conv2d(field.reshape(-1, 1, *size), kernel.view(1, 1, 1, -1), padding=(0, 6))
    field = F.conv2d(field, kernel.view(1, 1, -1, 1), padding=(6, 0)).reshape(batch, 2, *size)
    field = field / (field.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
    return (field * strength / size[0]).permute(0, 2, 3, 1)


def shift_frames(audio: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each clip by up to `max_shift` frames in time, repeating the edge frame."""
    batch, frames, _ = audio.shape
    offsets = torch.randint(-max_shift, max_shift + 1, (batch, 1), generator=generator, device=audio.device)
    source = (torch.arange(frames, device=audio.device).unsqueeze(0) - offsets).clamp(0, frames - 1)
    return torch.gather(audio, 1, source.unsqueeze(-1).expand_as(audio))


def offset_channel(
    audio: torch.Tensor, share: float, spread: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Other microphones and rooms: a channel's frequency response adds a constant to each cepstral
    coefficient of every frame (convolution becomes addition after the log and the DCT). Adds, to
    `share` of the clips, one Gaussian offset per coefficient of std `spread` (normalised units)."""
    batch, _, coeffs = audio.shape
    device = audio.device
    offset = torch.randn(batch, 1, coeffs, generator=generator, device=device) * spread
    chosen = torch.rand(batch, 1, 1, generator=generator, device=device) < share
    return audio + offset * chosen


def mask_blocks(
    audio: torch.Tensor, max_frames: int, max_coeffs: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """SpecAugment-style: zero one random run of frames and one of coefficients per clip (on
    normalised audio zero is the average frame, not a silence no recording gives)."""
    batch, frames, coeffs = audio.shape
    device = audio.device

    def band(length: int, width: int) -> torch.Tensor:
        size = torch.randint(0, width + 1, (batch, 1), generator=generator, device=device)
        start = (torch.rand(batch, 1, generator=generator, device=device) * (length - size + 1)).long()
        position = torch.arange(length, device=device).unsqueeze(0)
        return (position >= start) & (position < start + size)  # (B, length)

    keep = ~(band(frames, max_frames).unsqueeze(2) | band(coeffs, max_coeffs).unsqueeze(1))
    return audio * keep


def overlay(
    audio: torch.Tensor, share: float, weights: tuple[float, float], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add another clip of the batch, weaker, under `share` of the clips: an interfering talker,
    so that the model learns what a clip it should not trust looks like."""
    batch = len(audio)
    device = audio.device
    partner = audio[torch.randperm(batch, generator=generator, device=device)]
    low, high = weights
    weight = torch.rand(batch, 1, 1, generator=generator, device=device) * (high - low) + low
    weight = weight * (torch.rand(batch, 1, 1, generator=generator, device=device) < share)
    return audio + weight * partner


def drown(
    audio: torch.Tensor, share: float, weights: tuple[float, float], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mix `share` of the clips toward noise that carries no digit, with a weight in `weights`:
    babble (four other clips of the batch, each with its frames shuffled, averaged) or a stationary
    random spectrum that fluctuates from frame to frame. Noise at or below 0 dB SNR leaves MFCCs
    like these; trained on them, the audio head learns to abstain and the image decides the pair."""
    batch, frames, coeffs = audio.shape
    device = audio.device

    def uniform(size: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(size, generator=generator, device=device)

    others = (torch.arange(batch, device=device).view(-1, 1) + 1 + (uniform((batch, 4)) * (batch - 1)).long()) % batch
    order = uniform((batch, 4, frames)).argsort(dim=2).unsqueeze(-1).expand(-1, -1, -1, coeffs)
    babble = torch.gather(audio[others], 2, order).mean(dim=1)  # (B, frames, coeffs)
    spectrum = torch.randn(batch, 1, coeffs, generator=generator, device=device)
    stationary = spectrum + 0.5 * torch.randn(audio.shape, generator=generator, device=device)
    noise = torch.where(uniform((batch, 1, 1)) < 0.5, babble, stationary)
    low, high = weights
    weight = (uniform((batch, 1, 1)) * (high - low) + low) * (uniform((batch, 1, 1)) < share)
    return (1 - weight) * audio + weight * noise


def occlude(
    image: torch.Tensor,
    min_side: int,
    max_side: int,
    generator: torch.Generator | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Cover one random square per image with noise uniform in `bounds` (a blot or a finger)."""
    batch, height, width = image.shape
    device = image.device
    side = torch.randint(min_side, max_side + 1, (batch, 1, 1), generator=generator, device=device)
    top = (torch.rand(batch, 1, 1, generator=generator, device=device) * (height - side + 1)).long()
    left = (torch.rand(batch, 1, 1, generator=generator, device=device) * (width - side + 1)).long()
    rows = torch.arange(height, device=device).view(1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    low, high = bounds
    blot = torch.rand(image.shape, generator=generator, device=device) * (high - low) + low
    return torch.where(inside, blot, image)


def stroke_width(image: torch.Tensor, share: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Other pens: blend `share` of the images, by a random weight, toward their 3x3 grey dilation
    (bolder strokes, half of them) or erosion (thinner). Max and min commute with the training
    normalisation, so it acts alike on pixels and z-scores, and no value leaves the image's range."""
    batch = len(image)
    device = image.device
    grown, shrunk = grey_dilate(image), -grey_dilate(-image)
    weight = torch.rand(batch, 1, 1, generator=generator, device=device)
    pick = torch.rand(batch, 1, 1, generator=generator, device=device)
    target = torch.where(pick < share / 2, grown, shrunk)
    return torch.where(pick < share, image + weight * (target - image), image)


def grey_dilate(image: torch.Tensor) -> torch.Tensor:
    """The maximum over each pixel's 3x3 neighbourhood (B, H, W), as max_pool2d(3, stride=1,
    padding=1) gives it, from shifted views: 20x faster than that pool's one-channel CPU kernel."""
    padded = F.pad(image, (1, 1, 1, 1), value=-math.inf)
    rows = torch.maximum(torch.maximum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])
    return torch.maximum(torch.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def add_noise(
    values: torch.Tensor,
    std: torch.Tensor | float,
    generator: torch.Generator | None = None,
    bounds: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Add Gaussian noise (std per sample or scalar). Clipped only to `bounds` where the feature
    has a documented range (pixels in [0, 1]); MFCCs have none, so audio is never clipped."""
    if isinstance(std, torch.Tensor):
        std = std.view(-1, *([1] * (values.dim() - 1)))
    noisy = values + torch.randn(values.shape, generator=generator, device=values.device) * std
    return noisy if bounds is None else noisy.clamp(*bounds)

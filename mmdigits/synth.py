"""Generate a realistic dataset in the competition's exact file format, offline.

Images: scikit-learn's 1,797 real handwritten digits made MNIST-like (20x20 box, centred by mass
in 28x28) and distorted (affine, elastic, stroke width). Audio: the shipped table of spoken-digit
MFCC (espeak-ng voices, see tools/build_spoken_digits.py), duplicated across rows as the real
competition's clips were. Test images come from unseen source digits, test audio from unseen
speakers. Each pair gets a noise condition so that neither modality alone is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmdigits import augment
from mmdigits.data import CONDITIONS, Split
from mmdigits.errors import UsageError
from mmdigits.features import centre_digit, spoken_digit_table

CONDITION_SHARES = (0.4, 0.2, 0.2, 0.2)
TEST_SHARE = 0.2  # of source images and of speakers, held out for the test set
CHUNK_ROWS = 4096


@dataclass
class Noise:
    """Noise for one modality in one condition (std in the [0, 1] input scale)."""

    std: float = 0.0
    block: int = 0  # occlusion side in pixels (image) or masked frames (audio)


NOISE = {  # condition -> (image noise, audio noise)
    "clean": (Noise(), Noise()),
    "image_noisy": (Noise(std=0.5, block=14), Noise()),
    "audio_noisy": (Noise(), Noise(std=0.45, block=16)),
    "both_mild": (Noise(std=0.2, block=7), Noise(std=0.12, block=4)),
}


def mnist_like_sources() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real 8x8 handwritten digits as (1797, 28, 28) MNIST-style images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.stack([centre_digit(np.kron(image, np.ones((3, 3)))) for image in digits.images])
    return images.astype(np.float32), digits.target.astype(np.int64)


def held_out(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask marking TEST_SHARE of the distinct ids as test-only."""
    unique = np.unique(ids)
    test_ids = rng.choice(unique, size=max(1, round(len(unique) * TEST_SHARE)), replace=False)
    return np.isin(ids, test_ids)


def distort_images(sources: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """Different writers: affine + elastic warps and random stroke width."""
    image = augment.random_affine(
        torch.from_numpy(sources), generator, degrees=15, scale=0.15, shear=0.25, shift=0.08, elastic=1.2
    )
    stroke = torch.rand(len(image), generator=generator)
    thick = torch.nn.functional.max_pool2d(image.unsqueeze(1), 3, 1, 1).squeeze(1)
    thin = -torch.nn.functional.max_pool2d(-image.unsqueeze(1), 2, 1, 0).squeeze(1)
    thin = torch.nn.functional.pad(thin, (0, 1, 0, 1))
    image = torch.where(stroke.view(-1, 1, 1) < 0.25, thick, image)
    image = torch.where(stroke.view(-1, 1, 1) > 0.9, thin, image)
    return image.clamp(0, 1)


def apply_condition(
    image: torch.Tensor, audio: torch.Tensor, conditions: np.ndarray, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt each pair as its condition says."""
    for name, (image_noise, audio_noise) in NOISE.items():
        rows = torch.from_numpy(np.flatnonzero(conditions == name))
        if len(rows) == 0:
            continue
        if image_noise.std:
            noisy = augment.occlude(image[rows], image_noise.block // 2, image_noise.block, generator)
            image[rows] = augment.add_noise(noisy, image_noise.std, generator, bounds=(0.0, 1.0))
        if audio_noise.std:
            noisy = augment.mask_blocks(audio[rows], audio_noise.block, 0, generator)
            audio[rows] = augment.add_noise(noisy, audio_noise.std, generator, bounds=(0.0, 1.0))
    return image, audio


def make_pairs(
    n_rows: int,
    images: np.ndarray,
    image_labels: np.ndarray,
    clips: np.ndarray,
    clip_labels: np.ndarray,
    rng: np.random.Generator,
    generator: torch.Generator,
):
    """Rows with uniform random labels; a random source image and clip of that label each."""
    labels = rng.integers(0, 10, n_rows)
    image_rows = np.empty(n_rows, dtype=np.int64)
    clip_rows = np.empty(n_rows, dtype=np.int64)
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        image_rows[rows] = rng.choice(np.flatnonzero(image_labels == digit), len(rows))
        clip_rows[rows] = rng.choice(np.flatnonzero(clip_labels == digit), len(rows))
    conditions = rng.choice(CONDITIONS, size=n_rows, p=CONDITION_SHARES)
    image_parts, audio_parts = [], []
    for start in range(0, n_rows, CHUNK_ROWS):  # chunks keep the warping's memory small
        chunk = slice(start, start + CHUNK_ROWS)
        image = distort_images(images[image_rows[chunk]], generator)
        audio = torch.from_numpy(clips[clip_rows[chunk]].astype(np.float32))
        image, audio = apply_condition(image, audio, conditions[chunk], generator)
        image_parts.append(image.numpy())
        audio_parts.append(audio.numpy())
    return np.concatenate(image_parts), np.concatenate(audio_parts), labels, conditions


def generate(n_train: int, n_test: int, seed: int = 0) -> tuple[Split, Split, np.ndarray]:
    """(train, test, test conditions) in memory: unseen writers' sources and speakers in test."""
    if n_train < 10 or n_test < 1:
        raise UsageError("--train must be at least 10 and --test at least 1")
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    images, image_labels = mnist_like_sources()
    table = spoken_digit_table()
    test_images = held_out(np.arange(len(images)), rng)
    test_speakers = held_out(table["speakers"], rng)
    parts = []
    for rows, image_mask, clip_mask in ((n_train, ~test_images, ~test_speakers), (n_test, test_images, test_speakers)):
        image, audio, labels, conditions = make_pairs(
            rows,
            images[image_mask],
            image_labels[image_mask],
            table["features"][clip_mask],
            table["labels"][clip_mask],
            rng,
            generator,
        )
        parts.append((Split(image, audio, labels), conditions))
    (train, _), (test, test_conditions) = parts
    return train, test, test_conditions

"""The foreign data profile: a second generator that differs from the shipped one in every knob we
control, so that a recipe is chosen on how it travels, not on how well it fits our own data.

| knob | shipped profile (`synth`) | foreign profile (here) |
|---|---|---|
| audio units | standardised, mapped to [0, 1] | raw MFCC (librosa's units, about -300..200) |
| writers | scikit-learn digits, mild warps | 21 typefaces + scikit-learn digits, strong warps, strokes, ink |
| voices | espeak-ng speakers as recorded | the clips through new vocal tracts (VTLP), tempos, microphones |
| image noise | Gaussian + a grey blot | strong Gaussian, salt-and-pepper, blur, black/white blocks, low contrast |
| audio noise | Gaussian on features + masks | white/pink/babble at -5..20 dB SNR (mel domain), feature noise |
| size | 60,000 / 10,000 | 5,600 / 2,000 |
| conditions | 40/20/20/20 % | 25 % each |

Audio is rebuilt from the shipped MFCC: their inverse DCT is the smoothed log-mel spectrum, where
vocal-tract length, microphone and additive noise act as they do on a waveform.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import dct, idct

from mmdigits import augment
from mmdigits.data import Split
from mmdigits.errors import UsageError
from mmdigits.features import centre_digit, spoken_digit_table
from mmdigits.synth import CONDITIONS, held_out, mnist_like_sources

TRAIN_PAIRS, TEST_PAIRS = 5600, 2000
CONDITION_SHARES = (0.25, 0.25, 0.25, 0.25)
MELS = 40  # the mel bands the MFCC were taken from
DB_PER_NEPER = 10 / np.log(10)  # log energy (natural log) -> decibels
FONTS = [
    (family, style, weight)
    for family in ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "STIXGeneral")
    for style in ("normal", "italic")
    for weight in ("normal", "bold")
] + [(family, "normal", "normal") for family in ("cmr10", "cmss10", "cmtt10", "cmb10", "cmti10")]


@functools.lru_cache(maxsize=1)
def typeface_digits() -> tuple[np.ndarray, np.ndarray]:
    """Every digit in each of FONTS, rasterised and centred MNIST-style: (n, 28, 28), labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images, labels = [], []
    for family, style, weight in FONTS:
        for digit in range(10):
            figure = Figure(figsize=(1, 1), dpi=64, facecolor="black")
            figure.text(0.5, 0.5, str(digit), color="white", fontsize=40, ha="center", va="center",
                        family=family, style=style, weight=weight)  # fmt: skip
            canvas = FigureCanvasAgg(figure)
            canvas.draw()
            gray = np.asarray(canvas.buffer_rgba())[..., 0] / 255.0
            images.append(centre_digit(gray))
            labels.append(digit)
    return np.stack(images).astype(np.float32), np.array(labels)


def writer_sources() -> tuple[np.ndarray, np.ndarray]:
    """Typefaces plus scikit-learn's handwriting: other shapes than the shipped profile's alone."""
    fonts, font_labels = typeface_digits()
    hand, hand_labels = mnist_like_sources()
    return np.concatenate([fonts, hand]), np.concatenate([font_labels, hand_labels])


def write(sources: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """Other writers: strong affine and elastic warps, strokes from hairline to bold, faded ink."""
    image = augment.random_affine(
        torch.from_numpy(sources), generator, degrees=15, scale=0.2, shear=0.3, shift=0.1, elastic=1.0
    )
    batch = len(image)
    stroke = torch.rand(batch, 1, 1, generator=generator)
    thick = F.max_pool2d(image.unsqueeze(1), 3, 1, 1).squeeze(1)
    thin = -F.max_pool2d(-image.unsqueeze(1), 3, 1, 1).squeeze(1)
    image = torch.where(stroke < 0.2, thick, torch.where(stroke > 0.8, thin.maximum(image * 0.6), image))
    ink = 0.75 + 0.25 * torch.rand(batch, 1, 1, generator=generator)
    return (image * ink).clamp(0, 1)


def corrupt_images(image: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """One noise family per image, at `strength` (1 = image_noisy, about 0.4 = both_mild)."""
    batch = len(image)
    family = torch.randint(0, 5, (batch, 1, 1), generator=generator)

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(batch, 1, 1, generator=generator) * (high - low) + low

    gaussian = image + torch.randn(image.shape, generator=generator) * uniform(0.35, 0.6) * strength
    salt = torch.rand(image.shape, generator=generator) < uniform(0.15, 0.35) * strength
    pepper = torch.where(salt, (torch.rand(image.shape, generator=generator) < 0.5).float(), image)
    sigma = 0.5 + 1.5 * strength
    radius = torch.arange(-4, 5, dtype=torch.float32)
    kernel = torch.exp(-(radius**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    blurred = F.conv2d(image.unsqueeze(1), kernel.view(1, 1, 1, -1), padding=(0, 4))
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1), padding=(4, 0)).squeeze(1)
    blurred = blurred * 1.6 + torch.randn(image.shape, generator=generator) * 0.1 * strength
    side = int(8 + 8 * strength)
    blocked = augment.occlude(image, side - 2, side, generator, bounds=(0.0, 0.0))
    blocked = torch.where(uniform(0, 1) < 0.5, blocked, torch.where(blocked != image, 1.0, image))
    faded = image * uniform(0.25, 0.5) + uniform(0.2, 0.5) * strength
    faded = faded + torch.randn(image.shape, generator=generator) * 0.12 * strength
    options = torch.stack([gaussian, pepper, blurred, blocked, faded])  # (5, B, 28, 28)
    return options.gather(0, family.unsqueeze(0).expand(1, *image.shape)).squeeze(0).clamp(0, 1)


def raw_clips() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The shipped clips back in raw MFCC units (inverting the table's scaling)."""
    table = spoken_digit_table()
    unit = table["features"].astype(np.float64)
    raw = (unit * (table["high"] - table["low"]) + table["low"]) * table["std"] + table["mean"]
    return raw, table["labels"].astype(np.int64), table["speakers"], table


def to_mel_db(raw: np.ndarray) -> np.ndarray:
    """(n, 39, 13) [12 MFCC + log energy] -> (n, 39, 40) smoothed log-mel spectrum in dB; the
    missing c0 is set from the log energy (a constant offset that every later step preserves)."""
    cepstra = np.zeros((*raw.shape[:2], MELS))
    cepstra[..., 0] = raw[..., 12] * DB_PER_NEPER * np.sqrt(MELS)
    cepstra[..., 1:13] = raw[..., :12]
    return idct(cepstra, type=2, norm="ortho", axis=-1)


def from_mel_db(mel_db: np.ndarray, before_db: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Back to 12 MFCC + log energy; the energy moves by the change in total mel power."""
    out = np.empty_like(raw)
    out[..., :12] = dct(mel_db, type=2, norm="ortho", axis=-1)[..., 1:13]
    gain = np.log(np.mean(10 ** (mel_db / 10), axis=-1) / np.mean(10 ** (before_db / 10), axis=-1))
    out[..., 12] = raw[..., 12] + gain
    return out


def new_voices(mel_db: np.ndarray, speakers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per speaker: a vocal-tract length (VTLP warp of the mel axis), a tempo and a microphone
    (a smooth EQ curve of +-6 dB). Speakers become voices the shipped profile never had."""
    out = np.empty_like(mel_db)
    bands, frames = np.arange(MELS), np.arange(mel_db.shape[1])
    centre = (mel_db.shape[1] - 1) / 2
    for speaker in np.unique(speakers):
        rows = np.flatnonzero(speakers == speaker)
        warp, tempo = rng.uniform(0.82, 1.18), rng.uniform(0.8, 1.25)
        eq = np.interp(bands, np.linspace(0, MELS - 1, 5), rng.uniform(-6, 6, 5))
        source_bands = np.clip(bands * warp, 0, MELS - 1)
        source_frames = np.clip(centre + (frames - centre) * tempo, 0, len(frames) - 1)
        for row in rows:
            spectrum = np.stack([np.interp(source_bands, bands, frame) for frame in mel_db[row]])
            spectrum = np.stack([np.interp(source_frames, frames, band) for band in spectrum.T], axis=1)
            out[row] = spectrum + eq
    return out


def add_noise_db(mel_db: np.ndarray, snr_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mix white, pink or babble noise at a clip-level SNR into the mel power spectrum."""
    n = len(mel_db)
    power = 10 ** (mel_db / 10)
    family = rng.integers(0, 3, n)
    tilt = np.where(family[:, None] == 1, -np.linspace(0, 12, MELS), 0.0)  # pink: falling with frequency
    noise = 10 ** ((tilt[:, None, :] + rng.normal(0, 2, mel_db.shape)) / 10)  # flat or tilted, fluctuating
    babble = power[rng.integers(0, n, (n, 4))].mean(axis=1)  # other talkers
    babble = babble[:, rng.permutation(mel_db.shape[1])] + 1e-3 * power.mean()
    noise = np.where(family[:, None, None] == 2, babble, noise)
    scale = power.mean(axis=(1, 2)) / noise.mean(axis=(1, 2)) / 10 ** (snr_db / 10)
    return 10 * np.log10(power + noise * scale[:, None, None])


def corrupt_audio(raw: np.ndarray, noise: tuple[float, float, float], spread: np.ndarray, rng) -> np.ndarray:
    """Noise before the MFCC (mel domain) at an SNR in [noise[0], noise[1]] dB, then Gaussian
    feature noise of noise[2] x each coefficient's spread (13,)."""
    snr_low, snr_high, feature_noise = noise
    before = to_mel_db(raw)
    noisy = from_mel_db(add_noise_db(before, rng.uniform(snr_low, snr_high, len(raw)), rng), before, raw)
    return noisy + rng.normal(0, 1, raw.shape) * spread * feature_noise


AUDIO_NOISE = {"audio_noisy": (-5.0, 5.0, 0.3), "both_mild": (8.0, 20.0, 0.1)}  # SNR range (dB), feature noise
IMAGE_NOISE = {"image_noisy": 1.0, "both_mild": 0.4}


def generate(n_train: int, n_test: int, seed: int = 0) -> tuple[Split, Split, np.ndarray]:
    """(train, test, test conditions) with audio in raw MFCC units; test writers' source images and
    speakers unseen in training, as in the shipped profile."""
    if n_train < 10 or n_test < 1:
        raise UsageError("--train must be at least 10 and --test at least 1")
    rng = np.random.default_rng(seed + 7_777)
    generator = torch.Generator().manual_seed(seed + 7_777)
    images, image_labels = writer_sources()
    raw, clip_labels, speakers, _ = raw_clips()
    before = to_mel_db(raw)
    voiced = from_mel_db(new_voices(before, speakers, rng), before, raw)
    spread = voiced.std(axis=(0, 1))  # (13,)
    test_images = held_out(np.arange(len(images)), rng)
    test_speakers = held_out(speakers, rng)
    parts = []
    for rows, image_mask, clip_mask in ((n_train, ~test_images, ~test_speakers), (n_test, test_images, test_speakers)):
        labels = rng.integers(0, 10, rows)
        conditions = rng.choice(CONDITIONS, size=rows, p=CONDITION_SHARES)
        pool_images, pool_image_labels = images[image_mask], image_labels[image_mask]
        pool_clips, pool_clip_labels = voiced[clip_mask], clip_labels[clip_mask]
        image_rows, clip_rows = np.empty(rows, dtype=np.int64), np.empty(rows, dtype=np.int64)
        for digit in range(10):
            members = np.flatnonzero(labels == digit)
            image_rows[members] = rng.choice(np.flatnonzero(pool_image_labels == digit), len(members))
            clip_rows[members] = rng.choice(np.flatnonzero(pool_clip_labels == digit), len(members))
        image = write(pool_images[image_rows], generator)
        audio = pool_clips[clip_rows].copy()
        for name, strength in IMAGE_NOISE.items():
            members = torch.from_numpy(np.flatnonzero(conditions == name))
            if len(members):
                image[members] = corrupt_images(image[members], strength, generator)
        for name, noise in AUDIO_NOISE.items():
            members = np.flatnonzero(conditions == name)
            if len(members):
                audio[members] = corrupt_audio(audio[members], noise, spread, rng)
        parts.append((Split(image.numpy(), audio.astype(np.float32), labels), conditions))
    (train, _), (test, test_conditions) = parts
    return train, test, test_conditions

"""Turn real inputs (a digit picture, a spoken-digit waveform) into the competition's vectors.

One recipe serves the shipped data builder (`tools/build_spoken_digits.py`), the data generator
and `mmdigits featurize`, so that a user's own recordings look like the training data.
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import ndimage

from mmdigits.artifacts import refuse_overwrite, save_npy
from mmdigits.data import TEST_AUDIO, TEST_IMAGE
from mmdigits.errors import DataError, DataWarning, MmdigitsError, kind_of_file, missing_file

IMAGE_SIDE = 28
DIGIT_BOX = 20  # MNIST fits each digit in a 20x20 box, then centres it by mass in 28x28
SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
WINDOW_SAMPLES = 800  # 50 ms
HOP_SAMPLES = 400  # 25 ms
FRAMES = 1 + (CLIP_SAMPLES - WINDOW_SAMPLES) // HOP_SAMPLES  # 39
COEFFS = 13  # 12 MFCC + log energy


def centre_digit(gray: np.ndarray) -> np.ndarray:
    """Scale a light-on-dark digit into a 20x20 box and centre it by mass in 28x28, in [0, 1]."""
    gray = np.asarray(gray, dtype=np.float64)
    gray = gray - gray.min()
    if gray.max() <= 0:
        raise DataError("image: the picture is blank")
    gray = gray / gray.max()
    rows, cols = np.nonzero(gray > 0.05)
    crop = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = DIGIT_BOX / max(crop.shape)
    boxed = np.clip(ndimage.zoom(crop, scale, order=1), 0.0, 1.0)
    canvas = np.zeros((IMAGE_SIDE, IMAGE_SIDE))
    top = (IMAGE_SIDE - boxed.shape[0]) // 2
    left = (IMAGE_SIDE - boxed.shape[1]) // 2
    canvas[top : top + boxed.shape[0], left : left + boxed.shape[1]] = boxed
    mass_row, mass_col = ndimage.center_of_mass(canvas)
    shift = (IMAGE_SIDE / 2 - 0.5 - mass_row, IMAGE_SIDE / 2 - 0.5 - mass_col)
    return np.clip(ndimage.shift(canvas, shift, order=1, mode="constant"), 0.0, 1.0)


def read_digit_image(path: Path) -> np.ndarray:
    """A PNG/JPEG of one digit -> (784,) float32 in [0, 1], inverted if dark on light."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: {missing_file(path)}")
    try:
        with Image.open(path) as picture:
            gray = np.asarray(picture.convert("L"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: not a readable image ({kind_of_file(path) or error})") from None
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 0.5:  # dark ink on light paper: MNIST is light on dark
        gray = 1.0 - gray
    return centre_digit(gray).reshape(-1).astype(np.float32)


def _librosa():
    try:
        import librosa
    except ImportError:
        raise MmdigitsError(
            "audio features need librosa: pip install 'mmdigits[audio]' (or pip install librosa)"
        ) from None
    return librosa


def centre_clip(wave: np.ndarray) -> np.ndarray:
    """Trim silence and centre the utterance in exactly 1 s (cropping the middle if longer)."""
    librosa = _librosa()
    trimmed, _ = librosa.effects.trim(wave, top_db=30)
    if trimmed.size == 0:
        trimmed = wave
    if trimmed.size >= CLIP_SAMPLES:
        start = (trimmed.size - CLIP_SAMPLES) // 2
        return trimmed[start : start + CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    start = (CLIP_SAMPLES - trimmed.size) // 2
    clip[start : start + trimmed.size] = trimmed
    return clip


def raw_mfcc(clip: np.ndarray) -> np.ndarray:
    """A 1 s, 16 kHz clip -> (39, 13): 12 MFCC + log energy per 50 ms frame, 25 ms hop."""
    librosa = _librosa()
    coeffs = librosa.feature.mfcc(
        y=clip.astype(np.float32),
        sr=SAMPLE_RATE,
        n_mfcc=COEFFS,
        n_fft=WINDOW_SAMPLES,
        hop_length=HOP_SAMPLES,
        center=False,
        n_mels=40,
    )  # (13, 39); row 0 is the DC cepstrum, replaced by the frame's log energy
    frames = librosa.util.frame(clip, frame_length=WINDOW_SAMPLES, hop_length=HOP_SAMPLES)
    log_energy = np.log(np.sum(frames.astype(np.float64) ** 2, axis=0) + 1e-10)
    features = np.vstack([coeffs[1:], log_energy[None, :]]).T  # (39, 13) frames-major
    return features.astype(np.float32)


def normalise_mfcc(raw: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Standardise per coefficient, then map to [0, 1] with the shipped clips' 0.5 and 99.5
    percentiles as the competition data is; not clipped here (`read_spoken_digit` does, and says so)."""
    standard = (raw - stats["mean"]) / stats["std"]
    return (standard - stats["low"]) / (stats["high"] - stats["low"])


def read_spoken_digit(path: Path, stats: dict[str, np.ndarray]) -> np.ndarray:
    """A WAV (any rate, mono or stereo) of one spoken digit -> (507,) float32 in [0, 1]."""
    librosa = _librosa()
    if not Path(path).is_file():
        raise DataError(f"{path}: {missing_file(path)}")
    try:
        with warnings.catch_warnings():  # its fallback chatter ("PySoundFile failed"), not news of the data
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            wave, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    except ImportError as error:  # the install, not the file (librosa < 0.10.2 without pkg_resources)
        raise MmdigitsError(f"librosa cannot read audio here ({error}): pip install -U 'librosa>=0.10.2'") from None
    except Exception as error:  # librosa raises many types for unreadable audio
        reason = kind_of_file(path) or str(error) or type(error).__name__  # a text or .npy file is named so
        raise DataError(f"{path}: not a readable audio file ({reason})") from None
    if wave.size == 0 or not np.isfinite(wave).all():
        raise DataError(f"{path}: the recording is empty or holds NaN/Inf")
    features = normalise_mfcc(raw_mfcc(centre_clip(wave)), stats).reshape(-1)
    outside = int(np.count_nonzero((features < 0.0) | (features > 1.0)))
    if outside:  # the shipped clips were clipped to [0, 1] alike
        warnings.warn(
            DataWarning(
                f"{path}: {outside} of {features.size} audio values fell outside the training clips' [0, 1] "
                f"(from {features.min():.2f} to {features.max():.2f}) and were set to its edge, as theirs were"
            ),
            stacklevel=2,
        )
    return np.clip(features, 0.0, 1.0).astype(np.float32)


def spoken_digit_table() -> dict[str, np.ndarray]:
    """The shipped MFCC table: features (n, 39, 13) float16, labels, speakers, norm stats."""
    asset = resources.files("mmdigits.assets").joinpath("spoken_digits.npz")
    with asset.open("rb") as handle, np.load(handle, allow_pickle=False) as table:
        return {key: table[key] for key in table.files}


def featurize_pair(image: Path, audio: Path) -> tuple[np.ndarray, np.ndarray]:
    """A picture and a recording -> the competition's (784,) and (507,) vectors; no torch, whose import
    made `mmdigits featurize` take 1.5 s longer (4.6-5.5 s against 3.0-3.6 s on 2 cores)."""
    return read_digit_image(image), read_spoken_digit(audio, spoken_digit_table())


def write_pair(out: Path, image_vector: np.ndarray, audio_vector: np.ndarray, overwrite: bool = False) -> list[Path]:
    """One pair as x_test_wr.npy (1, 28, 28) and x_test_sp.npy (1, 507), float64 as the competition's;
    a folder that holds test files already (a whole competition test set, perhaps) is refused
    unless `overwrite`."""
    refuse_overwrite(out, (TEST_IMAGE, TEST_AUDIO), overwrite, "test files")
    return [
        save_npy(out / TEST_IMAGE, image_vector.reshape(1, 28, 28).astype(np.float64)),
        save_npy(out / TEST_AUDIO, audio_vector.reshape(1, 507).astype(np.float64)),
    ]

"""Build mmdigits/assets/spoken_digits.npz: MFCC features of synthesised spoken digits.

Why: the competition's audio (Google Speech Commands digits as 39 x 13 MFCC) cannot be
downloaded here, so the shipped data speaks "zero".."nine" with espeak-ng in many voices,
accents, variants, speeds and pitches, adds background noise, and applies the competition's
recipe (16 kHz, 1 s, 50 ms windows, 25 ms hop, 12 MFCC + log energy, frames-major).

Needs espeak-ng (Debian: `apt-get install espeak-ng`) and librosa (`pip install librosa`) only
when rebuilding; the package ships the output. Run from the repository root:

    python tools/build_spoken_digits.py --renditions 2 --seed 0

It writes float16 features (n, 39, 13) in [0, 1], labels, a speaker id per clip, speaker names,
and the normalisation statistics that `mmdigits featurize` applies to a user's own recording.
"""

from __future__ import annotations

import argparse
import io
import itertools
import subprocess
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from mmdigits.features import CLIP_SAMPLES, SAMPLE_RATE, centre_clip, raw_mfcc

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# English accents, plus other languages' voices reading the English word (accented speakers)
VOICES = [
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-x-rp",
    "en-us-nyc",
    "en-029",
    "de",
    "nl",
    "fr-fr",
    "es",
    "it",
    "pt-br",
    "pl",
    "sv",
]
VARIANTS = ["m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "croak", "whisper"]
OUT = Path(__file__).resolve().parents[1] / "mmdigits" / "assets" / "spoken_digits.npz"


def synthesise(job: tuple[int, str, int, int, int, int]) -> np.ndarray:
    """One espeak-ng utterance -> noisy, jittered 1 s clip -> raw (39, 13) MFCC."""
    import librosa
    import soundfile

    seed, voice, digit, speed, pitch, _ = job
    rng = np.random.default_rng(seed)
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", WORDS[digit]],
        check=True,
        capture_output=True,
    ).stdout
    wave, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    wave = librosa.resample(wave, orig_sr=rate, target_sr=SAMPLE_RATE)
    clip = centre_clip(wave) * rng.uniform(0.3, 1.0)
    clip = np.roll(clip, int(rng.integers(-SAMPLE_RATE // 10, SAMPLE_RATE // 10)))
    noise = rng.standard_normal(CLIP_SAMPLES).astype(np.float32)
    if rng.random() < 0.5:  # brown-ish noise (room rumble) half the time, white otherwise
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
    snr_db = rng.uniform(10, 35)
    signal_power = np.mean(clip**2) + 1e-12
    noise *= np.sqrt(signal_power / 10 ** (snr_db / 10) / (np.mean(noise**2) + 1e-12))
    return raw_mfcc(clip + noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renditions", type=int, default=2, help="clips per speaker and digit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    speakers = [f"{voice}+{variant}" for voice, variant in itertools.product(VOICES, VARIANTS)]
    jobs = []
    for speaker_id, speaker in enumerate(speakers):
        base_speed, base_pitch = rng.integers(130, 200), rng.integers(25, 75)
        for digit, _rendition in itertools.product(range(10), range(args.renditions)):
            speed = int(base_speed + rng.integers(-20, 21))
            pitch = int(np.clip(base_pitch + rng.integers(-10, 11), 0, 99))
            jobs.append((int(rng.integers(2**31)), speaker, digit, speed, pitch, speaker_id))
    with Pool() as pool:
        raw = np.stack(pool.map(synthesise, jobs, chunksize=32))  # (n, 39, 13)

    # The competition's MFCC were standardised, then normalised to about [0, 1].
    mean, std = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1)) + 1e-6
    standard = (raw - mean) / std
    low, high = np.percentile(standard, 0.5), np.percentile(standard, 99.5)
    features = np.clip((standard - low) / (high - low), 0.0, 1.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        features=features.astype(np.float16),
        labels=np.array([job[2] for job in jobs], dtype=np.uint8),
        speakers=np.array([job[5] for job in jobs], dtype=np.int16),
        speaker_names=np.array(speakers),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        low=np.float32(low),
        high=np.float32(high),
    )
    size_mb = args.out.stat().st_size / 2**20
    print(f"{args.out}: {len(jobs)} clips, {len(speakers)} speakers, {size_mb:.1f} MB")


if __name__ == "__main__":
    main()

"""Real inputs: a digit picture and a WAV recording become the competition's vectors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmdigits.errors import DataError
from mmdigits.features import FRAMES, centre_digit, read_digit_image, read_spoken_digit
from mmdigits.synth import spoken_digit_table


def draw_seven(path, dark_on_light: bool) -> None:
    picture = Image.new("L", (120, 160), 255 if dark_on_light else 0)
    ink = 0 if dark_on_light else 255
    ImageDraw.Draw(picture).line([(20, 30), (100, 30), (50, 140)], fill=ink, width=12)
    picture.save(path)


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_picture_becomes_a_centred_mnist_digit(tmp_path, dark_on_light):
    path = tmp_path / "seven.png"
    draw_seven(path, dark_on_light)
    vector = read_digit_image(path)
    assert vector.shape == (784,) and vector.dtype == np.float32
    image = vector.reshape(28, 28)
    assert image.max() == pytest.approx(1.0, abs=0.05) and image[0].max() < 0.05  # light ink, dark border
    rows, cols = np.nonzero(image > 0.1)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) <= 21  # fits the 20x20 box


def test_centre_digit_rejects_blank():
    with pytest.raises(DataError, match="blank"):
        centre_digit(np.zeros((10, 10)))


def test_unreadable_picture(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("not a picture")
    with pytest.raises(DataError, match="x.png: not a readable image"):
        read_digit_image(path)


def test_wav_becomes_507_mfcc_values(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    rate = 22050
    time = np.arange(int(0.6 * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * time) * np.hanning(len(time))
    path = tmp_path / "tone.wav"
    soundfile.write(path, wave, rate)
    vector = read_spoken_digit(path, spoken_digit_table())
    assert vector.shape == (FRAMES * 13,) == (507,)
    assert vector.min() >= 0.0 and vector.max() <= 1.0
    with pytest.raises(DataError, match="no such file"):
        read_spoken_digit(tmp_path / "missing.wav", spoken_digit_table())

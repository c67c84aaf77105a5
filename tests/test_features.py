"""Real inputs: a digit picture and a WAV recording become the competition's vectors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli, run_cli_fresh
from PIL import Image, ImageDraw

from mmdigits.errors import DataError, DataWarning, MmdigitsError
from mmdigits.features import FRAMES, centre_digit, read_digit_image, read_spoken_digit, spoken_digit_table


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
    with pytest.raises(DataError, match=r"x.png: not a readable image \(a text file\)"):
        read_digit_image(path)
    np.save(tmp_path / "digit.npy", np.zeros((28, 28)))  # an array where a picture was asked for is named so
    with pytest.raises(DataError, match=r"digit.npy: not a readable image \(a NumPy array \(.npy\)\)"):
        read_digit_image(tmp_path / "digit.npy")
    with pytest.raises(DataError, match="a folder, not a file"):
        read_digit_image(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_digit_image(tmp_path / "missing.png")


def write_tone(path) -> None:
    soundfile = pytest.importorskip("soundfile")
    rate = 22050
    time = np.arange(int(0.6 * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 220 * time) * np.hanning(len(time)), rate)


def test_wav_becomes_507_mfcc_values(tmp_path):
    path = tmp_path / "tone.wav"
    write_tone(path)
    with pytest.warns(DataWarning) as warned:  # a padded tone's quiet frames lie below the training clips'
        vector = read_spoken_digit(path, spoken_digit_table())
    assert vector.shape == (FRAMES * 13,) == (507,)
    assert vector.min() >= 0.0 and vector.max() <= 1.0
    [said] = [str(found.message) for found in warned if found.category is DataWarning]
    assert "tone.wav: " in said and "set to its edge" in said
    assert f"{np.count_nonzero((vector == 0.0) | (vector == 1.0))} of 507 audio values" in said
    with pytest.raises(DataError, match="no such file"):
        read_spoken_digit(tmp_path / "missing.wav", spoken_digit_table())
    with pytest.raises(DataError, match="a folder, not a file"):  # it said "no such file"
        read_spoken_digit(tmp_path, spoken_digit_table())


def test_an_unreadable_recording_on_the_cli_is_one_line(tmp_path):
    draw_seven(tmp_path / "seven.png", dark_on_light=True)
    (tmp_path / "seven.wav").write_text("not audio")
    command = ["featurize", "--image", str(tmp_path / "seven.png"), "--audio", str(tmp_path / "seven.wav")]
    # a fresh process: Python shows each warning once per process, so an in-process run could miss them
    done = subprocess.run([sys.executable, "-m", "mmdigits", *command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()  # librosa's fallback warnings are not shown
    assert line == f"Error: {tmp_path / 'seven.wav'}: not a readable audio file (a text file)"


def test_a_librosa_that_cannot_load_is_not_blamed_on_the_file(tmp_path, monkeypatch):
    """librosa 0.10.0-0.10.1 import pkg_resources when loading, which setuptools >= 81 no longer has."""
    librosa = pytest.importorskip("librosa")
    path = tmp_path / "tone.wav"
    write_tone(path)

    def broken_load(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'pkg_resources'")

    monkeypatch.setattr(librosa, "load", broken_load)
    with pytest.raises(MmdigitsError) as raised:
        read_spoken_digit(path, spoken_digit_table())
    assert not isinstance(raised.value, DataError) and "not a readable audio file" not in str(raised.value)
    assert "pkg_resources" in str(raised.value) and "pip install -U 'librosa>=0.10.2'" in str(raised.value)


def test_featurize_on_the_cli_writes_a_one_pair_test_set(tmp_path):
    draw_seven(tmp_path / "seven.png", dark_on_light=True)
    write_tone(tmp_path / "seven.wav")
    out = tmp_path / "pair"
    # a fresh interpreter, to see that it loads no model code: torch's import added 1.5 s of 4.6-5.5
    result, torch_loaded = run_cli_fresh(
        "featurize", "--image", tmp_path / "seven.png", "--audio", tmp_path / "seven.wav", "--out", out
    )
    assert (result.returncode, torch_loaded) == (0, False), result.stderr
    assert "image: 784 values" in result.stdout and "x_test_sp.npy (1, 507)" in result.stdout
    assert "warning: " in result.stderr and "seven.wav: " in result.stderr and "set to its edge" in result.stderr
    assert np.load(out / "x_test_wr.npy").shape == (1, 28, 28) and np.load(out / "x_test_sp.npy").shape == (1, 507)
    np.testing.assert_array_equal(np.load(out / "x_test_wr.npy").reshape(784), read_digit_image(tmp_path / "seven.png"))
    # a folder holding test files (a whole competition test set, perhaps) is never written over unasked
    np.save(out / "x_test_sp.npy", np.zeros((10, 507)))
    again = run_cli("featurize", "--image", tmp_path / "seven.png", "--audio", tmp_path / "seven.wav", "--out", out)
    assert again.exit_code == 2 and "pair/ already holds test files (x_test_wr.npy, x_test_sp.npy)" in again.stderr
    assert np.load(out / "x_test_sp.npy").shape == (10, 507)
    forced = ["featurize", "--image", tmp_path / "seven.png", "--audio", tmp_path / "seven.wav", "--out", out]
    assert run_cli(*forced, "--overwrite").exit_code == 0 and np.load(out / "x_test_sp.npy").shape == (1, 507)


def test_predict_one_picture_and_recording_on_the_cli(trained_run, tmp_path):
    draw_seven(tmp_path / "seven.png", dark_on_light=False)
    write_tone(tmp_path / "seven.wav")
    pair = ["--image", tmp_path / "seven.png", "--audio", tmp_path / "seven.wav"]
    result = run_cli("predict", "-c", trained_run / "best.pth", *pair)
    assert result.exit_code == 0, result.output
    digit_line, probabilities_line = result.stdout.strip().splitlines()
    probabilities = [float(item.split(": ")[1]) for item in probabilities_line.split("  ")]
    assert len(probabilities) == 10 and sum(probabilities) == pytest.approx(1, abs=0.01)
    assert digit_line.startswith(f"digit {int(np.argmax(probabilities))}")
    alone = run_cli("predict", "-c", trained_run / "best.pth", "--image", tmp_path / "seven.png")
    assert alone.exit_code == 2 and "--image and --audio go together" in alone.stderr

"""requirements.txt and pyproject.toml must name the same runtime dependencies."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_requirements_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    declared = [entry.split("#")[0].strip() for entry in project["dependencies"]]
    assert requirements == declared
    assert "torch>=2.10" in declared


def test_shipped_audio_table_is_small_and_packaged():
    asset = ROOT / "mmdigits" / "assets" / "spoken_digits.npz"
    assert asset.stat().st_size < 5 * 2**20
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.npz" in package_data["mmdigits.assets"]

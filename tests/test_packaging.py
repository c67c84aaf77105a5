"""requirements.txt and pyproject.toml must name the same runtime dependencies, and .ci/lowest.txt
the oldest release each allows, which CI tests on the oldest Python allowed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project itself runs on 3.10

ROOT = Path(__file__).resolve().parents[1]


def floors() -> dict[str, str]:
    """{name: lowest version} of pyproject.toml's runtime dependencies and its audio and tune extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = (
        project["dependencies"] + project["optional-dependencies"]["audio"] + project["optional-dependencies"]["tune"]
    )
    return dict(re.fullmatch(r"([\w-]+)>=([\d.]+)", entry.split("#")[0].strip()).groups() for entry in declared)


def test_requirements_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    declared = [entry.split("#")[0].strip() for entry in project["dependencies"]]
    assert requirements == declared
    assert "torch>=2.10" in declared


def test_ci_tests_the_oldest_release_each_floor_allows():
    """A floor raised or lowered without .ci/lowest.txt would name a version no test has run on."""
    lines = (ROOT / ".ci" / "lowest.txt").read_text().splitlines()
    pinned = dict(line.split("==") for line in lines if line.strip() and not line.startswith("#"))
    assert pinned.keys() == floors().keys()
    for name, floor in floors().items():  # 1.9 -> 1.9.x, the first with wheels for 3.10 and 3.11
        assert f"{pinned[name]}.".startswith(f"{floor}."), f"{name}: floor {floor}, CI tests {pinned[name]}"


def test_ci_runs_the_floors_on_the_oldest_python_allowed():
    """requires-python moved without .ci/run would leave the oldest Python a user may have untested."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    oldest = re.fullmatch(r">=(3\.\d+)", requires).group(1)
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"python{oldest} " in ci and f"versions/{oldest}*/bin/python{oldest}" in ci


def test_shipped_audio_table_is_small_and_packaged():
    asset = ROOT / "mmdigits" / "assets" / "spoken_digits.npz"
    assert asset.stat().st_size < 5 * 2**20
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.npz" in package_data["mmdigits.assets"]

"""Atomic writes: every artifact goes to a temporary file in its folder, then is renamed.

A crash, a kill or a failed write therefore leaves the previous file intact, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmdigits.errors import MmdigitsError, UsageError


def ensure_folder(folder: Path) -> Path:
    """Create an output folder, or raise one line naming it (a file in the way, no permission)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MmdigitsError(f"{folder}: cannot create the output folder ({error.strerror or error})") from None
    return folder


def refuse_overwrite(folder: Path, names: tuple[str, ...], overwrite: bool, what: str, hint: str = "") -> None:
    """A finished run or report is never replaced without a word (Hugging Face Trainer's rule):
    raise naming --overwrite when the folder already holds one of the files a command writes."""
    found = [name for name in names if (Path(folder) / name).exists()]
    if found and not overwrite:
        raise UsageError(
            f"{folder}/ already holds {what} ({', '.join(found)}); pass --overwrite to replace it{hint}, "
            "or choose another --out"
        )


def refuse_file_overwrite(path: Path, overwrite: bool, what: str) -> None:
    """The same rule for a command whose output is one file, checked (with its folder made, or
    refused in one line) before the work that fills it."""
    path = writable_file(path)
    refuse_overwrite(ensure_folder(path.parent), (path.name,), overwrite, what)


def writable_file(path: Path) -> Path:
    """`path` as a Path, or one line saying it is a folder."""
    path = Path(path)
    if path.is_dir():
        raise MmdigitsError(f"{path}: is a folder; give a file name to write")
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = writable_file(path)
    ensure_folder(path.parent)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise MmdigitsError(f"{path}: cannot write here ({error.strerror or error})") from None
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: Path, payload: Any) -> Path:
    """Write JSON atomically, indented for people to read."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend: the one plotting set-up (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically and close it."""
    plt = pyplot()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight", format=Path(path).suffix[1:] or "png")
    plt.close(figure)
    return Path(path)


def save_npy(path: Path, array: Any) -> Path:
    """Write one .npy array atomically (never pickled)."""
    import numpy as np

    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    return Path(path)


def save_csv(path: Path, table: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically, without the index."""
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)
    return Path(path)

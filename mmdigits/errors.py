"""The project's own exceptions, and what a refused file is: each message names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class MmdigitsError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits 1."""


class DataError(MmdigitsError):
    """A competition file is missing, malformed or inconsistent."""


class CheckpointError(MmdigitsError):
    """A checkpoint is missing, corrupt, unsafe or from an unknown format version."""


class UsageError(MmdigitsError):
    """An option value is invalid; the CLI exits 2 as for other usage errors."""


class TrainingDiverged(MmdigitsError):
    """The loss became NaN or Inf; the best checkpoint so far is kept."""


class DataWarning(UserWarning):
    """A file's values were read in other units than [0, 1] (0..255 pixels), or a recording's
    features set to the edge of [0, 1]: the CLI prints it as one `warning:` line, so that no change
    to a user's data goes unsaid."""


def missing_file(path: Path) -> str:
    """Why a path given as a file cannot be opened: a folder stands there, or nothing does."""
    return "a folder, not a file" if Path(path).is_dir() else "no such file"


def kind_of_file(path: Path) -> str | None:
    """What a file is by its first bytes, for the line that refuses it: a user who passed the wrong
    file (a CSV as a checkpoint, a checkpoint as an array) sees which. None: nothing recognisable,
    or nothing readable (the caller's own error says why)."""
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except OSError:
        return None
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array (.npy)"
    if head.startswith(b"PK"):  # torch.save and np.savez both write zips
        return "a zip archive"
    if head.startswith(b"\x80"):
        return "a plain pickle"
    if all(byte in b"\t\n\r" or 32 <= byte < 127 for byte in head):
        return "a text file"
    return None

"""The project's own exceptions: every message names the file or option and the problem."""


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

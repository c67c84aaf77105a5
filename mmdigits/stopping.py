"""Stop requests: Ctrl-C (SIGINT) or SIGTERM sets a flag that training checks between batches.

A run that is asked to stop finishes its batch (or the checkpoint it is writing), keeps last.pth
and exits 130; a second signal leaves at once. The handlers are installed whatever the parent
left: a background job of a non-interactive shell inherits SIGINT as ignored.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mmdigits.errors import MmdigitsError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """Set by the first SIGINT/SIGTERM; `signal_name` says which."""

    signal_name: str = ""

    @property
    def requested(self) -> bool:
        return bool(self.signal_name)


NEVER = StopRequest()  # for runs nobody can stop (library calls without handlers)


class Stopped(MmdigitsError):
    """A command ended early at a stop request; the CLI prints the message and exits 130."""


class RunStopped(Stopped):
    """Training stopped at a stop request; the message gives the resume command."""

    def __init__(self, out: Path, signal_name: str) -> None:
        last = Path(out) / "last.pth"
        if last.exists():
            message = f"stopped by {signal_name}: {last} is kept; resume with: mmdigits train --resume {last}"
        else:
            message = f"stopped by {signal_name} before an epoch finished; nothing to resume"
        super().__init__(message)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block, the first SIGINT/SIGTERM sets the flag; a second raises KeyboardInterrupt."""
    stop = StopRequest()

    def handle(number: int, frame: object) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.signal_name = signal.Signals(number).name
        os.write(2, b"\nstopping after this batch (again to quit at once)\n")

    previous = {number: signal.signal(number, handle) for number in SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)

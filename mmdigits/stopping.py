"""Stop requests: Ctrl-C (SIGINT) or SIGTERM sets a flag that training checks between batches.

A run that is asked to stop finishes its batch (or the checkpoint it is writing), keeps last.pth
and exits 130; a second signal leaves at once. The handlers are installed whatever the parent
left: a background job of a non-interactive shell inherits SIGINT as ignored.

One Ctrl-C can arrive twice: under torchrun the terminal sends it to the workers and to the
launcher, which forwards it to them again a few milliseconds later. The same signal within
DUPLICATE_SECONDS of the first is that copy, not a second request.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

from mmdigits.errors import MmdigitsError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
DUPLICATE_SECONDS = 2.0  # the same signal again within this is one request delivered twice (ms apart; 2 s under load)


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
def stop_on_signals(announce: bool = True) -> Iterator[StopRequest]:
    """Within the block, the first SIGINT/SIGTERM sets the flag (and says so if `announce`: under
    torchrun one rank speaks for all); a second raises KeyboardInterrupt."""
    stop = StopRequest()
    first_at = 0.0

    def handle(number: int, frame: object) -> None:
        nonlocal first_at
        if stop.requested:
            if signal.Signals(number).name == stop.signal_name and monotonic() - first_at < DUPLICATE_SECONDS:
                return  # torchrun's copy of the Ctrl-C this process had already
            raise KeyboardInterrupt
        stop.signal_name, first_at = signal.Signals(number).name, monotonic()
        if announce:
            os.write(2, b"\nstopping after this batch (again to quit at once)\n")

    previous = {number: signal.signal(number, handle) for number in SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)

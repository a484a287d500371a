"""Ctrl-C and SIGTERM for training loops: the first asks the run to stop, a second interrupts.

A training loop stopped between two steps can save a consistent checkpoint; one interrupted
anywhere cannot. So the first SIGINT/SIGTERM only records the signal (and calls ``on_stop``,
e.g. to wake threads waiting on an event); the loop polls :attr:`StopSignal.requested` at its
next step and winds down. A second signal raises ``KeyboardInterrupt`` at once, for a run that
does not stop by itself. Handlers are installed only from the main thread (Python delivers
signals there) and the previous ones are restored on exit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

__all__ = ["StopSignal"]


class StopSignal:
    """Context manager: ``with StopSignal() as stop: while not stop.requested: step()``.

    Args:
      on_stop: called (in the main thread, inside the signal handler) on the first signal.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_stop: Callable[[], None] | None = None):
        self.signum: int | None = None
        self._on_stop = on_stop
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    @property
    def name(self) -> str | None:
        """The first signal's name (``"SIGTERM"``), None before one arrived."""
        return None if self.signum is None else signal.Signals(self.signum).name

    def __call__(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        if self._on_stop is not None:
            self._on_stop()

    def install(self) -> StopSignal:
        """Handle SIGINT/SIGTERM from now on (a no-op outside the main thread)."""
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self)
        return self

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignal:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()

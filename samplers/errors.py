"""Exceptions raised by gristmill's samplers."""

from __future__ import annotations

__all__ = ["APIUsageError", "RestartLimitError", "WorkerError"]


class APIUsageError(RuntimeError):
    """The pool's API was called out of order (recv before reset, send twice to an env...)."""


class RestartLimitError(RuntimeError):
    """A supervisor's worker-restart budget is spent (too many failures in all, or a crash
    loop): see :class:`~gristmill.samplers.supervision.RestartBudget`."""


class WorkerError(RuntimeError):
    """A worker process raised or died. ``worker``, ``env_ids`` and ``traceback`` say where."""

    def __init__(self, message: str, worker: int, env_ids: list[int], traceback: str = ""):
        tb = f"\n--- worker traceback ---\n{traceback}" if traceback else ""
        super().__init__(message + tb)
        self.worker = worker
        self.env_ids = list(env_ids)
        self.traceback = traceback

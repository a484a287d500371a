"""Worker-process supervision, shared by the env pool and the rollout workers.

One implementation of what a supervisor of worker processes does, used by
:class:`~gristmill.samplers.pool.EnvPool` (its workers: :mod:`gristmill.samplers._worker`) and
:class:`~gristmill.samplers.rollout_worker.RolloutWorkerPool`:

* :class:`WorkerProcesses` -- worker processes by index, each with a generation: finds the
  ones that died or went silent (heartbeats), and replaces one (end it, move its generation
  on, let the owner reclaim what it held, start its successor), within a
  :class:`RestartBudget` (so many restarts in all, so many in any minute: a crash loop).
* :func:`end_process` -- SIGTERM with a grace period, then SIGKILL.
* :func:`crash_report` -- how a worker describes an exception it reports (an env's or its own).
* :func:`become_worker` -- what a worker process does first (leave Ctrl-C to its parent, die
  with it).
* From the OS (Linux ``prctl``; elsewhere no-ops returning False): a worker dies with its
  parent (:func:`die_with_parent`: no orphans after the parent is SIGKILLed), a supervisor
  adopts the orphaned grandchildren of a worker it lost (:func:`become_subreaper`: the
  simulator processes a SIGKILLed worker leaves behind), and a sampler thread lowers its own
  priority below the learner's (:func:`lower_thread_priority`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from .errors import RestartLimitError

__all__ = [
    "RestartBudget",
    "WorkerProcesses",
    "become_subreaper",
    "become_worker",
    "crash_report",
    "die_with_parent",
    "end_process",
    "lower_thread_priority",
    "stop_processes",
]

Spawn = Callable[[int, int], BaseProcess]
"""``spawn(worker, generation) -> started process``: the owner's way to start a worker."""

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except OSError:
        return False


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies."""
    return _prctl(_PR_SET_PDEATHSIG, int(sig))


def become_worker(parent_death_signal: int = signal.SIGTERM) -> None:
    """Start of every sampler worker process: Ctrl-C is its parent's to handle (the parent
    stops the workers in order), and the kernel sends ``parent_death_signal`` when the
    parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_death_signal)


def become_subreaper() -> bool:
    """Make orphaned descendants (game processes of a killed worker) re-parent to this process,
    so it can find and end them."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def lower_thread_priority(niceness: int) -> bool:
    """Add ``niceness`` to the calling thread's nice value (Linux: per thread; threads it
    starts later inherit it). Returns whether it changed anything. Raising a priority back
    needs privileges, so this is meant for threads that end with the work they do."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    return True


def crash_report(exc: BaseException, limit: int | None = None) -> dict:
    """How a worker reports an exception (an env's that it survives, or its own last one):
    ``{"error": "Type: message", "traceback": ...}`` (``limit``: frames kept)."""
    return {
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc, limit=limit)),
    }


def end_process(p: BaseProcess, grace: float = 0.0, wait: float = 5.0) -> None:
    """End worker process ``p`` and reap it: SIGTERM and ``grace`` seconds to exit (a rollout
    worker closes its envs, and so their simulators, on SIGTERM), then SIGKILL and up to
    ``wait`` seconds. ``grace=0`` kills at once; a process already gone is only reaped."""
    if grace > 0 and p.is_alive():
        p.terminate()
        p.join(grace)
    if p.is_alive():
        p.kill()
    p.join(wait)


def stop_processes(procs, timeout: float, grace: float, wait: float) -> None:
    """Give ``procs`` (None entries skipped) ``timeout`` seconds in all to exit by themselves
    (they were told to), then :func:`end_process` each one left."""
    deadline = time.monotonic() + timeout
    for p in procs:
        if p is not None:
            p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p is not None:
            end_process(p, grace, wait)


class RestartBudget:
    """How many worker restarts a supervisor may make: ``total`` in all, and ``per_minute``
    in any 60 s (more is a crash loop, while faults spread over a long run are not); None:
    no limit."""

    def __init__(self, total: int | None = None, per_minute: int | None = None):
        for name, value in (("total", total), ("per_minute", per_minute)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ValueError(f"restart budget {name} must be a whole number >= 0 or None, "
                                 f"got {value!r}")
        self.total, self.per_minute = total, per_minute
        self.spent = 0
        self._times: deque = deque(maxlen=(per_minute or 0) + 1)

    def spend(self, now: float | None = None) -> str | None:
        """Count one restart; None if the budget allows it, else how often workers failed
        (``"31 times in the last minute"``)."""
        now = time.time() if now is None else now
        self.spent += 1
        self._times.append(now)
        if self.total is not None and self.spent > self.total:
            return f"{self.spent} times in all"
        if self.per_minute is not None:
            recent = sum(now - t < 60.0 for t in self._times)
            if recent > self.per_minute:
                return f"{recent} times in the last minute"
        return None


class WorkerProcesses:
    """Worker processes by index, each with a generation (how often its slot was restarted):
    the one implementation of failure detection and restart for the samplers' supervisors.

    Args:
      n: how many workers.
      spawn: ``spawn(worker, generation) -> started process`` (a generation above 0 replaces a
        dead worker). It should not refer to an object whose finalizer must run.
      heartbeats: optional shared array, ``heartbeats[w]`` = the ``time.time()`` of worker
        ``w``'s last sign of life (set here at each start, then by the worker); with
        ``heartbeat_timeout`` seconds of silence a live worker counts as hung.
      budget: the :class:`RestartBudget` (default: none).
      grace, wait: a worker being replaced gets ``grace`` seconds after SIGTERM (0: none),
        then SIGKILL and ``wait`` seconds to be reaped (:func:`end_process`).
      procs: the list to keep the processes in (one the owner's finalizer also holds).

    Attributes: ``procs``, ``generation`` (a list, updated in place: readers may keep it),
    ``restarts`` (replacements started).
    """

    def __init__(self, n: int, spawn: Spawn, *, heartbeats=None,
                 heartbeat_timeout: float | None = None, budget: RestartBudget | None = None,
                 grace: float = 10.0, wait: float = 5.0, procs: list | None = None):
        self.spawn = spawn
        self.procs: list = [None] * n if procs is None else procs
        self.procs[:] = [None] * n
        self.generation = [0] * n
        self.restarts = 0
        self.heartbeats, self.heartbeat_timeout = heartbeats, heartbeat_timeout
        self.budget = RestartBudget() if budget is None else budget
        self.grace, self.wait = grace, wait

    def start(self, worker: int | None = None) -> None:
        """Start ``worker`` (None: all) at its current generation."""
        for w in range(len(self.procs)) if worker is None else [worker]:
            if self.heartbeats is not None:
                self.heartbeats[w] = time.time()
            self.procs[w] = self.spawn(w, self.generation[w])

    def failure(self, w: int, now: float | None = None) -> str | None:
        """Why worker ``w`` needs replacing (it exited, or it went silent), or None."""
        p = self.procs[w]
        if p is None:
            return None
        if p.exitcode is not None:
            return f"exited with code {p.exitcode}"
        if self.heartbeats is not None and self.heartbeat_timeout is not None:
            silent = (time.time() if now is None else now) - self.heartbeats[w]
            if silent > self.heartbeat_timeout:
                return f"no heartbeat for {silent:.0f} s"
        return None

    def failures(self) -> list[tuple[int, str]]:
        """``[(worker, reason)]`` for every worker that needs replacing now."""
        now = time.time()
        found = ((w, self.failure(w, now)) for w in range(len(self.procs)))
        return [(w, why) for w, why in found if why is not None]

    def replace(self, w: int, reclaim: Callable[[int], object] | None = None):
        """Replace worker ``w``: charge the budget (:class:`RestartLimitError`, and nothing
        done, when it is spent), end the process (a hung one too), move its generation on,
        call ``reclaim(w)`` (the owner takes back what the dead worker held: its slots, its
        queued messages, its envs' requests) and start the successor. Returns what
        ``reclaim`` returned."""
        why = self.budget.spend()
        if why is not None:
            raise RestartLimitError(f"workers failed {why}")
        p = self.procs[w]
        if p is not None:
            end_process(p, self.grace, self.wait)
        # before reclaim: nothing addressed to the old generation is made after this
        self.generation[w] += 1
        out = reclaim(w) if reclaim is not None else None
        self.restarts += 1
        self.start(w)
        return out

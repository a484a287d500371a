"""What every worker-process supervisor in samplers needs from the OS (Linux, via ``prctl``).

Shared by the env pool's workers (:mod:`gristmill.samplers._worker`) and the rollout workers
(:mod:`gristmill.samplers.rollout_worker`): a worker dies with its parent (no orphans after the
parent is SIGKILLed), a supervisor adopts the orphaned grandchildren of a worker it lost (the
simulator processes a SIGKILLed worker leaves behind), and a sampler thread can lower its own
priority below the learner's. Elsewhere these are no-ops that return False.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

__all__ = ["die_with_parent", "become_subreaper", "lower_thread_priority"]

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

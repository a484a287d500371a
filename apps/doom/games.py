"""The VizDoom games of the Doom trainer's rollout workers, and cleaning up after dead workers.

A rollout worker that dies hard (SIGKILL, or VizDoom's client segfaulting when its game dies)
closes none of its envs: its games re-parent to the trainer (a child subreaper, see
:func:`~gristmill.samplers.rollout_worker.become_subreaper`) and VizDoom's own /dev/shm
entries (``ViZDoomSM*``, ``ViZDoomMQ*``, named after each game's ``+viz_instance_id``) stay.
A game that had already exited is a zombie whose command line, and so its instance id, is
gone. Each worker therefore reports the instance ids of its games as it creates its envs
(:func:`report_worker_games`, the pool's ``env_report`` hook), the trainer also reads them off
its workers' child processes every housekeeping tick (:meth:`WorkerGames.scan`: games still
starting), and :class:`WorkerGames` keeps them; when a worker dies, is restarted, or the run
ends, it ends and reaps the orphaned games (zombies too) and removes the entries of every
recorded game that no longer runs. Still lost: a game that dies within a tick of its launch
together with its worker (VizDoom's client segfaults when its game dies during ``init``).
Linux only (reads ``/proc``); elsewhere nothing is found and nothing is removed.
"""

from __future__ import annotations

import os
import signal
import time

from gristmill.envs.doom import game_instance, game_instances, unlink_game_shm
from gristmill.kernels import procfs

__all__ = ["GAMES_LEDGER", "WorkerGames", "report_worker_games", "reap_orphan_games"]

# A file that WorkerGames appends each recorded instance id to (one per line), for whoever
# cleans up after this process if it dies with its games (a Ray member on a killed node).
GAMES_LEDGER = "GRISTMILL_GAMES_LEDGER"


def report_worker_games(env) -> dict:
    """``env_report`` hook, run in a rollout worker after it created an env: the instance ids
    of every VizDoom game the worker runs now (a superset of the new env's)."""
    return {"game_instances": sorted(set(game_instances(os.getpid()).values()))}


def _zombie_games(parent: int) -> list[int]:
    """PIDs of exited, unreaped VizDoom games whose parent is ``parent``."""
    # The whole table, not procfs.children(): a task's children list can miss a process that
    # exits concurrently.
    stats = (procfs.stat(pid) for pid in procfs.pids())
    return [
        s.pid
        for s in stats
        if s is not None and s.state == "Z" and s.ppid == parent and s.comm == "vizdoom"
    ]


def reap_orphan_games(timeout: float = 10.0) -> list[str]:
    """End the VizDoom games that are this process's children (orphans of a dead worker).

    Kills the live ones (SIGKILL), waits for them, reaps exited ones (zombies) and removes the
    /dev/shm entries of the killed games. Returns the entry names removed.
    """
    me = os.getpid()
    deadline = time.monotonic() + timeout
    removed: list[str] = []
    while True:
        instances = game_instances(me)
        for pid in instances:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = set(instances) | set(_zombie_games(me))
        while left:
            for pid in list(left):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # not (or no longer) ours to wait for
                    done = pid
                if done:
                    left.discard(pid)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        removed += unlink_game_shm(instances.values())
        if not instances or time.monotonic() > deadline:
            return removed


class WorkerGames:
    """Instance ids of the games each rollout worker has started (from ``env_started``
    reports and :meth:`scan`), kept until the games are gone and their /dev/shm entries
    removed."""

    def __init__(self):
        self.instances: dict[int, set[str]] = {}
        self._seen: dict[int, set[int]] = {}  # worker -> game pids already read
        self.ledger = os.environ.get(GAMES_LEDGER)

    def _add(self, worker: int, ids) -> None:
        known = self.instances.setdefault(worker, set())
        new = set(ids) - known
        known |= new
        if new and self.ledger:
            with open(self.ledger, "a") as f:
                f.write("".join(f"{iid}\n" for iid in sorted(new)))

    def scan(self, worker: int, pid: int) -> None:
        """Record the games running now as children of ``worker``'s process ``pid``: cheap
        (reads only that process's children, each once), so it can run every tick."""
        seen = self._seen.setdefault(worker, set())
        children = set(procfs.children(pid))
        for child in children - seen:
            # Not cached when not (yet) a game: a child forked but not exec'd looks like python.
            iid = game_instance(child)
            if iid is not None:
                seen.add(child)
                self._add(worker, [iid])
        seen &= children

    def record(self, report: dict) -> None:
        """Take the ids of an ``env_started`` report sent by :func:`report_worker_games`."""
        ids = report.get("game_instances")
        if ids:
            self._add(int(report["worker"]), map(str, ids))

    def cleanup(self, worker: int | None = None, timeout: float = 10.0) -> list[str]:
        """Reap orphaned games (:func:`reap_orphan_games`), then remove the /dev/shm entries of
        ``worker``'s recorded games (every worker's when None) that no longer run and forget
        them. Games still running (a live worker's) are left alone. Returns what was removed.
        """
        removed = reap_orphan_games(timeout)
        live = set(game_instances().values())
        for w in list(self.instances) if worker is None else [worker]:
            ids = self.instances.get(w, set())
            gone = ids - live
            removed += unlink_game_shm(gone)
            ids -= gone
        return removed

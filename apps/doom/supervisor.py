"""Worker supervision for a Doom run: rollout worker processes, their games, their reports.

Starts the rollout workers (:class:`~gristmill.samplers.rollout_worker.RolloutWorkerPool`),
reads their report queue (games started, env crashes, stray answers, episodes: the episodes
are handed back to the caller), and on each check restarts workers that died or hung: under
the inference server's lock (a restart frees the dead worker's slots), then ends the games it
left and removes their VizDoom shared memory (:class:`~.games.WorkerGames`). A crash loop
(more than ``max_worker_restarts_per_min`` failures in any minute) stops the run; faults
spread over a long run do not. Failure detection, restarts and their limit are samplers'
(:mod:`gristmill.samplers.supervision`); this module adds the games and the console.
"""

from __future__ import annotations

import threading
from queue import Empty

from gristmill.apps.doom.games import WorkerGames, report_worker_games
from gristmill.samplers.errors import RestartLimitError
from gristmill.samplers.rollout import RolloutChannels
from gristmill.samplers.rollout_worker import RolloutWorkerPool

__all__ = ["WorkerSupervisor"]


class WorkerSupervisor:
    """Args: ``env_fn`` and ``channels`` of the sampling system, the run's config (seed,
    reward scale/clip, heartbeat timeout, niceness, restart limit), a console with
    ``print``, and the lock the inference server holds while serving."""

    def __init__(self, env_fn, channels: RolloutChannels, cfg, console, lock: threading.Lock):
        self.cfg, self.console, self.lock = cfg, console, lock
        self.pool = RolloutWorkerPool(
            env_fn,
            channels,
            seed=cfg.seed,
            reward_scale=cfg.reward_scale,
            reward_clip=cfg.reward_clip,
            heartbeat_timeout=cfg.heartbeat_timeout,
            env_report=report_worker_games,
            niceness=cfg.sampler_nice,
            max_restarts_per_min=cfg.max_worker_restarts_per_min,
        )
        self.channels = channels
        self.games = WorkerGames()  # each worker's VizDoom games, to clean up after it
        self.stale_answers = 0  # answers workers ignored (see samplers.rollout_protocol)

    @property
    def ledger(self):
        return self.pool.ledger

    def start(self) -> None:
        self.pool.start()

    def drain_reports(self) -> list[dict]:
        """Handle what the workers reported; returns the ``episode`` reports."""
        reports = []
        for _ in range(64):  # each get is capped in bytes; a bound keeps the main loop going
            try:
                reports += self.channels.reports.get_many_nowait()
            except Empty:
                break
        episodes = []
        for r in reports:
            kind = r.get("kind")
            if kind == "episode":
                episodes.append(r)
            elif kind == "env_started":
                self.games.record(r)
            elif kind == "env_error":
                self.console.print(
                    f"[red]env {r['env']} (worker {r['worker']}) crashed: {r['error']}; "
                    "re-created it[/red]"
                )
            elif kind == "stale_answer":
                self.stale_answers += 1
            elif kind == "worker_error":
                self.console.print(f"[red]worker {r['worker']} failed: {r['error']}[/red]")
        return episodes

    def check(self) -> list[dict]:
        """Restart dead or hung workers; returns episode reports read on the way."""
        cfg, pool = self.cfg, self.pool
        for w, p in enumerate(pool.procs):
            if p is not None and p.pid is not None:
                self.games.scan(w, p.pid)  # games still starting, not reported yet
        bad = pool.check()
        # game ids the dead workers reported just before dying
        episodes = self.drain_reports() if bad else []
        for w, reason in bad:
            envs = pool.env_indices(w)
            self.console.print(
                f"[red]rollout worker {w} (envs {envs[0]}-{envs[-1]} of {cfg.env}) "
                f"{reason}; restarting it[/red]"
            )
            # restart() kills a hung worker first; its games then re-parent to us, and the new
            # worker's games are its own children, so the cleanup touches only the old ones.
            try:
                with self.lock:
                    pool.restart(w)
            except RestartLimitError as e:
                raise RuntimeError(
                    f"rollout {e} (--max_worker_restarts_per_min "
                    f"{cfg.max_worker_restarts_per_min}); stopping"
                ) from None
            self.games.cleanup(w)
        return episodes

    def stop(self) -> list[dict]:
        """Stop every worker, end every game left, remove VizDoom's shared memory of games
        that are gone; returns the last episode reports."""
        try:
            self.pool.stop()
        finally:
            # Games of workers that had to be killed re-parent to us: end them all.
            episodes = self.drain_reports()
            self.games.cleanup()
        return episodes

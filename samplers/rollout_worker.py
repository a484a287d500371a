"""Rollout worker process: steps ``envs_per_worker`` envs in splits, writing into slots.

Run by :class:`RolloutWorkerPool`. While inference computes actions for one split, the worker
steps the other (double buffering). An env that raises is reported (worker, env index,
error), closed and re-created; the lost step is marked invalid and ends the episode, so the
run goes on. With a per-policy parameter table in the layout, each agent's env gets its
policy's row (``env.set_agent_params``) whenever that policy takes effect for it. The
worker exits when the stop flag is set, when its parent dies (Linux ``PR_SET_PDEATHSIG``)
or on SIGTERM, always closing its envs (and so their game processes).
With ``niceness`` > 0 the worker lowers its own scheduling priority first, so its envs' own
processes (VizDoom games) inherit it: a learner that shares the cores then keeps its share.

A worker killed hard (SIGKILL, a segfault in a simulator's client) closes nothing: whatever
its envs own outside the process (simulator processes, their shared memory) is the
supervisor's to clean up. The optional ``env_report`` hook tells it what that is: the worker
calls ``env_report(env)`` after creating (or re-creating) each env and sends the returned items
as an ``env_started`` report (``worker``, ``generation``, ``env``, ``pid`` added).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable
from queue import Empty

import numpy as np
from gristmill.samplers.rollout import RolloutChannels
from gristmill.samplers.rollout_protocol import (
    FILLING,
    FINISHED,
    ActionRequest,
    ActionsReady,
    SlotLedger,
    TrajectoryReady,
    fill_id,
)
from gristmill.samplers.spaces import action_from_row
from gristmill.samplers.supervision import (
    RestartBudget,
    WorkerProcesses,
    become_worker,
    crash_report,
    stop_processes,
)

__all__ = [
    "RolloutWorkerPool",
    "run_rollout_worker",
    "EnvFn",
    "EnvReport",
]

EnvFn = Callable[[int], object]
"""``env_fn(env_index) -> gymnasium.Env``; must pickle (spawned processes). (Not the env pool's
:class:`~gristmill.samplers.registry.EnvFactory`, a task id resolved to its maker.)"""

EnvReport = Callable[[object], dict]
"""``env_report(env) -> dict``, run in the worker after each env is created and reset; the
items travel to the supervisor as an ``env_started`` report. Must pickle, like ``env_fn``."""

MAX_ENV_RESTARTS = 5


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


class _Worker:
    def __init__(
        self,
        worker_id,
        generation,
        env_fn,
        ch: RolloutChannels,
        seed,
        reward_scale,
        reward_clip,
        env_report=None,
    ):
        self.w, self.gen, self.env_fn, self.ch = worker_id, generation, env_fn, ch
        self.env_report = env_report
        self.layout = lay = ch.layout
        self.seed = seed
        self.reward_scale, self.reward_clip = reward_scale, reward_clip
        self.a = ch.arrays
        self.obs_keys = list(lay.obs)
        self.first = worker_id * lay.envs_per_worker
        self.agents = lay.agents_per_env
        self.envs: list = [None] * lay.envs_per_worker
        self.slots = np.full((lay.envs_per_worker, self.agents), -1, dtype=np.int64)
        self.fills = np.full((lay.envs_per_worker, self.agents), -1, dtype=np.int64)
        self.num_fills = 0
        # agent_policy index of each (env, agent) of this worker
        self.agent_ids = (self.first * self.agents + np.arange(lay.envs_per_worker * self.agents))
        self.agent_ids = self.agent_ids.reshape(lay.envs_per_worker, self.agents)
        self.stale_answers = 0
        self.t = [0] * lay.num_splits
        self.ep_return = np.zeros((lay.envs_per_worker, self.agents))
        self.ep_len = np.zeros((lay.envs_per_worker, self.agents), dtype=np.int64)
        self.env_restarts = [0] * lay.envs_per_worker  # re-creations of each env

    # -------------------------------------------------------------- helpers
    def stopping(self) -> bool:
        return bool(self.a["stop"][0])

    def report(self, kind: str, **payload) -> None:
        payload.update(kind=kind, worker=self.w)
        try:
            self.ch.reports.put(payload, timeout=5.0)
        except Exception:  # noqa: BLE001 - reporting must never kill the worker
            pass

    def write_obs(self, slot: int, t: int, obs) -> None:
        if isinstance(obs, dict):
            for key in self.obs_keys:
                self.a[f"obs_{key}"][slot, t] = obs[key]
        else:
            self.a[f"obs_{self.obs_keys[0]}"][slot, t] = obs

    def take_slot(self) -> tuple[int, int]:
        """A free slot, now this worker's, and the fill id of this occupancy."""
        a = self.a
        a["worker_taking"][self.w] = 1  # a death from here to the end: the supervisor audits
        while True:
            try:
                slot = int(self.ch.free_slots.get(timeout=0.5))
                break
            except Empty:
                self.heartbeat()
                if self.stopping():
                    raise SystemExit(0) from None
        self.num_fills += 1
        fill = fill_id(self.w, self.gen, self.num_fills)
        a["slot_owner"][slot] = self.w
        a["slot_fill"][slot] = fill
        a["slot_state"][slot] = FILLING
        a["worker_taking"][self.w] = 0
        return slot, fill

    def heartbeat(self) -> None:
        self.a["worker_heartbeat"][self.w] = time.time()

    def make_env(self, i: int) -> list:
        """Create and reset env ``i``; returns its per-agent observations."""
        index = self.first + i
        env = self.env_fn(index)
        self.envs[i] = env
        if self.layout.param_width and not callable(getattr(env, "set_agent_params", None)):
            raise TypeError(
                f"env {index} ({type(env).__name__}) has no set_agent_params(agent, values), "
                "but the rollout layout has a per-policy parameter table"
            )
        self.apply_params(i)
        obs, _ = env.reset(seed=self.seed + index + 1000 * self.env_restarts[i])
        if self.env_report is not None:
            # Sent before the env is stepped, so the supervisor knows it even if we die next.
            extra = self.env_report(env) or {}
            self.report("env_started", env=index, generation=self.gen, pid=os.getpid(), **extra)
        return self._agents(obs)

    def apply_params(self, i: int) -> None:
        """Env ``i``'s agents take the parameter rows of the policies that now drive them."""
        if not self.layout.param_width:
            return
        table = self.a["policy_params"]
        for j, k in enumerate(self.a["agent_policy"][self.agent_ids[i]]):
            if 0 <= k < len(table):
                self.envs[i].set_agent_params(j, table[k].copy())

    def _agents(self, value) -> list:
        return list(value) if self.agents > 1 else [value]

    def restart_env(self, i: int, exc: BaseException):
        index = self.first + i
        self.report("env_error", env=index, **crash_report(exc, limit=5))
        try:
            self.envs[i].close()
        except Exception:  # noqa: BLE001 - the env is already broken
            pass
        self.env_restarts[i] += 1
        if self.env_restarts[i] > MAX_ENV_RESTARTS:
            raise RuntimeError(
                f"env {index} crashed {self.env_restarts[i]} times; giving up"
            ) from exc
        return self.make_env(i)

    def split_range(self, split: int) -> slice:
        lo = split * self.layout.envs_per_split
        return slice(lo, lo + self.layout.envs_per_split)

    def request(self, split: int) -> None:
        envs, t = self.split_range(split), self.t[split]
        slots = self.slots[envs].ravel()
        # the policy that drives each agent now acts for this step (the match-maker's choice)
        self.a["policy_id"][slots, t] = self.a["agent_policy"][self.agent_ids[envs].ravel()]
        fills = self.fills[envs].ravel()
        self.ch.requests.put(
            ActionRequest(self.w, self.gen, split, t, tuple(slots.tolist()), tuple(fills.tolist()))
        )

    def answered(self, msg) -> bool:
        """Whether ``msg`` answers this worker's open request of its split: its generation and
        step, and every slot of the split stamped as served for its current fill."""
        if not isinstance(msg, ActionsReady) or msg.generation != self.gen:
            return False
        if not 0 <= msg.split < self.layout.num_splits or msg.t != self.t[msg.split]:
            return False
        envs = self.split_range(msg.split)
        slots, fills = self.slots[envs].ravel(), self.fills[envs].ravel()
        return bool(np.all(self.a["acted"][slots, msg.t] == fills))

    # -------------------------------------------------------------- main loop
    def step_split(self, split: int) -> None:
        lay, a, na = self.layout, self.a, self.agents
        t = self.t[split]
        lo = split * lay.envs_per_split
        for i in range(lo, lo + lay.envs_per_split):
            slots = self.slots[i]
            env = self.envs[i]
            valid = 1
            try:
                acts = [action_from_row(env.action_space, a["actions"][s, t]) for s in slots]
                obs, reward, term, trunc, info = env.step(acts if na > 1 else acts[0])
                obs, reward = self._agents(obs), self._agents(reward)
                term, trunc, info = self._agents(term), self._agents(trunc), self._agents(info)
            except Exception as exc:  # noqa: BLE001 - reported and survived
                obs = self.restart_env(i, exc)
                reward, term, trunc, info, valid = (
                    [0.0] * na,
                    [False] * na,
                    [True] * na,
                    [{}] * na,
                    0,
                )
            dones = [bool(x or y) for x, y in zip(term, trunc)]
            # Agents of one env end together (a match); a lone per-agent end resets the env.
            env_done = any(dones)
            if env_done and valid:
                try:
                    obs, _ = env.reset()
                    obs = self._agents(obs)
                except Exception as exc:  # noqa: BLE001
                    obs = self.restart_env(i, exc)
            if env_done:
                # the match-maker's choice for the next episode takes effect now
                agents = self.agent_ids[i]
                a["agent_policy"][agents] = a["next_policy"][agents]
                self.apply_params(i)
            for j, slot in enumerate(slots):
                self.ep_return[i, j] += reward[j]
                self.ep_len[i, j] += 1
                r = float(
                    np.clip(reward[j] * self.reward_scale, -self.reward_clip, self.reward_clip)
                )
                a["rewards"][slot, t] = r
                a["dones"][slot, t] = env_done
                a["time_outs"][slot, t] = bool(trunc[j]) or (env_done and not dones[j])
                a["valids"][slot, t] = valid
                if env_done:
                    if valid:
                        stats = {
                            "reward": float(self.ep_return[i, j]),
                            "length": int(self.ep_len[i, j]),
                        }
                        if "true_objective" in info[j]:
                            stats["true_objective"] = float(info[j]["true_objective"])
                        self.report(
                            "episode",
                            env=self.first + i,
                            agent=j,
                            policy_id=int(a["policy_id"][slot, t]),
                            **stats,
                        )
                    self.ep_return[i, j] = 0.0
                    self.ep_len[i, j] = 0
                self.write_obs(slot, t + 1, obs[j])
        t += 1
        if t == lay.rollout:
            for i in range(lo, lo + lay.envs_per_split):
                for j in range(na):
                    old, old_fill = int(self.slots[i, j]), int(self.fills[i, j])
                    new, fill = self.take_slot()
                    for key in self.obs_keys:
                        a[f"obs_{key}"][new, 0] = a[f"obs_{key}"][old, lay.rollout]
                    # step 0 of a slot is read by the learner as is: reset it here
                    ended = a["dones"][old, lay.rollout - 1]
                    a["rnn_states"][new, 0] = 0.0 if ended else a["rnn_states"][old, lay.rollout]
                    self.slots[i, j], self.fills[i, j] = new, fill
                    # still ours until the learner takes it: a death now re-sends it
                    a["slot_state"][old] = FINISHED
                    self.ch.trajectories.put(TrajectoryReady(old, old_fill))
            t = 0
        self.t[split] = t

    def run(self) -> None:
        lay = self.layout
        self.heartbeat()
        for i in range(lay.envs_per_worker):
            obs = self.make_env(i)
            for j in range(self.agents):
                slot, fill = self.take_slot()
                self.slots[i, j], self.fills[i, j] = slot, fill
                self.write_obs(slot, 0, obs[j])
                self.a["rnn_states"][slot, 0] = 0.0
        for split in range(lay.num_splits):
            self.request(split)
        queue = self.ch.actions[self.w]
        while not self.stopping():
            try:
                msg = queue.get(timeout=0.5)
            except Empty:
                self.heartbeat()
                continue
            self.heartbeat()
            if not self.answered(msg):
                # e.g. an answer to the worker this one replaced: stepping on it would act on
                # actions nobody computed for these games (see rollout_protocol)
                self.stale_answers += 1
                self.report("stale_answer", generation=self.gen, message=repr(msg))
                continue
            self.step_split(msg.split)
            self.request(msg.split)

    def close(self) -> None:
        for env in self.envs:
            if env is not None:
                try:
                    env.close()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass


def run_rollout_worker(
    worker_id,
    generation,
    env_fn,
    channels,
    seed=0,
    reward_scale=1.0,
    reward_clip=1000.0,
    env_report=None,
    niceness=0,
):
    """Entry point of a rollout worker process (see the module docstring)."""
    become_worker(signal.SIGTERM)
    if niceness > 0:
        os.nice(niceness)  # before any env exists: their simulator processes inherit it
    signal.signal(signal.SIGTERM, _on_sigterm)  # exit through finally: the envs are closed
    worker = _Worker(
        worker_id, generation, env_fn, channels, seed, reward_scale, reward_clip, env_report
    )
    code = 0
    try:
        worker.run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException as exc:  # noqa: BLE001 - reported, then the process exits non-zero
        worker.report("worker_error", **crash_report(exc))
        code = 1
    finally:
        worker.close()
    os._exit(code)


class RolloutWorkerPool:
    """Starts, watches and restarts the rollout worker processes of one sampling system
    (supervision: :class:`~gristmill.samplers.supervision.WorkerProcesses`).

    Args:
      env_fn: picklable ``env_fn(env_index) -> env``.
      channels: the owner's :class:`~gristmill.samplers.rollout.RolloutChannels`.
      seed: base seed; env ``i`` resets with ``seed + i`` first.
      reward_scale, reward_clip: applied to rewards before they are stored.
      heartbeat_timeout: seconds without a heartbeat after which a worker counts as hung.
      start_method: ``fork`` (default on Linux: fast, and no resource-tracker process left
        behind) or ``spawn`` (``env_fn`` and its module must then be importable by name).
      env_report: optional :data:`EnvReport` hook (see the module docstring), e.g. the Doom
        trainer's, which learns each worker's game processes to clean up after a killed one.
      niceness: added to each worker's nice value (and so its envs' processes); 0 leaves it.
      max_restarts_per_min: :meth:`restart` raises
        :class:`~gristmill.samplers.errors.RestartLimitError` past this many restarts in any
        60 s (a crash loop); None: no limit.

    Attributes: ``procs``, ``generation`` (per worker; the inference server keeps this list
    to drop requests of dead generations), ``restarts``, ``ledger``.
    """

    def __init__(
        self,
        env_fn: EnvFn,
        channels: RolloutChannels,
        seed: int = 0,
        reward_scale: float = 1.0,
        reward_clip: float = 1000.0,
        heartbeat_timeout: float = 120.0,
        start_method: str | None = None,
        env_report: EnvReport | None = None,
        niceness: int = 0,
        max_restarts_per_min: int | None = None,
    ):
        if niceness < 0:
            raise ValueError(f"niceness must be >= 0 (a lower priority), got {niceness}")
        self.niceness = niceness
        self.env_fn, self.ch, self.seed = env_fn, channels, seed
        self.env_report = env_report
        self.reward_scale, self.reward_clip = reward_scale, reward_clip
        self.heartbeat_timeout = heartbeat_timeout
        if start_method is None:
            start_method = "fork" if sys.platform.startswith("linux") else "spawn"
        self.ctx = mp.get_context(start_method)
        self.workers = WorkerProcesses(
            channels.layout.num_workers,
            self._spawn,
            heartbeats=channels.arrays["worker_heartbeat"],
            heartbeat_timeout=heartbeat_timeout,
            budget=RestartBudget(per_minute=max_restarts_per_min),
            grace=10.0,  # SIGTERM first: the worker closes its envs and their games
            wait=5.0,
        )
        self.procs, self.generation = self.workers.procs, self.workers.generation
        self.ledger = SlotLedger(channels.arrays, channels.free_slots, channels.trajectories)

    @property
    def restarts(self) -> int:
        return self.workers.restarts

    def _spawn(self, w: int, generation: int):
        p = self.ctx.Process(
            target=run_rollout_worker,
            args=(
                w,
                generation,
                self.env_fn,
                self.ch,
                self.seed,
                self.reward_scale,
                self.reward_clip,
                self.env_report,
                self.niceness,
            ),
            name=f"gristmill-rollout-{w}",
            daemon=True,
        )
        p.start()
        return p

    def start(self, worker_id: int | None = None) -> None:
        self.workers.start(worker_id)

    def check(self) -> list[tuple[int, str]]:
        """Workers that died or hung since the last check: ``[(worker, reason)]``."""
        return self.workers.failures()

    def env_indices(self, worker_id: int) -> list[int]:
        e = self.ch.layout.envs_per_worker
        return list(range(worker_id * e, (worker_id + 1) * e))

    def restart(self, worker_id: int) -> list[int]:
        """Kill (if needed) and restart a worker; returns the unfinished slots it held, now
        free again (its finished ones are re-sent to the learner: see
        :meth:`~gristmill.samplers.rollout_protocol.SlotLedger.reclaim`). The caller keeps
        inference from serving this worker's requests meanwhile. Raises
        :class:`~gristmill.samplers.errors.RestartLimitError` (restarting nothing) past
        ``max_restarts_per_min``."""
        return self.workers.replace(worker_id, self._reclaim)

    def _reclaim(self, worker_id: int) -> list[int]:
        # Answers the dead worker never read: its successor would ignore them, but they would
        # fill its queue. Its generation has moved on, so no new one is made for it.
        queue = self.ch.actions[worker_id]
        while True:
            try:
                queue.get_many_nowait()
            except Empty:
                break
        return self.ledger.reclaim(worker_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Set the stop flag, wait for workers to close their envs, then terminate/kill."""
        self.ch.arrays["stop"][0] = 1
        stop_processes(self.procs, timeout, grace=5.0, wait=5.0)

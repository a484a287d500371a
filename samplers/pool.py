"""An EnvPool-compatible, asynchronous env pool built from worker processes and shared memory.

``make(task_id, num_envs=..., batch_size=..., num_workers=...)`` starts ``num_workers``
processes (one per core by default), each owning a contiguous range of envs. Results go
straight from the envs into one shared-memory segment; actions come back the same way;
process-shared semaphores and atomic counters (:mod:`gristmill.kernels.shmsignal`) do the
hand-off, with blocking waits (no spinning threads to starve when cores are busy).

API (EnvPool's, ``env_type="gymnasium"``)::

    pool = make("Pong-v5", num_envs=16, batch_size=8)      # async: batch_size < num_envs
    pool.async_reset()
    while True:
        obs, rew, term, trunc, info = pool.recv()          # the first 8 envs to finish
        pool.send(policy(obs), info["env_id"])             # those same envs step again

    pool = make("Ant-v5", num_envs=8)                      # sync: batch_size == num_envs
    obs, info = pool.reset()
    obs, rew, term, trunc, info = pool.step(actions)       # ordered by env id

Semantics, as EnvPool:

* **Next-step auto-reset.** An episode's last step returns its true final observation with
  ``terminated``/``truncated``; the next ``send`` to that env resets it instead of stepping
  (the action is ignored) and returns the first observation with reward 0, both flags False
  and ``info["elapsed_step"] == 0`` (Gymnasium's ``AutoresetMode.NEXT_STEP``).
* **Seeds.** Env ``i`` is seeded with ``seed + i`` at its first reset; ``reset(seed=s)``
  reseeds (``s + i``, or a list of per-env seeds).
* **Zero copy.** ``recv`` returns numpy views of the shared output block. They stay valid
  until ``len(ring) - 1`` further ``recv`` calls (at least the next ``send``/``recv`` cycle;
  ``pool.num_blocks`` says how many); copy what you keep longer.
* ``info`` holds ``env_id`` and ``elapsed_step`` plus the env's own per-step fields
  (Atari: ``lives``, ``reward`` (unclipped), ``terminated``).
* Async mode (``batch_size < num_envs``): ``recv`` returns the first ``batch_size`` envs to
  step, named by ``info["env_id"]``, while the others keep stepping (EnvPool's semantics).
  Workers write each result into the next free slot of a ring of output blocks (slots are
  claimed when a step finishes), so ``recv`` returns one contiguous block (zero copy, no
  gather) and a slow worker or env never stalls the others. With fewer than
  ``batch_size`` results outstanding, ``recv`` returns those. Sync mode returns results in
  request order.

Improvements over EnvPool: any Gymnasium id or Python factory runs in the pool; misuse raises
:class:`~gristmill.samplers.errors.APIUsageError` instead of hanging or crashing (``recv``
with nothing outstanding, a second ``send`` to a busy env, ``async_reset`` with results
pending); a worker that raises or dies is reported with its env ids and traceback and either
raises (``on_error="raise"``) or is restarted (``on_error="restart"``). A restart keeps the
pool's contract: each env has at most one result in flight, and a dead worker's envs come back
exactly once each, as the first step of a new episode (``elapsed_step == 0``, reward 0,
``truncated=True``) -- those in flight at once, the others at their next ``send``. Results the
dead worker had already published are delivered as they are. This holds whatever instruction
the worker was killed at, because every hand-off fact is one atomic write
(:mod:`gristmill.samplers._slots`). ``close()``, garbage collection, Ctrl-C and SIGTERM leave
no process and no ``/dev/shm`` entry.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings
import weakref
from collections import deque
from functools import partial
from numbers import Real
from typing import Any

import gymnasium as gym
import numpy as np
from gristmill.kernels.args import whole
from gristmill.kernels.dispatch import DUPLICATE, OK, OUT_OF_RANGE, claim, dispatch
from gristmill.kernels.shm import SharedArrays
from gristmill.kernels.shmsignal import SignalSet, nbytes
from gymnasium import spaces

from . import _worker
from ._slots import TAG_SHIFT, WORKER_MASK, Slots, mask_words
from ._worker import CMD_CLOSE, CMD_RESET, CMD_RESET_TRUNC, CMD_STEP, split_envs
from .errors import APIUsageError, RestartLimitError, WorkerError
from .registry import EnvFactory, resolve
from .supervision import RestartBudget, WorkerProcesses, stop_processes

__all__ = ["EnvPool", "make"]


def _space_layout(space: gym.Space, what: str) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(space, spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        return tuple(space.shape), np.dtype(space.dtype)
    raise ValueError(
        f"unsupported {what} space {space!r}: the pool handles Box, Discrete, MultiDiscrete "
        f"and MultiBinary (flatten Dict/Tuple spaces with gymnasium.wrappers.FlattenObservation)"
    )


def default_num_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Resources:
    """What must be released when the pool goes away; held by a ``weakref.finalize``."""

    def __init__(self):
        self.procs: list = []
        self.conns: list = []
        self.arrays: SharedArrays | None = None
        self.sig: SignalSet | None = None
        self.n_workers = 0
        self.cap = 0

    def shutdown(self) -> None:
        arrays, sig = self.arrays, self.sig
        if arrays is not None and sig is not None:
            for w, p in enumerate(self.procs):
                if p is not None and p.is_alive():
                    try:
                        h = int(arrays["head"][w, 0])
                        arrays["ring"][w, h % self.cap] = (0, CMD_CLOSE, 0, 0)
                        arrays["head"][w, 0] = h + 1
                        sig.post(w)
                    except Exception:  # noqa: BLE001 - best effort, then terminate
                        pass
        stop_processes(self.procs, 2.0, grace=1.0, wait=1.0)
        self.procs = []
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.conns = []
        if sig is not None:
            sig.destroy()
            self.sig = None
        if arrays is not None:
            arrays.close()
            self.arrays = None


class EnvPool:
    """A pool of ``num_envs`` envs stepped by ``num_workers`` processes; see the module
    docstring. Build it with :func:`make`.

    Attributes: ``num_envs``, ``batch_size``, ``num_workers``, ``is_async``,
    ``all_env_ids``, ``observation_space``/``single_observation_space`` (one env's),
    ``action_space``/``single_action_space``, ``num_blocks``, ``restarts``.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, factory: EnvFactory, num_envs: int, batch_size: int | None = None,
                 num_workers: int | None = None, seed: int | None = 42, *,
                 start_method: str | None = None, on_error: str = "raise",
                 max_restarts: int = 3, spin: int = 0, step_timeout: float | None = None,
                 startup_timeout: float = 120.0, env_type: str = "gymnasium"):
        num_envs = whole("num_envs", num_envs, 1)
        batch_size = num_envs if batch_size is None else whole("batch_size", batch_size)
        if not 1 <= batch_size <= num_envs:
            raise ValueError(f"batch_size must be in [1, num_envs={num_envs}], got {batch_size}")
        num_workers = (min(num_envs, default_num_workers()) if num_workers is None
                       else whole("num_workers", num_workers))
        if not 1 <= num_workers <= num_envs:
            raise ValueError(f"num_workers must be in [1, num_envs={num_envs}], got "
                             f"{num_workers}")
        if on_error not in ("raise", "restart"):
            raise ValueError(f"on_error must be 'raise' or 'restart', got {on_error!r}")
        if env_type not in ("gymnasium", "gym"):
            raise ValueError(f"env_type must be 'gymnasium' (or its alias 'gym'), got "
                             f"{env_type!r}")
        seed = None if seed is None else whole("seed", seed, 0)
        max_restarts, spin = whole("max_restarts", max_restarts, 0), whole("spin", spin, 0)
        for name, value in (("step_timeout", step_timeout), ("startup_timeout", startup_timeout)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, Real)
                                      or not value > 0):
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        self.factory = factory
        self.task_id = factory.task_id
        self.env_type = env_type
        self.num_envs = num_envs
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.is_async = batch_size < num_envs
        self.all_env_ids = np.arange(num_envs, dtype=np.int32)
        self.seed = seed
        self.on_error = on_error
        self.max_restarts = max_restarts
        self.spin = spin
        self.step_timeout = step_timeout
        self.render_mode = None
        self.errors: list[WorkerError] = []
        self._ctx = mp.get_context(start_method)
        self._closed = False
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, self._res.shutdown)

        # One env in this process tells the spaces and info fields.
        probe = factory()
        try:
            self.single_observation_space = probe.observation_space
            self.single_action_space = probe.action_space
            info_spec = dict(getattr(probe, "info_spec", {}) or {})
        finally:
            probe.close()
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        obs_shape, obs_dtype = _space_layout(self.single_observation_space, "observation")
        act_shape, act_dtype = _space_layout(self.single_action_space, "action")
        self._act_shape, self._act_dtype = act_shape, act_dtype
        self._act_kind = "f" if isinstance(self.single_action_space, spaces.Box) else "iu"

        W = num_workers
        B = batch_size
        # Output ring of blocks: enough for every env's result in flight (async) or every
        # outstanding send (sync), plus the block the user holds.
        R = -(-num_envs // B) + 2 if self.is_async else 4
        self.num_blocks = R
        self._envs_of = split_envs(num_envs, W)
        self._worker_of = np.empty(num_envs, np.int64)
        for w, ids in enumerate(self._envs_of):
            self._worker_of[ids] = w
        cap = max(len(ids) for ids in self._envs_of) + 2
        if W > WORKER_MASK:
            raise ValueError(f"num_workers must be <= {WORKER_MASK}, got {W}")
        spec: dict[str, tuple] = {
            "obs": ((R, B) + obs_shape, obs_dtype),
            "rew": ((R, B), np.float32),
            "term": ((R, B), np.bool_),
            "trunc": ((R, B), np.bool_),
            "env_id": ((R, B), np.int32),
            "elapsed_step": ((R, B), np.int32),
            "act": ((num_envs,) + act_shape, act_dtype),
            "seeds": ((num_envs,), np.int64),
            "ring": ((W, cap, 4), np.int64),
            "head": ((W, 8), np.int64),
            "progress": ((W, 8), np.int64),
            "expected": ((R,), np.int64),
            "tags": ((R * B,), np.int64),  # slot claims (see _slots)
            "cursor": ((8,), np.int64),  # async: where claims start looking
            "masks": ((R, mask_words(B)), np.uint64),  # published slots, per block
            "signals": ((nbytes(W + R, 0),), np.uint8),
        }
        for k, (shape, dtype) in info_spec.items():
            spec["info_" + k] = ((R, B) + tuple(shape), np.dtype(dtype))
        self._info_keys = list(info_spec)
        self._res.arrays = a = SharedArrays.create(spec)
        # semaphores: one per worker (work to do), one per block (block full)
        self._res.sig = SignalSet(a["signals"], W + R, 0, init=True)
        self._res.n_workers, self._res.cap = W, cap
        self._a, self._sig = a, self._res.sig
        a["seeds"][:] = -1
        a["tags"][:] = -1
        a["expected"][:] = B
        self._slots = Slots(a["tags"], a["cursor"], a["masks"], B)
        self._masks, self._cursor = a["masks"], a["cursor"]
        self._obs, self._rew, self._term, self._trunc = a["obs"], a["rew"], a["term"], a["trunc"]
        self._env_id, self._elapsed = a["env_id"], a["elapsed_step"]
        self._info_arrays = {k: a["info_" + k] for k in self._info_keys}
        # a full block's views, made once: recv hands out these (zero copy either way)
        self._block_views = [
            (self._obs[b], self._rew[b], self._term[b], self._trunc[b],
             {"env_id": self._env_id[b], "elapsed_step": self._elapsed[b],
              **{k: arr[b] for k, arr in self._info_arrays.items()}})
            for b in range(R)]
        self._act, self._ring, self._head = a["act"], a["ring"], a["head"]
        self._layout = (W, R, B, cap, not self.is_async)
        self._cap = cap

        self._outstanding = np.zeros(num_envs, np.bool_)
        self._n_outstanding = 0
        self._bad = np.zeros(1, np.int64)  # claim(): the offending id
        self._counts = np.zeros(W, np.int64)  # dispatch(): items per worker
        self._started = False
        # Slot sequence numbers only grow (slot s is position s % B of block s // B % R), so a
        # claim or a result of an earlier round can never pass for one of this round.
        self._pending: deque = deque()  # sync: (seq, n) per request batch, oldest first
        self._req_seq = 0  # sync: request batches sent so far (block = seq % num_blocks)
        self._recv_seq = 0  # async: blocks received so far (block = seq % num_blocks)
        self._last_check = time.monotonic()

        self._res.conns = [None] * W
        # spawn refers to what the workers need, not to the pool (the finalizer must run)
        spawn = partial(_spawn_worker, self._ctx, factory, a, self._layout, self._envs_of, seed,
                        self._res.conns)
        # a dead worker has nothing to close its envs for: SIGKILL at once (grace 0)
        self._workers = WorkerProcesses(W, spawn, budget=RestartBudget(total=max_restarts),
                                        grace=0.0, wait=1.0, procs=self._res.procs)
        try:
            self._workers.start()
            self._await_ready(range(W), startup_timeout)
        except BaseException:
            self.close()
            raise

    # ---- processes (supervision: samplers.supervision.WorkerProcesses) -------------------------
    @property
    def restarts(self) -> int:
        """Replacement workers started so far."""
        return self._workers.restarts

    def _report(self, w: int, timeout: float = 0.0) -> dict:
        """Worker ``w``'s next pipe report: ``{"kind": "ready"}`` or a ``worker_error`` crash
        report (``env_ids``, ``error``, ``traceback``: as the rollout workers'); ``{}``: none
        within ``timeout`` seconds (or the pipe is gone)."""
        conn = self._res.conns[w]
        try:
            if conn.poll(timeout):
                return conn.recv()
        except (EOFError, OSError):
            pass
        return {}

    def _await_ready(self, workers, timeout: float) -> None:
        waiting = set(workers)
        deadline = time.monotonic() + timeout
        while waiting:
            for w in list(waiting):
                p, msg = self._res.procs[w], self._report(w, 0.02)
                if msg.get("kind") == "ready":
                    waiting.discard(w)
                    continue
                if msg.get("kind") == "worker_error":
                    raise WorkerError(
                        f"worker {w} failed while creating envs {msg['env_ids']} of "
                        f"{self.task_id!r}", w, msg["env_ids"], msg["traceback"])
                if p.exitcode is not None:
                    raise WorkerError(f"worker {w} exited with code {p.exitcode} during "
                                      f"startup", w, list(self._envs_of[w]))
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers {sorted(waiting)} not ready after {timeout} s")

    def _check_workers(self) -> bool:
        """Raise (or restart) for every worker that reported an error or died; True if it
        restarted one."""
        restarted = False
        for w in range(self.num_workers):
            p, msg, err = self._res.procs[w], self._report(w), None
            if msg.get("kind") == "worker_error":
                ids = msg["env_ids"]
                err = WorkerError(f"worker {w} (envs {ids[0]}..{ids[-1]}) of {self.task_id!r} "
                                  f"raised", w, ids, msg["traceback"])
            if err is None and self._workers.failure(w) is not None:
                p.join(0.2)
                ids = [int(i) for i in self._envs_of[w]]
                err = WorkerError(f"worker {w} (envs {ids[0]}..{ids[-1]}) died with exit code "
                                  f"{p.exitcode}", w, ids)
            if err is None:
                continue
            if p.exitcode is None:
                p.join(2.0)
            self.errors.append(err)
            if self.on_error == "raise":
                self.close()
                raise err
            self._restart(w, err)
            restarted = True
        return restarted

    def _restart(self, w: int, err: WorkerError) -> None:
        """Replace worker ``w``, rewriting its ring so that each env of ``w`` still waiting for
        a result gets exactly one: the dead worker's published result if there is one (it is
        delivered as it is), else a redo of the request as a reset reporting ``truncated``
        (in async mode into the slot the dead worker had claimed for it, if any: ``recv``
        waits for that slot).

        Which requests are answered is read from what the main process knows (``_outstanding``:
        sent, result not received) and from the slot book, never from the dead worker's
        progress counter: a worker killed after publishing a result but before advancing
        past its request leaves that request in the ring although its env has its result
        (issue 21). Past ``max_restarts``, closes the pool and raises ``err``."""
        reclaim = self._rewrite_ring
        while True:
            try:
                self._workers.replace(w, reclaim)
            except RestartLimitError:
                self.close()
                raise err from None
            warnings.warn(f"{err.args[0]}; restarting it (restart {self.restarts}/"
                          f"{self.max_restarts}); envs {err.env_ids} restart their episodes",
                          RuntimeWarning, stacklevel=3)
            try:
                self._await_ready([w], 120.0)
                return
            except WorkerError as e:
                # the replacement died while making its envs (killed too, or the envs fail):
                # it touched no request, so the rewritten ring stands for the next one
                err, reclaim = e, self._close_conn
                self.errors.append(err)

    def _close_conn(self, w: int) -> None:
        self._res.conns[w].close()

    def _rewrite_ring(self, w: int) -> None:
        """Reclaim dead worker ``w``'s requests for its successor (see :meth:`_restart`)."""
        self._close_conn(w)
        a = self._a
        B, R, cap = self.batch_size, self.num_blocks, self._cap
        tail, head = int(a["progress"][w, _worker.P_TAIL]), int(a["head"][w, 0])
        items = [tuple(int(x) for x in self._ring[w, t % cap]) for t in range(tail, head)]
        published, claimed = set(), []
        if self.is_async:
            # the slots w claimed that recv has not returned yet: published or not; an
            # unpublished one is the claim of the request w was running, items[0]
            tags = a["tags"]
            seq = tags >> TAG_SHIFT
            for i in np.flatnonzero((seq >= self._recv_seq * B) & (tags & WORKER_MASK == w)):
                if self._slots.published(i // B, i % B):
                    published.add(int(self._env_id[i // B, i % B]))
                else:
                    claimed.append(int(seq[i]))
        last = {e: k for k, (e, *_) in enumerate(items)}
        redo = []
        for k, (e, cmd, base, pos) in enumerate(items):
            if cmd == CMD_CLOSE or not self._outstanding[e] or last[e] != k:
                # answered: only an env's latest request can be waiting for its result (an
                # earlier one in the ring was answered, received, and the env sent again)
                continue
            if base >= 0:  # the slot is named in the item (sync, or an earlier redo)
                s = base + pos
                if s in claimed:
                    claimed.remove(s)
                if self._slots.published((s // B) % R, s % B):
                    continue
            elif e in published:
                continue
            elif claimed and k == 0:
                base, pos = claimed.pop(), 0
            redo.append((e, CMD_RESET_TRUNC, base, pos))
        if claimed:  # pragma: no cover - the protocol allows none
            raise RuntimeError(f"worker {w} left claimed slots {claimed} with no request")
        for k, item in enumerate(redo):
            self._ring[w, (tail + k) % cap] = item
        a["head"][w, 0] = tail + len(redo)

    # ---- EnvPool API ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise APIUsageError("the pool is closed")

    def _id_array(self, env_id) -> np.ndarray:
        """``env_id`` (None: every env) as a non-empty 1-D integer array; ranges, duplicates
        and busy envs are checked by the caller (:meth:`_ids`, or ``claim`` in ``send``)."""
        if env_id is None:
            return self.all_env_ids
        ids = env_id if isinstance(env_id, np.ndarray) else np.asarray(env_id)
        if ids.ndim == 0:
            ids = ids.reshape(1)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ValueError(f"env_id must be a 1-D array of integer env ids, got dtype "
                             f"{ids.dtype} shape {ids.shape}")
        if len(ids) == 0:
            raise ValueError("env_id is empty")
        return ids

    def _ids(self, env_id) -> np.ndarray:
        """Validated env ids for a reset: a private int64 copy."""
        ids = self._id_array(env_id)
        if ids.min() < 0 or ids.max() >= self.num_envs:
            self._bad_ids(OUT_OF_RANGE, ids)
        if len(np.unique(ids)) != len(ids):
            self._bad_ids(DUPLICATE, ids)
        return np.array(ids, dtype=np.int64)

    def _bad_ids(self, code: int, ids: np.ndarray) -> None:
        """Raise the error for ``claim``'s ``code`` about ``ids``."""
        if code == OUT_OF_RANGE:
            raise ValueError(f"env_id out of range [0, {self.num_envs}): {ids}")
        if code == DUPLICATE:
            raise ValueError(f"env_id has duplicates: {ids}")
        busy = [int(e) for e in ids if self._outstanding[e]] or [int(self._bad[0])]
        raise APIUsageError(f"send to envs {busy} whose previous results were not received "
                            f"yet (recv first)")

    def _enqueue(self, ids: np.ndarray, cmd: int, claimed: bool = False) -> None:
        """Hand ``ids`` to their workers, ``batch_size`` at a time. Sync: each chunk gets an
        output block with results in ``ids`` order; async: results take slots as they finish.
        ``claimed``: :func:`~gristmill.kernels.dispatch.claim` already marked them busy."""
        B = self.batch_size
        if len(ids) > B:
            for i in range(0, len(ids), B):
                try:
                    self._enqueue(ids[i:i + B], cmd, claimed)
                except APIUsageError:
                    if claimed:  # the chunks not sent are not busy
                        self._outstanding[ids[i + B:]] = False
                    raise
            return
        n = len(ids)
        if self.is_async:
            base = -1  # the workers claim output slots as steps finish
        else:
            if len(self._pending) >= self.num_blocks - 1:
                if claimed:
                    self._outstanding[ids] = False
                raise APIUsageError(f"{len(self._pending)} batches requested and not "
                                    f"received; recv first")
            seq = self._req_seq
            self._req_seq += 1
            self._a["expected"][seq % self.num_blocks] = n
            self._pending.append((seq, n))
            base = seq * B  # result i goes to slot base + i
        if not claimed:
            self._outstanding[ids] = True
        self._n_outstanding += n
        counts = self._counts
        dispatch(ids, self._worker_of, self._ring, self._head, cmd, base, counts)
        post = self._sig.post
        for w, k in enumerate(counts.tolist()):
            if k:
                post(w)

    def async_reset(self) -> None:
        """Reset every env without waiting; results come from :meth:`recv`."""
        self._check_open()
        if self._n_outstanding:
            raise APIUsageError(
                f"async_reset with {self._n_outstanding} results still outstanding: recv them "
                f"first, or call reset() (which drains them)")
        self._started = True
        self._enqueue(self.all_env_ids, CMD_RESET)

    def _drain(self) -> None:
        """Wait until no worker has work left, then forget all outstanding results."""
        a, sig = self._a, self._sig
        deadline = time.monotonic() + (self.step_timeout or 600.0)
        while True:
            busy = any(int(a["progress"][w, _worker.P_TAIL]) != int(a["head"][w, 0])
                       for w in range(self.num_workers))
            if not busy:
                break
            self._check_workers()
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not finish their work while draining")
            time.sleep(0.001)
        for b in range(self.num_blocks):
            while sig.trywait(self.num_workers + b):
                pass
        a["masks"][:] = 0
        if self.is_async:  # the next claim starts the block after the last one claimed
            B = self.batch_size
            self._recv_seq = -(-int(a["cursor"][0]) // B)
            a["cursor"][0] = self._recv_seq * B
        self._pending.clear()
        self._outstanding[:] = False
        self._n_outstanding = 0

    def reset(self, env_id=None, seed: int | list[int] | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Reset ``env_id`` (default: all) and return ``(obs, info)``.

        Results still outstanding are drained (discarded) first. Sync mode returns the reset
        envs in ``env_id`` order; async mode returns the first ``batch_size`` to finish (as
        EnvPool). ``seed``: an int (env ``i`` gets ``seed + i``) or one seed per env.
        ``options={"reset_mask": mask}`` (Gymnasium) selects envs by a boolean mask.
        """
        self._check_open()
        if options and "reset_mask" in options:
            if env_id is not None:
                raise ValueError("give env_id or options['reset_mask'], not both")
            env_id = np.flatnonzero(np.asarray(options["reset_mask"]))
        ids = self._ids(env_id)
        if self._n_outstanding:
            self._drain()
        if seed is not None:
            s = np.asarray(seed, dtype=np.int64)
            self._a["seeds"][ids] = s + ids if s.ndim == 0 else s
        self._started = True
        self._enqueue(ids, CMD_RESET)
        obs, _, _, _, info = self.recv()
        return obs, info

    def send(self, actions, env_id=None) -> None:
        """Send ``actions[i]`` to env ``env_id[i]`` (default: all envs); returns at once."""
        self._check_open()
        if not self._started:
            raise APIUsageError("send before reset: call reset() or async_reset() first")
        ids = self._id_array(env_id)
        a = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
        want = (len(ids),) + self._act_shape
        if a.shape != want:
            raise ValueError(f"actions have shape {a.shape}, expected {want} for "
                             f"{len(ids)} envs with action space {self.single_action_space}")
        if a.dtype.kind not in self._act_kind:
            kind = "floating" if self._act_kind == "f" else "integer"
            raise ValueError(f"actions have dtype {a.dtype}, expected a {kind} dtype for "
                             f"action space {self.single_action_space}")
        # one pass: range, duplicates, not busy -- then mark the envs busy
        code = claim(ids, self._outstanding, self._bad)
        if code != OK:
            self._bad_ids(code, ids)
        try:
            if len(ids) == self.num_envs:
                self._act[...] = a
            else:
                self._act[ids] = a
        except BaseException:
            self._outstanding[ids] = False
            raise
        self._enqueue(ids, CMD_STEP, claimed=True)

    def recv(self):
        """Wait for the next batch; returns ``(obs, rew, terminated, truncated, info)`` views."""
        self._check_open()
        if not self._started:
            raise APIUsageError("recv before reset: call reset() or async_reset() first")
        if self.is_async:
            return self._recv_async()
        if not self._pending:
            raise APIUsageError("recv with nothing outstanding: send (or step) first")
        seq, n = self._pending[0]
        b = seq % self.num_blocks
        self._wait_block(b, n)
        self._pending.popleft()
        return self._take(b, n)

    def _wait_block(self, b: int, n: int) -> None:
        """Until block ``b`` holds ``n`` results (slot book: :meth:`Slots.ready`). Sleeps on
        the block's semaphore when its completion is posted, else polls: a partial async
        batch (nobody posts for it), a wake-up without the results (a post that a worker
        killed earlier left), or after a worker died (it may have completed the block
        without posting)."""
        sem = self.num_workers + b
        ready = self._slots.ready
        poll = n < self.batch_size and self.is_async
        deadline = None if self.step_timeout is None else time.monotonic() + self.step_timeout
        while True:
            if poll:
                if ready(b, n):
                    return
                time.sleep(0.0005)
            elif self._sig.wait(sem, timeout=0.25, spin=self.spin):
                if ready(b, n):
                    return
                poll = True
            elif ready(b, n):
                return
            if self._check_workers():
                poll = True
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"no batch within step_timeout={self.step_timeout} s; outstanding envs: "
                    f"{np.flatnonzero(self._outstanding).tolist()}")

    def _recv_async(self):
        now = time.monotonic()
        if now - self._last_check > 0.1:
            # other workers' envs can keep every batch full while one worker is dead: look
            # for failures even when no wait times out
            self._last_check = now
            self._check_workers()
        n = min(self.batch_size, self._n_outstanding)
        if n == 0:
            raise APIUsageError("recv with nothing outstanding: send (or step) first")
        b = self._recv_seq % self.num_blocks
        self._wait_block(b, n)
        self._recv_seq += 1
        if n < self.batch_size:
            # every result is in: no worker claims slots now, so realign the claims to the
            # next block's start
            self._cursor[0] = self._recv_seq * self.batch_size
        return self._take(b, n)

    def _take(self, b: int, n: int):
        # no worker writes block b again before its next round, which needs this one taken
        self._masks[b] = 0
        full = n == self.batch_size
        ids = self._block_views[b][4]["env_id"] if full else self._env_id[b, :n]
        self._outstanding[ids] = False
        self._n_outstanding -= n
        if np.count_nonzero(self._outstanding) != self._n_outstanding:
            # an env twice, or one not waiting for a result: the protocol makes this
            # impossible, and a stale or duplicate result must never reach the user
            self.close()
            raise RuntimeError(f"env pool internal error: block {b} holds envs {ids.tolist()}, "
                               f"not {n} distinct envs waiting for their results")
        if full:
            obs, rew, term, trunc, info = self._block_views[b]
            return obs, rew, term, trunc, dict(info)
        info: dict[str, Any] = {"env_id": ids, "elapsed_step": self._elapsed[b, :n]}
        for k, arr in self._info_arrays.items():
            info[k] = arr[b, :n]
        return self._obs[b, :n], self._rew[b, :n], self._term[b, :n], self._trunc[b, :n], info

    def step(self, actions, env_id=None):
        """``send(actions, env_id)`` then ``recv()``."""
        self.send(actions, env_id)
        return self.recv()

    def close(self) -> None:
        """Stop the workers and release the shared memory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._res.procs if p is not None]

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.num_envs

    def __repr__(self) -> str:
        mode = f"async batch {self.batch_size}" if self.is_async else "sync"
        return (f"EnvPool({self.task_id!r}, num_envs={self.num_envs}, {mode}, "
                f"num_workers={self.num_workers})")


def _spawn_worker(ctx, factory, arrays, layout, envs_of, seed, conns, w: int,
                  generation: int):
    """Start env-pool worker ``w`` (its pipe's read end goes to ``conns[w]``); a generation
    above 0 replaces a dead worker: its envs keep their seeding, and each one's first result
    reports ``truncated``."""
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    ids = [int(i) for i in envs_of[w]]
    p = ctx.Process(
        target=_worker.worker_main,
        args=(w, ids, factory, arrays, layout, seed if generation == 0 else None, send_conn,
              os.getpid(), generation > 0),
        name=f"gristmill-pool-{w}",
        daemon=True,
    )
    p.start()
    send_conn.close()
    conns[w] = recv_conn
    return p


def make(task_id, env_type: str = "gymnasium", num_envs: int = 1, batch_size: int | None = None,
         num_workers: int | None = None, seed: int | None = 42, *,
         start_method: str | None = None, on_error: str = "raise", max_restarts: int = 3,
         spin: int = 0, step_timeout: float | None = None, **task_kwargs) -> EnvPool:
    """Make an :class:`EnvPool`; a drop-in for ``envpool.make``.

    Args:
        task_id: ``"Pong-v5"`` (any ALE game, EnvPool's options as ``task_kwargs``:
            ``episodic_life``, ``reward_clip``, ``noop_max``, ``stack_num``, ...),
            ``"Ant-v5"`` (MuJoCo), any Gymnasium id, ``"module:factory"``, or a callable.
        env_type: ``"gymnasium"`` (``"gym"`` is an alias; both return 5-tuples).
        num_envs: envs in the pool.
        batch_size: results per ``recv``; ``< num_envs`` makes the pool asynchronous.
        num_workers: worker processes (default: one per core, at most ``num_envs``).
        seed: env ``i`` is seeded ``seed + i``.
        start_method: multiprocessing start method (default: the platform's; Linux ``fork``).
        on_error: ``"raise"`` or ``"restart"`` (up to ``max_restarts`` times).
        spin: semaphore polls before sleeping in ``recv`` (0: sleep at once; helps only
            with idle cores and sub-millisecond steps).
        step_timeout: seconds ``recv`` waits before raising ``TimeoutError`` (None: forever;
            dead workers are detected regardless).
    """
    factory = resolve(task_id, task_kwargs)
    return EnvPool(factory, num_envs, batch_size, num_workers, seed, start_method=start_method,
                   on_error=on_error, max_restarts=max_restarts, spin=spin,
                   step_timeout=step_timeout, env_type=env_type)

"""Batched policy inference for rollout workers, without torch.

The inference side of the rollout protocol (:mod:`gristmill.samplers.rollout_protocol`):
take every pending :class:`ActionRequest`, drop those of dead worker generations or of slots
that no longer hold the fill they name, gather the observations and recurrent states by
``(slot, t)`` into one group per policy present, hand the groups to ``policies_fn`` (one call
for all: a population can serve them in one forward pass) or else to ``policy_fn`` one by one,
scatter the outputs back into the slots, stamp each served step in ``acted`` and wake each
worker with :class:`ActionsReady`. The caller supplies the model, so this module needs only
NumPy; the Doom trainer runs it on a thread of its own.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from queue import Empty, Full

import numpy as np
from gristmill.samplers.rollout import RolloutChannels
from gristmill.samplers.rollout_protocol import ActionRequest, ActionsReady

__all__ = ["InferenceServer", "PoliciesFn", "PolicyFn"]

PolicyFn = Callable[[int, Mapping[str, np.ndarray], np.ndarray], Mapping]
"""``policy_fn(policy_id, obs, state) -> outputs``: ``obs`` maps each observation key to
``[N, *shape]``, ``state`` is ``[N, state_size]``; ``outputs`` holds NumPy arrays named as the
slot arrays they fill: ``actions`` ``[N, A]``, ``log_prob_actions`` ``[N]``, ``action_logits``
``[N, L]``, ``values`` ``[N]``, ``rnn_states`` ``[N, state_size]`` (after the step), and the
int ``version`` of the weights that acted."""

PoliciesFn = Callable[[list[tuple[int, Mapping[str, np.ndarray], np.ndarray]]], Sequence[Mapping]]
"""``policies_fn(groups) -> outputs``: ``groups`` is ``[(policy_id, obs, state), ...]``, one
per policy present in the batch (the arguments of :data:`PolicyFn`); ``outputs[i]`` is group
``i``'s :data:`PolicyFn` outputs."""

_OUTPUTS = ("actions", "log_prob_actions", "action_logits", "values")


class InferenceServer:
    """Serves the action requests of one sampling system.

    Args:
      channels: the :class:`~gristmill.samplers.rollout.RolloutChannels`.
      generations: each worker's live generation (the supervisor's list, read at each call).
      policy_fn: see :data:`PolicyFn`.
      policies_fn: see :data:`PoliciesFn`; when given, it serves every batch (one call per
        batch, whatever the policies in it) and ``policy_fn`` is not called.
      wait_s: after the first request, wait up to this long for more, until ``min_batch``
        samples are pending (bigger batches amortise a forward pass's fixed cost).
      min_batch: the batch the wait aims for (e.g. one split of every worker).
      lock: held while serving, so a supervisor restarting a worker (which frees its slots)
        never runs in the middle of a batch.
    """

    def __init__(
        self,
        channels: RolloutChannels,
        generations: Sequence[int],
        policy_fn: PolicyFn,
        wait_s: float = 0.0,
        min_batch: int = 1,
        lock: threading.Lock | None = None,
        policies_fn: PoliciesFn | None = None,
    ):
        self.ch, self.generations, self.policy_fn = channels, generations, policy_fn
        self.policies_fn = policies_fn or self._each_policy
        self.wait_s, self.min_batch = wait_s, min_batch
        self.lock = lock or threading.Lock()
        self.served_steps = 0
        self.counters: Counter = Counter()
        # answers a worker's queue did not take (its lock held by a stopped worker): retried,
        # never dropped while that worker generation lives
        self._undelivered: list[tuple[int, ActionsReady]] = []
        self._retry_at = 0.0

    def _each_policy(self, groups: list) -> list[Mapping]:
        return [self.policy_fn(*group) for group in groups]

    def _pending(self, timeout: float) -> list[ActionRequest]:
        requests = self.ch.requests
        try:
            msgs = requests.get_many(timeout=timeout)
        except Empty:
            return []
        if self.wait_s > 0:
            deadline = time.perf_counter() + self.wait_s
            while sum(len(m.slots) for m in msgs) < self.min_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    msgs += requests.get_many(timeout=left)
                except Empty:
                    break
        return msgs

    def _live(self, msg) -> bool:
        a = self.ch.arrays
        if not isinstance(msg, ActionRequest):
            self.counters["requests_dropped/malformed"] += 1
            return False
        if msg.generation != self.generations[msg.worker]:
            self.counters["requests_dropped/dead_worker"] += 1
            return False
        slots = np.asarray(msg.slots, dtype=np.int64)
        if not np.array_equal(a["slot_fill"][slots], np.asarray(msg.fills, dtype=np.int64)):
            self.counters["requests_dropped/stale_fill"] += 1
            return False
        return True

    def serve(self, timeout: float) -> int:
        """Serve what is pending (waiting up to ``timeout`` for a first request); returns the
        number of agent-steps served."""
        msgs = self._pending(timeout)
        if self._undelivered and time.monotonic() >= self._retry_at:
            with self.lock:
                self._deliver([])
        if not msgs:
            return 0
        with self.lock:
            return self._serve(msgs)

    def _deliver(self, answers: list[tuple[int, ActionsReady]]) -> None:
        """Put each answer on its worker's queue, the ones left over from before first.

        A put waits at most one lock slice (~0.1 s): a worker stopped (not dead) while it
        held its queue's lock would otherwise block this thread, and with it every worker's
        inference and the supervisor that must kill the stopped one. What is not taken is
        retried about once a second until the worker takes it or its generation ends."""
        pending, self._undelivered = self._undelivered + answers, []
        blocked: set[int] = set()
        for w, answer in pending:
            if answer.generation != self.generations[w]:
                self.counters["answers_dropped/dead_worker"] += 1
                continue
            if w not in blocked:
                try:
                    self.ch.actions[w].put_nowait(answer)
                    continue
                except Full:
                    blocked.add(w)  # its later answers wait too: a worker reads them in order
            self.counters["answers_delayed/queue_blocked"] += 1
            self._undelivered.append((w, answer))
        self._retry_at = time.monotonic() + 1.0

    def _serve(self, msgs: list) -> int:
        a, layout = self.ch.arrays, self.ch.layout
        msgs = [m for m in msgs if self._live(m)]
        if not msgs:
            return 0
        slots = np.concatenate([np.asarray(m.slots, dtype=np.int64) for m in msgs])
        ts = np.concatenate([np.full(len(m.slots), m.t, dtype=np.int64) for m in msgs])
        fills = np.concatenate([np.asarray(m.fills, dtype=np.int64) for m in msgs])
        policies = a["policy_id"][slots, ts]
        groups, where = [], []
        for pid in np.unique(policies):
            rows = np.flatnonzero(policies == pid)
            s, t = slots[rows], ts[rows]
            obs = {k: a[f"obs_{k}"][s, t] for k in layout.obs}
            state = a["rnn_states"][s, t]  # a copy (fancy index)
            # the one writer of rnn_states[t + 1] is this server: an episode that ended at
            # t - 1 is reset here, on read (a slot's step 0 comes reset from its worker)
            state[(t > 0) & (a["dones"][s, np.maximum(t - 1, 0)] != 0)] = 0.0
            groups.append((int(pid), obs, state))
            where.append((s, t))
        outs = self.policies_fn(groups)
        if len(outs) != len(groups):
            raise ValueError(f"policies_fn returned {len(outs)} outputs for {len(groups)} groups")
        for (s, t), out in zip(where, outs):
            for key in _OUTPUTS:
                a[key][s, t] = out[key]
            a["rnn_states"][s, t + 1] = out["rnn_states"]
            a["policy_version"][s, t] = out["version"]
        a["acted"][slots, ts] = fills  # last: the stamp says every output above is in place
        self._deliver([(m.worker, ActionsReady(m.generation, m.split, m.t)) for m in msgs])
        self.served_steps += len(slots)
        return len(slots)

"""The learner thread of a Doom run: finished trajectories in, trained policies out.

Takes finished trajectory slots off the trajectory queue, lets the
:class:`~gristmill.samplers.rollout_protocol.SlotLedger` accept them (once each, every step
served), routes each to the policy that acted at its first step (Sample Factory's routing; its
steps of another policy, after a switch at an episode end, are masked by that learner's
``policy_id`` check; a frozen snapshot's trajectories go back untrained), and trains a policy
as soon as it has a batch: gather the slots into the learner's batch, hand them back to
circulation, train, publish the new weights. On a small CPU box one thread serves every policy
in turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import Empty

import numpy as np
import torch
from gristmill.apps.doom.policies import PolicySet
from gristmill.samplers.rollout import RolloutChannels
from gristmill.samplers.rollout_protocol import SlotLedger

__all__ = ["BATCH_ARRAYS", "LearnerLoop", "gather_batch"]

BATCH_ARRAYS = (
    "rnn_states",
    "actions",
    "log_prob_actions",
    "action_logits",
    "values",
    "rewards",
    "dones",
    "time_outs",
    "policy_version",
    "policy_id",
    "valids",
)
"""Slot arrays the learner trains on: their names are :mod:`gristmill.learners.appo`'s keys."""


def gather_batch(channels: RolloutChannels, slots) -> dict:
    """The learner's batch for ``slots`` ``[N]``, copied out of shared memory."""
    a = channels.arrays
    idx = np.asarray(slots, dtype=np.int64)

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(a[key][idx])  # fancy index: a copy

    batch = {key: t(key) for key in BATCH_ARRAYS}
    batch["obs"] = {k: t(f"obs_{k}") for k in channels.layout.obs}
    for key in ("dones", "time_outs", "valids"):
        batch[key] = batch[key].bool()
    batch["policy_id"] = batch["policy_id"].long()
    return batch


class LearnerLoop:
    """Trains the policies of ``policies`` on the trajectories of ``channels``.

    Args:
      trajs_per_batch: trajectories per training batch (``batch_size / rollout``).
      threads: torch intra-op threads of the learner thread.
      on_trained: ``on_trained(policy, stats)`` after each training step (stats may be None).
      done: ``done() -> bool``, asked after each step: the frame budget is spent.
    """

    def __init__(
        self,
        channels: RolloutChannels,
        ledger: SlotLedger,
        policies: PolicySet,
        trajs_per_batch: int,
        stop_event: threading.Event,
        threads: int = 1,
        on_trained: Callable[[int, dict | None], None] | None = None,
        done: Callable[[], bool] | None = None,
    ):
        self.ch, self.ledger, self.policies = channels, ledger, policies
        self.trajs_per_batch = trajs_per_batch
        self.stop_event = stop_event
        self.threads = threads
        self.on_trained = on_trained
        self.done = done
        self.pending: list[list[int]] = [[] for _ in range(len(policies))]
        self.lock = threading.Lock()  # the trainer may save while we train

    def pending_slots(self) -> list[int]:
        """Accepted slots waiting for a full batch (for the books at the end of a run)."""
        return [s for p in self.pending for s in p]

    def run(self) -> None:
        # OpenMP thread counts are per calling thread: the learner sets its own.
        torch.set_num_threads(self.threads)
        a = self.ch.arrays
        while not self.stop_event.is_set():
            want = self.trajs_per_batch - min(len(p) for p in self.pending)
            try:
                # Only as many as a batch needs: the rest waits in the queue, so the sampler
                # stays at most one batch ahead (policy lag ~1 version, as Sample Factory).
                got = self.ch.trajectories.get_many(timeout=0.1, max_messages=max(1, want))
            except Empty:
                continue
            frozen = []
            for slot in self.ledger.accept(got):
                k = int(a["policy_id"][slot, 0])
                if k < len(self.pending):
                    self.pending[k].append(slot)
                else:  # a frozen snapshot's experience: not trained on
                    frozen.append(slot)
            if frozen:
                self.ledger.discard(frozen, "frozen_policy")
            for k, pending in enumerate(self.pending):
                while len(pending) >= self.trajs_per_batch and not self.stop_event.is_set():
                    self._train(k, pending[: self.trajs_per_batch])
                    del pending[: self.trajs_per_batch]
                    if self.done is not None and self.done():
                        self.stop_event.set()

    def _train(self, k: int, slots: list[int]) -> None:
        batch = gather_batch(self.ch, slots)
        self.ledger.consume(slots)
        with self.lock:
            stats = self.policies.learners[k].train(batch)
        self.policies.publish(k)
        if self.on_trained is not None:
            self.on_trained(k, stats)

"""The rollout protocol's messages and the life cycle of a trajectory slot.

Workers, inference and the learner share trajectory slots (:mod:`gristmill.samplers.rollout`).
Each time a worker takes a slot it gives that *occupancy* a fill id, unique in the run
(``worker << 48 | generation << 32 | count``), and every message about the slot names it:

- :class:`ActionRequest` (worker -> inference): "step ``t`` of these slots, filled as these
  fill ids, needs actions"; inference serves it only if every slot still holds that fill;
- inference writes the outputs, then stamps ``acted[slot, t] = fill``, then answers with
  :class:`ActionsReady` on the worker's own queue; the worker steps only a split whose every
  slot is stamped for its current fill at its current ``t``, so an answer left over from a
  dead worker (or any stray one) is recognised and ignored, never acted on;
- :class:`TrajectoryReady` (worker -> learner): a slot finished as this fill; the learner
  accepts it once (:meth:`SlotLedger.accept`), and only if every step was acted on for it.

Slot states (``slot_state``): ``FREE`` (on the free queue), ``FILLING`` (a worker's, owner in
``slot_owner``), ``FINISHED`` (handed to the learner, still owned by the worker until the
learner takes it), ``LEARNING`` (the learner's). When a worker dies, :meth:`SlotLedger.reclaim`
returns its ``FILLING`` slots to the free queue and re-sends its ``FINISHED`` ones (the
learner drops the copy of one it had already taken: same fill id), exactly once each; a slot
the worker had taken off the free queue but not yet marked is found by an audit.

Why fill ids: before them, an answer to a dead worker's request waited on the worker's action
queue and its restarted successor took it as the answer to its own first request, stepped its
games with actions nobody had computed for them, and from then on kept two answers in flight:
every later step ran on the actions of a step not yet served. The learner trained on actions
that were not the ones taken, and learning stopped (issue 20).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from queue import Empty
from typing import NamedTuple

import numpy as np

__all__ = [
    "FREE",
    "FILLING",
    "FINISHED",
    "LEARNING",
    "ActionRequest",
    "ActionsReady",
    "TrajectoryReady",
    "fill_id",
    "SlotLedger",
]

FREE, FILLING, FINISHED, LEARNING = 0, 1, 2, 3
NO_FILL = -1


def fill_id(worker: int, generation: int, count: int) -> int:
    """The id of a worker's ``count``-th slot occupancy in ``generation`` (unique in a run)."""
    return (int(worker) << 48) | ((int(generation) & 0xFFFF) << 32) | (int(count) & 0xFFFFFFFF)


class ActionRequest(NamedTuple):
    """Worker -> inference: step ``t`` of ``split`` needs actions for ``slots`` (as ``fills``)."""

    worker: int
    generation: int
    split: int
    t: int
    slots: tuple
    fills: tuple


class ActionsReady(NamedTuple):
    """Inference -> one worker: the request of ``generation`` for ``split`` at ``t`` is served."""

    generation: int
    split: int
    t: int


class TrajectoryReady(NamedTuple):
    """Worker -> learner: ``slot`` holds a finished trajectory, filled as ``fill``."""

    slot: int
    fill: int


class SlotLedger:
    """The supervisor's side of slot circulation: what the learner accepts and frees, what a
    dead worker's restart reclaims, and the counts of both (``counters``).

    Args:
      arrays: the channels' shared arrays (``slot_state``, ``slot_owner``, ``slot_fill``,
        ``acted``, ``worker_taking``).
      free_slots, trajectories: the channels' free and trajectory queues.

    ``accept`` and ``free`` run on the learner's thread, ``reclaim`` on the supervisor's; the
    lock keeps a reclaim audit from reading the free queue while the learner refills it.
    """

    def __init__(self, arrays, free_slots, trajectories):
        self.a, self.free_slots, self.trajectories = arrays, free_slots, trajectories
        self.lock = threading.Lock()
        self.counters: Counter = Counter()

    def accept(self, msgs) -> list[int]:
        """The slots of ``msgs`` (:class:`TrajectoryReady`) that are finished trajectories of a
        live occupancy with every step served; they become the learner's. The rest are
        counted by reason and dropped (a slot whose steps were not all served is freed)."""
        a = self.a
        ok: list[int] = []
        for msg in msgs:
            slot, fill = int(msg.slot), int(msg.fill)
            if a["slot_state"][slot] != FINISHED or a["slot_fill"][slot] != fill:
                self.counters["trajectories_dropped/duplicate"] += 1
                continue
            a["slot_state"][slot] = LEARNING
            a["slot_owner"][slot] = -1
            if not np.all(a["acted"][slot] == fill):
                self.counters["trajectories_dropped/unserved_step"] += 1
                self.counters["steps_dropped/unserved_step"] += self._served(slot)
                self.free([slot])
                continue
            ok.append(slot)
        self.counters["trajectories_accepted"] += len(ok)
        return ok

    def _served(self, slot: int) -> int:
        """Steps of ``slot``'s current fill that inference served."""
        return int(np.count_nonzero(self.a["acted"][slot] == self.a["slot_fill"][slot]))

    def consume(self, slots) -> None:
        """The learner trains on ``slots`` (accepted ones): count their steps, free them."""
        a = self.a
        self.counters["steps_trained"] += len(slots) * a["acted"].shape[1]
        self.counters["steps_masked/env_crash"] += int(np.count_nonzero(a["valids"][slots] == 0))
        self.free(slots)

    def discard(self, slots, reason: str) -> None:
        """Accepted ``slots`` that nobody trains on (e.g. a frozen opponent's): count, free."""
        a = self.a
        self.counters[f"steps_not_trained/{reason}"] += len(slots) * a["acted"].shape[1]
        self.free(slots)

    def books(self, served: int, pending=()) -> dict:
        """Where every step inference served went, once the workers have stopped: trained,
        not trained (:meth:`discard`), dropped (a trajectory refused), lost with a dead
        worker's unfinished slot, or still in flight (slots being filled or waiting for the
        learner, ``pending`` accepted but not trained). ``balanced``: they add up to ``served``
        exactly."""
        a, c = self.a, self.counters
        held = np.flatnonzero(np.isin(a["slot_state"], (FILLING, FINISHED))).tolist()
        in_flight = sum(self._served(s) for s in [*held, *pending])
        out = {
            "served": int(served),
            "trained": c["steps_trained"],
            "not_trained": sum(v for k, v in c.items() if k.startswith("steps_not_trained/")),
            "dropped": c["steps_dropped/unserved_step"],
            "lost_with_worker": c["steps_lost/worker_died"],
            "in_flight": in_flight,
        }
        out["balanced"] = out["served"] == sum(v for k, v in out.items() if k != "served")
        return out

    def free(self, slots) -> None:
        """Return the learner's ``slots`` to the free queue."""
        with self.lock:
            for s in slots:
                self.a["slot_state"][s] = FREE
                self.a["slot_fill"][s] = NO_FILL
                self.free_slots.put(int(s))

    def reclaim(self, worker: int) -> list[int]:
        """After ``worker`` died (its process is gone): return its unfinished slots to the free
        queue and re-send its finished ones; returns the slots freed. Each slot once."""
        a = self.a
        freed = []
        with self.lock:
            for s in np.flatnonzero(a["slot_owner"] == worker).tolist():
                state = int(a["slot_state"][s])
                if state == FILLING:
                    self.counters["steps_lost/worker_died"] += self._served(s)
                    a["slot_owner"][s] = -1
                    a["slot_state"][s] = FREE
                    a["slot_fill"][s] = NO_FILL
                    self.free_slots.put(s)
                    freed.append(s)
                    self.counters["slots_reclaimed/unfinished"] += 1
                elif state == FINISHED:
                    # It may or may not have reached the queue: the learner takes one copy.
                    self.trajectories.put(TrajectoryReady(s, int(a["slot_fill"][s])))
                    self.counters["slots_reclaimed/finished"] += 1
            if a["worker_taking"][worker]:
                freed += self._audit_free_queue()
                a["worker_taking"][worker] = 0
        return freed

    def _audit_free_queue(self) -> list[int]:
        """A worker died while taking a slot off the free queue: a ``FREE`` slot that is not on
        the queue after a short wait (live workers finish marking theirs within microseconds)
        was lost with it. Put the queue back, plus those."""
        a = self.a
        queued: list[int] = []
        while True:
            try:
                queued += [int(s) for s in self.free_slots.get_many_nowait()]
            except Empty:
                break
        missing = set(np.flatnonzero(a["slot_state"] == FREE).tolist()) - set(queued)
        if missing:
            time.sleep(0.2)
            missing = {s for s in missing if a["slot_state"][s] == FREE}
        for s in queued + sorted(missing):
            self.free_slots.put(s)
        self.counters["slots_reclaimed/lost_in_take"] += len(missing)
        return sorted(missing)

"""Hand a batch of env ids to per-worker command rings in one pass (Numba).

The env pool's main process sends a batch of actions by appending one item
``(env_id, cmd, block, pos)`` per env to the ring of the worker that owns the env. In async
mode every batch is a new permutation of ids (envs return in the order they finish), so the
NumPy route -- validate (range, duplicates, not already busy), group by worker, copy each
group into its ring -- costs ~20 small NumPy calls, ~70 us per batch of 32 on the reference
box: 2 us of the main process's time per env step. These two kernels do it in two calls.

Each kernel has a plain NumPy/Python reference (``*_reference``) with the same contract; the
tests compare them on random batches.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["OK", "BUSY", "DUPLICATE", "OUT_OF_RANGE", "claim", "claim_reference", "dispatch",
           "dispatch_reference"]

OK, OUT_OF_RANGE, DUPLICATE, BUSY = 0, -1, -2, -3


@njit(cache=True, nogil=True, boundscheck=False)
def claim(ids, busy, bad):  # pragma: no cover - compiled
    """Mark ``busy[ids]`` True if every id is in ``[0, len(busy))``, appears once and is not
    busy yet. Returns :data:`OK`, else the first problem's code (:data:`OUT_OF_RANGE`,
    :data:`DUPLICATE`, :data:`BUSY`) with the offending id in ``bad[0]`` and ``busy`` as it
    was."""
    n = busy.shape[0]
    for i in range(ids.shape[0]):
        e = ids[i]
        if e < 0 or e >= n:
            bad[0] = e
            return OUT_OF_RANGE
    for i in range(ids.shape[0]):
        e = ids[i]
        if busy[e]:
            # an id of this batch seen before (duplicate) or busy from an earlier send
            code = BUSY
            for j in range(i):
                if ids[j] == e:
                    code = DUPLICATE
            for j in range(i):
                busy[ids[j]] = False
            bad[0] = e
            return code
        busy[e] = True
    return OK


def claim_reference(ids: np.ndarray, busy: np.ndarray, bad: np.ndarray) -> int:
    """:func:`claim` in NumPy."""
    if len(ids) and (ids.min() < 0 or ids.max() >= len(busy)):
        bad[0] = ids[(ids < 0) | (ids >= len(busy))][0]
        return OUT_OF_RANGE
    seen: set[int] = set()
    for e in ids.tolist():
        if busy[e] or e in seen:
            bad[0] = e
            return DUPLICATE if e in seen else BUSY
        seen.add(e)
    busy[ids] = True
    return OK


@njit(cache=True, nogil=True, boundscheck=False)
def dispatch(ids, worker_of, ring, head, cmd, block, counts):  # pragma: no cover - compiled
    """Append ``(ids[p], cmd, block, p)`` to ring ``worker_of[ids[p]]`` for each position
    ``p`` (rings ``[W, cap, 4]`` int64, write index ``head[w, 0]``, items in batch order per
    worker), then advance each ``head[w, 0]`` -- after all its items are written, so a worker
    never reads a half-written item. ``counts[w]`` (int64 ``[W]``) returns how many items
    worker ``w`` got (post its semaphore if > 0)."""
    cap = ring.shape[1]
    counts[:] = 0
    for p in range(ids.shape[0]):
        e = ids[p]
        w = worker_of[e]
        r = ring[w, (head[w, 0] + counts[w]) % cap]
        r[0] = e
        r[1] = cmd
        r[2] = block
        r[3] = p
        counts[w] += 1
    for w in range(counts.shape[0]):
        head[w, 0] += counts[w]


def dispatch_reference(ids, worker_of, ring, head, cmd, block, counts) -> None:
    """:func:`dispatch` in NumPy."""
    cap = ring.shape[1]
    wof = worker_of[ids]
    for w in range(len(counts)):
        sel = np.flatnonzero(wof == w)
        counts[w] = len(sel)
        slots = (head[w, 0] + np.arange(len(sel))) % cap
        ring[w, slots] = np.stack(
            [ids[sel], np.full(len(sel), cmd), np.full(len(sel), block), sel], axis=1)
        head[w, 0] += len(sel)

"""Child-process bodies for the shared-memory tests.

They live in a plain module (imported as ``shm_workers`` with this folder on ``sys.path``)
so that ``spawn`` children can import them by name; the test modules themselves are loaded
by pytest's importlib mode and are not importable from a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import struct
import time

import numpy as np


def fill_array(shared, value) -> None:
    """Write ``value`` everywhere in an (unpickled, attached) SharedArray."""
    assert not shared.is_owner
    shared.array[...] = value


_KEEP = []


def create_and_return(names) -> None:
    """Create an array and a queue, keep them referenced, and just return (mp child exit)."""
    from gristmill.kernels.shm import SharedArray
    from gristmill.kernels.shmqueue import Queue

    a = SharedArray.create(10, np.float32)
    q = Queue(1024)
    _KEEP.extend([a, q])
    names.put([a.name, q.name])


def attach_and_sleep(shared, ready) -> None:
    """Attach (by unpickling), signal, then wait to be killed."""
    shared.array[0] = 1
    ready.set()
    time.sleep(600)


def make_message(producer: int, seq: int, kind: int):
    """Message ``seq`` of ``producer``; its type cycles through bytes/array/pickle."""
    if kind % 3 == 0:
        return struct.pack("<ii", producer, seq) + bytes(seq % 50)
    if kind % 3 == 1:
        return np.array([producer, seq], dtype=np.int64)
    return {"p": producer, "s": seq, "pad": "x" * (seq % 7)}


def parse_message(msg) -> tuple[int, int]:
    if isinstance(msg, bytes):
        return struct.unpack("<ii", msg[:8])
    if isinstance(msg, np.ndarray):
        assert msg.dtype == np.int64 and msg.shape == (2,)
        return int(msg[0]), int(msg[1])
    assert isinstance(msg, dict)
    return msg["p"], msg["s"]


def producer(q, producer_id: int, n: int, batch: int = 1) -> None:
    """Send ``n`` messages tagged (producer_id, seq) in order, singly or via put_many."""
    seq = 0
    while seq < n:
        if batch == 1:
            q.put(make_message(producer_id, seq, seq))
            seq += 1
        else:
            k = min(batch, n - seq)
            q.put_many([make_message(producer_id, s, s) for s in range(seq, seq + k)])
            seq += k


def consumer(q, results, stop_after: int | None = None, use_many: bool = False) -> None:
    """Receive until a ``None`` sentinel; report the (producer, seq) pairs in arrival order."""
    got = []
    while True:
        msgs = q.get_many(max_messages=7) if use_many else [q.get()]
        stops = 0
        for m in msgs:
            if m is None:
                stops += 1
                continue
            got.append(parse_message(m))
        if stops:
            if stops > 1:  # one sentinel per consumer: hand back the others'
                q.put_many([None] * (stops - 1))
            break
    results.put(got)


def checksummed(size: int, rng: random.Random) -> bytes:
    body = rng.randbytes(size)
    return hashlib.blake2b(body, digest_size=8).digest() + body


def is_intact(msg: bytes) -> bool:
    return hashlib.blake2b(msg[8:], digest_size=8).digest() == msg[:8]


def churn(q, seed: int, pause_in_put: float = 0.0) -> None:
    """Put and get checksummed messages of random sizes forever (until killed).

    ``pause_in_put`` > 0 makes every put sleep that long inside the critical section (lock
    held, message written, not committed), so that a kill usually lands there.
    """
    rng = random.Random(seed)
    if pause_in_put:
        from gristmill.kernels._shmqueue import set_debug_put_pause

        set_debug_put_pause(pause_in_put)
    while True:
        for _ in range(rng.randint(1, 4)):
            msg = checksummed(rng.randint(0, 3000), rng)
            if rng.random() < 0.3:
                q.put_many([msg, checksummed(rng.randint(0, 100), rng)])
            else:
                q.put(msg)
        for _ in range(rng.randint(1, 4)):
            try:
                if rng.random() < 0.3:
                    for m in q.get_many(block=False, max_messages=3):
                        assert is_intact(m)
                else:
                    assert is_intact(q.get_nowait())
            except queue.Empty:
                pass
            except BaseException:  # a corrupt message: die with a telling status
                os._exit(3)


def block_in_get(q) -> None:
    """Sleep in get() on an empty queue until killed."""
    q.get()


def pause_inside_put(q) -> None:
    """Test hook: hold the queue's lock inside put (mid-message) until killed."""
    from gristmill.kernels._shmqueue import set_debug_put_pause

    set_debug_put_pause(600.0)
    q.put(b"half-written message that must never be seen")

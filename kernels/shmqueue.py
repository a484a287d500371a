"""A multi-producer multi-consumer queue across processes, in named shared memory.

``Queue`` follows the stdlib's ``queue.Queue``/``multiprocessing.Queue`` semantics --
``put/get`` block until possible (``timeout=None`` waits forever; *not* faster-fifo's 10 s
default), ``put_nowait/get_nowait``, ``queue.Full``/``queue.Empty``, ``qsize/empty/full`` --
plus faster-fifo's batch calls: ``put_many`` (atomic: all messages or none) and
``get_many(max_messages=..., max_bytes=128 KiB)`` (whatever is queued, up to the caps, under one
lock; the first message is always taken).

Messages: ``bytes``, ``bytearray`` and plain ``np.ndarray`` s of simple dtypes travel without
pickling (a type tag plus dtype/shape header; arrays come back as arrays, C-ordered); anything
else is pickled (or goes through ``dumps``/``loads`` if given). A message that can never fit
(larger than ``max_size_bytes`` with its 8-byte record header, or a ``put_many`` batch above
the capacity or ``maxsize``) raises ``ValueError`` at once instead of blocking forever.

Processes: the queue lives in one ``gristmill_<pid>_q...`` segment of ``/dev/shm`` owned by its
creator exactly like a :class:`~gristmill.kernels.shm.SharedArray` (unlinked on close, garbage
collection, exit, Ctrl-C, SIGTERM; ``gristmill-shm clean`` for owners killed by SIGKILL). The
handle pickles, so it can be passed to ``spawn`` children (they attach by name); ``fork``
children inherit it. The lock is a robust process-shared pthread mutex and the ring state is
committed last, so a process SIGKILLed inside ``put``/``get`` never wedges the others: its
half-written message is discarded. The GIL is released whenever a call may wait.

The C core is ``shmqueue_core.h``; ``_shmqueue.pyx`` is the Cython shell.
"""

from __future__ import annotations

import queue as _stdqueue

from gristmill.kernels._shmqueue import HEADER_SIZE, QueueCore, capacity_for
from gristmill.kernels.args import whole
from gristmill.kernels.shm import SharedSegment

__all__ = ["Empty", "Full", "Queue"]

Empty = _stdqueue.Empty
Full = _stdqueue.Full

DEFAULT_MAX_SIZE_BYTES = 1_000_000


class Queue(QueueCore):
    """Shared-memory MPMC queue with stdlib semantics.

    Args:
        max_size_bytes: ring-buffer size in bytes. A message of ``n`` bytes takes
            ``8 + n`` rounded up to a multiple of 8 (arrays add a small dtype/shape header,
            ``16 + 8 * ndim`` bytes for typical dtypes).
        maxsize: maximum number of messages (0 = bounded by bytes only), as in the stdlib.
        loads, dumps: serializers for objects that are not bytes/bytearray/ndarray
            (default: pickle at the highest protocol). Must be picklable to cross ``spawn``.
        name: segment name (must start with ``gristmill_``); default ``gristmill_<pid>_q<hex>``.
    """

    def __init__(
        self,
        max_size_bytes: int = DEFAULT_MAX_SIZE_BYTES,
        maxsize: int = 0,
        loads=None,
        dumps=None,
        *,
        name: str | None = None,
    ):
        max_size_bytes = whole("max_size_bytes", max_size_bytes)
        maxsize = whole("maxsize", maxsize)
        if max_size_bytes < 16:
            raise ValueError(f"max_size_bytes must be >= 16, got {max_size_bytes}")
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0 (0 = unbounded), got {maxsize}")
        if maxsize >= 2**63:
            raise ValueError(f"maxsize must be < 2**63, got {maxsize}")
        cap = -(-max_size_bytes // 8) * 8
        try:
            self._seg = SharedSegment.create(HEADER_SIZE + cap, name=name, kind="q")
        except (ValueError, OSError, OverflowError) as exc:
            msg = f"cannot make a queue of max_size_bytes={max_size_bytes}: {exc}"
            raise type(exc)(msg) from exc
        try:
            self._bind(self._seg.mapping, True, maxsize, dumps, loads)
        except BaseException:
            self._seg.close()
            raise
        assert capacity_for(self._seg.size) == cap

    @classmethod
    def attach(cls, name: str, loads=None, dumps=None) -> Queue:
        """Open the existing queue ``name`` (as created by another process)."""
        self = cls.__new__(cls)
        self._seg = SharedSegment.attach(name)
        try:
            self._bind(self._seg.mapping, False, 0, dumps, loads)
        except BaseException:
            self._seg.close()
            raise
        return self

    @property
    def name(self) -> str:
        """Segment name in ``/dev/shm``; ``Queue.attach(name)`` opens it elsewhere."""
        return self._seg.name

    @property
    def is_owner(self) -> bool:
        return self._seg.is_owner

    def close(self) -> None:
        """Stop using this handle; the owner also unlinks the name. Idempotent.

        Other processes already attached keep working until they close too.
        """
        self._mark_closed()
        self._seg.unlink()

    def join_thread(self) -> None:
        """No-op, for ``multiprocessing.Queue`` compatibility (there is no feeder thread)."""

    def cancel_join_thread(self) -> None:
        """No-op, for ``multiprocessing.Queue`` compatibility."""

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        if self.closed:
            raise ValueError(f"cannot pickle closed queue {self.name!r}")
        loads = None if self.loads is _pickle_loads else self.loads
        dumps = None if self.dumps is _default_dumps else self.dumps
        return (Queue.attach, (self.name, loads, dumps))

    def __repr__(self) -> str:
        role = "owner" if self.is_owner else "attached"
        state = "closed" if self.closed else f"{self.qsize()} messages"
        return f"Queue({self.name!r}, capacity={self.capacity}, {role}, {state})"


def _lookup_defaults():
    import pickle

    from gristmill.kernels import _shmqueue

    return pickle.loads, _shmqueue._default_dumps


_pickle_loads, _default_dumps = _lookup_defaults()

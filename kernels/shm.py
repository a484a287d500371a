"""Named POSIX shared memory exposed as numpy arrays, owned and cleaned up.

A :class:`SharedArray` is one named segment in ``/dev/shm`` viewed as a numpy array. The process
that *creates* it owns it and unlinks the name on :meth:`SharedArray.close`, on garbage
collection, on ``with``-block exit (exceptions included), at interpreter exit (Ctrl-C included)
and on SIGTERM. Other processes *attach* by name (or receive a pickled handle: it unpickles as an
attached, non-owner view under both ``fork`` and ``spawn``) and never unlink.

Segments are named ``gristmill_<owner pid>_<hex>`` so that leftovers of owners that died
without cleaning up (SIGKILL, power loss) can be recognised; ``gristmill-shm list`` shows them
and ``gristmill-shm clean`` removes them (:mod:`gristmill.kernels.shm_cli`).

The arrays are plain numpy views of the mapping: ``torch.from_numpy(a.array)`` on the learner
side shares the memory without a copy. This module does not import torch.

:class:`SharedArrays` packs several named arrays into one segment (one name to pass around,
one file in ``/dev/shm``), each array 64-byte aligned.
"""

from __future__ import annotations

import atexit
import errno
import mmap
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterable, Mapping

import numpy as np
import posix_ipc

__all__ = [
    "PREFIX",
    "SharedArray",
    "SharedArrays",
    "SharedSegment",
    "make_name",
    "owned_names",
    "parse_owner_pid",
]

#: Prefix of every shared-memory name gristmill creates (as listed in ``/dev/shm``).
PREFIX = "gristmill_"
_NAME_RE = re.compile(r"^(?:sem\.)?gristmill_(\d+)_[0-9A-Za-z_]+$")
_ALIGN = 64

# name -> pid of the process that owns (must unlink) it. Cleared in forked children: they
# inherit the mapping, not the ownership.
_OWNED: dict[str, int] = {}
# Re-entrant: the SIGTERM handler may run while the main thread holds it.
_OWNED_LOCK = threading.RLock()
_SIGTERM_INSTALLED = False
_EXIT_HOOK_PID = 0


def make_name(kind: str = "") -> str:
    """A fresh segment name ``gristmill_<pid>_<kind><hex>`` (no leading slash)."""
    if not re.fullmatch(r"[a-z]*", kind):
        raise ValueError(f"kind must be lowercase letters, got {kind!r}")
    return f"{PREFIX}{os.getpid()}_{kind}{secrets.token_hex(6)}"


def parse_owner_pid(name: str) -> int | None:
    """The owner pid encoded in a gristmill segment name, or None if it is not one of ours."""
    m = _NAME_RE.match(name.lstrip("/"))
    return int(m.group(1)) if m else None


def owned_names() -> list[str]:
    """Names this process created and has not unlinked yet."""
    pid = os.getpid()
    with _OWNED_LOCK:
        return sorted(n for n, p in _OWNED.items() if p == pid)


def _posix(name: str) -> str:
    return "/" + name.lstrip("/")


def _unlink(name: str) -> None:
    """Unlink a segment this process owns; a name already gone is fine."""
    with _OWNED_LOCK:
        pid = _OWNED.get(name)
        if pid != os.getpid():
            return
        del _OWNED[name]
    try:
        posix_ipc.unlink_shared_memory(_posix(name))
    except posix_ipc.ExistentialError:
        pass


def _cleanup_all() -> None:
    for name in owned_names():
        _unlink(name)


def _after_fork_in_child() -> None:
    global _OWNED_LOCK
    _OWNED_LOCK = threading.RLock()  # another thread may have held it at fork time
    _OWNED.clear()


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in a subprocess test
    _cleanup_all()
    # Die of SIGTERM as the default action would, so the parent sees the usual status.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_handler() -> None:
    """Clean up on SIGTERM, but only where nobody chose a handler (default action = die)."""
    global _SIGTERM_INSTALLED
    if _SIGTERM_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _SIGTERM_INSTALLED = True
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter / no signals here
        pass


def _ensure_exit_hooks() -> None:
    """Clean up at exit in this process, including a multiprocessing child.

    ``atexit`` covers a normal interpreter exit (Ctrl-C included), but a multiprocessing child
    leaves through ``os._exit`` after running only multiprocessing's own finalizers: register
    one of those too, once per process (forked children start with an empty registry).
    """
    global _EXIT_HOOK_PID
    if _EXIT_HOOK_PID == os.getpid():
        return
    _EXIT_HOOK_PID = os.getpid()
    from multiprocessing import util

    util.Finalize(None, _cleanup_all, exitpriority=-10)
    _install_sigterm_handler()


atexit.register(_cleanup_all)
os.register_at_fork(after_in_child=_after_fork_in_child)


class SharedSegment:
    """One named POSIX shared-memory segment mapped read-write into this process.

    ``SharedSegment.create(nbytes)`` makes a new zero-filled segment owned by this process;
    ``SharedSegment.attach(name)`` maps an existing one. ``buffer`` is a writable
    ``memoryview`` of the mapping, which stays mapped while any view of it is alive.
    The building block of :class:`SharedArray`, :class:`SharedArrays` and the shared-memory
    queue; most users want those instead.
    """

    __slots__ = ("_name", "_size", "_mm", "_view", "_owner_pid", "__weakref__")

    def __init__(self, name: str, size: int, mm: mmap.mmap, owner_pid: int | None):
        self._name = name
        self._size = size
        # Views are built on a memoryview, never on the mmap directly: numpy keeps only a
        # reference to its buffer's owner, so an explicit mmap.close() could unmap memory
        # under a live array. Unmapping is left to reference counting instead.
        self._mm = mm
        self._view = memoryview(mm)
        self._owner_pid = owner_pid

    @classmethod
    def create(cls, nbytes: int, name: str | None = None, kind: str = "") -> SharedSegment:
        nbytes = int(nbytes)
        if nbytes < 0:
            raise ValueError(f"segment size must be >= 0 bytes, got {nbytes}")
        if name is None:
            name = make_name(kind)
        else:
            name = name.lstrip("/")
            if not name.startswith(PREFIX):
                raise ValueError(
                    f"shared-memory name {name!r} must start with {PREFIX!r} so that "
                    "gristmill-shm can find leftovers"
                )
        size = max(nbytes, 1)  # a zero-length segment cannot be mapped
        _ensure_exit_hooks()
        try:
            shm = posix_ipc.SharedMemory(_posix(name), posix_ipc.O_CREX, mode=0o600, size=size)
        except posix_ipc.ExistentialError:
            raise FileExistsError(
                errno.EEXIST, "shared-memory segment already exists", name
            ) from None
        with _OWNED_LOCK:
            _OWNED[name] = os.getpid()
        try:
            mm = mmap.mmap(shm.fd, size)
        except BaseException:
            _unlink(name)
            raise
        finally:
            shm.close_fd()
        return cls(name, size, mm, os.getpid())

    @classmethod
    def attach(cls, name: str) -> SharedSegment:
        name = name.lstrip("/")
        try:
            shm = posix_ipc.SharedMemory(_posix(name))
        except posix_ipc.ExistentialError:
            raise FileNotFoundError(
                errno.ENOENT,
                "no such gristmill shared-memory segment (was its owner closed or killed?)",
                name,
            ) from None
        try:
            size = shm.size
            if size <= 0:
                raise ValueError(f"shared-memory segment {name!r} has size 0")
            mm = mmap.mmap(shm.fd, size)
        finally:
            shm.close_fd()
        return cls(name, size, mm, None)

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    @property
    def buffer(self) -> memoryview:
        if self._view is None:
            raise ValueError(f"shared-memory segment {self._name!r} is closed")
        return self._view

    @property
    def mapping(self) -> mmap.mmap:
        """The mapping itself, for a C extension that holds a buffer of it: unlike
        :attr:`buffer` (a memoryview, which a garbage-collected cycle may try to clear while
        that buffer is held: ``BufferError``), an mmap is never cleared, only freed."""
        if self._mm is None:
            raise ValueError(f"shared-memory segment {self._name!r} is closed")
        return self._mm

    @property
    def is_owner(self) -> bool:
        """True in the process that created the segment (forked children are not owners)."""
        return self._owner_pid == os.getpid()

    @property
    def closed(self) -> bool:
        return self._view is None

    def unlink(self) -> None:
        """Remove the name now (owner only; mappings stay valid until closed)."""
        if self.is_owner:
            _unlink(self._name)

    def close(self) -> None:
        """Unlink (if owner) and drop this handle's mapping. Idempotent.

        The memory is unmapped once no array/tensor view of it is left alive.
        """
        self.unlink()
        self._view = None
        self._mm = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        role = "owner" if self.is_owner else "attached"
        return f"SharedSegment({self._name!r}, size={self._size}, {role})"


def _normalise_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise TypeError(f"dtype {dt} holds Python objects and cannot live in shared memory")
    return dt


def _normalise_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape {shape} has a negative dimension")
    return shape


class SharedArray:
    """A numpy array in named POSIX shared memory.

    ``SharedArray.create(shape, dtype)`` makes a zero-filled array owned by this process;
    ``SharedArray.attach(name, shape, dtype)`` views an existing one from another process.
    Pickling gives an attached view. ``close()`` unlinks (owner) and unmaps; it is idempotent
    and also runs on ``with``-exit, garbage collection and interpreter exit.

    Attributes: ``array`` (the ``np.ndarray`` view), ``name`` (as in ``/dev/shm``), ``shape``,
    ``dtype``, ``nbytes``, ``is_owner``.
    """

    __slots__ = ("_seg", "_array", "_shape", "_dtype", "__weakref__")

    def __init__(self, seg: SharedSegment, shape, dtype, offset: int = 0):
        self._seg = seg
        self._shape = _normalise_shape(shape)
        self._dtype = _normalise_dtype(dtype)
        self._array = np.ndarray(self._shape, self._dtype, buffer=seg.buffer, offset=offset)

    @classmethod
    def create(cls, shape, dtype=np.float32, name: str | None = None) -> SharedArray:
        """A new zero-filled shared array owned by this process (name auto-generated)."""
        shape = _normalise_shape(shape)
        dt = _normalise_dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        seg = SharedSegment.create(nbytes, name=name)
        try:
            return cls(seg, shape, dt)
        except BaseException:
            seg.close()
            raise

    @classmethod
    def attach(cls, name: str, shape, dtype) -> SharedArray:
        """View the existing segment ``name`` as an array (this process never unlinks it)."""
        shape = _normalise_shape(shape)
        dt = _normalise_dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        seg = SharedSegment.attach(name)
        if seg.size < nbytes:
            seg.close()
            raise ValueError(
                f"shared-memory segment {name!r} holds {seg.size} bytes, too small for an "
                f"array of shape {shape} and dtype {dt} ({nbytes} bytes)"
            )
        return cls(seg, shape, dt)

    # -- attributes -----------------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            raise ValueError(f"SharedArray {self._seg.name!r} is closed")
        return self._array

    @property
    def name(self) -> str:
        return self._seg.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64)) * self._dtype.itemsize

    @property
    def is_owner(self) -> bool:
        return self._seg.is_owner

    @property
    def closed(self) -> bool:
        return self._array is None

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Unlink the name (owner) and drop this view. Idempotent."""
        self._array = None
        self._seg.close()

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        if self.closed:
            raise ValueError(f"cannot pickle closed SharedArray {self.name!r}")
        return (SharedArray.attach, (self.name, self._shape, self._dtype))

    # -- numpy conveniences ---------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        arr = self.array
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __getitem__(self, key):
        return self.array[key]

    def __setitem__(self, key, value):
        self.array[key] = value

    def __len__(self) -> int:
        return len(self.array)

    def __repr__(self) -> str:
        role = "owner" if self.is_owner else "attached"
        state = ", closed" if self.closed else ""
        return (
            f"SharedArray({self.name!r}, shape={self._shape}, dtype={self._dtype}, {role}{state})"
        )


class SharedArrays(Mapping):
    """Several named numpy arrays in one shared-memory segment (an arena).

    ``SharedArrays.create({"obs": ((8, 84, 84), np.uint8), "rew": (8, np.float32)})`` makes
    one owned segment holding every array 64-byte aligned; it behaves as a read-only mapping
    from key to ``np.ndarray``. Pickling gives an attached view with the same layout.
    ``close()`` unlinks (owner) and drops the views.
    """

    def __init__(self, seg: SharedSegment, spec: dict[str, tuple[tuple[int, ...], np.dtype]]):
        self._seg = seg
        self._spec = spec
        self._arrays: dict[str, np.ndarray] | None = {}
        for key, (shape, dt, offset) in self._layout(spec)[0].items():
            self._arrays[key] = np.ndarray(shape, dt, buffer=seg.buffer, offset=offset)

    @staticmethod
    def _parse(spec: Mapping | Iterable) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        items = spec.items() if isinstance(spec, Mapping) else spec
        out = {}
        for key, value in items:
            if not isinstance(key, str):
                raise TypeError(f"SharedArrays keys must be str, got {key!r}")
            try:
                shape, dtype = value
            except (TypeError, ValueError):
                raise TypeError(
                    f"SharedArrays entry {key!r} must be (shape, dtype), got {value!r}"
                ) from None
            out[key] = (_normalise_shape(shape), _normalise_dtype(dtype))
        return out

    @staticmethod
    def _layout(spec):
        offset = 0
        layout = {}
        for key, (shape, dt) in spec.items():
            offset = -(-offset // _ALIGN) * _ALIGN
            layout[key] = (shape, dt, offset)
            offset += int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        return layout, offset

    @classmethod
    def create(cls, spec, name: str | None = None) -> SharedArrays:
        parsed = cls._parse(spec)
        _, total = cls._layout(parsed)
        seg = SharedSegment.create(total, name=name)
        try:
            return cls(seg, parsed)
        except BaseException:
            seg.close()
            raise

    @classmethod
    def attach(cls, name: str, spec) -> SharedArrays:
        parsed = cls._parse(spec)
        _, total = cls._layout(parsed)
        seg = SharedSegment.attach(name)
        if seg.size < total:
            seg.close()
            raise ValueError(
                f"shared-memory segment {name!r} holds {seg.size} bytes; the arrays "
                f"{list(parsed)} need {total}"
            )
        return cls(seg, parsed)

    @property
    def name(self) -> str:
        return self._seg.name

    @property
    def spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return dict(self._spec)

    @property
    def is_owner(self) -> bool:
        return self._seg.is_owner

    @property
    def nbytes(self) -> int:
        return self._layout(self._spec)[1]

    def _live(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            raise ValueError(f"SharedArrays {self.name!r} is closed")
        return self._arrays

    def __getitem__(self, key: str) -> np.ndarray:
        return self._live()[key]

    def __iter__(self):
        return iter(self._live())

    def __len__(self) -> int:
        return len(self._spec)

    def close(self) -> None:
        self._arrays = None
        self._seg.close()

    def __enter__(self) -> SharedArrays:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        if self._arrays is None:
            raise ValueError(f"cannot pickle closed SharedArrays {self.name!r}")
        return (SharedArrays.attach, (self.name, self._spec))

    def __repr__(self) -> str:
        role = "owner" if self.is_owner else "attached"
        return f"SharedArrays({self.name!r}, keys={list(self._spec)}, {role})"

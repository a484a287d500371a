"""Advantage and return estimators over time-major rollouts: GAE, V-trace, λ- and n-step returns.

Every function takes time-major ``[T, B]`` arrays (``T`` steps of ``B`` environments; a single
``[T]`` stream works too), or batch-major ``[B, T]`` ones with ``time_axis=1`` (Sample
Factory's trajectory buffers: used in place, results come back ``[B, T]``), and runs a Numba
kernel, with a plain NumPy implementation of the same formulas in :mod:`reference`
(``from gristmill.kernels.advantage import reference``). Estimators that return two arrays
return the advantages first and the value targets second: ``gae`` ->
``(advantages, returns)``, ``vtrace`` -> ``(pg_advantages, vs)``.

Inputs, shared by all estimators:

- ``rewards[t]``: r_t, the reward for the action at step t.
- ``values[t]``: V(s_t).
- ``next_values[t]``: V(s_{t+1}), the value of the observation that followed step t: the real
  final observation where an episode ended, the bootstrap value on the last row. Explicit, so
  truncated episodes and the rollout's edge bootstrap correctly (see CleanRL#198).
- ``terminated[t]``: s_{t+1} is terminal: no bootstrap, ``next_values[t]`` is ignored (any
  value, NaN included, is fine there).
- ``truncated[t]``: the episode was cut after step t (time limit, reset): bootstrap from
  ``next_values[t]`` but stop the trace. ``done = terminated | truncated``; where both are set,
  terminated wins.

Notation: PPO writes the reward of step t as r_t (as here); Sutton & Barto write r_{t+1}.

Conventions and guarantees:

- Float arrays must all be float32 or all float64 (no silent promotion: a mix raises
  ``ValueError``); results take that dtype and all arithmetic happens in it, scalars such as
  ``gamma`` included (they are rounded to the dtype first).
- ``terminated``/``truncated`` are boolean; integer or float arrays holding only 0 and 1 are
  accepted too (converted, one copy), anything else raises ``ValueError``.
- Any memory layout. C-ordered inputs run the fastest path; F-ordered inputs are used in place
  (and results come back F-ordered); other mixes and strided views are copied to C order once.
- ``out=`` buffers are optional, checked for shape, dtype and writeability, and may overlap
  the inputs (e.g. advantages written over ``rewards``: the kernel then writes to a temporary
  and copies).
- Bad input raises ``ValueError`` naming the argument.
- ``parallel``: the kernels release the GIL and the batch splits into independent column
  ranges, so large batches run on several threads. ``None`` (default): one thread per
  available core from ``PARALLEL_MIN_ELEMENTS`` elements up, else one; ``True``: one per core;
  ``False``: one; an ``int``: that many.
- Results this module allocates for large C-ordered batches are placed (their offset within a
  4 KiB page) away from the inputs': otherwise a store can falsely alias a later load of
  another array (same address bits 0-11) and stall it, which made V-trace run up to 1.5x
  slower for some malloc placements.
- Importing this module imports neither numba nor torch; the first call of each kernel loads
  numba and compiles that kernel (or reloads it from numba's on-disk cache). Under
  ``NUMBA_DISABLE_JIT=1`` the same kernels run as plain Python.

References: GAE, Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized
Advantage Estimation", https://arxiv.org/abs/1506.02438. V-trace, Espeholt et al. 2018,
"IMPALA: Scalable Distributed Deep-RL with Importance Weighted Actor-Learner Architectures",
https://arxiv.org/abs/1802.01561. λ- and n-step returns: Sutton & Barto 2018, "Reinforcement
Learning: An Introduction" (2nd ed.), §7.1 and §12.1.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np

from . import _advantage_reference as reference

__all__ = [
    "discounted_returns",
    "gae",
    "lambda_returns",
    "n_step_returns",
    "reference",
    "vtrace",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Auto-threading only from this many elements (T*B) up. Measured on the 2-core dev box (with
# other jobs running): 2 threads lost to 1 at 128x1024 and 128x4096 and won (1.2-1.7x) only at
# 128x16384; below a few ms of work, waiting for a busy core costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 21
# Column ranges given to threads are multiples of this (whole SIMD vectors, whole cache lines).
_COLUMN_ALIGN = 16
# Columns per block of the generic (F-order) kernels: a block's cache lines stay in L1.
_ANY_BLOCK = 16

_PAGE = 4096  # store-to-load false aliasing compares address bits 0-11
# Results are placed only from this size up: below it the kernels run from L1/L2 and placing
# (a few µs of Python per array) costs more than it can save.
_PLACE_MIN_BYTES = 1 << 18
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
# Result buffers kept for reuse (see _buffer): at most this many, of at most this many bytes.
_KEEP_BUFFERS = 8
_KEEP_BYTES = 64 << 20
_buffers: list[tuple[np.ndarray, int]] = []  # (buffer, its address)
_buffers_lock = threading.Lock()


_kernels: ModuleType | None = None


def _fast() -> ModuleType:
    """The Numba kernels, imported on first use so that importing this module stays light."""
    global _kernels
    if _kernels is None:  # an import statement per call cost ~0.7 µs, five times a call
        from . import _advantage_numba

        _kernels = _advantage_numba
    return _kernels


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _threads(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < size:
        old, _pool = _pool, ThreadPoolExecutor(size, thread_name_prefix="gristmill-adv")
        _pool_size = size
        if old is not None:
            old.shutdown(wait=False)
    return _pool


def _forget_pool() -> None:  # a forked child inherits the pool object but not its threads
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _thread_count(parallel, elements: int, columns: int) -> int:
    if parallel is None:
        n = _cores() if elements >= PARALLEL_MIN_ELEMENTS else 1
    elif isinstance(parallel, bool | np.bool_):
        n = _cores() if parallel else 1
    elif isinstance(parallel, numbers.Integral) and parallel >= 1:
        n = int(parallel)
    else:
        raise ValueError(f"parallel must be None, a bool or a thread count >= 1, got {parallel!r}")
    return max(1, min(n, -(-columns // _COLUMN_ALIGN)))


def _launch(kernel, args: tuple, columns: int, threads: int, block: int) -> None:
    """Run ``kernel(*args, start, stop, block)`` over disjoint column ranges on threads.

    The kernels release the GIL and never read across columns, so the ranges run in parallel.
    """
    if threads <= 1:
        kernel(*args, 0, columns, block)
        return
    step = -(-columns // threads)
    step = -(-step // _COLUMN_ALIGN) * _COLUMN_ALIGN
    ranges = [(b, min(columns, b + step)) for b in range(0, columns, step)]
    pending = [_threads(len(ranges) - 1).submit(kernel, *args, *r, block) for r in ranges[1:]]
    try:
        kernel(*args, *ranges[0], block)
    finally:  # never return (or raise) while a thread may still write the outputs
        errors = [e for e in (f.exception() for f in pending) if e is not None]
    if errors:
        raise errors[0]


# ------------------------------------------------------------------------------ validation
def _float_array(name: str, x, dtype: np.dtype | None) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype not in _FLOATS:
        raise ValueError(f"{name} must be a float32 or float64 array, got dtype {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise ValueError(
            f"{name} has dtype {a.dtype} but rewards has {dtype}: pass every float array in "
            "one dtype (float32 or float64); gristmill does not promote silently"
        )
    return a


def _flag_array(name: str, x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a bool array (or 0/1 numbers), got dtype {a.dtype}")
    flags = a != 0
    if not np.array_equal(flags, a == 1):
        raise ValueError(f"{name} must be bool or hold only 0 and 1; it has other values")
    return flags


def _check_shape(name: str, a: np.ndarray, shape: tuple[int, ...], dims: str) -> None:
    if a.shape != shape:
        raise ValueError(
            f"{name} has shape {a.shape}, expected {shape} (the shape of rewards, {dims})"
        )


def _time_axis(time_axis, ndim: int) -> bool:
    """Whether ``time_axis`` asks for batch-major ``[B, T]`` input (else time-major)."""
    if isinstance(time_axis, bool | np.bool_) or not isinstance(time_axis, numbers.Integral):
        raise ValueError(f"time_axis must be an integer, got {time_axis!r}")
    if not -ndim <= time_axis < ndim:
        raise ValueError(f"time_axis {time_axis} is out of range for {ndim}-D rewards")
    return ndim == 2 and time_axis % 2 == 1


_NONE_PLACED = np.zeros(0, np.int64)


def _buffer(nbytes: int) -> tuple[np.ndarray, int]:
    """A uint8 buffer of ``nbytes`` and its address: one kept from an earlier call that no
    array uses any more (only this module refers to it), else a new one, kept if there is room.

    Why: glibc serves a large allocation (from 128 KiB; its threshold rises to the last freed
    mmapped size, and a request of that same size is still mmapped) with a fresh ``mmap``, so
    each call's results were faulted in and zeroed anew: ~480 page faults per V-trace call at
    float64 T 128 x B 1024, ~0.9 ms on top of the kernel's ~0.45 ms (issue 19). A buffer comes
    back only when no result of an earlier call (nor a view, nor a tensor over it) is alive.
    """
    with _buffers_lock:
        for kept in _buffers:
            # referents of an idle buffer: its tuple, and getrefcount's argument
            if kept[0].nbytes == nbytes and sys.getrefcount(kept[0]) == 2:
                return kept
        buf = np.empty(nbytes, np.uint8)
        new = (buf, _fast().address(buf))
        idle = [i for i, k in enumerate(_buffers) if sys.getrefcount(k[0]) == 2]
        while idle and (len(_buffers) >= _KEEP_BUFFERS
                        or sum(k[0].nbytes for k in _buffers) + nbytes > _KEEP_BYTES):
            del _buffers[idle.pop()]  # idle ones from the newest back (indices stay valid)
        if len(_buffers) < _KEEP_BUFFERS and sum(k[0].nbytes for k in _buffers) + nbytes <= (
                _KEEP_BYTES):
            _buffers.append(new)
        return new


def _placed_empties(
    count: int, shape: tuple[int, ...], dtype: np.dtype, loads: list, placed: list[int]
) -> list[np.ndarray]:
    """``count`` C-ordered empty arrays, each starting, within a page, in the middle of the
    widest gap between the start offsets of the arrays in ``loads``, the offsets in ``placed``
    and each other (``page_targets``), so the kernel's stores to them never falsely alias the
    loads of the same rows of the inputs. Their memory comes from one :func:`_buffer`. This
    runs on every call, with caches cold from the last kernel: one compiled call for all the
    offsets, one buffer for all the results. The new offsets are added to ``placed``."""
    nbytes = math.prod(shape) * dtype.itemsize
    span = (-(-nbytes // _PAGE) + 1) * _PAGE  # whole pages, and one to slide the start in
    buf, address = _buffer(count * span)
    done = np.array(placed, np.int64) if placed else _NONE_PLACED
    targets = _fast().page_targets(count, done, *loads)
    placed.extend(targets)
    arrays = []
    for i, target in enumerate(targets):
        start = i * span + (target - address - i * span) % _PAGE
        arrays.append(buf[start : start + nbytes].view(dtype).reshape(shape))
    return arrays


def _scalar(name: str, x, lo: float, hi: float, *, lo_open: bool = False) -> float:
    # Python floats and ints skip the abstract-class checks (~0.5 µs each, five per V-trace).
    if type(x) is not float and type(x) is not int and (
            isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real)):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    value = float(x)
    if math.isnan(value) or value > hi or value < lo or (lo_open and value == lo):
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be in {bound}, got {x!r}")
    return value


def _plain_c(floats: dict, flags: dict) -> dict | None:
    """The inputs as they are, if all are C-ordered 2-D ndarrays of one float dtype and shape
    with bool flags (what a learner passes); else None, and :meth:`_Batch._validate` checks
    them one by one. Accepting the common case in one pass saves ~8 µs a call."""
    rewards = floats["rewards"]
    if type(rewards) is not np.ndarray or rewards.ndim != 2 or rewards.dtype not in _FLOATS:
        return None
    shape, dtype = rewards.shape, rewards.dtype
    arrays = {}
    for name, a in floats.items():
        if type(a) is not np.ndarray or a.shape != shape or a.dtype != dtype or not (
                a.flags.c_contiguous):
            return None
        arrays[name] = a
    for name, a in flags.items():
        if a is None:
            continue
        if type(a) is not np.ndarray or a.shape != shape or a.dtype != np.bool_ or not (
                a.flags.c_contiguous):
            return None
        arrays[name] = a
    return arrays


class _Batch:
    """Validated inputs as time-major 2-D arrays in one memory layout for the kernels."""

    def __init__(self, floats: dict, flags: dict, time_axis=0):
        arrays = _plain_c(floats, flags) if time_axis == 0 and type(time_axis) is int else None
        if arrays is None:
            arrays = self._validate(floats, flags, time_axis)
        else:  # checked already: C-ordered [T, B] ndarrays of one float dtype, bool flags
            self.swap, self.order = False, "C"
            self.dtype, self.shape = arrays["rewards"].dtype, arrays["rewards"].shape
            self.T, self.B = self.shape
        self.arrays = arrays
        self.place = self.order == "C" and self.T * self.B * self.dtype.itemsize >= _PLACE_MIN_BYTES
        # What the kernel loads rows from (float inputs: bool rows have another stride), and
        # the page offsets of the results placed so far.
        self.loads = [arrays[k] for k in floats]
        self.placed: list[int] = []

    def _validate(self, floats: dict, flags: dict, time_axis) -> dict:
        """Any input: checked (a clear error for each fault), as time-major arrays in one layout."""
        names = list(floats)
        rewards = _float_array("rewards", floats["rewards"], None)
        if rewards.ndim not in (1, 2):
            raise ValueError(
                f"rewards must be [T, B] (or a single [T] stream), got shape {rewards.shape}"
            )
        self.swap = _time_axis(time_axis, rewards.ndim)
        dims = "[B, T]" if self.swap else "[T, B]"
        self.dtype = rewards.dtype
        self.shape = rewards.shape
        arrays = {}
        for name in names:
            a = rewards if name == "rewards" else _float_array(name, floats[name], self.dtype)
            _check_shape(name, a, self.shape, dims)
            arrays[name] = a
        for name, x in flags.items():
            if x is None:
                continue
            a = _flag_array(name, x)
            _check_shape(name, a, self.shape, dims)
            arrays[name] = a
        arrays = {k: self.internal(a) for k, a in arrays.items()}
        self.T, self.B = next(iter(arrays.values())).shape
        # One layout for all: C in place, all-F in place, anything else copied to C.
        if all(a.flags.c_contiguous for a in arrays.values()):
            self.order = "C"
        elif all(a.flags.f_contiguous for a in arrays.values()):
            self.order = "F"
        else:
            self.order = "C"
            arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
        return arrays

    def internal(self, a: np.ndarray) -> np.ndarray:
        """A user-shaped array as the kernels' time-major [T, B] view."""
        if self.swap:
            return a.T
        return a[:, None] if a.ndim == 1 else a

    def external(self, a: np.ndarray) -> np.ndarray:
        """A kernel-shaped [T, B] result in the user's shape."""
        return a.T if self.swap else a.reshape(self.shape)

    def get(self, name: str):
        return self.arrays.get(name)

    def scalar(self, value: float):
        return self.dtype.type(value)

    def empty(self, count: int = 1) -> list[np.ndarray]:
        """``count`` output arrays for the kernel, ``[T, B]`` in the batch's layout (placed
        in C, away from the inputs and from each other)."""
        if not self.place:
            return [np.empty((self.T, self.B), self.dtype, order=self.order) for _ in range(count)]
        return _placed_empties(count, (self.T, self.B), self.dtype, self.loads, self.placed)

    def outputs(self, out, names: tuple[str, ...]):
        """Kernel targets for each output, plus the user buffers to copy into afterwards."""
        if out is None:  # the common case: fresh (placed) results, nothing to check
            targets = self.empty(len(names))
            return targets, [self.external(t) for t in targets], []
        if len(names) == 1 and not isinstance(out, tuple | list):
            out = (out,)
        if not isinstance(out, tuple | list) or len(out) != len(names):
            raise ValueError(
                f"out must be None or a tuple of {len(names)} arrays (or None) for "
                f"({', '.join(names)}), got {type(out).__name__}"
            )
        inputs = list(self.arrays.values())
        targets, results, copies = [], [], []
        for i, (name, o) in enumerate(zip(names, out)):
            label = f"out[{i}] ({name})" if len(names) > 1 else f"out ({name})"
            if o is None:
                target = self.empty()[0]
                targets.append(target)
                results.append(self.external(target))
                continue
            if not isinstance(o, np.ndarray):
                raise ValueError(f"{label} must be a numpy array, got {type(o).__name__}")
            if o.shape != self.shape:
                raise ValueError(f"{label} has shape {o.shape}, expected {self.shape}")
            if o.dtype != self.dtype:
                raise ValueError(f"{label} has dtype {o.dtype}, expected {self.dtype}")
            if not o.flags.writeable:
                raise ValueError(f"{label} is read-only")
            if any(
                j != i and other is not None and np.may_share_memory(o, other)
                for j, other in enumerate(out)
            ):
                raise ValueError(f"{label} overlaps another out buffer")
            o2 = self.internal(o)
            in_layout = o2.flags.c_contiguous if self.order == "C" else o2.flags.f_contiguous
            if in_layout and not any(np.may_share_memory(o2, a) for a in inputs):
                targets.append(o2)
            else:  # wrong layout or aliasing an input: compute aside, then copy in
                target = np.empty((self.T, self.B), self.dtype, order=self.order)
                targets.append(target)
                copies.append((o2, target))
            results.append(o)
        return targets, results, copies

    def block(self) -> int:
        return _ANY_BLOCK if self.order == "F" else max(self.B, 1)

    def launch(self, name: str, args: tuple, parallel) -> None:
        layout = "c" if self.order == "C" and name != "nstep" else "any"
        threads = _thread_count(parallel, self.T * self.B, self.B)
        _launch(getattr(_fast(), f"{name}_{layout}"), args, self.B, threads, self.block())


def _finish(copies, results):
    for dst, src in copies:
        np.copyto(dst, src)
    return results


# ------------------------------------------------------------------------------- estimators
def gae(
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    gamma: float = 0.99,
    lam: float = 0.95,
    *,
    mask=None,
    time_axis: int = 0,
    out=None,
    parallel: bool | int | None = None,
):
    """Generalized Advantage Estimation, GAE(γ, λ).

    δ_t = r_t + γ(1 − term_t)·V(s_{t+1}) − V(s_t)
    A_t = δ_t + k_t(1 − done_t)·A_{t+1},  A_T = 0,  k_t = γλ
    returns_t = A_t + V(s_t)  (the TD(λ) value target)

    ``mask`` (optional, bool): where False, step t holds no experience of its own (an
    inactive agent, a sample too stale to learn from): r_t and V(s_t) count as 0 and the trace
    crosses the step undiscounted (k_t = 1), Sample Factory's treatment of invalid samples.

    Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
    Estimation", https://arxiv.org/abs/1506.02438.

    Args:
      rewards, values, next_values: float ``[T, B]`` (or ``[T]``): r_t, V(s_t), V(s_{t+1}).
      terminated, truncated: bool ``[T, B]``: episode ended after step t, without / with
        bootstrap.
      gamma: discount γ in [0, 1]. lam: λ in [0, 1] (0: one-step TD, 1: Monte Carlo).
      mask: optional bool ``[T, B]``, True at valid steps (see above).
      time_axis: 0 for ``[T, B]`` arrays, 1 for ``[B, T]`` (results then come back ``[B, T]``).
      out: optional ``(advantages, returns)`` buffers (either may be None).
      parallel: None (auto), True / False, or a thread count (see module docs).

    Returns:
      ``(advantages, returns)``, each in the input's shape and float dtype.
    """
    batch = _Batch(
        {"rewards": rewards, "values": values, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated, "mask": mask},
        time_axis,
    )
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    lam = _scalar("lam", lam, 0.0, 1.0)
    targets, results, copies = batch.outputs(out, ("advantages", "returns"))
    a = batch.arrays
    args = (
        a["rewards"], a["values"], a["next_values"], a["terminated"], a["truncated"],
        batch.get("mask"), batch.scalar(gamma), batch.scalar(lam), targets[0], targets[1],
    )
    batch.launch("gae", args, parallel)
    adv, ret = _finish(copies, results)
    return adv, ret


def vtrace(
    log_rhos,
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    gamma: float = 0.99,
    lam: float = 1.0,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
    pg_rho_clip: float = 1.0,
    *,
    time_axis: int = 0,
    out=None,
    parallel: bool | int | None = None,
):
    """V-trace policy-gradient advantages and value targets (off-policy corrected).

    ratio_t = exp(log_rhos_t) = π(a_t|s_t) / μ(a_t|s_t)
    ρ_t = min(ρ̄, ratio_t),  c_t = λ·min(c̄, ratio_t)
    δ_t = ρ_t·(r_t + γ(1 − term_t)·V(s_{t+1}) − V(s_t))
    vs_t = V(s_t) + δ_t + γ(1 − done_t)·c_t·(vs_{t+1} − V(s_{t+1}))   (zero beyond the end)
    next_vs_t = vs_{t+1} within an episode, V(s_{t+1}) at done steps and on the last row
    pg_advantages_t = min(ρ̄_pg, ratio_t)·(r_t + γ(1 − term_t)·next_vs_t − V(s_t))

    On-policy (log_rhos = 0, clips ≥ 1) ``vs`` equals GAE(λ) returns. The kernel's exp is a
    vectorised one, within 2 ulp (float32) / 1 ulp (float64) of numpy's (ratios below e^-86.9
    / ~e^-708 become 0); NaN log-ratios propagate (clipping does not hide them). Espeholt et al.
    2018, "IMPALA: Scalable Distributed Deep-RL with Importance Weighted Actor-Learner
    Architectures", https://arxiv.org/abs/1802.01561 (λ as in its Remark 2).

    Args:
      log_rhos: float ``[T, B]``: log π(a_t|s_t) − log μ(a_t|s_t), target over behaviour.
      rewards, values, next_values, terminated, truncated: as in :func:`gae`.
      gamma: γ in [0, 1]. lam: λ in [0, 1], scales the traces c_t.
      rho_clip, c_clip, pg_rho_clip: ρ̄, c̄, ρ̄_pg > 0 (``inf``: no clipping).
      time_axis: 0 for ``[T, B]`` arrays, 1 for ``[B, T]``.
      out: optional ``(pg_advantages, vs)`` buffers (either may be None).
      parallel: None (auto), True / False, or a thread count.

    Returns:
      ``(pg_advantages, vs)``, each in the input's shape and float dtype.
    """
    batch = _Batch(
        {
            "rewards": rewards,
            "log_rhos": log_rhos,
            "values": values,
            "next_values": next_values,
        },
        {"terminated": terminated, "truncated": truncated},
        time_axis,
    )
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    lam = _scalar("lam", lam, 0.0, 1.0)
    clips = [
        _scalar(name, x, 0.0, math.inf, lo_open=True)
        for name, x in (("rho_clip", rho_clip), ("c_clip", c_clip), ("pg_rho_clip", pg_rho_clip))
    ]
    targets, results, copies = batch.outputs(out, ("pg_advantages", "vs"))
    a = batch.arrays
    scalars = (batch.scalar(gamma), batch.scalar(lam), *map(batch.scalar, clips))
    args = (
        a["log_rhos"], a["rewards"], a["values"], a["next_values"], a["terminated"],
        a["truncated"], *scalars, targets[0], targets[1],
    )
    batch.launch("vtrace", args, parallel)
    pg, vs = _finish(copies, results)
    return pg, vs


def _returns(rewards, next_values, terminated, truncated, gamma, lam, time_axis, out, parallel):
    batch = _Batch(
        {"rewards": rewards, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated},
        time_axis,
    )
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    mc = lam is None
    lam = 1.0 if mc else _scalar("lam", lam, 0.0, 1.0)
    targets, results, copies = batch.outputs(out, ("returns",))
    a = batch.arrays
    args = (a["rewards"], a["next_values"], a["terminated"], a["truncated"])
    one_minus_lam = batch.scalar(1.0) - batch.scalar(lam)
    scalars = (batch.scalar(gamma), batch.scalar(lam), one_minus_lam, mc)
    batch.launch("lambda", (*args, *scalars, targets[0]), parallel)
    return _finish(copies, results)[0]


def discounted_returns(
    rewards,
    next_values,
    terminated,
    truncated,
    gamma: float = 0.99,
    *,
    time_axis: int = 0,
    out=None,
    parallel: bool | int | None = None,
):
    """Bootstrapped Monte-Carlo returns (the λ = 1 return).

    G_t = r_t + γ(1 − term_t)·X_t,  X_t = V(s_{t+1}) where done_t or t = T − 1, else G_{t+1}.

    So a truncated episode and the rollout's last row bootstrap from ``next_values``; a
    terminated one does not. Sutton & Barto 2018, §3.3.

    Args:
      rewards, next_values, terminated, truncated: as in :func:`gae` (no ``values`` needed).
      gamma: γ in [0, 1].
      time_axis: 0 for ``[T, B]`` arrays, 1 for ``[B, T]``.
      out: optional ``returns`` buffer. parallel: None (auto), True / False, or a thread count.

    Returns:
      ``returns`` in the input's shape and float dtype.
    """
    return _returns(
        rewards, next_values, terminated, truncated, gamma, None, time_axis, out, parallel
    )


def lambda_returns(
    rewards,
    next_values,
    terminated,
    truncated,
    gamma: float = 0.99,
    lam: float = 0.95,
    *,
    time_axis: int = 0,
    out=None,
    parallel: bool | int | None = None,
):
    """TD(λ) returns, the recursive form of the λ-return.

    G_t = r_t + γ(1 − term_t)·X_t,
    X_t = V(s_{t+1}) where done_t or t = T − 1, else (1 − λ)·V(s_{t+1}) + λ·G_{t+1}.

    With consistent values (``next_values[t] == values[t + 1]`` inside an episode) this is
    ``gae(...)[1]``; λ = 1 gives :func:`discounted_returns`, λ = 0 the one-step TD target.
    Sutton & Barto 2018, §12.1; rlax ``lambda_returns``.

    Args:
      rewards, next_values, terminated, truncated: as in :func:`gae`.
      gamma: γ in [0, 1]. lam: λ in [0, 1].
      time_axis: 0 for ``[T, B]`` arrays, 1 for ``[B, T]``.
      out: optional ``returns`` buffer. parallel: None (auto), True / False, or a thread count.

    Returns:
      ``returns`` in the input's shape and float dtype.
    """
    return _returns(
        rewards, next_values, terminated, truncated, gamma, lam, time_axis, out, parallel
    )


def n_step_returns(
    rewards,
    next_values,
    terminated,
    truncated,
    n: int,
    gamma: float = 0.99,
    *,
    time_axis: int = 0,
    out=None,
    parallel: bool | int | None = None,
):
    """n-step bootstrapped returns, as used for Ape-X / R2D2 style value targets.

    G_t = Σ_{k<m} γ^k·r_{t+k} + γ^m·(1 − term_{t+m−1})·V(s_{t+m}),
    where m = min(n, steps to the first done step at or after t (inclusive), T − t).

    n = 1 is the one-step TD target; n ≥ T gives :func:`discounted_returns`. Sutton & Barto
    2018, §7.1.

    Args:
      rewards, next_values, terminated, truncated: as in :func:`gae`.
      n: horizon, an integer ≥ 1. gamma: γ in [0, 1].
      time_axis: 0 for ``[T, B]`` arrays, 1 for ``[B, T]``.
      out: optional ``returns`` buffer. parallel: None (auto), True / False, or a thread count.

    Returns:
      ``returns`` in the input's shape and float dtype.
    """
    batch = _Batch(
        {"rewards": rewards, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated},
        time_axis,
    )
    if isinstance(n, bool | np.bool_) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    targets, results, copies = batch.outputs(out, ("returns",))
    a = batch.arrays
    args = (a["rewards"], a["next_values"], a["terminated"], a["truncated"])
    batch.launch("nstep", (*args, batch.scalar(gamma), int(n), targets[0]), parallel)
    return _finish(copies, results)[0]

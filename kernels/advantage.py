"""Advantage and return estimators over time-major rollouts: GAE, V-trace, λ- and n-step returns.

Every function takes time-major ``[T, B]`` arrays (``T`` steps of ``B`` environments; a single
``[T]`` stream works too) and runs a Numba kernel, with a plain NumPy implementation of the
same formulas in :mod:`reference` (``from gristmill.kernels.advantage import reference``).

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
- Importing this module imports neither numba nor torch; the first call of each kernel loads
  numba and compiles that kernel (or reloads it from numba's on-disk cache). Under
  ``NUMBA_DISABLE_JIT=1`` the same kernels run as plain Python. If numba cannot be imported at
  all, the NumPy references are used (with a warning).

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
import warnings
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

_fast_module: ModuleType | None = None
_fast_failed = False
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _fast() -> ModuleType | None:
    """The Numba kernels, imported on first use so that importing this module stays light."""
    global _fast_module, _fast_failed
    if _fast_module is None and not _fast_failed:
        try:
            from . import _advantage_numba
        except ImportError as exc:  # numba is a dependency; keep working without it
            _fast_failed = True
            warnings.warn(
                f"gristmill.kernels.advantage: numba unavailable ({exc}); using the NumPy "
                "reference kernels",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            _fast_module = _advantage_numba
    return _fast_module


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


def _check_shape(name: str, a: np.ndarray, shape: tuple[int, ...]) -> None:
    if a.shape != shape:
        raise ValueError(
            f"{name} has shape {a.shape}, expected {shape} (the shape of rewards, [T, B])"
        )


def _scalar(name: str, x, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    value = float(x)
    if math.isnan(value) or value > hi or value < lo or (lo_open and value == lo):
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be in {bound}, got {x!r}")
    return value


class _Batch:
    """Validated inputs as 2-D arrays in one memory layout for the kernels."""

    def __init__(self, floats: dict, flags: dict):
        names = list(floats)
        rewards = _float_array("rewards", floats["rewards"], None)
        if rewards.ndim not in (1, 2):
            raise ValueError(
                f"rewards must be [T, B] (or a single [T] stream), got shape {rewards.shape}"
            )
        self.dtype = rewards.dtype
        self.shape = rewards.shape
        arrays = {}
        for name in names:
            a = rewards if name == "rewards" else _float_array(name, floats[name], self.dtype)
            _check_shape(name, a, self.shape)
            arrays[name] = a
        for name, x in flags.items():
            a = _flag_array(name, x)
            _check_shape(name, a, self.shape)
            arrays[name] = a
        if rewards.ndim == 1:
            arrays = {k: a[:, None] for k, a in arrays.items()}
        self.T, self.B = next(iter(arrays.values())).shape
        # One layout for all: C in place, all-F in place, anything else copied to C.
        if all(a.flags.c_contiguous for a in arrays.values()):
            self.order = "C"
        elif all(a.flags.f_contiguous for a in arrays.values()):
            self.order = "F"
        else:
            self.order = "C"
            arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
        self.arrays = arrays

    def scalar(self, value: float):
        return self.dtype.type(value)

    def outputs(self, out, names: tuple[str, ...]):
        """Kernel targets for each output, plus the user buffers to copy into afterwards."""
        if out is None:
            out = (None,) * len(names)
        elif len(names) == 1 and not isinstance(out, tuple | list):
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
                target = np.empty((self.T, self.B), self.dtype, order=self.order)
                targets.append(target)
                results.append(target.reshape(self.shape))
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
            o2 = o.reshape(self.T, self.B) if o.ndim == 1 else o
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

    def launch(self, fast: ModuleType, name: str, args: tuple, parallel) -> None:
        layout = "c" if self.order == "C" and name != "nstep" else "any"
        threads = _thread_count(parallel, self.T * self.B, self.B)
        _launch(getattr(fast, f"{name}_{layout}"), args, self.B, threads, self.block())


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
    out=None,
    parallel: bool | int | None = None,
):
    """Generalized Advantage Estimation, GAE(γ, λ).

    δ_t = r_t + γ(1 − term_t)·V(s_{t+1}) − V(s_t)
    A_t = δ_t + γλ(1 − done_t)·A_{t+1},  A_T = 0
    returns_t = A_t + V(s_t)  (the TD(λ) value target)

    Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
    Estimation", https://arxiv.org/abs/1506.02438.

    Args:
      rewards, values, next_values: float ``[T, B]`` (or ``[T]``): r_t, V(s_t), V(s_{t+1}).
      terminated, truncated: bool ``[T, B]``: episode ended after step t, without / with
        bootstrap.
      gamma: discount γ in [0, 1]. lam: λ in [0, 1] (0: one-step TD, 1: Monte Carlo).
      out: optional ``(advantages, returns)`` buffers (either may be None).
      parallel: None (auto), True / False, or a thread count (see module docs).

    Returns:
      ``(advantages, returns)``, each ``[T, B]`` in the input float dtype.
    """
    batch = _Batch(
        {"rewards": rewards, "values": values, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated},
    )
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    lam = _scalar("lam", lam, 0.0, 1.0)
    targets, results, copies = batch.outputs(out, ("advantages", "returns"))
    a = batch.arrays
    fast = _fast()
    if fast is None:
        adv, ret = reference.gae(
            a["rewards"], a["values"], a["next_values"], a["terminated"], a["truncated"],
            gamma, lam,
        )
        targets[0][...], targets[1][...] = adv, ret
    else:
        args = (
            a["rewards"], a["values"], a["next_values"], a["terminated"], a["truncated"],
            batch.scalar(gamma), batch.scalar(lam), targets[0], targets[1],
        )
        batch.launch(fast, "gae", args, parallel)
    adv, ret = _finish(copies, results)
    return adv, ret


def vtrace(
    behavior_logp,
    target_logp,
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
    out=None,
    parallel: bool | int | None = None,
):
    """V-trace value targets and policy-gradient advantages (off-policy corrected).

    ratio_t = exp(target_logp_t − behavior_logp_t)
    ρ_t = min(ρ̄, ratio_t),  c_t = λ·min(c̄, ratio_t)
    δ_t = ρ_t·(r_t + γ(1 − term_t)·V(s_{t+1}) − V(s_t))
    vs_t = V(s_t) + δ_t + γ(1 − done_t)·c_t·(vs_{t+1} − V(s_{t+1}))   (zero beyond the end)
    next_vs_t = vs_{t+1} within an episode, V(s_{t+1}) at done steps and on the last row
    pg_advantages_t = min(ρ̄_pg, ratio_t)·(r_t + γ(1 − term_t)·next_vs_t − V(s_t))

    On-policy (ratio = 1, clips ≥ 1) ``vs`` equals GAE(λ) returns. For float32 the kernel's
    exp is a vectorised one, within 2 ulp of numpy's (ratios below e^-86.9 become 0); NaN
    log-probabilities propagate (clipping does not hide them). Espeholt et al. 2018,
    "IMPALA: Scalable Distributed Deep-RL with Importance Weighted Actor-Learner
    Architectures", https://arxiv.org/abs/1802.01561 (λ as in its Remark 2).

    Args:
      behavior_logp, target_logp: float ``[T, B]``: log π_behaviour(a_t|s_t), log π(a_t|s_t).
      rewards, values, next_values, terminated, truncated: as in :func:`gae`.
      gamma: γ in [0, 1]. lam: λ in [0, 1], scales the traces c_t.
      rho_clip, c_clip, pg_rho_clip: ρ̄, c̄, ρ̄_pg > 0 (``inf``: no clipping).
      out: optional ``(vs, pg_advantages)`` buffers (either may be None).
      parallel: None (auto), True / False, or a thread count.

    Returns:
      ``(vs, pg_advantages)``, each ``[T, B]`` in the input float dtype.
    """
    batch = _Batch(
        {
            "rewards": rewards,
            "behavior_logp": behavior_logp,
            "target_logp": target_logp,
            "values": values,
            "next_values": next_values,
        },
        {"terminated": terminated, "truncated": truncated},
    )
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    lam = _scalar("lam", lam, 0.0, 1.0)
    clips = [
        _scalar(name, x, 0.0, math.inf, lo_open=True)
        for name, x in (("rho_clip", rho_clip), ("c_clip", c_clip), ("pg_rho_clip", pg_rho_clip))
    ]
    targets, results, copies = batch.outputs(out, ("vs", "pg_advantages"))
    a = batch.arrays
    args = (
        a["behavior_logp"], a["target_logp"], a["rewards"], a["values"], a["next_values"],
        a["terminated"], a["truncated"],
    )
    fast = _fast()
    if fast is None:
        vs, pg = reference.vtrace(*args, gamma, lam, *clips)
        targets[0][...], targets[1][...] = vs, pg
    else:
        scalars = (batch.scalar(gamma), batch.scalar(lam), *map(batch.scalar, clips))
        batch.launch(fast, "vtrace", (*args, *scalars, targets[0], targets[1]), parallel)
    vs, pg = _finish(copies, results)
    return vs, pg


def _returns(rewards, next_values, terminated, truncated, gamma, lam, out, parallel):
    batch = _Batch(
        {"rewards": rewards, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated},
    )
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    mc = lam is None
    lam = 1.0 if mc else _scalar("lam", lam, 0.0, 1.0)
    targets, results, copies = batch.outputs(out, ("returns",))
    a = batch.arrays
    args = (a["rewards"], a["next_values"], a["terminated"], a["truncated"])
    fast = _fast()
    if fast is None:
        if mc:
            targets[0][...] = reference.discounted_returns(*args, gamma)
        else:
            targets[0][...] = reference.lambda_returns(*args, gamma, lam)
    else:
        one_minus_lam = batch.scalar(1.0) - batch.scalar(lam)
        scalars = (batch.scalar(gamma), batch.scalar(lam), one_minus_lam, mc)
        batch.launch(fast, "lambda", (*args, *scalars, targets[0]), parallel)
    return _finish(copies, results)[0]


def discounted_returns(
    rewards,
    next_values,
    terminated,
    truncated,
    gamma: float = 0.99,
    *,
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
      out: optional ``returns`` buffer. parallel: None (auto), True / False, or a thread count.

    Returns:
      ``returns`` ``[T, B]`` in the input float dtype.
    """
    return _returns(rewards, next_values, terminated, truncated, gamma, None, out, parallel)


def lambda_returns(
    rewards,
    next_values,
    terminated,
    truncated,
    gamma: float = 0.99,
    lam: float = 0.95,
    *,
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
      out: optional ``returns`` buffer. parallel: None (auto), True / False, or a thread count.

    Returns:
      ``returns`` ``[T, B]`` in the input float dtype.
    """
    return _returns(rewards, next_values, terminated, truncated, gamma, lam, out, parallel)


def n_step_returns(
    rewards,
    next_values,
    terminated,
    truncated,
    n: int,
    gamma: float = 0.99,
    *,
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
      out: optional ``returns`` buffer. parallel: None (auto), True / False, or a thread count.

    Returns:
      ``returns`` ``[T, B]`` in the input float dtype.
    """
    batch = _Batch(
        {"rewards": rewards, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated},
    )
    if isinstance(n, bool | np.bool_) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    gamma = _scalar("gamma", gamma, 0.0, 1.0)
    targets, results, copies = batch.outputs(out, ("returns",))
    a = batch.arrays
    args = (a["rewards"], a["next_values"], a["terminated"], a["truncated"])
    fast = _fast()
    if fast is None:
        targets[0][...] = reference.n_step_returns(*args, int(n), gamma)
    else:
        batch.launch(fast, "nstep", (*args, batch.scalar(gamma), int(n), targets[0]), parallel)
    return _finish(copies, results)[0]

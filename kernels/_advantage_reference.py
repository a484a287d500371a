"""Plain NumPy references for the advantage and return kernels.

These are the executable specification of :mod:`gristmill.kernels.advantage`: one backward
loop over time, vectorised over the batch, with every formula written out the way the
papers state it. The Numba kernels in ``_advantage_numba`` perform the same floating-point
operations in the same order, so the two agree to rounding (``exp`` aside).

Conventions (shared with the public API, which validates inputs before calling either
implementation):

- arrays are time-major ``[T, B]`` (a ``[T]`` stream also works), any memory layout;
  ``time_axis=1`` takes batch-major ``[B, T]`` arrays instead and returns results in that shape;
- ``next_values[t]`` is V(s_{t+1}), the value of the observation that followed step ``t``:
  the real final observation at an episode end, the bootstrap value on the last row;
- ``terminated[t]``: s_{t+1} is terminal, so ``next_values[t]`` is ignored (it may even be
  NaN); ``truncated[t]``: the episode was cut after step ``t``, so bootstrap from
  ``next_values[t]`` but stop the trace; ``done = terminated | truncated``;
- results take the float dtype of ``rewards``; scalars (``gamma`` ...) are rounded to that
  dtype first and all arithmetic happens in it (float32 stays float32 throughout).

No argument checking happens here: call these with arrays of one float dtype and boolean
flags (the public functions do that for you).
"""

from __future__ import annotations

import numpy as np

__all__ = ["discounted_returns", "gae", "lambda_returns", "n_step_returns", "vtrace"]


def _scalars(dtype, *values):
    """Round scalars to the array dtype, so float32 work stays float32 (and matches Numba)."""
    return tuple(dtype.type(v) for v in values)


def _bootstrap(gamma, next_values, terminated):
    """γ·V(s_{t+1}), or 0 where s_{t+1} is terminal (a select, so NaN there cannot leak)."""
    return np.where(terminated, 0, gamma * next_values)


def _time_major(time_axis, *arrays):
    """The arrays with time first (views): ``time_axis`` 1 (or -1 of a 2-D array) swaps."""
    arrays = [None if a is None else np.asarray(a) for a in arrays]
    if time_axis in (0, -arrays[0].ndim):
        return arrays
    return [None if a is None else a.T for a in arrays]


def _restore(time_axis, ndim, *results):
    if time_axis in (0, -ndim):
        return results if len(results) > 1 else results[0]
    results = tuple(np.asarray(r).T for r in results)
    return results if len(results) > 1 else results[0]


def gae(
    rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95, mask=None,
    time_axis=0,
):
    """GAE(γ, λ) (Schulman et al. 2016, arXiv:1506.02438). Returns ``(advantages, returns)``.

    δ_t = r_t + γ(1−term_t)·nv_t − v_t;  A_t = δ_t + k_t(1−done_t)·A_{t+1}, A_T = 0;
    returns = A + v; k_t = γλ. Where ``mask`` is False, r_t and v_t count as 0 and k_t = 1
    (Sample Factory's invalid samples: the trace crosses them undiscounted).
    """
    ndim = np.ndim(rewards)
    rewards, values, next_values, terminated, truncated, mask = _time_major(
        time_axis, rewards, values, next_values, terminated, truncated, mask
    )
    dtype = rewards.dtype
    done = np.logical_or(terminated, truncated)
    gamma, lam = _scalars(dtype, gamma, lam)
    gl = gamma * lam
    if mask is not None:
        rewards, values = np.where(mask, rewards, 0), np.where(mask, values, 0)
        k = np.where(mask, gl, 1)
    delta = rewards + _bootstrap(gamma, next_values, terminated) - values
    advantages = np.empty(rewards.shape, dtype)
    last = np.zeros(rewards.shape[1:], dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        k_t = gl if mask is None else k[t]
        last = delta[t] + np.where(done[t], 0, k_t * last)
        advantages[t] = last
    return _restore(time_axis, ndim, advantages, advantages + values)


def vtrace(
    log_rhos,
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    gamma=0.99,
    lam=1.0,
    rho_clip=1.0,
    c_clip=1.0,
    pg_rho_clip=1.0,
    time_axis=0,
):
    """V-trace targets (Espeholt et al. 2018, arXiv:1802.01561). Returns ``(pg_advantages, vs)``.

    ratio_t = exp(log_rhos_t) = π(a_t|s_t)/μ(a_t|s_t);
    ρ_t = min(ρ̄, ratio_t); c_t = λ·min(c̄, ratio_t);
    δ_t = ρ_t·(r_t + γ(1−term_t)·nv_t − v_t);  acc_t = δ_t + γ(1−done_t)·c_t·acc_{t+1}, acc_T = 0;
    vs_t = v_t + acc_t;  next_vs_t = vs_{t+1} unless done_t or t = T−1, else nv_t;
    pg_advantages_t = min(ρ̄_pg, ratio_t)·(r_t + γ(1−term_t)·next_vs_t − v_t).
    """
    ndim = np.ndim(rewards)
    log_rhos, rewards, values, next_values, terminated, truncated = _time_major(
        time_axis, log_rhos, rewards, values, next_values, terminated, truncated
    )
    dtype = rewards.dtype
    done = np.logical_or(terminated, truncated)
    gamma, lam, rho_clip, c_clip, pg_rho_clip = _scalars(
        dtype, gamma, lam, rho_clip, c_clip, pg_rho_clip
    )
    ratio = np.exp(log_rhos)
    rho = np.minimum(rho_clip, ratio)
    gc = gamma * (lam * np.minimum(c_clip, ratio))
    delta = rho * (rewards + _bootstrap(gamma, next_values, terminated) - values)
    T = rewards.shape[0]
    vs = np.empty(rewards.shape, dtype)
    pg = np.empty(rewards.shape, dtype)
    acc = np.zeros(rewards.shape[1:], dtype)
    for t in range(T - 1, -1, -1):
        acc = delta[t] + np.where(done[t], 0, gc[t] * acc)
        vs[t] = values[t] + acc
        next_vs = next_values[t] if t == T - 1 else np.where(done[t], next_values[t], vs[t + 1])
        target = rewards[t] + _bootstrap(gamma, next_vs, terminated[t])
        pg[t] = np.minimum(pg_rho_clip, ratio[t]) * (target - values[t])
    return _restore(time_axis, ndim, pg, vs)


def discounted_returns(rewards, next_values, terminated, truncated, gamma=0.99, time_axis=0):
    """Bootstrapped Monte-Carlo returns (λ = 1): G_t = r_t + γ(1−term_t)·X_t.

    X_t = nv_t where done_t or t = T−1 (truncation and the last row bootstrap from V(s_{t+1})),
    else G_{t+1}.
    """
    ndim = np.ndim(rewards)
    rewards, next_values, terminated, truncated = _time_major(
        time_axis, rewards, next_values, terminated, truncated
    )
    done = np.logical_or(terminated, truncated)
    (gamma,) = _scalars(rewards.dtype, gamma)
    returns = np.empty(rewards.shape, rewards.dtype)
    T = rewards.shape[0]
    for t in range(T - 1, -1, -1):
        nxt = next_values[t] if t == T - 1 else np.where(done[t], next_values[t], returns[t + 1])
        returns[t] = rewards[t] + _bootstrap(gamma, nxt, terminated[t])
    return _restore(time_axis, ndim, returns)


def lambda_returns(
    rewards, next_values, terminated, truncated, gamma=0.99, lam=0.95, time_axis=0
):
    """TD(λ) returns (Sutton & Barto 2018, §12.1): G_t = r_t + γ(1−term_t)·X_t.

    X_t = nv_t where done_t or t = T−1, else (1−λ)·nv_t + λ·G_{t+1}. With consistent values
    (nv_t = v_{t+1} inside an episode) this equals GAE(λ) advantages + values.
    """
    ndim = np.ndim(rewards)
    rewards, next_values, terminated, truncated = _time_major(
        time_axis, rewards, next_values, terminated, truncated
    )
    done = np.logical_or(terminated, truncated)
    returns = np.empty(rewards.shape, rewards.dtype)
    T = rewards.shape[0]
    gamma, lam, one = _scalars(rewards.dtype, gamma, lam, 1.0)
    one_minus_lam = one - lam
    for t in range(T - 1, -1, -1):
        if t == T - 1:
            nxt = next_values[t]
        else:
            mixed = one_minus_lam * next_values[t] + lam * returns[t + 1]
            nxt = np.where(done[t], next_values[t], mixed)
        returns[t] = rewards[t] + _bootstrap(gamma, nxt, terminated[t])
    return _restore(time_axis, ndim, returns)


def n_step_returns(rewards, next_values, terminated, truncated, n, gamma=0.99, time_axis=0):
    """n-step bootstrapped returns (Sutton & Barto 2018, §7.1; as in Ape-X/R2D2 targets).

    G_t = Σ_{k<m} γ^k r_{t+k} + γ^m (1−term_{t+m−1})·nv_{t+m−1}, where m ≤ n is cut short by
    the first done step at or after t and by the end of the rollout. n = 1 is the TD(0)
    target; n ≥ T gives :func:`discounted_returns`.
    """
    ndim = np.ndim(rewards)
    rewards, next_values, terminated, truncated = _time_major(
        time_axis, rewards, next_values, terminated, truncated
    )
    done = np.logical_or(terminated, truncated)
    T = rewards.shape[0]
    (gamma,) = _scalars(rewards.dtype, gamma)
    returns = np.empty(rewards.shape, rewards.dtype)
    for t in range(T):
        acc = np.zeros(rewards.shape[1:], rewards.dtype)
        disc = np.ones(rewards.shape[1:], rewards.dtype)
        live = np.ones(rewards.shape[1:], bool)  # still accumulating
        for k in range(min(n, T - t)):
            s = t + k
            acc = np.where(live, acc + disc * rewards[s], acc)
            disc = np.where(live, disc * gamma, disc)
            stop = live & (done[s] | (k == n - 1) | (s == T - 1))
            boot = np.where(terminated[s], 0, disc * next_values[s])
            acc = np.where(stop, acc + boot, acc)
            live = live & ~stop
        returns[t] = acc
    return _restore(time_axis, ndim, returns)

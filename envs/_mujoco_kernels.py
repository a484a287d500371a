"""Numba kernels for the MuJoCo tasks' observation/reward (one compiled call per step).

They reproduce numpy's results bit for bit: sums use numpy's pairwise summation
(``pairwise_sum`` in numpy's ``loops_utils.h``: 8 accumulators, blocks of 128, halving above),
and float32 arithmetic stays float32 where numpy 2 (NEP 50) keeps it float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["ant_obs_reward", "forward_obs_reward", "hopper_obs_reward", "humanoid_obs_reward",
           "mass_center_x", "pairwise_sumsq"]


@njit(cache=True, nogil=True)
def _block_sq(a, lo, n):
    """numpy's pairwise_sum base case (n <= 128) over squared values."""
    if n < 8:
        res = a[lo] * np.float32(0)
        for i in range(lo, lo + n):
            res += a[i] * a[i]
        return res
    r0 = a[lo] * a[lo]
    r1 = a[lo + 1] * a[lo + 1]
    r2 = a[lo + 2] * a[lo + 2]
    r3 = a[lo + 3] * a[lo + 3]
    r4 = a[lo + 4] * a[lo + 4]
    r5 = a[lo + 5] * a[lo + 5]
    r6 = a[lo + 6] * a[lo + 6]
    r7 = a[lo + 7] * a[lo + 7]
    m = n - n % 8
    for i in range(lo + 8, lo + m, 8):
        r0 += a[i] * a[i]
        r1 += a[i + 1] * a[i + 1]
        r2 += a[i + 2] * a[i + 2]
        r3 += a[i + 3] * a[i + 3]
        r4 += a[i + 4] * a[i + 4]
        r5 += a[i + 5] * a[i + 5]
        r6 += a[i + 6] * a[i + 6]
        r7 += a[i + 7] * a[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(lo + m, lo + n):
        res += a[i] * a[i]
    return res


# numpy recurses (halves rounded to multiples of 8) above 128 elements. Numba's cache breaks
# on recursive functions, so the recursion is unrolled: three levels cover n <= ~1000.
@njit(cache=True, nogil=True)
def _pw1(a, lo, n):
    if n <= 128:
        return _block_sq(a, lo, n)
    n2 = n // 2
    n2 -= n2 % 8
    return _block_sq(a, lo, n2) + _block_sq(a, lo + n2, n - n2)


@njit(cache=True, nogil=True)
def _pw2(a, lo, n):
    if n <= 128:
        return _block_sq(a, lo, n)
    n2 = n // 2
    n2 -= n2 % 8
    return _pw1(a, lo, n2) + _pw1(a, lo + n2, n - n2)


@njit(cache=True, nogil=True)
def _pw_sq(a, lo, n):
    if n <= 128:
        return _block_sq(a, lo, n)
    if n > 960:
        raise ValueError("pairwise_sumsq supports at most 960 elements")
    n2 = n // 2
    n2 -= n2 % 8
    return _pw2(a, lo, n2) + _pw2(a, lo + n2, n - n2)


@njit(cache=True, nogil=True)
def pairwise_sumsq(a):
    """``np.sum(np.square(a))`` for a 1-D contiguous array, bit-identical to numpy."""
    return _pw_sq(a, 0, a.shape[0])


@njit(cache=True, nogil=True)
def ant_obs_reward(qpos, qvel, cfrc, cf, obs, action, x_vel, fw, cw, ccw, hr, zlo, zhi,
                   lo, hi, write_obs):
    """Ant-v5: fill ``obs`` (qpos[2:], qvel, clip(cfrc_ext[1:])), return (reward, healthy).

    ``cfrc``/``cf``: flat views of ``cfrc_ext`` and a scratch buffer of the same size.
    """
    k = 0
    if write_obs:
        for i in range(2, qpos.shape[0]):
            obs[k] = qpos[i]
            k += 1
        for i in range(qvel.shape[0]):
            obs[k] = qvel[i]
            k += 1
    for i in range(cfrc.shape[0]):
        v = cfrc[i]
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        cf[i] = v
        if write_obs and i >= 6:
            obs[k] = v
            k += 1
    finite = True
    for i in range(qpos.shape[0]):
        if not np.isfinite(qpos[i]):
            finite = False
    for i in range(qvel.shape[0]):
        if not np.isfinite(qvel[i]):
            finite = False
    healthy = finite and zlo <= qpos[2] and qpos[2] <= zhi
    contact = ccw * _pw_sq(cf, 0, cf.shape[0])
    ctrl = np.float32(cw) * _pw_sq(action, 0, action.shape[0])  # float32, as numpy 2
    reward = (x_vel * fw + (hr if healthy else 0.0)) - (ctrl + contact)
    return reward, healthy


@njit(cache=True, nogil=True)
def forward_obs_reward(qpos, qvel, obs, action, x_before, dt, fw, cw, skip):
    """HalfCheetah-v5 (``skip=1``), Swimmer-v5 (``skip=2``): fill ``obs`` (qpos[skip:],
    qvel), return ``fw * x_vel - cw * sum(action ** 2)``, ``x_vel = (qpos[0] - x_before) / dt``.

    ``cw`` comes in the action's dtype: numpy 2 computes the control cost in float32 for a
    float32 action (NEP 50), and so does this.
    """
    k = 0
    for i in range(skip, qpos.shape[0]):
        obs[k] = qpos[i]
        k += 1
    for i in range(qvel.shape[0]):
        obs[k] = qvel[i]
        k += 1
    x_vel = (qpos[0] - x_before) / dt
    return fw * x_vel - cw * _pw_sq(action, 0, action.shape[0])


@njit(cache=True, nogil=True)
def mass_center_x(xipos, mass, total):
    """``(np.sum(mass[:, None] * xipos, axis=0) / total)[0]``: numpy sums over bodies in
    order (the reduced axis is not the contiguous one), so does this."""
    s = 0.0
    for b in range(mass.shape[0]):
        s += mass[b] * xipos[b, 0]
    return s / total


@njit(cache=True, nogil=True)
def _put(obs, k, src, lo):
    for i in range(lo, src.shape[0]):
        obs[k] = src[i]
        k += 1
    return k


@njit(cache=True, nogil=True)
def humanoid_obs_reward(qpos, qvel, cinert, cvel, qfrc, cfrc, xipos, mass, total, obs, ctrl,
                        x_before, dt, fw, cw, ccw, clo, chi, hr, zlo, zhi):
    """Humanoid-v5: fill ``obs`` (qpos[2:], qvel, cinert[1:], cvel[1:], qfrc_actuator[6:],
    cfrc_ext[1:]; the 2-D fields as flat views), return (reward, healthy)."""
    k = _put(obs, 0, qpos, 2)
    k = _put(obs, k, qvel, 0)
    k = _put(obs, k, cinert, 10)
    k = _put(obs, k, cvel, 6)
    k = _put(obs, k, qfrc, 6)
    _put(obs, k, cfrc, 6)
    x_vel = (mass_center_x(xipos, mass, total) - x_before) / dt
    healthy = zlo < qpos[2] and qpos[2] < zhi
    control = cw * _pw_sq(ctrl, 0, ctrl.shape[0])
    contact = min(max(ccw * _pw_sq(cfrc, 0, cfrc.shape[0]), clo), chi)
    reward = (fw * x_vel + (hr if healthy else 0.0)) - (control + contact)
    return reward, healthy


@njit(cache=True, nogil=True)
def hopper_obs_reward(qpos, qvel, obs, action, x_before, dt, fw, cw, hr, slo, shi, check_state,
                      zlo, zhi, alo, ahi):
    """Hopper-v5, Walker2d-v5 (``check_state=False``): fill ``obs`` (qpos[1:],
    clip(qvel, -10, 10), NaN kept as np.clip keeps it), return (reward, healthy). ``cw`` in
    the action's dtype, as in :func:`forward_obs_reward`."""
    k = _put(obs, 0, qpos, 1)
    for i in range(qvel.shape[0]):
        v = qvel[i]
        if v < -10.0:
            v = -10.0
        if v > 10.0:
            v = 10.0
        obs[k] = v
        k += 1
    healthy = zlo < qpos[1] and qpos[1] < zhi and alo < qpos[2] and qpos[2] < ahi
    if check_state:  # state_vector()[2:]: qpos[2:] and qvel
        for i in range(2, qpos.shape[0]):
            if not (slo < qpos[i] and qpos[i] < shi):
                healthy = False
        for i in range(qvel.shape[0]):
            if not (slo < qvel[i] and qvel[i] < shi):
                healthy = False
    x_vel = (qpos[0] - x_before) / dt
    ctrl = cw * _pw_sq(action, 0, action.shape[0])
    return (fw * x_vel + (hr if healthy else 0.0)) - ctrl, healthy

"""Sample Factory's advantage/target computations on top of gristmill's kernels.

``gae`` and ``vtrace`` here adapt Sample Factory's buffer layout (trajectory-major ``[N, T]``
torch tensors, one ``dones`` flag, validity masks) to :mod:`gristmill.kernels.advantage`
(time-major ``[T, B]`` numpy, separate ``terminated``/``truncated``). When that module is not
importable a torch loop with the same semantics is used, so learners work either way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["sf_gae", "sf_vtrace", "gae_time_major", "vtrace_time_major", "kernels_available"]


def _kernels():
    try:
        from gristmill.kernels import advantage  # noqa: PLC0415 - optional fast path
    except ImportError:
        return None
    return advantage


def kernels_available() -> bool:
    """Whether :mod:`gristmill.kernels.advantage` (Numba) is importable."""
    return _kernels() is not None


def _torch_gae(rewards, values, next_values, terminated, truncated, gamma, lam, discount=None):
    """GAE as a torch loop; ``discount`` ``[T, B]``, when given, replaces γλ step by step."""
    done = (terminated | truncated).to(rewards.dtype)
    nonterm = 1.0 - terminated.to(rewards.dtype)
    delta = rewards + gamma * nonterm * next_values - values
    if discount is None:
        discount = torch.full_like(rewards, gamma * lam)
    adv = torch.empty_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = delta[t] + discount[t] * (1.0 - done[t]) * last
        adv[t] = last
    return adv, adv + values


def _torch_vtrace(
    blogp,
    tlogp,
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    gamma,
    lam,
    rho_clip,
    c_clip,
    pg_rho_clip,
):
    done = (terminated | truncated).to(rewards.dtype)
    nonterm = 1.0 - terminated.to(rewards.dtype)
    ratio = torch.exp(tlogp - blogp)
    rho = torch.clamp(ratio, max=rho_clip)
    cs = lam * torch.clamp(ratio, max=c_clip)
    delta = rho * (rewards + gamma * nonterm * next_values - values)
    T = rewards.shape[0]
    vs = torch.empty_like(rewards)
    pg = torch.empty_like(rewards)
    acc = torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        acc = delta[t] + gamma * (1.0 - done[t]) * cs[t] * acc
        vs[t] = values[t] + acc
        if t == T - 1:
            nvs = next_values[t]
        else:
            nvs = torch.where(done[t] > 0, next_values[t], vs[t + 1])
        pg[t] = torch.clamp(ratio[t], max=pg_rho_clip) * (
            rewards[t] + gamma * nonterm[t] * nvs - values[t]
        )
    return vs, pg


def gae_time_major(rewards, values, next_values, terminated, truncated, gamma, lam):
    """GAE on time-major ``[T, B]`` torch tensors via the kernel (CPU numpy) or torch."""
    k = _kernels()
    if k is None:
        return _torch_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    args = [x.detach().cpu().numpy() for x in (rewards, values, next_values)]
    flags = [
        np.ascontiguousarray(x.detach().cpu().numpy().astype(bool)) for x in (terminated, truncated)
    ]
    adv, ret = k.gae(*args, *flags, gamma, lam)
    dev = rewards.device
    return torch.from_numpy(np.asarray(adv)).to(dev), torch.from_numpy(np.asarray(ret)).to(dev)


def vtrace_time_major(
    blogp,
    tlogp,
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    gamma,
    lam=1.0,
    rho_clip=1.0,
    c_clip=1.0,
    pg_rho_clip=1.0,
):
    """V-trace on time-major ``[T, B]`` torch tensors via the kernel or torch."""
    k = _kernels()
    if k is None:
        return _torch_vtrace(
            blogp,
            tlogp,
            rewards,
            values,
            next_values,
            terminated,
            truncated,
            gamma,
            lam,
            rho_clip,
            c_clip,
            pg_rho_clip,
        )
    arrs = [x.detach().cpu().numpy() for x in (blogp, tlogp, rewards, values, next_values)]
    flags = [
        np.ascontiguousarray(x.detach().cpu().numpy().astype(bool)) for x in (terminated, truncated)
    ]
    vs, pg = k.vtrace(*arrs, *flags, gamma, lam, rho_clip, c_clip, pg_rho_clip)
    dev = rewards.device
    return torch.from_numpy(np.asarray(vs)).to(dev), torch.from_numpy(np.asarray(pg)).to(dev)


def sf_gae(
    rewards: Tensor, dones: Tensor, values: Tensor, valids: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Sample Factory 2.x ``gae_advantages`` + returns for trajectory-major buffers.

    Args:
      rewards, dones: ``[N, T]`` (``dones[t]``: the episode ended after step t).
      values: ``[N, T + 1]`` de-normalised values, the last column the bootstrap.
      valids: bool ``[N, T + 1]``.

    δ_t = (r_t − V_t)·valid_t + (1 − d_t)·γ·V_{t+1}·valid_{t+1};
    A_t = δ_t + k_t(1 − d_t)·A_{t+1} with k_t = γλ at valid steps and 1 at invalid ones (Sample
    Factory does not discount across the part of a trajectory it skips); returns = A + valid·V.
    Returns ``(adv, returns)`` ``[N, T]``. All-valid batches (the usual case) take the kernel.
    """
    vf = valids.to(values.dtype)
    v = values * vf
    tm = lambda x: x.transpose(0, 1).contiguous()  # noqa: E731
    r = tm(rewards.to(values.dtype) * vf[:, :-1])
    term = tm(dones.bool())
    args = (r, tm(v[:, :-1]), tm(v[:, 1:]), term, torch.zeros_like(term), gamma, lam)
    if bool(valids[:, :-1].all()):
        adv, ret = gae_time_major(*args)
    else:
        valid = tm(vf[:, :-1])
        adv, ret = _torch_gae(*args, discount=gamma * lam * valid + (1.0 - valid))
    return adv.transpose(0, 1), ret.transpose(0, 1)


def sf_vtrace(
    ratio: Tensor,
    rewards: Tensor,
    dones: Tensor,
    values: Tensor,
    gamma: float,
    rho: float = 1.0,
    c: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Sample Factory's per-minibatch V-trace (``with_vtrace=True``) on ``[N, T]`` trajectories.

    ``ratio`` is the clamped π/μ, ``values`` the current (detached) values. The value after
    the last step is taken as (V_{T−1} − r_{T−1})/γ, which makes the last TD error zero.
    A_t = ρ_t(r_t + γ(1 − d_t)·vs_{t+1} − V_t). Returns ``(vs, adv)`` ``[N, T]``.
    """
    values = values.detach().float()
    rewards = rewards.float()
    next_values = torch.empty_like(values)
    next_values[:, :-1] = values[:, 1:]
    next_values[:, -1] = (values[:, -1] - rewards[:, -1]) / gamma
    tm = lambda x: x.transpose(0, 1).contiguous()  # noqa: E731
    term = tm(dones.bool())
    logr = torch.log(ratio.detach().float())
    vs, adv = vtrace_time_major(
        torch.zeros_like(tm(logr)),
        tm(logr),
        tm(rewards),
        tm(values),
        tm(next_values),
        term,
        torch.zeros_like(term),
        gamma,
        1.0,
        rho,
        c,
        rho,
    )
    return vs.transpose(0, 1), adv.transpose(0, 1)

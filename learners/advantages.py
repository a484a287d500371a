"""Sample Factory's GAE and V-trace conventions, mapped onto :mod:`gristmill.kernels.advantage`.

Sample Factory keeps trajectory-major ``[N, T]`` buffers (values ``[N, T + 1]``, the last
column the bootstrap value), one ``dones`` flag with ``time_outs`` beside it, and validity
masks. These two functions only translate that layout into the kernels' arguments and back
into torch; the arithmetic is the kernels'. ``time_axis=1`` hands the ``[N, T]`` buffers to the
kernels as they are (no transposes), and on the CPU ``Tensor.numpy()`` / ``torch.from_numpy``
share memory: the only copies are the ``[N, T]`` slices of the ``[N, T + 1]`` values and the
next-value arrays built here (measured on the CPU, [32, 32]: ~85 µs of torch around a ~55 µs
kernel call). On CUDA each call moves its inputs to the host once and the two results back:
GAE runs once per batch, V-trace once per minibatch (it needs that minibatch's current values,
which only exist on the device, so that round trip cannot be avoided with a CPU kernel).

Value bootstrap at time-outs (Sample Factory's ``value_bootstrap``): a step that ended by
truncation is passed to the kernels as ``truncated``, bootstrapping from V(s_t), the step's
own value (the final observation's value is not kept), which is what Sample Factory's
``rewards += γ·V(s_t)`` at such steps amounts to, operation for operation.
"""

from __future__ import annotations

import numpy as np
import torch
from gristmill.kernels import advantage as K
from torch import Tensor

__all__ = ["sf_gae", "sf_vtrace"]


def _np(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().cpu().numpy()


def _split_dones(dones: Tensor, time_outs: Tensor | None) -> tuple[Tensor, Tensor]:
    """(terminated, truncated) from Sample Factory's dones and (optional) time_outs."""
    dones = dones.bool()
    if time_outs is None:
        return dones, torch.zeros_like(dones)
    truncated = dones & time_outs.bool()
    return dones & ~truncated, truncated


def sf_gae(
    rewards: Tensor,
    dones: Tensor,
    values: Tensor,
    valids: Tensor,
    gamma: float,
    lam: float,
    time_outs: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Sample Factory 2.x ``gae_advantages`` + returns for trajectory-major buffers.

    Args:
      rewards, dones: ``[N, T]`` (``dones[t]``: the episode ended after step t).
      values: ``[N, T + 1]`` de-normalised values, the last column the bootstrap.
      valids: bool ``[N, T + 1]``.
      time_outs: optional bool ``[N, T]``: with it, a done step that timed out bootstraps from
        its own value (``value_bootstrap``) instead of ending the return.

    δ_t = (r_t − V_t)·valid_t + (1 − d_t)·γ·V_{t+1}·valid_{t+1};
    A_t = δ_t + k_t(1 − d_t)·A_{t+1} with k_t = γλ at valid steps and 1 at invalid ones (Sample
    Factory does not discount across the part of a trajectory it skips); returns = A + valid·V.
    Returns ``(advantages, returns)`` ``[N, T]`` on the device of ``rewards``.
    """
    terminated, truncated = _split_dones(dones, time_outs)
    valids = valids.bool()
    next_values = values[:, 1:] * valids[:, 1:]
    if time_outs is not None:  # V(s_t) where the step timed out (0 where it is invalid)
        next_values = torch.where(truncated, values[:, :-1] * valids[:, :-1], next_values)
    adv, ret = K.gae(
        _np(rewards.to(values.dtype)), _np(values[:, :-1]), _np(next_values), _np(terminated),
        _np(truncated), gamma, lam, mask=_np(valids[:, :-1]), time_axis=1,
    )
    dev = rewards.device
    return torch.from_numpy(adv).to(dev), torch.from_numpy(ret).to(dev)


def sf_vtrace(
    ratio: Tensor,
    rewards: Tensor,
    dones: Tensor,
    values: Tensor,
    gamma: float,
    rho: float = 1.0,
    c: float = 1.0,
    truncated: Tensor | None = None,
    truncated_values: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Sample Factory's per-minibatch V-trace (``with_vtrace=True``) on ``[N, T]`` trajectories.

    ``ratio`` is the clamped π/μ, ``values`` the current (detached) values. The value after
    the last step is taken as (V_{T−1} − r_{T−1})/γ, which makes the last TD error zero.
    A_t = ρ_t(r_t + γ(1 − d_t)·vs_{t+1} − V_t). With ``truncated`` (bool ``[N, T]``, done steps
    that timed out) those steps bootstrap from ``truncated_values`` (the batch's V(s_t)).
    Returns ``(advantages, vs)`` ``[N, T]`` on the device of ``values``.
    """
    values = values.detach().float()
    rewards = rewards.float()
    next_values = torch.empty_like(values)
    next_values[:, :-1] = values[:, 1:]
    next_values[:, -1] = (values[:, -1] - rewards[:, -1]) / gamma
    terminated = dones.bool()
    if truncated is None:
        truncated = torch.zeros_like(terminated)
    else:
        truncated = truncated.bool()
        terminated = terminated & ~truncated
        next_values = torch.where(truncated, truncated_values.float(), next_values)
    adv, vs = K.vtrace(
        _np(torch.log(ratio.detach().float())), _np(rewards), _np(values), _np(next_values),
        _np(terminated), _np(truncated), gamma, 1.0, rho, c, rho, time_axis=1,
    )
    dev = values.device
    return torch.from_numpy(adv).to(dev), torch.from_numpy(vs).to(dev)

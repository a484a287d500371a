"""PPO/APPO loss terms as plain functions (TorchRL-style); the learner classes compose them.

Every function takes flat tensors ``[N]`` plus an optional boolean ``valids[N]`` mask; means
are over valid samples only (Sample Factory's ``masked_select``), so stale or foreign samples
contribute nothing. Papers: PPO (Schulman et al. 2017, arXiv:1707.06347); APPO as in Sample
Factory (Petrenko et al. 2020, arXiv:2006.11751).
"""

from __future__ import annotations

import torch
from gristmill.learners.distributions import ActionDistribution
from torch import Tensor

__all__ = [
    "masked_mean",
    "masked_std",
    "standardize",
    "clamp_ratio",
    "appo_policy_loss",
    "clipped_value_loss",
    "entropy_loss",
    "symmetric_kl_loss",
    "kl_penalty_loss",
    "cleanrl_ppo_loss",
]

RATIO_MIN, RATIO_MAX = 0.05, 20.0


def _mask_like(x: Tensor, valids: Tensor) -> Tensor:
    """``valids`` [N, T] as a bool mask broadcastable against ``x`` [N, T, ...]."""
    return valids.bool().reshape(valids.shape + (1,) * (x.dim() - valids.dim()))


def masked_mean(x: Tensor, valids: Tensor | None = None) -> Tensor:
    """Mean of ``x`` over ``valids`` (all of ``x`` when None); 0 if nothing is valid.

    Computed with ``where`` rather than ``x[valids]``: boolean indexing sizes its output on
    the host, a device sync per call on CUDA (several per minibatch)."""
    if valids is None:
        return x.mean()
    return _masked_mean_count(x, valids)[0]


def _masked_mean_count(x: Tensor, valids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(mean, broadcast mask, count of valid elements) of ``x`` over ``valids``."""
    m = _mask_like(x, valids)
    n = m.sum() * (x.numel() // m.numel())
    return torch.where(m, x, 0).sum() / n.clamp_min(1), m, n


def _masked_moments(x: Tensor, valids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(mean, unbiased std, count) of ``x`` over ``valids``, without a host sync; the std is
    0 with fewer than two valid samples."""
    mean, m, n = _masked_mean_count(x, valids)
    dev = torch.where(m, x - mean, 0)
    std = torch.where(n >= 2, (dev.pow(2).sum() / (n - 1).clamp_min(1)).sqrt(), 0)
    return mean, std, n


def masked_std(x: Tensor, valids: Tensor | None = None) -> Tensor:
    """Unbiased standard deviation of ``x`` over ``valids``; 0 with fewer than two valid
    samples. No host sync (see :func:`masked_mean`)."""
    if valids is None:
        return x.std() if x.numel() > 1 else x.sum() * 0.0
    return _masked_moments(x, valids)[1]


def standardize(adv: Tensor, valids: Tensor | None = None, eps: float = 1e-7) -> Tensor:
    """``(adv - mean) / max(std, eps)`` with mean/std (unbiased) over valid samples only;
    with fewer than two valid samples only the mean is removed. No host sync (see
    :func:`masked_mean`)."""
    if valids is None:
        if adv.numel() < 2:
            return adv - adv.mean()
        std, mean = torch.std_mean(adv)
        return (adv - mean) / torch.clamp_min(std, eps)
    mean, std, n = _masked_moments(adv, valids)
    return (adv - mean) / torch.where(n >= 2, torch.clamp_min(std, eps), 1.0)


def clamp_ratio(log_prob: Tensor, old_log_prob: Tensor) -> Tensor:
    """π/μ = exp(log π − log μ) clamped to [0.05, 20] (Sample Factory: extreme ratios are noise)."""
    return torch.exp(log_prob - old_log_prob).clamp(RATIO_MIN, RATIO_MAX)


def appo_policy_loss(
    ratio: Tensor, adv: Tensor, clip_ratio: float = 0.1, valids: Tensor | None = None
) -> Tensor:
    """−mean(min(r·A, clip(r, 1/(1+ε), 1+ε)·A)) — Sample Factory's asymmetric PPO clip.

    The lower bound 1/(1+ε) instead of 1−ε keeps the range valid for any ε > 0.
    """
    high = 1.0 + clip_ratio
    low = 1.0 / high
    surrogate = torch.min(ratio * adv, torch.clamp(ratio, low, high) * adv)
    return -masked_mean(surrogate, valids)


def clipped_value_loss(
    values: Tensor,
    old_values: Tensor,
    targets: Tensor,
    clip_value: float,
    coeff: float = 0.5,
    valids: Tensor | None = None,
) -> Tensor:
    """PPO2 value clipping: coeff · mean(max((V−R)², (V_old + clip(V−V_old, ±c) − R)²))."""
    clipped = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
    loss = torch.max((values - targets).pow(2), (clipped - targets).pow(2))
    return coeff * masked_mean(loss, valids)


def entropy_loss(dist: ActionDistribution, coeff: float, valids: Tensor | None = None) -> Tensor:
    """−coeff · mean entropy (summed over sub-actions)."""
    return -coeff * masked_mean(dist.entropy(), valids)


def symmetric_kl_loss(
    dist: ActionDistribution, coeff: float, valids: Tensor | None = None, max_kl: float = 30.0
) -> Tensor:
    """coeff · min(mean ½(KL(π‖U) + KL(U‖π)), 30) — Sample Factory's symmetric_kl."""
    kl = masked_mean(dist.symmetric_kl_with_uniform_prior(), valids)
    kl = torch.where(torch.isfinite(kl), kl, 0)  # no host sync for the check
    return coeff * torch.clamp(kl, max=max_kl)


def kl_penalty_loss(
    dist: ActionDistribution,
    old_dist: ActionDistribution,
    coeff: float,
    valids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(kl_old[N], coeff · mean KL(π_new‖π_old))``; the first is for statistics."""
    kl = dist.kl(old_dist)
    return kl, coeff * masked_mean(kl, valids)


def cleanrl_ppo_loss(
    new_log_prob: Tensor,
    old_log_prob: Tensor,
    adv: Tensor,
    entropy: Tensor,
    new_values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    clip_coef: float = 0.1,
    clip_vloss: bool = True,
    ent_coef: float = 0.01,
    vf_coef: float = 0.5,
    norm_adv: bool = True,
) -> dict[str, Tensor]:
    """CleanRL ``ppo_atari.py``'s loss for one minibatch (symmetric clip, no ratio clamp).

    Returns ``loss``, ``pg_loss``, ``v_loss``, ``entropy``, ``approx_kl`` ((r−1) − log r),
    ``old_approx_kl`` and ``clipfrac``.
    """
    logratio = new_log_prob - old_log_prob
    ratio = logratio.exp()
    with torch.no_grad():
        old_approx_kl = (-logratio).mean()
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    if norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(
        -adv * ratio, -adv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    ).mean()
    if clip_vloss:
        v_unclipped = (new_values - returns).pow(2)
        v_clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
        v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - returns).pow(2)).mean()
    else:
        v_loss = 0.5 * (new_values - returns).pow(2).mean()
    ent = entropy.mean()
    loss = pg_loss - ent_coef * ent + v_loss * vf_coef
    return {
        "loss": loss,
        "pg_loss": pg_loss,
        "v_loss": v_loss,
        "entropy": ent,
        "approx_kl": approx_kl,
        "old_approx_kl": old_approx_kl,
        "clipfrac": clipfrac,
    }

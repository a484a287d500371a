"""Action specs and distributions for Discrete, Tuple/MultiDiscrete, Box and mixed actions.

Learners do not import gymnasium, so an action space is described by an :class:`ActionSpec`:
``discrete`` lists the category counts of the categorical sub-actions (``Discrete(n)`` is
``(n,)``, ``MultiDiscrete([3, 2])`` and ``Tuple(Discrete(3), Discrete(2))`` are ``(3, 2)``) and
``continuous`` counts Gaussian dimensions (``Box``). Actions travel as one float32 row
``[*discrete indices, *continuous values]``; a distribution's ``log_prob``, ``entropy``,
``kl`` and ``symmetric_kl_with_uniform_prior`` sum over sub-actions, as Sample Factory's
``TupleActionDistribution`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ActionSpec", "ActionDistribution"]


@dataclass(frozen=True)
class ActionSpec:
    """Shape of an action space: categorical sizes, then Gaussian dimensions."""

    discrete: tuple[int, ...] = ()
    continuous: int = 0

    def __post_init__(self):
        if not self.discrete and self.continuous <= 0:
            raise ValueError("ActionSpec needs at least one discrete or continuous sub-action")
        if any(int(n) < 1 for n in self.discrete) or self.continuous < 0:
            raise ValueError(f"invalid ActionSpec sizes: {self}")

    @property
    def action_dim(self) -> int:
        """Width of the float32 action row."""
        return len(self.discrete) + self.continuous

    @property
    def num_logits(self) -> int:
        """Width of the head's output: all category logits, then mean and log-std per dim."""
        return sum(self.discrete) + 2 * self.continuous


class ActionDistribution:
    """The policy distribution for one batch of head outputs ``logits[N, num_logits]``."""

    def __init__(self, spec: ActionSpec, logits: Tensor):
        if logits.shape[-1] != spec.num_logits:
            raise ValueError(f"expected {spec.num_logits} logits for {spec}, got {logits.shape}")
        self.spec = spec
        self.raw = logits
        self.log_probs: list[Tensor] = []
        offset = 0
        for n in spec.discrete:
            self.log_probs.append(F.log_softmax(logits[..., offset : offset + n], dim=-1))
            offset += n
        if spec.continuous:
            c = spec.continuous
            self.mean = logits[..., offset : offset + c]
            self.log_std = logits[..., offset + c : offset + 2 * c]
            self.std = self.log_std.exp()

    def sample(self) -> Tensor:
        parts = [
            torch.multinomial(lp.exp().reshape(-1, lp.shape[-1]), 1).reshape(lp.shape[:-1] + (1,))
            for lp in self.log_probs
        ]
        if self.spec.continuous:
            parts.append(self.mean + self.std * torch.randn_like(self.mean))
        return torch.cat([p.to(torch.float32) for p in parts], dim=-1)

    def deterministic(self) -> Tensor:
        parts = [lp.argmax(-1, keepdim=True).to(torch.float32) for lp in self.log_probs]
        if self.spec.continuous:
            parts.append(self.mean.to(torch.float32))
        return torch.cat(parts, dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        total = torch.zeros(actions.shape[:-1], dtype=self.raw.dtype, device=self.raw.device)
        for i, lp in enumerate(self.log_probs):
            idx = actions[..., i].long().unsqueeze(-1)
            total = total + lp.gather(-1, idx).squeeze(-1)
        if self.spec.continuous:
            a = actions[..., len(self.log_probs) :]
            z = (a - self.mean) / self.std
            total = total + (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return total

    def entropy(self) -> Tensor:
        total = torch.zeros(self.raw.shape[:-1], dtype=self.raw.dtype, device=self.raw.device)
        for lp in self.log_probs:
            total = total - (lp.exp() * lp).sum(-1)
        if self.spec.continuous:
            total = total + (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(-1)
        return total

    def kl(self, other: ActionDistribution) -> Tensor:
        """KL(self || other), summed over sub-actions."""
        total = torch.zeros(self.raw.shape[:-1], dtype=self.raw.dtype, device=self.raw.device)
        for lp, lq in zip(self.log_probs, other.log_probs):
            total = total + (lp.exp() * (lp - lq)).sum(-1)
        if self.spec.continuous:
            var_ratio = (self.std / other.std).pow(2)
            t1 = ((self.mean - other.mean) / other.std).pow(2)
            total = total + 0.5 * (var_ratio + t1 - 1 - var_ratio.log()).sum(-1)
        return total

    def symmetric_kl_with_uniform_prior(self) -> Tensor:
        """½(KL(π‖U) + KL(U‖π)) per categorical sub-action, summed (Sample Factory's exploration
        loss). Gaussian dimensions use the standard normal as the prior."""
        total = torch.zeros(self.raw.shape[:-1], dtype=self.raw.dtype, device=self.raw.device)
        for lp in self.log_probs:
            n = lp.shape[-1]
            log_u = math.log(1.0 / n)
            kl_pu = (lp.exp() * (lp - log_u)).sum(-1)
            kl_up = ((1.0 / n) * (log_u - lp)).sum(-1)
            total = total + 0.5 * (kl_pu + kl_up)
        if self.spec.continuous:
            var = self.std.pow(2)
            kl_pn = 0.5 * (var + self.mean.pow(2) - 1 - var.log())
            kl_np = 0.5 * ((1 + self.mean.pow(2)) / var - 1 + var.log())
            total = total + 0.5 * (kl_pn + kl_np).sum(-1)
        return total

"""The Generals league agent's network: a residual CNN (optionally a two-level U-Net) with one
masked categorical policy over every move of the board and a value head.

Input: float planes ``[B, C, S, S]`` (the engine's compact observation expanded to planes, the
memory features and the time phase; built by ``gristmill.envs.generals.AgentFeatures``, since
learners do not import envs) and the engine's move mask ``[B, S, S, 4]`` (bool/uint8).

Action index (one categorical of ``1 + 8 S^2`` entries, as the 2025 agent's 9 x 24 x 24 logits,
Straka & Schmid, *Artificial Generals Intelligence*, arXiv 2507.06825): ``0`` is pass, never
masked; ``1 + (split * 4 + direction) * S^2 + row * S + col`` moves from (row, col) in
``direction`` (0 up, 1 down, 2 left, 3 right), all (split 0) or half (split 1) of the army.
Illegal moves get a logit of ``-1e9`` (not ``-inf``: ``p log p`` stays 0, never NaN), so
sampling, log-probabilities, argmax and entropy all work on the masked distribution.

Trunk (``GeneralsNetConfig``):

- ``unet=True`` (default): a 3x3 stem with ``stem_channels`` at full resolution, a stride-2
  3x3 conv down to ``ceil(S/2)``, ``blocks`` residual blocks (two 3x3 convs, ReLU, no norm, as
  the paper's "Pyramid" net) with ``channels`` at half resolution, a 2x2 transposed conv back up,
  plus the stem output (skip), and a 3x3 conv. The paper's net has 4 levels and 256-288
  channels (~19 M parameters); this is the same shape sized for a CPU.
- ``unet=False``: the stem then ``blocks`` residual blocks, all at full resolution with
  ``channels``.

Heads: policy = 1x1 conv to 8 move planes + a linear pass logit from the pooled trunk; value =
mean- and max-pooled trunk -> 64 -> 1.

Cost per board (S = 24, C_in = 41: input layout 2 with history 7; :func:`macs_per_board`
computes any configuration):

=====================================  ==========  =========  ================================
configuration                          MACs        params     inference, 1 core, batch 256
=====================================  ==========  =========  ================================
unet, stem 16, 32 ch, 2 blocks (dflt)  11.1 M      54 k       ~2.9 k boards/s
unet, stem 24, 48 ch, 3 blocks         28.3 M      157 k      ~1.3 k boards/s
full resolution, 32 ch, 2 blocks       28.2 M      53 k       ~1.3 k boards/s
=====================================  ==========  =========  ================================

(a forward pass is 2 FLOPs per MAC: the default is ~22 MFLOP per board; timings on the loaded
2-core box, torch 2.13 CPU.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GeneralsNet",
    "GeneralsNetConfig",
    "MaskedPolicy",
    "action_index",
    "index_to_action",
    "legal_index_mask",
    "macs_per_board",
]

MASKED_LOGIT = -1e9
NUM_MOVE_PLANES = 8  # 4 directions x {all, half}


@dataclass(frozen=True)
class GeneralsNetConfig:
    """Sizes of :class:`GeneralsNet` (see the module docstring)."""

    in_channels: int
    pad_to: int = 24
    channels: int = 32
    blocks: int = 2
    unet: bool = True
    stem_channels: int = 16

    def __post_init__(self):
        for name in ("in_channels", "pad_to", "channels", "stem_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GeneralsNetConfig.{name} must be >= 1, got "
                                 f"{getattr(self, name)}")
        if self.blocks < 0:
            raise ValueError(f"GeneralsNetConfig.blocks must be >= 0, got {self.blocks}")

    def to_dict(self) -> dict:
        return asdict(self)


def macs_per_board(cfg: GeneralsNetConfig) -> int:
    """Multiply-adds of one forward pass for one board (convs and linears; ReLUs not counted)."""
    S, h = cfg.pad_to, math.ceil(cfg.pad_to / 2)
    full, half = S * S, h * h
    if cfg.unet:
        s, c = cfg.stem_channels, cfg.channels
        trunk = (full * cfg.in_channels * s * 9 + half * s * c * 9 + cfg.blocks * 2 * half * c * c
                 * 9 + half * c * s * 4 + full * s * s * 9)
        out = s
    else:
        c = cfg.channels
        trunk = full * cfg.in_channels * c * 9 + cfg.blocks * 2 * full * c * c * 9
        out = c
    heads = full * out * NUM_MOVE_PLANES + 2 * out + 2 * out * 64 + 64
    return int(trunk + heads)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class GeneralsNet(nn.Module):
    """``forward(planes [B, C, S, S], mask [B, S, S, 4]) -> (masked logits [B, 1 + 8 S^2],
    value [B])``."""

    def __init__(self, cfg: GeneralsNetConfig):
        super().__init__()
        self.cfg = cfg
        S = cfg.pad_to
        if cfg.unet:
            s, c = cfg.stem_channels, cfg.channels
            self.stem = nn.Conv2d(cfg.in_channels, s, 3, padding=1)
            self.down = nn.Conv2d(s, c, 3, stride=2, padding=1)
            self.trunk = nn.Sequential(*[_Residual(c) for _ in range(cfg.blocks)])
            self.up = nn.ConvTranspose2d(c, s, 2, stride=2)
            self.fuse = nn.Conv2d(s, s, 3, padding=1)
            out = s
        else:
            c = cfg.channels
            self.stem = nn.Conv2d(cfg.in_channels, c, 3, padding=1)
            self.trunk = nn.Sequential(*[_Residual(c) for _ in range(cfg.blocks)])
            out = c
        self.moves = nn.Conv2d(out, NUM_MOVE_PLANES, 1)
        self.pass_logit = nn.Linear(2 * out, 1)
        self.value = nn.Sequential(nn.Linear(2 * out, 64), nn.ReLU(), nn.Linear(64, 1))
        self.num_actions = 1 + NUM_MOVE_PLANES * S * S
        # channels-last convs (oneDNN's native layout): 26 % faster forward + backward at batch
        # 512 and 15-20 % faster inference at batch 32-256 on one CPU core (bench: BENCHMARKS.md)
        self.to(memory_format=torch.channels_last)

    def features(self, x: Tensor) -> Tensor:
        cfg = self.cfg
        if x.ndim != 4 or x.shape[1:] != (cfg.in_channels, cfg.pad_to, cfg.pad_to):
            raise ValueError(f"planes must be [B, {cfg.in_channels}, {cfg.pad_to}, "
                             f"{cfg.pad_to}], got {tuple(x.shape)}")
        x = x.contiguous(memory_format=torch.channels_last)
        skip = F.relu(self.stem(x))
        if not cfg.unet:
            return self.trunk(skip)
        y = self.trunk(F.relu(self.down(skip)))
        y = self.up(y)[:, :, : x.shape[2], : x.shape[3]]  # odd sides: crop the extra row/col
        return F.relu(self.fuse(F.relu(y + skip)))

    def forward(self, planes: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(planes)
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)
        logits = torch.cat([self.pass_logit(pooled), self.moves(h).flatten(1)], dim=1)
        logits = logits.masked_fill(~legal_index_mask(mask), MASKED_LOGIT)
        return logits, self.value(pooled).squeeze(1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def legal_index_mask(mask: Tensor) -> Tensor:
    """Engine move mask ``[B, S, S, 4]`` -> bool ``[B, 1 + 8 S^2]`` over action indices (pass
    always legal; a move is legal for both split values)."""
    if mask.ndim != 4 or mask.shape[-1] != 4:
        raise ValueError(f"mask must be [B, S, S, 4], got {tuple(mask.shape)}")
    m = mask.to(torch.bool).permute(0, 3, 1, 2).flatten(1)  # [B, 4 S^2], direction-major
    ones = torch.ones(m.shape[0], 1, dtype=torch.bool, device=m.device)
    return torch.cat([ones, m, m], dim=1)


class MaskedPolicy:
    """The categorical over masked logits ``[B, A]`` (from :meth:`GeneralsNet.forward`)."""

    def __init__(self, logits: Tensor):
        self.logits = logits
        self.log_p = F.log_softmax(logits, dim=-1)

    def sample(self, temperature: float = 1.0) -> Tensor:
        lp = self.log_p if temperature == 1.0 else F.log_softmax(self.logits / temperature, -1)
        # Gumbel-max on the masked logits: illegal entries sit at -1e9 and never win
        g = -torch.log(-torch.log(torch.rand_like(lp).clamp_(1e-20, 1.0)))
        return (lp + g).argmax(-1)

    def greedy(self) -> Tensor:
        return self.logits.argmax(-1)

    def log_prob(self, index: Tensor) -> Tensor:
        return self.log_p.gather(-1, index.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return -(self.log_p.exp() * self.log_p).sum(-1)


def action_index(actions: np.ndarray, pad_to: int) -> np.ndarray:
    """Engine actions ``[..., 5]`` = [pass, row, col, direction, split] -> indices (int64)."""
    a = np.asarray(actions, np.int64)
    S = pad_to
    idx = 1 + (a[..., 4] * 4 + a[..., 3]) * S * S + a[..., 1] * S + a[..., 2]
    return np.where(a[..., 0] != 0, 0, idx)


def index_to_action(index: np.ndarray, pad_to: int, out: np.ndarray | None = None) -> np.ndarray:
    """Indices ``[...]`` -> engine actions int32 ``[..., 5]`` (the inverse of
    :func:`action_index` on moves; index 0 -> pass)."""
    i = np.asarray(index, np.int64)
    S = pad_to
    k = np.maximum(i - 1, 0)
    plane, cell = np.divmod(k, S * S)
    if out is None:
        out = np.empty(i.shape + (5,), np.int32)
    out[..., 0] = i == 0
    out[..., 1], out[..., 2] = np.divmod(cell, S)
    out[..., 3] = plane % 4
    out[..., 4] = plane // 4
    return out

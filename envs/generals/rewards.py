"""Reward functions for the wrappers: built into the kernel by name, or any Python callable.

The engine computes ``"winlose"`` (+1 to the player who captures the enemy general, -1 to the
other, 0 otherwise and on truncation) and ``"shaped"`` (win/lose plus the potential difference
Phi(s') - Phi(s) with gamma = 1 and Phi = 0 at the game's end, where, after Straka & Schmid,
*Artificial Generals Intelligence*, arXiv 2507.06825,
Phi = 0.3 clip(log(army ratio)/log 1.6, +-1) + 0.3 clip(log(land ratio)/log 1.3, +-1)
+ 0.4 * (cities owned)) inside the step kernel.

The end includes truncation: a truncated game is over, a draw. With Phi = 0 at every end the
shaping telescopes, a game's shaped return is its outcome minus Phi(start) (0 on the symmetric
starts), and the best policy is the win/lose one (Ng, Harada & Russell 1999). Keeping Phi at a
truncation instead paid a lead held to tick 500 up to 0.6 + 0.4 per city, more than capturing
the general (whose step drops Phi to 0): the trained agent hoarded instead of attacking.

A custom reward is a callable ``fn(prev: RewardInput, cur: RewardInput) -> float`` evaluated per
player by the Gymnasium/PettingZoo wrappers; :class:`WinLoseReward` and :class:`ShapedReward`
are the Python forms of the built-ins (the tests check they agree with the kernel).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import numpy as np

from .encoding import C_OWN_CITY, CODE_MASK

__all__ = ["RewardFn", "RewardInput", "ShapedReward", "WinLoseReward", "potential"]


class RewardInput(NamedTuple):
    """One player's view at one tick: compact ``obs [S, S]``, ``scalars [5]`` (own land, own
    army, enemy land, enemy army, tick), ``done`` (game over) and ``outcome`` (+1 won,
    -1 lost, 0 running or truncated)."""

    obs: np.ndarray
    scalars: np.ndarray
    done: bool
    outcome: int


class RewardFn(Protocol):
    def __call__(self, prev: RewardInput, cur: RewardInput) -> float: ...


def potential(x: RewardInput) -> float:
    """The paper's Phi for one player (0 once the game is over: won, lost or truncated)."""
    if x.done or x.outcome != 0:
        return 0.0
    land, army, eland, earmy = (int(v) for v in x.scalars[:4])
    cities = int(np.count_nonzero((x.obs & CODE_MASK) == C_OWN_CITY))
    ar = math.log(max(army, 1) / max(earmy, 1)) / math.log(1.6)
    lr = math.log(max(land, 1) / max(eland, 1)) / math.log(1.3)
    return 0.3 * min(1.0, max(-1.0, ar)) + 0.3 * min(1.0, max(-1.0, lr)) + 0.4 * cities


class WinLoseReward:
    def __call__(self, prev: RewardInput, cur: RewardInput) -> float:
        return float(cur.outcome)


class ShapedReward:
    """Win/lose plus ``weight * (Phi(s') - Phi(s))`` (gamma = 1)."""

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def __call__(self, prev: RewardInput, cur: RewardInput) -> float:
        return float(cur.outcome) + self.weight * (potential(cur) - potential(prev))

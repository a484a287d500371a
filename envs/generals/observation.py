"""generals-bots observations (2.5.0 ``Observation`` fields, or its 15 planes) to gristmill's
compact encoding, and the move mask computed from a compact view.

This lets gristmill agents act inside generals-bots (its ``act(observation) -> action``
interface, duck-typed: generals-bots need not be importable) and from the 15 float planes
that gristmill's Gymnasium/PettingZoo envs return.
"""

from __future__ import annotations

import numpy as np

from .encoding import (
    C_ENEMY,
    C_ENEMY_CITY,
    C_ENEMY_GENERAL,
    C_FOG,
    C_FOG_OBSTACLE,
    C_MOUNTAIN,
    C_NEUTRAL,
    C_NEUTRAL_CITY,
    C_OWN,
    C_OWN_CITY,
    C_OWN_GENERAL,
    CODE_BITS,
    CODE_MASK,
    PLANE_NAMES,
)

__all__ = ["FIELDS", "compact_from_fields", "compact_from_planes", "move_mask"]

FIELDS = PLANE_NAMES[:9]
_SCALARS = ("owned_land_count", "owned_army_count", "opponent_land_count",
            "opponent_army_count", "timestep")


def compact_from_fields(observation, pad_to: int) -> tuple[np.ndarray, np.ndarray]:
    """An object with generals-bots 2.5.0 ``Observation`` attributes (``armies``, ``generals``,
    ..., ``timestep``; maps ``[H, W]`` with H, W <= ``pad_to``) -> compact ``obs [S, S]`` int32
    and ``scalars [5]`` int32. Cells beyond the map are mountains, as in the engine."""
    try:
        maps = {k: np.asarray(getattr(observation, k)) for k in FIELDS}
        scalars = np.array([int(getattr(observation, k)) for k in _SCALARS], np.int32)
    except AttributeError as e:
        raise TypeError(f"not a generals-bots Observation (fields {FIELDS + _SCALARS}): {e}") \
            from None
    h, w = maps["armies"].shape
    if h > pad_to or w > pad_to:
        raise ValueError(f"observation is {h}x{w}, larger than pad_to={pad_to}")
    g, city = maps["generals"].astype(bool), maps["cities"].astype(bool)
    own, opp = maps["owned_cells"].astype(bool), maps["opponent_cells"].astype(bool)
    code = np.full((h, w), C_FOG, np.int32)
    code[maps["structures_in_fog"].astype(bool)] = C_FOG_OBSTACLE
    code[maps["mountains"].astype(bool)] = C_MOUNTAIN
    neutral = maps["neutral_cells"].astype(bool)
    code[neutral] = np.where(city[neutral], C_NEUTRAL_CITY, C_NEUTRAL)
    code[own] = np.where(g[own], C_OWN_GENERAL, np.where(city[own], C_OWN_CITY, C_OWN))
    code[opp] = np.where(g[opp], C_ENEMY_GENERAL, np.where(city[opp], C_ENEMY_CITY, C_ENEMY))
    army = np.where(code >= C_MOUNTAIN, maps["armies"].astype(np.int64), 0)
    out = np.full((pad_to, pad_to), C_MOUNTAIN, np.int32)
    out[:h, :w] = code | (army << CODE_BITS).astype(np.int32)
    return out, scalars


class _Planes:
    def __init__(self, planes: np.ndarray):
        for k, name in enumerate(PLANE_NAMES):
            setattr(self, name, planes[k] if k < 9 else int(round(float(planes[k, 0, 0]))))


def compact_from_planes(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """generals-bots' 15 planes ``[15, S, S]`` (gristmill's Gymnasium/PettingZoo observation)
    -> compact ``obs [S, S]`` and ``scalars [5]``."""
    planes = np.asarray(planes)
    if planes.ndim != 3 or planes.shape[0] != len(PLANE_NAMES):
        raise ValueError(f"planes must be [15, S, S], got {planes.shape}")
    return compact_from_fields(_Planes(planes), planes.shape[1])


def move_mask(obs: np.ndarray) -> np.ndarray:
    """Valid moves of a compact view ``[S, S]`` -> uint8 ``[S, S, 4]`` (own cell with army >= 2,
    target inside and not a mountain: the engine's rule; own cells' neighbours are visible)."""
    code, army = obs & CODE_MASK, obs >> CODE_BITS
    S0, S1 = obs.shape
    src = (code >= C_OWN) & (code <= C_OWN_GENERAL) & (army >= 2)
    open_ = code != C_MOUNTAIN
    m = np.zeros((S0, S1, 4), np.uint8)
    m[1:, :, 0] = src[1:] & open_[:-1]
    m[:-1, :, 1] = src[:-1] & open_[1:]
    m[:, 1:, 2] = src[:, 1:] & open_[:, :-1]
    m[:, :-1, 3] = src[:, :-1] & open_[:, 1:]
    return m

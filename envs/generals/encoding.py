"""Compact per-cell observation encoding and its expansion to float32 channel planes.

The hot path writes one int32 per cell and player: ``code | army << CODE_BITS`` where ``code``
(low 4 bits) is what the player sees there and ``army`` the army it sees (0 under fog):

====  =====================  ==============================================
code  name                   meaning
====  =====================  ==============================================
0     ``C_FOG``              not visible; plain cell or general (or unseen)
1     ``C_FOG_OBSTACLE``     not visible; mountain *or* city (indistinguishable)
2     ``C_MOUNTAIN``         visible mountain; also the padding beyond the board
3     ``C_NEUTRAL``          visible neutral plain cell
4     ``C_NEUTRAL_CITY``     visible neutral city
5     ``C_OWN``              own plain cell
6     ``C_OWN_CITY``         own city
7     ``C_OWN_GENERAL``      own general (the winner also owns the loser's)
8     ``C_ENEMY``            visible enemy plain cell
9     ``C_ENEMY_CITY``       visible enemy city
10    ``C_ENEMY_GENERAL``    visible enemy general
====  =====================  ==============================================

Scalars per player (int32 [5]): own land, own army, enemy land, enemy army, tick.

:func:`expand_planes` turns ``obs [N, 2, S, S]`` + ``scalars [N, 2, 5]`` into generals-bots'
15 float32 planes ``[N, 2, 15, S, S]`` in ``Observation.as_tensor`` order: armies, generals,
cities, mountains, neutral cells, owned cells, opponent cells, fog cells, structures in fog,
own land, own army, opponent land, opponent army, timestep, priority (always 0).
"""

from __future__ import annotations

import numba as nb
import numpy as np

CODE_BITS = 4
CODE_MASK = (1 << CODE_BITS) - 1
(
    C_FOG,
    C_FOG_OBSTACLE,
    C_MOUNTAIN,
    C_NEUTRAL,
    C_NEUTRAL_CITY,
    C_OWN,
    C_OWN_CITY,
    C_OWN_GENERAL,
    C_ENEMY,
    C_ENEMY_CITY,
    C_ENEMY_GENERAL,
) = range(11)
NUM_CODES = 11
NUM_PLANES = 15
PLANE_NAMES = (
    "armies",
    "generals",
    "cities",
    "mountains",
    "neutral_cells",
    "owned_cells",
    "opponent_cells",
    "fog_cells",
    "structures_in_fog",
    "owned_land_count",
    "owned_army_count",
    "opponent_land_count",
    "opponent_army_count",
    "timestep",
    "priority",
)

# code -> membership of the 8 boolean planes 1..8
_PLANE_OF_CODE = np.zeros((16, 8), dtype=np.float32)
for _c in (C_OWN_GENERAL, C_ENEMY_GENERAL):
    _PLANE_OF_CODE[_c, 0] = 1
for _c in (C_NEUTRAL_CITY, C_OWN_CITY, C_ENEMY_CITY):
    _PLANE_OF_CODE[_c, 1] = 1
_PLANE_OF_CODE[C_MOUNTAIN, 2] = 1
for _c in (C_NEUTRAL, C_NEUTRAL_CITY):
    _PLANE_OF_CODE[_c, 3] = 1
for _c in (C_OWN, C_OWN_CITY, C_OWN_GENERAL):
    _PLANE_OF_CODE[_c, 4] = 1
for _c in (C_ENEMY, C_ENEMY_CITY, C_ENEMY_GENERAL):
    _PLANE_OF_CODE[_c, 5] = 1
_PLANE_OF_CODE[C_FOG, 6] = 1
_PLANE_OF_CODE[C_FOG_OBSTACLE, 7] = 1

__all__ = [
    "CODE_BITS",
    "CODE_MASK",
    "C_ENEMY",
    "C_ENEMY_CITY",
    "C_ENEMY_GENERAL",
    "C_FOG",
    "C_FOG_OBSTACLE",
    "C_MOUNTAIN",
    "C_NEUTRAL",
    "C_NEUTRAL_CITY",
    "C_OWN",
    "C_OWN_CITY",
    "C_OWN_GENERAL",
    "NUM_PLANES",
    "PLANE_NAMES",
    "decode",
    "expand_planes",
    "expand_planes_reference",
]


def decode(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split compact cells into (code, army) arrays of the same shape."""
    obs = np.asarray(obs)
    return obs & CODE_MASK, obs >> CODE_BITS


@nb.njit(cache=True, nogil=True)
def _expand_one(obs, scalars, table, out):
    # plane-major: each plane is written front to back (sequential stores)
    S0, S1 = obs.shape
    for i in range(S0):
        for j in range(S1):
            out[0, i, j] = obs[i, j] >> CODE_BITS
    for k in range(8):
        for i in range(S0):
            for j in range(S1):
                out[1 + k, i, j] = table[obs[i, j] & CODE_MASK, k]
    for k in range(5):
        v = np.float32(scalars[k])
        for i in range(S0):
            for j in range(S1):
                out[9 + k, i, j] = v
    for i in range(S0):
        for j in range(S1):
            out[14, i, j] = 0.0


@nb.njit(cache=True, nogil=True, parallel=True)
def _expand_parallel(obs, scalars, table, out):
    for b in nb.prange(obs.shape[0]):
        for p in range(obs.shape[1]):
            _expand_one(obs[b, p], scalars[b, p], table, out[b, p])


@nb.njit(cache=True, nogil=True)
def _expand_serial(obs, scalars, table, out):
    for b in range(obs.shape[0]):
        for p in range(obs.shape[1]):
            _expand_one(obs[b, p], scalars[b, p], table, out[b, p])


def expand_planes(
    obs: np.ndarray, scalars: np.ndarray, out: np.ndarray | None = None, parallel: bool = False
) -> np.ndarray:
    """Compact ``obs [B, P, S, S]`` int32 + ``scalars [B, P, 5]`` -> float32 ``[B, P, 15, S, S]``.

    Writes into ``out`` when given (it must be float32 of that shape and C-contiguous).
    """
    if obs.ndim != 4 or obs.dtype != np.int32:
        raise ValueError(f"obs must be int32 [B, P, S, S], got {obs.dtype} {obs.shape}")
    B, P, S0, S1 = obs.shape
    if scalars.shape != (B, P, 5):
        raise ValueError(f"scalars must be [B, P, 5] = {(B, P, 5)}, got {scalars.shape}")
    shape = (B, P, NUM_PLANES, S0, S1)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 {shape}, got {out.dtype} {out.shape}")
    (_expand_parallel if parallel else _expand_serial)(obs, scalars, _PLANE_OF_CODE, out)
    return out


def expand_planes_reference(obs: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """Plain-NumPy version of :func:`expand_planes` (the test oracle)."""
    code, army = decode(obs)
    B, P, S0, S1 = obs.shape
    out = np.zeros((B, P, NUM_PLANES, S0, S1), dtype=np.float32)
    out[:, :, 0] = army
    for k in range(8):
        out[:, :, 1 + k] = _PLANE_OF_CODE[code, k]
    out[:, :, 9:14] = scalars[:, :, :, None, None]
    return out

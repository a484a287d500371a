"""Memory features for agents under fog of war, updated from compact observations.

After the 2025 agent's input stack (Straka & Schmid, arXiv 2507.06825; generals-agent
``selfplay/network.py``), per board, player and cell:

====  ==========================  =====================================================
ch    name                        meaning
====  ==========================  =====================================================
0     ``seen``                    1 once the cell has ever been visible
1     ``mountain``                remembered mountain (seen as one)
2     ``city``                    remembered city (seen as one, any owner)
3     ``enemy_general``           remembered enemy general
4     ``enemy_army``              army of the enemy last seen there (0 when last seen
                                  without an enemy)
5     ``enemy_age``               ticks since the cell was last visible (0 if visible now,
                                  the tick count if never seen); unlike the anchor it
                                  really increments
6..   ``own_delta_k``             own army change on the cell, k = 0 newest .. K-1
6+K.. ``enemy_delta_k``           visible enemy army change, k = 0 newest .. K-1
====  ==========================  =====================================================

The state resets for a (board, player) whenever its tick scalar is 0 (episode start), so it
follows the engine's auto-resets. ``update`` must see every tick's observation once.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .encoding import (
    C_ENEMY,
    C_ENEMY_CITY,
    C_ENEMY_GENERAL,
    C_MOUNTAIN,
    C_NEUTRAL_CITY,
    C_OWN,
    C_OWN_CITY,
    C_OWN_GENERAL,
    CODE_BITS,
    CODE_MASK,
)

__all__ = ["MemoryFeatures", "memory_update_reference"]

_SEEN, _MOUNTAIN, _CITY, _GENERAL = 0, 1, 2, 3


@nb.njit(cache=True, nogil=True)
def _update(obs, scalars, flags, enemy_army, age, prev, deltas):
    n, P, S0, S1 = obs.shape
    K = deltas.shape[2]
    for b in range(n):
        for p in range(P):
            t = scalars[b, p, 4]
            if t == 0:
                flags[b, p] = 0
                enemy_army[b, p] = 0
                age[b, p] = 0
                prev[b, p] = 0
                deltas[b, p] = 0
            slot = t % K
            for i in range(S0):
                for j in range(S1):
                    v = obs[b, p, i, j]
                    c = v & CODE_MASK
                    a = v >> CODE_BITS
                    if c >= C_MOUNTAIN:
                        flags[b, p, _SEEN, i, j] = 1
                        age[b, p, i, j] = 0
                        if c == C_MOUNTAIN:
                            flags[b, p, _MOUNTAIN, i, j] = 1
                        elif c == C_NEUTRAL_CITY or c == C_OWN_CITY or c == C_ENEMY_CITY:
                            flags[b, p, _CITY, i, j] = 1
                        elif c == C_ENEMY_GENERAL:
                            flags[b, p, _GENERAL, i, j] = 1
                        enemy = c >= C_ENEMY
                        enemy_army[b, p, i, j] = a if enemy else 0
                        own = a if (c >= C_OWN and c <= C_OWN_GENERAL) else 0
                        opp = a if enemy else 0
                    else:
                        if t > 0:
                            age[b, p, i, j] += 1
                        own = 0
                        opp = 0
                    if t > 0:
                        deltas[b, p, slot, 0, i, j] = own - prev[b, p, 0, i, j]
                        deltas[b, p, slot, 1, i, j] = opp - prev[b, p, 1, i, j]
                    prev[b, p, 0, i, j] = own
                    prev[b, p, 1, i, j] = opp


@nb.njit(cache=True, nogil=True)
def _features(scalars, flags, enemy_army, age, deltas, out):
    n, P = flags.shape[0], flags.shape[1]
    K = deltas.shape[2]
    for b in range(n):
        for p in range(P):
            t = scalars[b, p, 4]
            for k in range(4):
                out[b, p, k] = flags[b, p, k]
            out[b, p, 4] = enemy_army[b, p]
            for i in range(age.shape[2]):
                for j in range(age.shape[3]):
                    out[b, p, 5, i, j] = age[b, p, i, j] if flags[b, p, _SEEN, i, j] else t
            for k in range(K):
                slot = (t - k) % K
                if k < t:
                    out[b, p, 6 + k] = deltas[b, p, slot, 0]
                    out[b, p, 6 + K + k] = deltas[b, p, slot, 1]
                else:
                    out[b, p, 6 + k] = 0
                    out[b, p, 6 + K + k] = 0


class MemoryFeatures:
    """Memory for ``num_boards`` x ``players`` views of side ``pad_to`` with ``history`` deltas.

    ``update(obs, scalars)`` takes compact obs [N, P, S, S] and scalars [N, P, 5] (P = 2 for the
    engine's buffers, 1 for one seat); ``features(out=None)`` returns float32 [N, P, 6 + 2K, S, S].
    """

    def __init__(self, num_boards: int, pad_to: int = 24, history: int = 7, players: int = 2):
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        n, P, S = num_boards, players, pad_to
        self.shape = (n, P, S, S)
        self.history = history
        self.num_channels = 6 + 2 * history
        self.flags = np.zeros((n, P, 4, S, S), np.uint8)
        self.enemy_army = np.zeros((n, P, S, S), np.int32)
        self.age = np.zeros((n, P, S, S), np.int32)
        self.prev = np.zeros((n, P, 2, S, S), np.int32)
        self.deltas = np.zeros((n, P, history, 2, S, S), np.int32)
        self._scalars = np.zeros((n, P, 5), np.int32)

    def update(self, obs: np.ndarray, scalars: np.ndarray) -> None:
        if obs.shape != self.shape or obs.dtype != np.int32:
            raise ValueError(f"obs must be int32 {self.shape}, got {obs.dtype} {obs.shape}")
        if scalars.shape != self.shape[:2] + (5,):
            raise ValueError(f"scalars must be {self.shape[:2] + (5,)}, got {scalars.shape}")
        _update(obs, scalars, self.flags, self.enemy_army, self.age, self.prev, self.deltas)
        self._scalars[:] = scalars

    def features(self, out: np.ndarray | None = None) -> np.ndarray:
        n, P, S0, S1 = self.shape
        shape = (n, P, self.num_channels, S0, S1)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
        _features(self._scalars, self.flags, self.enemy_army, self.age, self.deltas, out)
        return out


def memory_update_reference(history_obs: list[np.ndarray], K: int = 7) -> np.ndarray:
    """Plain-NumPy features of one view after a whole episode ``history_obs`` (compact [S, S]
    per tick, tick 0 first): the test oracle for :class:`MemoryFeatures`."""
    code = [o & CODE_MASK for o in history_obs]
    army = [o >> CODE_BITS for o in history_obs]
    T = len(history_obs) - 1
    S0, S1 = history_obs[0].shape
    out = np.zeros((6 + 2 * K, S0, S1), np.float32)
    vis = [c >= C_MOUNTAIN for c in code]
    out[0] = np.any(vis, axis=0)
    out[1] = np.any([c == C_MOUNTAIN for c in code], axis=0)
    out[2] = np.any([np.isin(c, (C_NEUTRAL_CITY, C_OWN_CITY, C_ENEMY_CITY)) for c in code], axis=0)
    out[3] = np.any([c == C_ENEMY_GENERAL for c in code], axis=0)
    own = [np.where((c >= C_OWN) & (c <= C_OWN_GENERAL), a, 0) for c, a in zip(code, army)]
    opp = [np.where(c >= C_ENEMY, a, 0) for c, a in zip(code, army)]
    for i in range(S0):
        for j in range(S1):
            seen_at = [t for t in range(T + 1) if vis[t][i, j]]
            if seen_at:
                last = seen_at[-1]
                out[4, i, j] = opp[last][i, j]
                out[5, i, j] = T - last
            else:
                out[5, i, j] = T
    for k in range(min(K, T)):
        t = T - k
        out[6 + k] = own[t] - own[t - 1]
        out[6 + K + k] = opp[t] - opp[t - 1]
    return out

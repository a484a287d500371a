"""Numba kernels of the Generals engine: one tick of one board, observation, reset, batching.

All state is plain arrays indexed by board ``b`` (see :mod:`gristmill.envs.generals.engine` for
the layout); the public classes only allocate them and call :func:`step_boards`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._mapgen import generate_map
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
)
from .maps import CITY, GENERAL, MOUNTAIN

DR = np.array([-1, 1, 0, 0], dtype=np.int64)
DC = np.array([0, 0, -1, 1], dtype=np.int64)

# priority rules
RULE_PRIORITY = 0  # generals-bots 2.5.0: chasing, reinforcing, larger army, ties -> player 0
RULE_ALTERNATING = 1  # player (t mod 2) moves first at tick t (generals-bots 2.2.1)
RULE_SMALLER_FIRST = 2  # JAX rewrite: chasing, reinforcing, smaller army, ties -> player 0

REWARD_WINLOSE = 0
REWARD_SHAPED = 1

MOVE_PASS = 0
MOVE_DONE = 1
MOVE_INVALID = 2
MOVE_SKIPPED = 3  # not run: the game ended on the other player's move this tick

_LOG16 = np.log(1.6)
_LOG13 = np.log(1.3)

_jit = nb.njit(cache=True, nogil=True, fastmath=False)


@_jit
def xorshift(state, b):
    """xorshift64* step of ``state[b]``; returns 53 uniform bits as a float in [0, 1)."""
    x = state[b]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[b] = x
    y = x * np.uint64(2685821657736338717)
    return (y >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@_jit
def validate_actions(actions, pad):
    """Index of the first malformed action entry (flattened) or -1; checks ranges only."""
    n = actions.shape[0]
    for b in range(n):
        for p in range(2):
            a = actions[b, p]
            if a[0] < 0 or a[0] > 1:
                return (b * 2 + p) * 5 + 0
            if a[1] < 0 or a[1] >= pad:
                return (b * 2 + p) * 5 + 1
            if a[2] < 0 or a[2] >= pad:
                return (b * 2 + p) * 5 + 2
            if a[3] < 0 or a[3] > 3:
                return (b * 2 + p) * 5 + 3
            if a[4] < 0 or a[4] > 1:
                return (b * 2 + p) * 5 + 4
    return -1


@_jit
def _first_mover(rule, t, owner, army, h, w, acts):
    """0 or 1: who resolves first this tick (only matters when both really move)."""
    if rule == RULE_ALTERNATING:
        return t % 2
    src = np.empty((2, 2), dtype=np.int64)
    dst = np.empty((2, 2), dtype=np.int64)
    for p in range(2):
        a = acts[p]
        r = np.int64(a[1])
        c = np.int64(a[2])
        d = np.int64(a[3])
        r2 = r + DR[d]
        c2 = c + DC[d]
        if a[0] == 1 or r < 0 or r >= h or c < 0 or c >= w or r2 < 0 or r2 >= h:
            return 0
        if c2 < 0 or c2 >= w:
            return 0
        src[p, 0] = r
        src[p, 1] = c
        dst[p, 0] = r2
        dst[p, 1] = c2
    # chasing: moving onto the cell the other is leaving
    if dst[0, 0] == src[1, 0] and dst[0, 1] == src[1, 1]:
        return 0
    if dst[1, 0] == src[0, 0] and dst[1, 1] == src[0, 1]:
        return 1
    # reinforcing: moving onto one's own cell
    if owner[dst[0, 0], dst[0, 1]] == 0:
        return 0
    if owner[dst[1, 0], dst[1, 1]] == 1:
        return 1
    m0 = army[src[0, 0], src[0, 1]] - 1
    m1 = army[src[1, 0], src[1, 1]] - 1
    if rule == RULE_PRIORITY:
        return 1 if m1 > m0 else 0
    return 1 if m1 < m0 else 0


@_jit
def _apply_move(p, a, terrain, owner, army, h, w, gens):
    """Run player ``p``'s action ``a``; returns (MOVE_* status, captured the enemy general)."""
    if a[0] == 1:
        return MOVE_PASS, False
    r = np.int64(a[1])
    c = np.int64(a[2])
    if r < 0 or r >= h or c < 0 or c >= w:
        return MOVE_INVALID, False
    src_army = army[r, c]
    mv = src_army // 2 if a[4] == 1 else src_army - 1
    if mv < 1 or owner[r, c] != p:
        return MOVE_INVALID, False
    d = np.int64(a[3])
    r2 = r + DR[d]
    c2 = c + DC[d]
    if r2 < 0 or r2 >= h or c2 < 0 or c2 >= w or terrain[r2, c2] == MOUNTAIN:
        return MOVE_INVALID, False
    army[r, c] = src_army - mv
    if owner[r2, c2] == p:
        army[r2, c2] += mv
        return MOVE_DONE, False
    defender = army[r2, c2]
    army[r2, c2] = abs(defender - mv)
    if mv > defender:
        prev = owner[r2, c2]
        owner[r2, c2] = p
        if prev == 1 - p and r2 == gens[prev, 0] and c2 == gens[prev, 1]:
            return MOVE_DONE, True
    return MOVE_DONE, False


@_jit
def tick_board(rule, terrain, owner, army, h, w, gens, t, acts, status):
    """One tick on one board (generals-bots 2.5.0 ``Game.step``); returns (new time, winner).

    ``status[p]`` receives MOVE_* for each player. The capture of a general ends the loop, so
    the other player's later move is skipped. Growth: +1 on owned generals/cities when the new
    time is even, +1 on every owned cell when it is a multiple of 50; none on the final tick,
    which instead hands all the loser's cells to the winner.
    """
    first = _first_mover(rule, t, owner, army, h, w, acts)
    winner = -1
    status[0] = MOVE_SKIPPED
    status[1] = MOVE_SKIPPED
    for k in range(2):
        p = first if k == 0 else 1 - first
        st, won = _apply_move(p, acts[p], terrain, owner, army, h, w, gens)
        status[p] = st
        if won:
            winner = p
            break
    t += 1
    if winner >= 0:
        loser = 1 - winner
        for i in range(h):
            for j in range(w):
                if owner[i, j] == loser:
                    owner[i, j] = winner
    else:
        grow_all = t % 50 == 0
        grow_structures = t % 2 == 0
        if grow_all or grow_structures:
            for i in range(h):
                for j in range(w):
                    if owner[i, j] >= 0:
                        if grow_all:
                            army[i, j] += 1
                        if grow_structures and (terrain[i, j] == GENERAL or terrain[i, j] == CITY):
                            army[i, j] += 1
    return t, winner


def _code_tables():
    code = np.zeros((4, 3, 2), np.int32)  # [terrain, owner + 1, player]
    fog = np.zeros(4, np.int32)
    for t in range(4):
        fog[t] = C_FOG_OBSTACLE if t in (MOUNTAIN, CITY) else C_FOG
        for o in (-1, 0, 1):
            for p in range(2):
                if t == MOUNTAIN:
                    c = C_MOUNTAIN
                elif o < 0:
                    c = C_NEUTRAL_CITY if t == CITY else C_NEUTRAL
                elif o == p:
                    c = C_OWN if t < CITY else (C_OWN_CITY if t == CITY else C_OWN_GENERAL)
                else:
                    c = C_ENEMY if t < CITY else (C_ENEMY_CITY if t == CITY else C_ENEMY_GENERAL)
                code[t, o + 1, p] = c
    return code, fog


CODE_TABLE, FOG_TABLE = _code_tables()


@_jit
def neighbour_mask(terrain, h, w, nbr):
    """Per cell, the 4 mask bytes (little-endian uint32: up, down, left, right) of the moves
    whose target is on the board and not a mountain; terrain never changes within a game."""
    nbr[:, :] = 0
    for i in range(h):
        for j in range(w):
            v = np.uint32(0)
            if i > 0 and terrain[i - 1, j] != MOUNTAIN:
                v |= np.uint32(1)
            if i + 1 < h and terrain[i + 1, j] != MOUNTAIN:
                v |= np.uint32(1 << 8)
            if j > 0 and terrain[i, j - 1] != MOUNTAIN:
                v |= np.uint32(1 << 16)
            if j + 1 < w and terrain[i, j + 1] != MOUNTAIN:
                v |= np.uint32(1 << 24)
            nbr[i, j] = v


@_jit
def observe_board(terrain, owner, army, nbr, h, w, t, scratch, obs, masks, scalars, totals):
    """Both players' compact observations, move masks and scalars of one board, in place.

    ``obs`` int32 [2, S, S] (``code | army << CODE_BITS``, see encoding), ``masks`` the uint32
    view [2, S, S] of the uint8 [2, S, S, 4] masks, ``scalars`` int32 [2, 5] (own land, own army,
    enemy land, enemy army, time), ``totals`` int64 [2, 3] (land, army, cities) per player.
    Only the h x w board is written; the padding keeps what :func:`write_padding` put there.
    """
    for p in range(2):
        for k in range(3):
            totals[p, k] = 0
    # horizontal 1x3 dilation of the ownership bits (bit p = owned by p)
    for i in range(h):
        prev = 0
        cur = owner[i, 0]
        cur = (1 << cur) if cur >= 0 else 0
        for j in range(w):
            nxt = 0
            if j + 1 < w:
                o = owner[i, j + 1]
                nxt = (1 << o) if o >= 0 else 0
            scratch[i, j] = prev | cur | nxt
            prev = cur
            cur = nxt
    for i in range(h):
        for j in range(w):
            vis = scratch[i, j]
            if i > 0:
                vis |= scratch[i - 1, j]
            if i + 1 < h:
                vis |= scratch[i + 1, j]
            tt = terrain[i, j]
            o = owner[i, j]
            a = army[i, j]
            if o >= 0:
                totals[o, 0] += 1
                totals[o, 1] += a
                if tt == CITY:
                    totals[o, 2] += 1
            if vis & 1:
                obs[0, i, j] = CODE_TABLE[tt, o + 1, 0] | (a << CODE_BITS)
            else:
                obs[0, i, j] = FOG_TABLE[tt]
            if vis & 2:
                obs[1, i, j] = CODE_TABLE[tt, o + 1, 1] | (a << CODE_BITS)
            else:
                obs[1, i, j] = FOG_TABLE[tt]
            movable = a >= 2
            masks[0, i, j] = nbr[i, j] if (o == 0 and movable) else 0
            masks[1, i, j] = nbr[i, j] if (o == 1 and movable) else 0
    for p in range(2):
        scalars[p, 0] = totals[p, 0]
        scalars[p, 1] = totals[p, 1]
        scalars[p, 2] = totals[1 - p, 0]
        scalars[p, 3] = totals[1 - p, 1]
        scalars[p, 4] = t


@_jit
def write_padding(obs, masks):
    """Whole S x S: visible mountains, no moves (the board then overwrites its h x w part)."""
    for p in range(2):
        obs[p, :, :] = C_MOUNTAIN
        masks[p, :, :] = 0


@_jit
def potential(totals, p):
    """The paper's shaping potential for player p (Straka & Schmid, arXiv 2507.06825).

    Phi = 0.3 clip(log(army ratio) / log 1.6, +-1) + 0.3 clip(log(land ratio) / log 1.3, +-1)
    + 0.4 * (cities owned); armies are floored at 1 so a wiped-out side stays finite.
    """
    q = 1 - p
    ar = np.log(max(totals[p, 1], 1) / max(totals[q, 1], 1)) / _LOG16
    lr = np.log(max(totals[p, 0], 1) / max(totals[q, 0], 1)) / _LOG13
    ar = min(1.0, max(-1.0, ar))
    lr = min(1.0, max(-1.0, lr))
    return 0.3 * ar + 0.3 * lr + 0.4 * totals[p, 2]


@_jit
def load_board(b, terrain, owner, army, dims, gens, time, winner, m_terrain, m_army, m_dims,
               m_gens):
    """Copy a starting map into board ``b`` (owner -1 everywhere but the generals)."""
    terrain[b, :, :] = m_terrain
    army[b, :, :] = m_army
    owner[b, :, :] = -1
    dims[b, 0] = m_dims[0]
    dims[b, 1] = m_dims[1]
    for p in range(2):
        gens[b, p, 0] = m_gens[p, 0]
        gens[b, p, 1] = m_gens[p, 1]
        owner[b, m_gens[p, 0], m_gens[p, 1]] = p
    time[b] = 0
    winner[b] = -1


@_jit
def reset_board(b, S, gen_params, pool_t, pool_a, pool_d, pool_g, map_id, rng, obs, masks,
                scalars, totals, scratch, phi):
    """Start a new game on board ``b``: a fresh map from the Numba generator (``gen_params``,
    see _mapgen) or, for a pool engine, a pool map drawn with the board's RNG."""
    if gen_params[0] != 0 and generate_map(rng, b, gen_params, S.terrain[b], S.army[b],
                                           S.dims[b], S.gens[b]):
        map_id[b] = -2
        S.owner[b, :, :] = -1
        for p in range(2):
            S.owner[b, S.gens[b, p, 0], S.gens[b, p, 1]] = p
        S.time[b] = 0
        S.winner[b] = -1
    else:
        k = min(np.int64(xorshift(rng, b) * pool_t.shape[0]), pool_t.shape[0] - 1)
        map_id[b] = k
        load_board(b, S.terrain, S.owner, S.army, S.dims, S.gens, S.time, S.winner,
                   pool_t[k], pool_a[k], pool_d[k], pool_g[k])
    first_observation(b, S, obs, masks, scalars, totals, scratch, phi)


@_jit
def first_observation(b, S, obs, masks, scalars, totals, scratch, phi):
    S.start_army[b, :, :] = S.army[b]
    neighbour_mask(S.terrain[b], S.dims[b, 0], S.dims[b, 1], S.nbr[b])
    write_padding(obs[b], masks[b])
    observe_board(S.terrain[b], S.owner[b], S.army[b], S.nbr[b], S.dims[b, 0], S.dims[b, 1],
                  S.time[b], scratch[b], obs[b], masks[b], scalars[b], totals[b])
    for p in range(2):
        phi[b, p] = potential(totals[b], p)
        S.invalid_count[b, p] = 0


@_jit
def step_one(b, S, actions, rule, truncation, reward_kind, same_step, gen_params, pool_t,
             pool_a, pool_d, pool_g, map_id, rng, obs, masks, scalars, rewards, terminated,
             truncated, status, scratch, totals, phi, ep_len, ep_winner):
    """Step board ``b`` once (see ``GeneralsEngine.step``)."""
    if S.pending[b]:
        # next-step autoreset: this call only starts the new episode
        S.pending[b] = 0
        reset_board(b, S, gen_params, pool_t, pool_a, pool_d, pool_g, map_id, rng, obs, masks,
                    scalars, totals, scratch, phi)
        rewards[b, 0] = 0.0
        rewards[b, 1] = 0.0
        terminated[b] = False
        truncated[b] = False
        status[b, 0] = MOVE_SKIPPED
        status[b, 1] = MOVE_SKIPPED
        return
    h = S.dims[b, 0]
    w = S.dims[b, 1]
    t, win = tick_board(rule, S.terrain[b], S.owner[b], S.army[b], h, w, S.gens[b],
                        S.time[b], actions[b], status[b])
    S.time[b] = t
    S.winner[b] = win
    for p in range(2):
        if status[b, p] == MOVE_INVALID:
            S.invalid_count[b, p] += 1
    observe_board(S.terrain[b], S.owner[b], S.army[b], S.nbr[b], h, w, t, scratch[b], obs[b],
                  masks[b], scalars[b], totals[b])
    term = win >= 0
    trunc = (not term) and truncation > 0 and t >= truncation
    for p in range(2):
        r = 0.0
        if term:
            r = 1.0 if p == win else -1.0
        if reward_kind == REWARD_SHAPED:
            # Phi = 0 at every end, truncation too (a draw): a game's shaped return is then
            # its outcome minus Phi(start), so a lead held to the truncation pays no more than a
            # draw and never more than the capture (rewards.py)
            new_phi = 0.0 if (term or trunc) else potential(totals[b], p)
            r += new_phi - phi[b, p]
            phi[b, p] = new_phi
        rewards[b, p] = r
    terminated[b] = term
    truncated[b] = trunc
    if term or trunc:
        ep_len[b] = t
        ep_winner[b] = win
        if same_step:
            reset_board(b, S, gen_params, pool_t, pool_a, pool_d, pool_g, map_id, rng, obs, masks,
                        scalars, totals, scratch, phi)
        else:
            S.pending[b] = 1


@_jit
def step_boards_serial(S, actions, rule, truncation, reward_kind, same_step, gen_params, pool_t,
                       pool_a, pool_d, pool_g, map_id, rng, obs, masks, scalars, rewards,
                       terminated, truncated, status, scratch, totals, phi, ep_len, ep_winner):
    for b in range(actions.shape[0]):
        step_one(b, S, actions, rule, truncation, reward_kind, same_step, gen_params, pool_t,
                 pool_a, pool_d, pool_g, map_id, rng, obs, masks, scalars, rewards, terminated,
                 truncated, status, scratch, totals, phi, ep_len, ep_winner)


@nb.njit(cache=True, nogil=True, parallel=True)
def step_boards_parallel(S, actions, rule, truncation, reward_kind, same_step, gen_params, pool_t,
                         pool_a, pool_d, pool_g, map_id, rng, obs, masks, scalars, rewards,
                         terminated, truncated, status, scratch, totals, phi, ep_len, ep_winner):
    for b in nb.prange(actions.shape[0]):
        step_one(b, S, actions, rule, truncation, reward_kind, same_step, gen_params, pool_t,
                 pool_a, pool_d, pool_g, map_id, rng, obs, masks, scalars, rewards, terminated,
                 truncated, status, scratch, totals, phi, ep_len, ep_winner)


@_jit
def reset_all(S, gen_params, pool_t, pool_a, pool_d, pool_g, map_id, rng, obs, masks, scalars,
              totals, scratch, phi):
    for b in range(S.time.shape[0]):
        S.pending[b] = 0
        reset_board(b, S, gen_params, pool_t, pool_a, pool_d, pool_g, map_id, rng, obs, masks,
                    scalars, totals, scratch, phi)

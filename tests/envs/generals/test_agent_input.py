"""The agent's input planes against a plain-NumPy composition of the pieces they are made of."""

import numpy as np
import pytest
from gristmill.envs.generals import AgentFeatures, Bot, GeneralsEngine, MemoryFeatures
from gristmill.envs.generals.agent_input import (
    _next_to_reference,
    agent_planes_reference,
    attack_target_reference,
    num_agent_channels,
    widen_input_layout,
)


def test_planes_match_the_reference_for_every_seat_through_resets():
    eng = GeneralsEngine(4, "generalsio", truncation=40, seed=3, autoreset="same_step")
    obs, scalars, masks = eng.reset(seed=3)
    feats = AgentFeatures(4, history=3)
    mem = MemoryFeatures(4, history=3)
    bot = Bot("expander", 4, seed=0)
    assert feats.num_channels == num_agent_channels(3) == 22 + 12
    boards, players = np.repeat(np.arange(4), 2), np.tile([1, 0], 4)
    for _ in range(90):  # two resets per board
        feats.update(eng.obs, eng.scalars)
        mem.update(eng.obs, eng.scalars)
        got = feats.planes(boards, players)
        want_mem = mem.features()
        for k, (b, p) in enumerate(zip(boards, players)):
            want = agent_planes_reference(eng.obs[b, p], eng.scalars[b, p], want_mem[b, p])
            np.testing.assert_allclose(got[k], want, rtol=1e-6, atol=1e-7)
        eng.step(bot.act(eng.obs, eng.masks, eng.scalars))


def test_attack_target_plane_follows_the_general_bots_search_through_every_branch():
    """Plane 21 = walking distance to the cells the ``general`` bot convoys to; in long games
    the branches of its search are taken (remembered general, fog far from the own general
    next to enemy land, enemy land, far fog) and the planes match the reference; the last
    branch (fog, all of it near the own general) on a board built for it."""
    from gristmill.envs.generals.encoding import C_ENEMY, C_ENEMY_CITY, CODE_MASK

    eng = GeneralsEngine(6, "generalsio", truncation=300, seed=11, autoreset="same_step")
    eng.reset(seed=11)
    feats, mem = AgentFeatures(6, history=1), MemoryFeatures(6, history=1)
    bot = Bot("general", 6, seed=0)
    seen = set()
    boards, players = np.repeat(np.arange(6), 2), np.tile([0, 1], 6)
    for t in range(300):
        feats.update(eng.obs, eng.scalars)
        mem.update(eng.obs, eng.scalars)
        if t % 7 == 0:
            got = feats.planes(boards, players)
            m = mem.features()
            for k, (b, p) in enumerate(zip(boards, players)):
                code = eng.obs[b, p] & CODE_MASK
                target = attack_target_reference(code, m[b, p, 3] != 0)
                enemy = (code == C_ENEMY) | (code == C_ENEMY_CITY)
                near = _next_to_reference(enemy)
                seen.add("general" if m[b, p, 3].any() else "enemy land" if
                         (target == enemy).all() and enemy.any() else "far fog by enemy"
                         if (target <= near).all() else "far fog")
                want = agent_planes_reference(eng.obs[b, p], eng.scalars[b, p], m[b, p])
                np.testing.assert_allclose(got[k, 20:22], want[20:22], rtol=1e-6, atol=1e-7)
                assert got[k, 21][target].max() == 0.0  # distance 0 on every target cell
        eng.step(bot.act(eng.obs, eng.masks, eng.scalars))
    assert seen == {"general", "enemy land", "far fog by enemy", "far fog"}, seen


def test_attack_target_is_any_fog_when_all_fog_is_near_the_own_general():
    from gristmill.envs.generals.bots import _attack_target, _bfs
    from gristmill.envs.generals.encoding import C_FOG, C_NEUTRAL, C_OWN_GENERAL

    code = np.full((8, 8), C_NEUTRAL, np.int32)
    code[0, 0], code[0, 5], code[7, 7] = C_OWN_GENERAL, C_FOG, C_FOG
    dist, queue = np.empty((8, 8), np.int64), np.empty(64, np.int64)
    r, c = np.empty(64, np.int64), np.empty(64, np.int64)
    r[0] = c[0] = 0
    _bfs(code, r, c, 1, dist, queue)  # from the own general
    n = _attack_target(code, -1, -1, dist, r, c)
    want = attack_target_reference(code, np.zeros((8, 8), bool))
    assert sorted(zip(r[:n], c[:n])) == [(0, 5), (7, 7)] == sorted(zip(*np.nonzero(want)))


def test_a_network_of_an_older_input_layout_is_widened_with_zero_weights_on_the_new_planes():
    rng = np.random.default_rng(0)
    old = rng.normal(size=(4, num_agent_channels(2, layout=1), 3, 3)).astype(np.float32)
    new = widen_input_layout(old, layout=1)
    assert new.shape[1] == num_agent_channels(2) == old.shape[1] + 2
    np.testing.assert_array_equal(new[:, 20:22], 0)
    np.testing.assert_array_equal(np.delete(new, [20, 21], axis=1), old)
    with pytest.raises(ValueError, match="unknown Generals input layout 9"):
        widen_input_layout(old, layout=9)


def test_planes_before_update_and_out_of_range_seats_are_refused():
    f = AgentFeatures(2)
    with pytest.raises(RuntimeError, match="before the first update"):
        f.planes(np.array([0]), np.array([0]))
    eng = GeneralsEngine(2, seed=0)
    eng.reset()
    f.update(eng.obs, eng.scalars)
    with pytest.raises(IndexError, match="boards 0..1"):
        f.planes(np.array([2]), np.array([0]))


def test_generals_bots_planes_convert_back_to_the_engines_compact_view_and_mask():
    from gristmill.envs.generals.observation import compact_from_planes, move_mask

    eng = GeneralsEngine(3, "generalsio", truncation=60, seed=5, autoreset="same_step")
    eng.reset(seed=5)
    bot = Bot("expander", 3, seed=1)
    for _ in range(70):
        planes = eng.planes()
        for b in range(3):
            for p in range(2):
                obs, sc = compact_from_planes(planes[b, p])
                assert np.array_equal(obs, eng.obs[b, p])
                assert np.array_equal(sc, eng.scalars[b, p])
                assert np.array_equal(move_mask(obs), eng.masks[b, p])
        eng.step(bot.act(eng.obs, eng.masks, eng.scalars))


def test_distance_planes_walk_around_mountains_and_remember_the_enemy_general():
    from gristmill.envs.generals.encoding import (
        C_ENEMY_GENERAL,
        C_FOG,
        C_MOUNTAIN,
        C_NEUTRAL,
        C_OWN,
        CODE_BITS,
    )

    # own land left of a mountain wall with one gap in row 3; fog right of it
    codes = {"O": C_OWN, "M": C_MOUNTAIN, ".": C_NEUTRAL, "F": C_FOG, "G": C_ENEMY_GENERAL}
    rows = ["OOMFFF", "OOMFFF", "OOMFFF", "OO.FFF", "OOMFFF", "MMMMMM"]
    grid = np.array([[codes[ch] | (2 << CODE_BITS if ch == "O" else 0) for ch in r]
                     for r in rows], np.int32)
    feats = AgentFeatures(1, pad_to=6, history=1, players=1)
    fog, enemy, general = 17, 18, 19

    def planes(tick, g):
        feats.update(g[None, None].copy(), np.array([[[10, 20, 0, 0, tick]]], np.int32))
        return feats.planes(np.zeros(1, np.int64), np.zeros(1, np.int64))[0] * 48

    p = planes(0, grid)
    assert p[fog, 0, 0] == 6  # (0,0) -> (3,1) -> gap (3,2) -> fog (3,3), not 3 through the wall
    assert p[fog, 3, 1] == 2 and p[fog, 3, 3] == 0
    assert p[fog, 0, 2] == 48  # a mountain: capped at 1 (x 48)
    assert (p[enemy] == 48).all() and (p[general] == 48).all()  # no enemy seen yet
    seen = grid.copy()
    seen[3, 4] = C_ENEMY_GENERAL | (5 << CODE_BITS)
    p = planes(1, seen)
    assert p[enemy, 3, 1] == 3 and p[general, 3, 1] == 3
    p = planes(2, grid)  # the general back under fog: no visible enemy, but remembered
    assert (p[enemy] == 48).all()
    assert p[general, 3, 1] == 3 and p[general, 0, 0] == 7

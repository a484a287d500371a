"""Engine semantics on hand-built boards, buffers, autoreset, rewards, planes and memory."""

from __future__ import annotations

import numpy as np
import pytest
from gristmill.envs.generals import (
    GeneralsEngine,
    InvalidMapError,
    MapGenerator,
    MemoryFeatures,
    ShapedReward,
    expand_planes,
    format_map,
    parse_map,
)
from gristmill.envs.generals.bots import Bot
from gristmill.envs.generals.encoding import (
    C_ENEMY,
    C_FOG,
    C_FOG_OBSTACLE,
    C_MOUNTAIN,
    C_OWN,
    C_OWN_GENERAL,
    decode,
    expand_planes_reference,
)
from gristmill.envs.generals.memory import memory_update_reference
from gristmill.envs.generals.rewards import RewardInput

PASS = [1, 0, 0, 0, 0]
UP, DOWN, LEFT, RIGHT = range(4)


def engine(layout, **kw):
    e = GeneralsEngine(1, [layout], **kw)
    e.reset()
    return e


def step(e, a0, a1=PASS):
    return e.step(np.array([[a0, a1]], np.int32))


def set_cells(e, cells):
    """cells: {(r, c): (owner, army)} on board 0 (recomputes the observation)."""
    s = e.state
    for (r, c), (o, a) in cells.items():
        s.owner[0, r, c] = o
        s.army[0, r, c] = a


def test_parse_and_format_roundtrip():
    lay = "A..#\n.5x.\n...B"
    m = parse_map(lay, pad_to=6)
    assert m.dims == (3, 4)
    assert m.army[1, 1] == 45 and m.army[1, 2] == 50 and m.army[0, 0] == 1
    assert (m.terrain[3:] == 1).all() and (m.terrain[:, 4:] == 1).all()  # padding = mountain
    assert format_map(m.terrain, m.army, m.dims, m.generals) == lay
    with pytest.raises(InvalidMapError, match="cannot reach"):
        parse_map("A#B")
    with pytest.raises(InvalidMapError, match="Exactly one"):
        parse_map("A.A.B")
    with pytest.raises(InvalidMapError, match="larger than pad_to"):
        parse_map("A" + "." * 30 + "B", pad_to=24)
    with pytest.raises(InvalidMapError, match="characters"):
        parse_map("A.z.B")


def test_growth_timing_matches_general_formula():
    e = engine("A.......B")
    for t in range(1, 101):
        step(e, PASS, PASS)
        assert e.state.army[0, 0, 0] == 1 + t // 2 + t // 50
    assert e.scalars[0, 0, 4] == 100


def test_move_all_half_and_tie_capture():
    e = engine("A.3....B\n........")
    set_cells(e, {(0, 0): (0, 10)})
    step(e, [0, 0, 0, RIGHT, 1])  # half: 5 moves, captures the empty cell
    s = e.state
    assert s.army[0, 0, 0] == 5 and s.army[0, 0, 1] == 5 and s.owner[0, 0, 1] == 0
    set_cells(e, {(0, 1): (0, 44)})  # 43 moves onto a 43-army city: tie, neutral keeps 0
    step(e, [0, 0, 1, RIGHT, 0])
    assert s.owner[0, 0, 2] == -1 and s.army[0, 0, 2] == 0 and s.army[0, 0, 1] == 1
    assert e.status[0, 0] == 1
    step(e, [0, 0, 1, RIGHT, 0])  # army 1: invalid, counted
    assert e.status[0, 0] == 2 and e.invalid_count[0, 0] == 1


def test_priority_rules_differ_as_documented():
    # both attack a neutral 40-army city with 45 (p0) and 30 (p1): the order decides its owner
    lay = "A...\n.0..\n....\n...B"
    results = {}
    for rule in ("priority", "smaller_first", "alternating"):
        e = engine(lay, priority=rule)
        set_cells(e, {(1, 0): (0, 46), (1, 2): (1, 31)})
        step(e, [0, 1, 0, RIGHT, 0], [0, 1, 2, LEFT, 0])
        results[rule] = (int(e.state.owner[0, 1, 1]), int(e.state.army[0, 1, 1]))
    # larger first: p0 takes the city (5 left), then p1's 30 take it from p0
    assert results["priority"] == (1, 25)
    # smaller first: p1's 30 leave the city neutral at 10, then p0's 45 take it
    assert results["smaller_first"] == (0, 35)
    # alternating at t = 0: player 0 first
    assert results["alternating"] == (1, 25)
    e = engine(lay, priority="alternating")
    step(e, PASS, PASS)  # t = 1: player 1 first
    set_cells(e, {(1, 0): (0, 46), (1, 2): (1, 31)})
    step(e, [0, 1, 0, RIGHT, 0], [0, 1, 2, LEFT, 0])
    # ... and the now-owned city grows at t = 2
    assert (int(e.state.owner[0, 1, 1]), int(e.state.army[0, 1, 1])) == (0, 36)


def test_chasing_and_reinforcing_go_first():
    lay = "A...\n....\n....\n...B"
    # p1 moves onto the cell p0 leaves: p1 resolves first although its army is smaller
    e = engine(lay)
    set_cells(e, {(1, 0): (0, 20), (1, 1): (1, 3)})
    step(e, [0, 1, 0, DOWN, 0], [0, 1, 1, LEFT, 0])
    s = e.state
    assert int(s.owner[0, 1, 0]) == 0 and int(s.army[0, 1, 0]) == 1 and int(s.army[0, 2, 0]) == 17
    # p1 reinforces its own cell while p0 (larger) attacks it: p1 first, p0 then faces 2 + 2
    e = engine(lay)
    set_cells(e, {(2, 1): (0, 5), (2, 2): (1, 2), (2, 3): (1, 3)})
    step(e, [0, 2, 1, RIGHT, 0], [0, 2, 3, LEFT, 0])
    assert int(s.owner[0, 2, 2]) == 1 or int(e.state.owner[0, 2, 2]) == 1
    assert int(e.state.army[0, 2, 2]) == 0 and int(e.state.owner[0, 2, 2]) == 1


def test_general_capture_ends_game_and_transfers_land():
    e = engine("A..B")
    set_cells(e, {(0, 1): (0, 5), (0, 2): (1, 3)})
    _, _, _, rew, term, trunc = step(e, [0, 0, 1, RIGHT, 0], [0, 0, 2, LEFT, 0])
    # p0 moves first (larger army); captures (0, 2) but not the general yet
    assert not term[0]
    set_cells(e, {(0, 2): (0, 10)})
    _, _, _, rew, term, trunc = step(e, [0, 0, 2, RIGHT, 0], [0, 0, 3, LEFT, 1])
    assert term[0] and not trunc[0]
    assert e.state.winner[0] == 0 and e.status[0, 1] == 3  # p1's move was skipped
    assert list(rew[0]) == [1.0, -1.0]
    assert (e.state.owner[0, 0, :4] == 0).all()
    assert e.episode_winner[0] == 0 and e.episode_length[0] == 2
    codes = decode(e.obs[0, 0])[0]
    assert (codes[0, :4] == [C_OWN_GENERAL, C_OWN, C_OWN, C_OWN_GENERAL]).all()


def test_fog_and_masks():
    lay = "A....#\n......\n....3.\n.....B"
    e = engine(lay)
    code, army = decode(e.obs[0, 0])
    assert code[0, 1] == 0 + C_FOG or code[0, 1] >= C_MOUNTAIN
    assert code[1, 1] != C_FOG and code[2, 2] == C_FOG
    assert code[0, 5] == C_FOG_OBSTACLE and code[2, 4] == C_FOG_OBSTACLE
    assert code[3, 5] == C_FOG and army[3, 5] == 0  # the enemy general hides in the fog
    assert (code[4:, :] == C_MOUNTAIN).all() and (code[:, 6:] == C_MOUNTAIN).all()
    assert e.masks[0, 0].sum() == 0  # general holds 1
    step(e, PASS, PASS)
    step(e, PASS, PASS)  # general has 2
    m = e.masks[0, 0]
    assert m[0, 0].tolist() == [0, 1, 0, 1] and m.sum() == 2
    # a neighbour enemy cell is visible with its army
    set_cells(e, {(1, 1): (1, 7)})
    step(e, PASS, PASS)
    code, army = decode(e.obs[0, 0])
    assert code[1, 1] == C_ENEMY and army[1, 1] == 7


def test_malformed_actions_raise_clear_errors():
    e = engine("A..B")
    with pytest.raises(ValueError, match="shape"):
        e.step(np.zeros((1, 5), np.int32))
    with pytest.raises(ValueError, match="integers"):
        e.step(np.zeros((1, 2, 5), np.float32))
    bad = np.zeros((1, 2, 5), np.int32)
    bad[0, 1, 3] = 4
    with pytest.raises(ValueError, match="board 0, player 1: direction=4"):
        e.step(bad)
    bad[0, 1, 3] = 0
    bad[0, 0, 1] = 24
    with pytest.raises(ValueError, match="row=24"):
        e.step(bad)
    with pytest.raises(ValueError, match="priority"):
        GeneralsEngine(1, ["A..B"], priority="nope")


@pytest.mark.parametrize("autoreset", ["next_step", "same_step"])
def test_autoreset(autoreset):
    e = GeneralsEngine(3, "uniform", truncation=7, autoreset=autoreset, seed=1, pool_size=4)
    e.reset()
    a = np.zeros((3, 2, 5), np.int32)
    a[:, :, 0] = 1
    for _ in range(1, 8):
        e.step(a)
    assert e.truncated.all() and not e.terminated.any() and (e.episode_length == 7).all()
    if autoreset == "same_step":
        assert (e.scalars[:, :, 4] == 0).all()  # already the next game's first observation
    else:
        assert (e.scalars[:, :, 4] == 7).all()
        e.step(a)
        assert (e.scalars[:, :, 4] == 0).all() and not e.truncated.any()
        assert (e.rewards == 0).all()
    e.step(a)
    assert (e.scalars[:, :, 4] == 1).all()


def test_batched_equals_single_boards_and_parallel():
    """N boards stepped together (serial and prange) equal N separate single-board engines."""
    gen = MapGenerator("uniform", min_grid_dims=(6, 6), max_grid_dims=(10, 10), seed=3)
    lays = [gen.generate() for _ in range(5)]
    engines = [GeneralsEngine(5, lays, parallel=par, seed=7) for par in (False, True)]
    singles = [GeneralsEngine(1, [lay]) for lay in lays]
    for e in engines:
        e.reset()
        for b, lay in enumerate(lays):
            e.load(b, lay)
    for s in singles:
        s.reset()
    bot = Bot("expander", 5, seed=0)
    alive = np.ones(5, bool)  # after a game ends the pools (and so the next maps) differ
    for _ in range(150):
        a = bot.act(engines[0].obs, engines[0].masks, engines[0].scalars)
        for e in engines:
            e.step(a)
        for b, s in enumerate(singles):
            s.step(a[b:b + 1])
            if alive[b]:
                np.testing.assert_array_equal(s.obs[0], engines[0].obs[b])
                np.testing.assert_array_equal(s.rewards[0], engines[0].rewards[b])
                np.testing.assert_array_equal(s.masks[0], engines[0].masks[b])
        alive &= ~engines[0].terminated
        np.testing.assert_array_equal(engines[0].obs, engines[1].obs)
        np.testing.assert_array_equal(engines[0].masks, engines[1].masks)


def test_expand_planes_matches_reference():
    e = GeneralsEngine(4, "generalsio", seed=0, pool_size=4)
    e.reset()
    bot = Bot("random", 4, seed=0)
    for _ in range(60):
        e.step(bot.act(e.obs, e.masks, e.scalars))
    ref = expand_planes_reference(e.obs, e.scalars)
    np.testing.assert_array_equal(expand_planes(e.obs, e.scalars), ref)
    np.testing.assert_array_equal(expand_planes(e.obs, e.scalars, parallel=True), ref)
    with pytest.raises(ValueError, match="out must be"):
        expand_planes(e.obs, e.scalars, np.zeros((4, 2, 15, 24, 24), np.float64))


def test_shaped_reward_kernel_matches_python():
    e = GeneralsEngine(1, "uniform", reward="shaped", truncation=300, seed=5, pool_size=2)
    e.reset()
    bot = Bot("expander", 1, seed=0)
    fn = ShapedReward()

    def view(p):
        w = int(e.state.winner[0])
        return RewardInput(e.obs[0, p].copy(), e.scalars[0, p].copy(),
                           bool(e.terminated[0] or e.truncated[0]),
                           0 if w < 0 else (1 if w == p else -1))

    prev = [view(0), view(1)]
    total = 0.0
    for _ in range(300):
        e.step(bot.act(e.obs, e.masks, e.scalars))
        cur = [view(0), view(1)]
        for p in range(2):
            assert e.rewards[0, p] == pytest.approx(fn(prev[p], cur[p]), abs=1e-5)
        total += abs(float(e.rewards[0, 0]))
        prev = cur
        if e.terminated[0] or e.truncated[0]:
            break
    assert total > 0.1  # the shaping actually paid something


@pytest.mark.parametrize("truncation", [40, 500])
def test_a_games_shaped_rewards_sum_to_its_outcome(truncation):
    """Phi = 0 at every end (truncation too) and 0 on the symmetric start: a game's shaped
    rewards telescope to +1 / -1 / 0, so a lead held to the truncation earns what a draw does."""
    n = 8
    e = GeneralsEngine(n, "generalsio", reward="shaped", truncation=truncation, seed=3,
                       pool_size=n, autoreset="next_step")  # fmt: skip
    e.reset()
    general, rand = Bot("general", n, seed=0), Bot("random", n, seed=1)
    total = np.zeros((n, 2))
    outcome = np.full(n, np.nan)
    while np.isnan(outcome).any():
        actions = general.act(e.obs, e.masks, e.scalars, seats=(True, False))
        e.step(rand.act(e.obs, e.masks, e.scalars, seats=(False, True), out=actions))
        live = np.isnan(outcome)
        total[live] += e.rewards[live]
        for b in np.flatnonzero(live & (e.terminated | e.truncated)):
            w = int(e.state.winner[b])
            outcome[b] = 0.0 if w < 0 else (1.0 if w == 0 else -1.0)
    np.testing.assert_allclose(total[:, 0], outcome, atol=1e-4)
    np.testing.assert_allclose(total[:, 1], -outcome, atol=1e-4)
    if truncation == 40:  # no game is decided this early: all draws, all shaping returned
        assert (outcome == 0).all()
    else:
        assert (outcome == 1).any(), "the general bot should capture random's general"


def test_memory_features_match_reference():
    e = GeneralsEngine(2, "uniform", truncation=40, seed=2, pool_size=2,
                       autoreset="next_step")
    e.reset()
    mem = MemoryFeatures(2, history=3)
    bot = Bot("expander", 2, seed=1)
    hist = [[e.obs[b, p].copy() for p in range(2)] for b in range(2)]
    mem.update(e.obs, e.scalars)
    for t in range(1, 61):
        e.step(bot.act(e.obs, e.masks, e.scalars))
        mem.update(e.obs, e.scalars)
        if e.scalars[0, 0, 4] == 0:  # a new game started: the memory restarted
            hist = [[e.obs[b, p].copy() for p in range(2)] for b in range(2)]
            hist = [[[h] for h in row] for row in hist]
        elif t == 1:
            hist = [[[h, e.obs[b, p].copy()] for p, h in enumerate(row)]
                    for b, row in enumerate(hist)]
        else:
            for b in range(2):
                for p in range(2):
                    hist[b][p].append(e.obs[b, p].copy())
        if t in (5, 30, 45, 60):
            feats = mem.features()
            for b in range(2):
                for p in range(2):
                    ref = memory_update_reference(hist[b][p], K=3)
                    np.testing.assert_array_equal(feats[b, p], ref, err_msg=f"t={t} b={b}")
    assert feats[:, :, 0].sum() > 0 and feats[:, :, 6].any()


def test_pool_refresh_and_bad_configs():
    gen = MapGenerator("uniform", seed=0)
    e = GeneralsEngine(2, gen, fresh_maps=False, pool_size=4)
    before = e.pool.army.copy()
    e.refresh_pool(2)
    assert not np.array_equal(before[:2], e.pool.army[:2])
    np.testing.assert_array_equal(before[2:], e.pool.army[2:])
    with pytest.raises(RuntimeError, match="fixed layouts"):
        GeneralsEngine(1, ["A..B"]).refresh_pool()
    with pytest.raises(ValueError, match="pad_to"):
        GeneralsEngine(1, "generalsio", pad_to=20)
    with pytest.raises(ValueError, match="num_boards"):
        GeneralsEngine(0)
    with pytest.raises(ValueError, match="truncation"):
        GeneralsEngine(1, ["A..B"], truncation=0)
    with pytest.raises(IndexError):
        GeneralsEngine(1, ["A..B"]).load(3, "A..B")

"""Bots (valid moves, strength order), replays (exact, compact), rendering and export."""

from __future__ import annotations

import gristmill.envs.generals as G
import numpy as np
import pytest
from gristmill.envs.generals.bots import FAR
from gristmill.envs.generals.encoding import (
    C_ENEMY,
    C_FOG,
    C_MOUNTAIN,
    C_NEUTRAL_CITY,
    C_OWN,
    C_OWN_GENERAL,
    CODE_BITS,
)
from gristmill.envs.generals.tournament import play_match


@pytest.mark.parametrize("name", G.BOTS)
def test_bots_choose_valid_moves_only(name):
    e = G.GeneralsEngine(8, "generalsio", truncation=300, seed=0, pool_size=8)
    e.reset()
    bot = G.Bot(name, 8, seed=0)
    moved = invalid = 0
    for _ in range(300):
        masks = e.masks.copy()
        a = bot.act(e.obs, e.masks, e.scalars)
        for b in range(8):
            for p in range(2):
                if a[b, p, 0] == 0:
                    assert masks[b, p, a[b, p, 1], a[b, p, 2], a[b, p, 3]], (name, b, p)
        e.step(a)
        # a move valid when chosen can still fail if the other player's move resolved first
        invalid += int((e.status == 2).sum())
        moved += int((e.status == 1).sum())
    assert moved > 8 * 2 * 300 * 0.5 and invalid < 0.01 * moved


def test_bot_strength_order():
    """The scripted bot beats both baselines clearly (the full 200-game table is in the docs)."""
    r = play_match("general", "expander", games=24, maps="generalsio", truncation=800, seed=1)
    assert r.wins_a >= 18, r
    r = play_match("general", "random", games=24, maps="generalsio", truncation=800, seed=2)
    assert r.wins_a >= 22, r


def test_bot_seat_argument_and_unknown_name():
    e = G.GeneralsEngine(2, "uniform", seed=0, pool_size=2)
    e.reset()
    out = np.full((2, 2, 5), 7, np.int32)
    G.Bot("random", 2).act(e.obs, e.masks, e.scalars, (False, True), out)
    assert (out[:, 0] == 7).all() and (out[:, 1, 0] <= 1).all()
    with pytest.raises(ValueError, match="unknown bot"):
        G.Bot("alphago", 2)


def test_replay_roundtrip_is_exact_and_compact(tmp_path):
    r = play_match("general", "expander", games=2, maps="generalsio", truncation=600, seed=4,
                   keep_replays=2)
    rep = r.replays[0]
    path = rep.save(tmp_path / "game")
    assert path.suffix == ".npz" and path.stat().st_size < 20_000
    back = G.Replay.load(path)
    assert back.layout == rep.layout and back.players == rep.players
    np.testing.assert_array_equal(back.action_array(), rep.action_array())
    a = list(rep.states())
    b = list(back.states())
    assert len(a) == len(b) == rep.num_ticks + 1
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.army, y.army)
        np.testing.assert_array_equal(x.owner, y.owner)
    # the replayed game ends the way the match saw it
    assert a[-1].winner >= 0 or a[-1].time == 600
    if a[-1].winner >= 0:
        assert rep.players[a[-1].winner] == "general" or r.wins_b > 0


def test_gym_env_records_replays_that_replay_the_game(tmp_path):
    env = G.GeneralsEnv(opponent="general", truncation=120, record_replay=True)
    env.reset(seed=5)
    armies = []
    for _ in range(120):
        _, _, term, trunc, _ = env.step(np.array([1, 0, 0, 0, 0]))
        armies.append(env.engine.state.army[0].copy())
        if term or trunc:
            break
    path = env.replay.save(tmp_path / "g.npz")
    states = list(G.Replay.load(path).states())[1:]
    assert len(states) == len(armies)
    for st, arm in zip(states, armies):
        h, w = st.army.shape
        np.testing.assert_array_equal(st.army, arm[:h, :w])


def test_render_modes_and_export(tmp_path):
    env = G.GeneralsParallelEnv(render_mode="ansi", truncation=20)
    env.reset(seed=0)
    text = env.render()
    assert "G" in text and "\x1b[41" in text  # player 0's general, coloured
    env = G.GeneralsEnv(render_mode="rgb_array", truncation=20)
    env.reset(seed=0)
    img = env.render()
    h, w = env.engine.state.dims[0]
    assert img.shape == (h * 24 + 18, w * 24, 3) and img.dtype == np.uint8
    assert (img.reshape(-1, 3) == [230, 60, 60]).all(axis=1).any()  # red player visible
    r = play_match("general", "random", games=1, truncation=60, seed=0, keep_replays=1)
    rep = r.replays[0]
    gif = rep.export(tmp_path / "g.gif", fps=10)
    import imageio.v3 as iio

    frames = iio.imread(gif)
    assert frames.shape[0] == rep.num_ticks + 1
    fogged = next(iter(rep.frames(view=0)))
    full = next(iter(rep.frames()))
    assert fogged.shape == full.shape and not np.array_equal(fogged, full)
    mp4 = rep.export(tmp_path / "g.mp4", fps=10)
    assert mp4.stat().st_size > 1000
    with pytest.raises(ValueError, match="gif or .mp4"):
        rep.export(tmp_path / "g.avi")


@pytest.mark.parametrize("name", G.BOTS)
def test_parallel_bots_act_like_serial_ones(name):
    e = G.GeneralsEngine(6, "generalsio", truncation=200, seed=4)
    e.reset()
    serial, par = G.Bot(name, 6, seed=9), G.Bot(name, 6, seed=9, parallel=True)
    for _ in range(120):
        a = serial.act(e.obs, e.masks, e.scalars)
        np.testing.assert_array_equal(a, par.act(e.obs, e.masks, e.scalars))
        e.step(a)


def test_a_player_that_is_not_a_bot_is_seated_and_scored_like_the_bot_itself():
    # the path the trained net takes through play_match (its own seats only, both seats
    # alternating, the winner mapped back to A) must not change a bot's result
    class Wrapped:
        name = "wrapped"

        def spawn(self, num_boards, seed=None):
            bot = G.Bot("general", num_boards, seed=seed)

            class Seated:
                def act(self, obs, masks, scalars, seats, out):
                    tmp = out.copy()
                    bot.act(obs, masks, scalars, (True, True), tmp)
                    out[seats] = tmp[seats]
                    return out

            return Seated()

    direct = play_match("general", "random", games=24, truncation=300, seed=3)
    wrapped = play_match(Wrapped(), "random", games=24, truncation=300, seed=3)
    assert (wrapped.wins_a, wrapped.draws, wrapped.wins_b) == \
        (direct.wins_a, direct.draws, direct.wins_b)
    assert direct.wins_a > direct.wins_b  # the games are decided, not all draws


def test_general_bot_draws_no_random_numbers():
    """Its move is a function of its observation and memory, so a BC clone can learn it: two
    differently seeded copies move alike over 200 ticks (random and expander do not)."""
    e = G.GeneralsEngine(8, "generalsio", truncation=300, seed=1, pool_size=8)
    e.reset()
    a, b = G.Bot("general", 8, seed=0), G.Bot("general", 8, seed=1)
    x, y = G.Bot("expander", 8, seed=0), G.Bot("expander", 8, seed=1)
    expander_differs = False
    for _ in range(200):
        act = a.act(e.obs, e.masks, e.scalars)
        np.testing.assert_array_equal(act, b.act(e.obs, e.masks, e.scalars))
        expander_differs |= not np.array_equal(x.act(e.obs, e.masks, e.scalars),
                                               y.act(e.obs, e.masks, e.scalars))
        e.step(act)
    assert expander_differs


def test_general_bot_gathers_its_largest_stack_towards_the_fog():
    """With nothing to capture, the largest stack steps onto own land along the BFS to the
    nearest fog cell (here: up), not in a random direction."""
    S = 5
    obs = np.zeros((1, 2, S, S), np.int32)  # row 0 fog
    obs[0, 0, 1] = C_NEUTRAL_CITY | 40 << CODE_BITS  # too strong to take
    obs[0, 0, 2:] = C_OWN | 1 << CODE_BITS
    obs[0, 0, 4, 0] = C_OWN_GENERAL | 1 << CODE_BITS
    obs[0, 0, 3, 2] = C_OWN | 5 << CODE_BITS
    obs[0, 0, 0] = C_FOG
    masks = np.zeros((1, 2, S, S, 4), np.uint8)
    masks[0, 0, 3, 2] = 1  # only the stack can move; all four neighbours are own land
    scalars = np.zeros((1, 2, 5), np.int32)
    scalars[0, :, 4] = 10  # the expansion phase: no convoy
    for seed in range(4):
        out = G.Bot("general", 1, seed=seed).act(obs, masks, scalars, (True, False))
        assert out[0, 0].tolist() == [0, 3, 2, 0, 0]  # move (3, 2) up, whole stack


def _general_move(obs, masks, tick):
    """The ``general`` bot's move for player 0 of a one-board observation at ``tick``."""
    scalars = np.zeros((1, 2, 5), np.int32)
    scalars[0, :, 4] = tick
    return G.Bot("general", 1).act(obs, masks, scalars, (True, False))[0, 0].tolist()


def test_general_bot_convoys_and_gathers_by_one_stack_rule():
    """Convoy (from tick 25) and gather pick the same stack: the largest with a step closer to
    the target, the general counting two thirds of its army and moving half (its garrison).
    Here the target of both is the fog in row 0, so the move must not depend on the tick."""
    S = 5
    obs = np.zeros((1, 2, S, S), np.int32)  # row 0 fog
    obs[0, 0, 1:] = C_OWN | 1 << CODE_BITS
    obs[0, 0, 3, 3] = C_OWN | 21 << CODE_BITS
    masks = np.zeros((1, 2, S, S, 4), np.uint8)
    masks[0, 0, 4, 0, [0, 3]] = 1  # the general: up, right
    masks[0, 0, 3, 3] = 1
    for general_army, move in ((30, [0, 3, 3, 0, 0]),  # 30 - 10 = 20 < 21: the stack walks up
                               (60, [0, 4, 0, 0, 1])):  # 60 - 20 = 40 > 21: the general, half
        obs[0, 0, 4, 0] = C_OWN_GENERAL | general_army << CODE_BITS
        for tick in (10, 30, 120):  # gather (before the convoys start), convoy, convoy
            assert _general_move(obs, masks, tick) == move, (general_army, tick)


def test_general_bot_searches_far_fog_next_to_enemy_land():
    """With the enemy general unknown, the convoy heads for fog >= FAR steps from its own
    general next to enemy land (where the enemy general can be), not to the nearest enemy
    cell (which cannot be the general: generalsio maps put the generals >= 20 steps apart)."""
    S = 24
    obs = np.full((1, 2, S, S), C_MOUNTAIN, np.int32)  # a corridor along row 0
    obs[0, 0, 0] = C_FOG
    obs[0, 0, 0, 0] = C_ENEMY | 1 << CODE_BITS  # near enemy land, left
    obs[0, 0, 0, 1] = C_OWN_GENERAL | 1 << CODE_BITS
    obs[0, 0, 0, 2] = C_OWN | 20 << CODE_BITS
    obs[0, 0, 0, 3] = C_OWN | 1 << CODE_BITS
    obs[0, 0, 0, FAR + 1] = C_ENEMY | 1 << CODE_BITS  # far enemy land; fog beyond it
    masks = np.zeros((1, 2, S, S, 4), np.uint8)
    masks[0, 0, 0, 2, [2, 3]] = 1  # the stack: left, right
    assert _general_move(obs, masks, 120) == [0, 0, 2, 3, 0]  # right, towards column FAR + 2
    obs[0, 0, 0, FAR + 1] = C_FOG  # no far enemy land: the nearest enemy cell is the target
    assert _general_move(obs, masks, 120) == [0, 0, 2, 2, 0]

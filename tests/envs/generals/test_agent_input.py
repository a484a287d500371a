"""The agent's input planes against a plain-NumPy composition of the pieces they are made of."""

import numpy as np
import pytest
from gristmill.envs.generals import AgentFeatures, Bot, GeneralsEngine, MemoryFeatures
from gristmill.envs.generals.agent_input import agent_planes_reference, num_agent_channels


def test_planes_match_the_reference_for_every_seat_through_resets():
    eng = GeneralsEngine(4, "generalsio", truncation=40, seed=3, autoreset="same_step")
    obs, scalars, masks = eng.reset(seed=3)
    feats = AgentFeatures(4, history=3)
    mem = MemoryFeatures(4, history=3)
    bot = Bot("expander", 4, seed=0)
    assert feats.num_channels == num_agent_channels(3) == 17 + 12
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

"""Gymnasium, PettingZoo and VectorEnv interfaces: API checkers, spaces, errors, replays."""

from __future__ import annotations

import gristmill.envs.generals as G
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test


def test_registered_and_passes_check_env():
    env = gym.make("gristmill/Generals-v0", opponent="general", truncation=100,
                   render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (15, 24, 24)
    assert obs in env.observation_space
    assert info["action_mask"].shape == (24, 24, 4)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env.close()
    env = gym.make("gristmill.envs.generals:gristmill/Generals-v0", opponent=None)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=1)
    assert obs.shape == (2, 15, 24, 24) and info["action_mask"].shape == (2, 24, 24, 4)


def test_single_agent_game_plays_to_the_end_with_rewards_in_the_return():
    env = G.GeneralsEnv(opponent="expander", maps=MAPS_SMALL, truncation=400)
    obs, info = env.reset(seed=3)
    bot = G.Bot("expander", 1, seed=3)
    total, steps = 0.0, 0
    while True:
        a = bot.act(env.engine.obs, env.engine.masks, env.engine.scalars, (True, False))[0, 0]
        obs, r, term, trunc, info = env.step(a)
        total += r
        steps += 1
        if term or trunc:
            break
    assert steps < 400 and term, "small maps end by capture"
    assert total in (1.0, -1.0) and info["winner"] in (0, 1)
    assert total == (1.0 if info["winner"] == 0 else -1.0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(a)


def test_invalid_moves_are_passes_counted_in_info_and_malformed_raise():
    env = G.GeneralsEnv(opponent="random", truncation=50)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0, 23, 23, 0, 0]))  # a padding cell: invalid
    assert info["status"] == 2 and info["invalid_moves"] == 1
    _, _, _, _, info = env.step(np.array([1, 0, 0, 0, 0]))
    assert info["status"] == 0 and info["invalid_moves"] == 1
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="integers"):
        env.step(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="direction=7"):
        env.step(np.array([0, 0, 0, 7, 0]))
    with pytest.raises(ValueError, match="opponent|bot"):
        G.GeneralsEnv(opponent="nobody")


def test_reset_options_grid_and_custom_reward():
    calls = []

    def reward(prev, cur):
        calls.append(cur.scalars[4])
        return float(cur.scalars[0] - prev.scalars[0])  # land gained

    env = G.GeneralsEnv(opponent="expander", reward=reward)
    obs, _ = env.reset(options={"grid": "A.....\n......\n.....B"})
    assert (obs[3, 3:, :] == 1).all()  # rows beyond the 3-row board are padding mountains
    for _t in range(4):
        env.step(np.array([1, 0, 0, 0, 0]))
    assert calls == [1, 1, 2, 2, 3, 3, 4, 4]  # once per player and tick


def test_pettingzoo_parallel_and_aec_api():
    parallel_api_test(G.GeneralsParallelEnv(truncation=80), num_cycles=300)
    api_test(G.aec_env(truncation=80), num_cycles=300)
    env = G.GeneralsParallelEnv(truncation=10)
    obs, infos = env.reset(seed=0)
    assert set(obs) == {"player_0", "player_1"}
    sp = env.observation_space("player_0")
    assert obs["player_0"] in sp and obs["player_0"]["observation"].dtype == np.float32
    with pytest.raises(KeyError):
        env.observation_space("nobody")
    with pytest.raises(ValueError, match="row=30"):
        env.step({"player_0": np.array([0, 30, 0, 0, 0]), "player_1": np.array([1, 0, 0, 0, 0])})
    for _ in range(10):
        obs, rew, term, trunc, infos = env.step({"player_0": np.array([1, 0, 0, 0, 0])})
    assert all(trunc.values()) and env.agents == []
    assert isinstance(rew["player_0"], float)


def test_vector_env_matches_single_envs_and_autoresets():
    v = G.GeneralsVectorEnv(4, opponent="expander", truncation=30, seed=0, maps=MAPS_SMALL)
    obs, info = v.reset(seed=0)
    assert obs.shape == (4, 15, 24, 24) and obs in v.observation_space
    assert info["action_mask"].shape == (4, 24, 24, 4)
    ends = 0
    for _t in range(80):
        a = np.zeros((4, 5), np.int64)
        a[:, 0] = 1
        obs, r, term, trunc, info = v.step(a)
        if (term | trunc).any():
            ends += int((term | trunc).sum())
            assert info["_winner"][term | trunc].all()
            assert (info["episode_length"][trunc] == 30).all()
    assert ends >= 4
    with pytest.raises(ValueError, match="shape"):
        v.step(np.zeros((3, 5), np.int64))
    sp = G.GeneralsVectorEnv(4, opponent=None, obs_type="compact", seed=0)
    obs, _ = sp.reset()
    assert obs.shape == (4, 24, 24) and obs.dtype == np.int32
    obs, r, *_ = sp.step(np.tile([1, 0, 0, 0, 0], (4, 1)))
    assert r.shape == (4,)
    with pytest.raises(ValueError, match="even"):
        G.GeneralsVectorEnv(3, opponent=None)


def test_gym_make_vec_uses_the_batched_env():
    envs = gym.make_vec("gristmill/Generals-v0", num_envs=3,
                        vectorization_mode="vector_entry_point", opponent="random", truncation=20)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, 15, 24, 24)
    assert isinstance(envs.unwrapped, G.GeneralsVectorEnv)


MAPS_SMALL = G.MapGenerator("uniform", min_grid_dims=(6, 6), max_grid_dims=(8, 8), seed=11)

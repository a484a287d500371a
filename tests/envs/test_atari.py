"""gristmill.envs.atari against gymnasium's AtariPreprocessing + FrameStackObservation."""

import ale_py
import gymnasium as gym
import numpy as np
import pytest
from gristmill.envs.atari import AtariEnv, game_of_task, list_tasks, make_env
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

gym.register_envs(ale_py)


def _reference(game: str, noop_max: int):
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=84)
    return FrameStackObservation(env, 4)


@pytest.mark.parametrize("game,noop_max", [("Breakout", 0), ("Pong", 30)])
def test_matches_gymnasium_preprocessing(game, noop_max):
    """Same seed, same actions: identical stacked observations, rewards and flags.

    Fire reset is off because AtariPreprocessing has none; the noop count comes from the same
    generator as gymnasium's (seeded like ale_py's AtariEnv.seed_game).
    """
    ref = _reference(game, noop_max)
    env = AtariEnv(f"{game}-v5", noop_max=noop_max, use_fire_reset=False)
    o1, _ = ref.reset(seed=3)
    o2, info = env.reset(seed=3)
    assert o2.shape == (4, 84, 84) and o2.dtype == np.uint8
    np.testing.assert_array_equal(o1, o2)
    assert info["elapsed_step"] == 0
    rng = np.random.default_rng(0)
    n_act = env.action_space.n
    assert n_act == ref.action_space.n
    rewards = 0.0
    for t in range(250):
        a = int(rng.integers(n_act))
        r1, r2 = ref.step(a), env.step(a)
        assert r1[1:4] == r2[1:4], (t, r1[1:4], r2[1:4])
        rewards += abs(r2[1])
        assert r2[4]["elapsed_step"] == t + 1
        if r1[2]:
            # gymnasium keeps stale max-pool buffers on the game-over frame; flags must agree
            break
        np.testing.assert_array_equal(r1[0], r2[0], err_msg=f"step {t}")
    if game == "Pong":
        assert rewards > 0  # the comparison covered scoring events


def test_defaults_match_envpool():
    env = make_env("Pong-v5")
    assert env.observation_space.shape == (4, 84, 84)
    assert env.action_space.n == 6  # minimal action set
    assert (env.frame_skip, env.noop_max, env.max_episode_steps) == (4, 30, 27000)
    assert not env.episodic_life and not env.reward_clip
    assert env.ale.getFloat("repeat_action_probability") == 0.0
    obs, info = env.reset(seed=0)
    # the reset observation is the first frame repeated (EnvPool and FrameStack both do this)
    assert all((obs[i] == obs[3]).all() for i in range(3))
    assert set(info) == {"lives", "reward", "terminated", "elapsed_step"}


def test_seeded_resets_are_reproducible_and_noops_vary():
    a, b = AtariEnv("Breakout-v5"), AtariEnv("Breakout-v5")
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    np.testing.assert_array_equal(oa, ob)
    frames = {AtariEnv("Pong-v5", seed=s).reset()[0].tobytes() for s in range(6)}
    assert len(frames) > 1  # different seeds, different noop counts


def test_a_seeded_first_reset_does_not_reseed_later_unseeded_ones():
    """The pool's pattern: built with seed s, first ``reset(seed=s)``, then unseeded resets.
    Those continue the seeded game (ALE's frame count since the ROM load keeps growing: no
    reload) and start the same episodes as an env whose first reset named no seed."""
    a, b = AtariEnv("Pong-v5", seed=4), AtariEnv("Pong-v5", seed=4)
    starts_a, starts_b = [a.reset(seed=4)[0]], [b.reset()[0]]
    for _ in range(4):
        for env in (a, b):
            env.step(1)
        frames = a.ale.getFrameNumber()
        starts_a.append(a.reset()[0])
        starts_b.append(b.reset()[0])
        assert a.ale.getFrameNumber() > frames  # a ROM load restarts the count
    for oa, ob in zip(starts_a, starts_b, strict=True):
        np.testing.assert_array_equal(oa, ob)
    assert len({o.tobytes() for o in starts_a}) > 1  # episodes start differently


def test_reward_clip_and_raw_reward_in_info():
    env = AtariEnv("Pong-v5", reward_clip=True)
    env.reset(seed=0)
    seen = []
    for _ in range(400):
        _, r, term, trunc, info = env.step(0)
        if info["reward"] != 0:
            seen.append((r, info["reward"]))
    assert seen, "no point was scored in 400 steps of Pong"
    assert all(r == np.sign(raw) for r, raw in seen)


def test_episodic_life_ends_episode_on_life_loss_without_game_reset():
    env = AtariEnv("Breakout-v5", episodic_life=True)
    env.reset(seed=1)
    lives0 = env.ale.lives()
    for _ in range(2000):
        _, _, term, _, info = env.step(0)  # NOOP: the ball is lost
        if term:
            break
    assert term and info["lives"] == lives0 - 1 and info["terminated"] == 0
    frame = env.ale.getEpisodeFrameNumber()
    env.reset()
    assert env.ale.getEpisodeFrameNumber() > frame  # same game continues
    assert env.ale.lives() == lives0 - 1


def test_truncation_after_max_episode_steps():
    env = AtariEnv("Pong-v5", max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(5)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_rgb_and_bilinear_options():
    env = AtariEnv("Pong-v5", gray_scale=False, use_inter_area_resize=False, stack_num=2,
                   img_height=64, img_width=48)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 64, 48) == env.observation_space.shape
    obs, *_ = env.step(1)
    assert obs.shape == (6, 64, 48)
    assert obs[3:].any()


def test_task_ids():
    tasks = list_tasks()
    assert len(tasks) > 100 and "Pong-v5" in tasks and "MontezumaRevenge-v5" in tasks
    assert game_of_task("SpaceInvaders-v5") == "space_invaders"
    with pytest.raises(ValueError, match="unknown Atari task"):
        AtariEnv("NotAGame-v5")

"""gristmill.envs.mujoco against gymnasium's v5 envs: step-for-step equality."""

import gymnasium as gym
import numpy as np
import pytest
from gristmill.envs.mujoco import list_tasks, make_env

TASKS = list_tasks()


def test_all_eleven_tasks():
    assert TASKS == sorted(
        f"{t}-v5" for t in ("Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup",
                            "InvertedPendulum", "InvertedDoublePendulum", "Pusher", "Reacher",
                            "Swimmer", "Walker2d")
    )


@pytest.mark.parametrize("task", TASKS)
def test_equals_gymnasium_v5(task):
    """Same seed => same initial state; then identical obs, reward, terminated, truncated."""
    ref, env = gym.make(task), make_env(task)
    assert env.observation_space == ref.observation_space
    assert env.action_space == ref.action_space
    o1, _ = ref.reset(seed=5)
    o2, _ = env.reset(seed=5)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(1)
    horizon = min(ref.spec.max_episode_steps, 120)
    for t in range(horizon):
        a = rng.uniform(ref.action_space.low, ref.action_space.high).astype(np.float32)
        r1, r2 = ref.step(a), env.step(a)
        np.testing.assert_array_equal(r1[0], r2[0], err_msg=f"{task} obs at step {t}")
        assert r1[1] == r2[1], (task, t, r1[1], r2[1])
        assert r1[2:4] == r2[2:4], (task, t)
        if r1[2] or r1[3]:
            o1, _ = ref.reset(seed=t)
            o2, _ = env.reset(seed=t)
            np.testing.assert_array_equal(o1, o2)


@pytest.mark.parametrize("task", ["Reacher-v5", "Pusher-v5"])
def test_time_limit(task):
    ref, env = gym.make(task), make_env(task)
    env.reset(seed=0)
    limit = ref.spec.max_episode_steps
    a = np.zeros(env.action_space.shape, np.float32)
    flags = [env.step(a)[3] for _ in range(limit)]
    assert flags[-1] and not any(flags[:-1])


@pytest.mark.parametrize("task", ["Ant-v5", "HalfCheetah-v5", "Hopper-v5", "Humanoid-v5",
                                  "Swimmer-v5", "Walker2d-v5"])
def test_float64_and_list_actions_equal_gymnasium_v5(task):
    """The compiled step computes the control cost in the action's dtype, as numpy does
    (float32 in the test above); float64 arrays and lists must match too."""
    ref, env = gym.make(task), make_env(task)
    np.testing.assert_array_equal(ref.reset(seed=2)[0], env.reset(seed=2)[0])
    rng = np.random.default_rng(3)
    for t in range(40):
        a = rng.uniform(ref.action_space.low, ref.action_space.high)  # float64
        if t % 2:
            a = a.tolist()
        r1, r2 = ref.step(a), env.step(a)
        np.testing.assert_array_equal(r1[0], r2[0], err_msg=f"{task} obs at step {t}")
        assert r1[1:4] == r2[1:4], (task, t, r1[1], r2[1])
        if r1[2] or r1[3]:
            np.testing.assert_array_equal(ref.reset(seed=t)[0], env.reset(seed=t)[0])


def test_construction_seed_serves_only_the_first_reset_even_when_it_names_a_seed():
    """The pool builds envs with a seed and resets them with one: later unseeded resets
    continue the generator (gymnasium's rule), never restart every episode from one state."""
    ref, env = gym.make("Hopper-v5"), make_env("Hopper-v5", seed=7)
    np.testing.assert_array_equal(ref.reset(seed=1)[0], env.reset(seed=1)[0])
    for _ in range(2):
        np.testing.assert_array_equal(ref.reset()[0], env.reset()[0])


def test_state_from_gymnasium_env():
    """Copying gymnasium's state into ours gives the same trajectory (independent of RNG)."""
    ref, env = gym.make("Ant-v5"), make_env("Ant-v5")
    ref.reset(seed=11)
    env.reset(seed=99)
    env.set_state(ref.unwrapped.data.qpos.copy(), ref.unwrapped.data.qvel.copy())
    a = np.full(8, 0.3, np.float32)
    for _ in range(20):
        r1, r2 = ref.step(a), env.step(a)
        np.testing.assert_array_equal(r1[0], r2[0])
        assert r1[1] == r2[1]


def test_bad_input():
    with pytest.raises(ValueError, match="unknown MuJoCo task"):
        make_env("Ant-v9")
    env = make_env("Hopper-v5")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action shape"):
        env.step(np.zeros(5, np.float32))
    with pytest.raises(TypeError, match="no parameter"):
        make_env("Ant-v5", not_a_param=1)
    assert make_env("Ant-v5", ctrl_cost_weight=0.0).ctrl_cost_weight == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sumsq_is_bit_identical_to_numpy(dtype):
    from gristmill.envs._mujoco_step import sumsq

    rng = np.random.default_rng(0)
    for n in list(range(1, 140)) + [255, 256, 257, 500, 960]:
        x = (rng.standard_normal(n) * rng.uniform(0.01, 100)).astype(dtype)
        assert sumsq(x) == np.sum(np.square(x)), n


def test_envs_of_a_task_share_one_model_but_not_their_state():
    a, b = make_env("Hopper-v5", seed=0), make_env("Hopper-v5", seed=1)
    assert a.model is b.model and a.data is not b.data
    ref = make_env("Hopper-v5", seed=1, share_model=False)
    assert ref.model is not a.model
    a.reset(seed=0)
    ob, _ = b.reset(seed=1)
    orf, _ = ref.reset(seed=1)
    np.testing.assert_array_equal(ob, orf)
    act = np.full(3, 0.5, np.float32)
    for _ in range(20):  # stepping a (same model) leaves b exactly where its twin is
        a.step(-act)
        ob, rb, *_ = b.step(act)
        orf, rr, *_ = ref.step(act)
        np.testing.assert_array_equal(ob, orf)
        assert rb == rr
    ref.model.opt.gravity[2] = 0.0  # an unshared model can be changed alone
    assert a.model.opt.gravity[2] != 0.0


def test_profiling_timers_are_off_by_default_and_a_users_clock_is_kept():
    import ctypes

    import mujoco
    from gristmill.envs.mujoco import disable_profiling_timers

    saved = mujoco.get_mjcb_time()
    try:
        mujoco.set_mjcb_time(None)
        env = make_env("Hopper-v5", seed=0)
        assert mujoco.get_mjcb_time() is not None and disable_profiling_timers()
        env.reset(seed=0)
        env.step(env.action_space.sample())
        assert env.data.timer[mujoco.mjtTimer.mjTIMER_STEP].number > 0
        assert env.data.timer[mujoco.mjtTimer.mjTIMER_STEP].duration == 0.0

        # a clock the user set stays, and it keeps the timers running
        mujoco.set_mjcb_time(None)
        libc = ctypes.CDLL(None)
        clock = libc.drand48
        clock.restype = ctypes.c_double
        mujoco.set_mjcb_time(clock)
        env = make_env("Hopper-v5", seed=0)
        assert not disable_profiling_timers()
        env.reset(seed=0)
        env.step(env.action_space.sample())
        assert env.data.timer[mujoco.mjtTimer.mjTIMER_STEP].duration != 0.0

        # profiling_timers=True installs nothing
        mujoco.set_mjcb_time(None)
        make_env("Hopper-v5", seed=0, profiling_timers=True)
        assert mujoco.get_mjcb_time() is None
    finally:
        mujoco.set_mjcb_time(None)
        if saved is not None:
            mujoco.set_mjcb_time(saved)

"""Fuzzing the env constructors (AtariEnv, the MuJoCo tasks) with malformed keyword arguments:
wrong types, negative sizes, unknown keys. Each env is built and steps, or the constructor
raises an error naming the argument; never a silently different env."""

from __future__ import annotations

import numpy as np
from gristmill.envs.atari import AtariEnv
from gristmill.envs.mujoco import Hopper, InvertedPendulum
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
BAD = st.one_of(st.none(), st.text(max_size=2), st.floats(-2, 2), st.integers(-3, 3),
                st.booleans(), st.just([1, 2]))  # fmt: skip
ATARI = ["frame_skip", "stack_num", "noop_max", "img_height", "img_width", "max_episode_steps",
         "gray_scale", "episodic_life", "reward_clip", "repeat_action_probability", "seed",
         "use_fire_reset", "full_action_space", "render_mode", "bogus"]  # fmt: skip


@FUZZ
@given(kw=st.dictionaries(st.sampled_from(ATARI), BAD, min_size=1, max_size=2))
def test_atari_kwargs_work_or_are_refused_by_name(within, names_arg, kw):
    with within(60):
        try:
            env = AtariEnv("pong", **kw)
        except (ValueError, TypeError) as exc:
            names_arg(exc, *kw, "image size")
            return
        with env:
            obs, _ = env.reset(seed=0)
            obs, r, term, trunc, _ = env.step(0)
            # what was accepted is what the env does
            h = kw.get("img_height", 84)
            w = kw.get("img_width", 84)
            channels = kw.get("stack_num", 4) * (1 if kw.get("gray_scale", True) else 3)
            assert obs.shape[-2:] == (h, w) and obs.shape[0] == channels
            for k in ("frame_skip", "noop_max", "max_episode_steps"):
                if k in kw:
                    assert isinstance(kw[k], int) and not isinstance(kw[k], bool)
                    assert getattr(env, k) == kw[k]


MUJOCO = ["frame_skip", "max_episode_steps", "seed", "ctrl_cost_weight", "healthy_z_range",
          "terminate_when_unhealthy", "reset_noise_scale", "no_such_param", "_private"]  # fmt: skip


@FUZZ
@example(cls=Hopper, kw={"reset_noise_scale": -0.0})  # once numpy's nameless "high - low < 0"
@example(cls=Hopper, kw={"reset_noise_scale": -0.5})
@given(cls=st.sampled_from([Hopper, InvertedPendulum]),
       kw=st.dictionaries(st.sampled_from(MUJOCO), BAD | st.tuples(BAD, BAD), min_size=1,
                          max_size=2))  # fmt: skip
def test_mujoco_kwargs_work_or_are_refused_by_name(within, names_arg, cls, kw):
    with within(60):
        try:
            env = cls(**kw)
        except (ValueError, TypeError) as exc:
            names_arg(exc, *kw)
            return
        with env:
            env.reset(seed=0)
            obs, r, term, trunc, _ = env.step(np.zeros(env.action_space.shape, np.float32))
            assert np.isfinite(obs).all() and np.isfinite(r) and env.dt > 0

"""Gymnasium's MuJoCo locomotion/manipulation tasks, v5 semantics, stepping ``MjData`` directly.

Each task class loads gymnasium's own XML asset (one ``MjModel`` per task and thread, shared:
see :func:`_shared_model`), keeps its own ``MjData`` and
computes observation, reward and termination with the same expressions (and therefore the same
floating-point results) as ``gymnasium.envs.mujoco.*_v5``, without gymnasium's wrapper stack
(``OrderEnforcing``, ``PassiveEnvChecker``, ``TimeLimit``) and without per-step ``info`` dicts.
The time limit (``max_episode_steps``: 1000, Pusher 100, Reacher 50) is applied here, with
``TimeLimit``'s rule: ``truncated`` once ``elapsed_step >= max_episode_steps``.

Physics: ``data.ctrl[:] = action``; ``mj_step(model, data, nstep=frame_skip)``;
``mj_rnePostConstraint`` where the task reads ``cfrc_ext`` (Ant, Humanoid, HumanoidStandup;
gymnasium runs it for every task, but nothing else depends on it). ``mj_step`` releases the
GIL.

Ant, HalfCheetah, Hopper, Humanoid, Swimmer and Walker2d step in C (:mod:`._mujoco_step`:
physics, observation, reward and termination in one call without the GIL, no Python per
step); their ``native_step()`` hands that call to the env pool's compiled worker loop. The
other tasks step through Python (``_obs``/``_reward`` below).

MuJoCo's profiling timers (``mjData.timer``) read the clock around every stage of every
physics step, ~5 % of Ant's step (``clock_gettime`` from ``mj_fwdPosition``, ``mj_collision``,
...). gristmill's envs are stepped for throughput, so the first env made installs a constant
``mjcb_time`` clock (a Numba C callback; :func:`disable_profiling_timers`), which turns those
timers off for the process: ``data.timer`` durations then read 0, physics is unchanged. An
``mjcb_time`` set before is left alone, and ``profiling_timers=True`` keeps them.

Reset draws the same numbers from the same generator as gymnasium
(``gymnasium.utils.seeding.np_random(seed)``), so ``reset(seed=s)`` gives gymnasium's initial
state. Observations are float64, actions float32 ``Box`` over the actuators' ``ctrlrange``.

Tasks: Ant, HalfCheetah, Hopper, Humanoid, HumanoidStandup, InvertedPendulum,
InvertedDoublePendulum, Pusher, Reacher, Swimmer, Walker2d (ids ``<Task>-v5``).
"""

from __future__ import annotations

import ctypes
import math
import numbers
import threading
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gristmill.kernels.args import flag, whole
from gymnasium import spaces
from gymnasium.utils import seeding
from numba import cfunc, types

from ._mujoco_step import MjStepper

__all__ = ["TASKS", "MujocoEnv", "disable_profiling_timers", "list_tasks", "make_env"]

_ASSETS = Path(gym.__file__).parent / "envs" / "mujoco" / "assets"


_local = threading.local()
_clock = []  # the constant clock's cfunc, compiled on first use and kept alive


def disable_profiling_timers() -> bool:
    """Turn MuJoCo's profiling timers off for this process by installing a constant
    ``mjcb_time`` (physics unchanged; ``mjData.timer`` durations read 0). Does nothing if an
    ``mjcb_time`` is already set (by the user, or by an earlier call). Returns whether the
    timers are off by this module's clock."""
    if not _clock:
        @cfunc(types.float64())
        def zero_clock():  # pragma: no cover - called by MuJoCo
            return 0.0

        _clock.append(zero_clock)
    clock = _clock[0]
    current = mujoco.get_mjcb_time()
    if current is None:
        mujoco.set_mjcb_time(clock.ctypes)
        return True
    return ctypes.cast(current, ctypes.c_void_p).value == clock.address


def _mujoco_functions() -> tuple[int, int]:
    """Addresses of ``mj_step`` and ``mj_rnePostConstraint`` in the MuJoCo library the
    bindings loaded (the same copy: one ``mjcb_time``, one set of globals)."""
    if not _functions:
        libs = sorted(Path(mujoco.__file__).parent.glob("libmujoco.so*")) or sorted(
            Path(mujoco.__file__).parent.glob("libmujoco*.dylib"))
        if not libs:
            raise RuntimeError(f"no libmujoco next to {mujoco.__file__}")
        lib = ctypes.CDLL(str(libs[0]))
        _functions.extend(ctypes.cast(f, ctypes.c_void_p).value
                          for f in (lib.mj_step, lib.mj_rnePostConstraint))
    return _functions[0], _functions[1]


_functions: list[int] = []


def _shared_model(xml: str) -> mujoco.MjModel:
    """One read-only ``MjModel`` per task per thread: a worker steps many envs of the same
    task, and one copy of the model stays in cache where one per env would not (``mj_step``
    only reads the model; each env owns its ``MjData``)."""
    models = getattr(_local, "models", None)
    if models is None:
        models = _local.models = {}
    m = models.get(xml)
    if m is None:
        m = models[xml] = mujoco.MjModel.from_xml_path(str(_ASSETS / xml))
    return m


def _param(name: str, value, default):
    """A task parameter ``value`` of the default's kind (bool, number, or a tuple of numbers
    of the same length), or a TypeError naming ``name``."""
    if isinstance(default, bool):
        return flag(name, value)
    if isinstance(default, (int, float)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != len(default):
            raise TypeError(f"{name} must be a sequence of {len(default)} numbers, got {value!r}")
        return tuple(_param(name, v, d) for v, d in zip(value, default))
    return value


class MujocoEnv(gym.Env):
    """Base: one MuJoCo model stepped ``frame_skip`` times per action.

    Subclasses set ``xml``, ``frame_skip``, ``max_episode_steps`` and implement
    :meth:`_obs` (write the observation into a float64 row; with ``probe=True`` only return
    its length), :meth:`_reset_model` (draw the initial ``qpos``/``qvel``) and either
    ``native_kind`` (the compiled step of :mod:`._mujoco_step`) or :meth:`_before` (state
    needed by the reward, read before the physics step) and :meth:`_reward` (-> reward,
    terminated).
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
    xml: str = ""
    frame_skip: int = 5
    max_episode_steps: int = 1000
    reset_noise_scale: float = 0.1
    # envs of one task in one thread share a read-only MjModel; pass share_model=False to
    # modify env.model (e.g. domain randomisation) without touching the others
    share_model: bool = True
    # gymnasium runs mj_rnePostConstraint after every step; only cfrc_ext/cacc/cfrc_int depend
    # on it, so tasks that read none of them skip it (their outputs are unchanged)
    uses_cfrc_ext: bool = False
    # keep MuJoCo's per-stage profiling timers (mjData.timer), ~5 % of a step; see the module
    profiling_timers: bool = False
    info_spec = {"elapsed_step": ((), np.int32)}
    # the task's compiled step in _mujoco_step ("ant", "forward", "hopper", "humanoid")
    native_kind: str | None = None

    def __init__(self, *, max_episode_steps: int | None = None, seed: int | None = None,
                 frame_skip: int | None = None, **params: Any):
        for k, v in params.items():
            if not hasattr(self, k) or k.startswith("_"):
                raise TypeError(f"{type(self).__name__} has no parameter {k!r}")
            setattr(self, k, _param(k, v, getattr(type(self), k)))
        s = self.reset_noise_scale
        if not (math.isfinite(s) and s >= 0):
            raise ValueError(f"reset_noise_scale must be a finite number >= 0, got {s!r}")
        self.reset_noise_scale = float(s) + 0.0  # -0.0 -> 0.0: numpy's uniform refuses high -0.0
        if max_episode_steps is not None:
            self.max_episode_steps = whole("max_episode_steps", max_episode_steps, 1)
        if frame_skip is not None:
            self.frame_skip = whole("frame_skip", frame_skip, 1)
        if seed is not None:
            seed = whole("seed", seed, 0)
        if not self.profiling_timers:
            disable_profiling_timers()
        self.model = (_shared_model(self.xml) if self.share_model
                      else mujoco.MjModel.from_xml_path(str(_ASSETS / self.xml)))
        self.data = mujoco.MjData(self.model)
        # views made once: each MjData attribute access builds a new array (~0.5 us), and the
        # buffers never move for the MjData's life
        self._qpos, self._qvel, self._ctrl = self.data.qpos, self.data.qvel, self.data.ctrl
        self.init_qpos = self._qpos.ravel().copy()
        self.init_qvel = self._qvel.ravel().copy()
        self.dt = self.model.opt.timestep * self.frame_skip
        low, high = self.model.actuator_ctrlrange.copy().astype(np.float32).T
        self.action_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self._setup()
        n = self._obs_size()
        self.observation_space = spaces.Box(-np.inf, np.inf, (n,), np.float64)
        self._np_random = None
        self._pending_seed = seed
        self._stepper = (MjStepper(self, _mujoco_functions()) if self.native_kind
                         else None)
        self._elapsed = 0

    # ---- gristmill fast path ----------------------------------------------------------------
    @property
    def elapsed_step(self) -> int:
        """Steps since the last reset."""
        return self._stepper.elapsed if self._stepper is not None else self._elapsed

    @elapsed_step.setter
    def elapsed_step(self, value: int) -> None:
        if self._stepper is not None:
            self._stepper.elapsed = value
        else:
            self._elapsed = value

    def info_values(self) -> tuple:
        return (self.elapsed_step,)

    def native_step(self) -> tuple[int, int] | None:
        """``(function address, state address)`` of the compiled step for a float32 action
        (the ABI in :mod:`._mujoco_step`), or None for a task stepped through Python. The env
        must outlive every call."""
        return self._stepper.native_step() if self._stepper is not None else None

    def reset_into(self, obs_out: np.ndarray, seed: int | None = None) -> None:
        """Reset (``mj_resetData`` + the task's noise) and write the first observation."""
        # the construction seed serves the first reset only, also when that reset names a
        # seed (else a later reset(seed=None) would start every episode from one state)
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos, qvel = self._reset_model(self._np_random)
        self.set_state(qpos, qvel)
        self.elapsed_step = 0
        self._obs(obs_out)

    def step_into(self, action, obs_out: np.ndarray) -> tuple[float, bool, bool]:
        """One step: ``frame_skip`` physics steps; writes the observation, returns
        ``(reward, terminated, truncated)``."""
        if self._stepper is not None:
            a = action if isinstance(action, np.ndarray) else np.asarray(action)
            if a.dtype != np.float32:  # the control cost in the action's dtype, as numpy
                a = a.astype(np.float64)
            return self._stepper.step_into(np.ascontiguousarray(a), obs_out)
        before = self._before()
        d = self.data
        self._ctrl[:] = action
        mujoco.mj_step(self.model, d, nstep=self.frame_skip)
        if self.uses_cfrc_ext:
            mujoco.mj_rnePostConstraint(self.model, d)
        self._obs(obs_out)  # first: some tasks' rewards reuse buffers _obs fills
        reward, terminated = self._reward(action, before)
        self.elapsed_step += 1
        return float(reward), bool(terminated), self.elapsed_step >= self.max_episode_steps

    # ---- gymnasium API ----------------------------------------------------------------------
    @property
    def np_random(self) -> np.random.Generator:
        if self._np_random is None:
            self._np_random, _ = seeding.np_random()
        return self._np_random

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs = np.empty(self.observation_space.shape, np.float64)
        self.reset_into(obs, seed=seed)
        return obs, {"elapsed_step": 0}

    def step(self, action):
        action = np.asarray(action)
        if action.shape != (self.model.nu,):
            raise ValueError(
                f"{type(self).__name__}: action shape {action.shape}, expected {(self.model.nu,)}"
            )
        obs = np.empty(self.observation_space.shape, np.float64)
        r, term, trunc = self.step_into(action, obs)
        return obs, r, term, trunc, {"elapsed_step": self.elapsed_step}

    def set_state(self, qpos, qvel) -> None:
        """Set ``qpos``/``qvel`` and run ``mj_forward`` (as gymnasium's ``set_state``)."""
        self._qpos[:] = qpos
        self._qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def state_vector(self) -> np.ndarray:
        return np.concatenate([self._qpos.flat, self._qvel.flat])

    # ---- task hooks ---------------------------------------------------------------------------
    def _setup(self) -> None:
        pass

    def _obs_size(self) -> int:
        out = np.empty(4096)
        return self._obs(out, probe=True)

    def _obs(self, out: np.ndarray, probe: bool = False) -> int:
        raise NotImplementedError

    def _before(self):
        return None

    def _reward(self, action, before) -> tuple[float, bool]:
        raise NotImplementedError

    def _reset_model(self, rng: np.random.Generator):
        s = self.reset_noise_scale
        qpos = self.init_qpos + rng.uniform(low=-s, high=s, size=self.model.nq)
        qvel = self.init_qvel + rng.uniform(low=-s, high=s, size=self.model.nv)
        return qpos, qvel

    def _reset_normal_qvel(self, rng):
        s = self.reset_noise_scale
        qpos = self.init_qpos + rng.uniform(low=-s, high=s, size=self.model.nq)
        qvel = self.init_qvel + s * rng.standard_normal(self.model.nv)
        return qpos, qvel


def _clip(x: np.ndarray, lo: float, hi: float, out: np.ndarray) -> np.ndarray:
    """``np.clip(x, lo, hi)`` into ``out`` (same values; ``np.clip``'s per-call overhead is
    ~10 us on small arrays, this is ~1 us)."""
    np.maximum(x, lo, out=out)
    return np.minimum(out, hi, out=out)


def _fill(out: np.ndarray, parts, probe: bool) -> int:
    """Concatenate ``parts`` into the front of ``out``; returns the length."""
    n = 0
    for p in parts:
        m = p.size
        if not probe:
            out[n:n + m] = p.ravel()
        n += m
    return n


class Ant(MujocoEnv):
    """``Ant-v5``: obs 105 = qpos[2:] (13) + qvel (14) + clipped cfrc_ext[1:] (78)."""

    xml = "ant.xml"
    frame_skip = 5
    native_kind = "ant"
    uses_cfrc_ext = True
    forward_reward_weight = 1.0
    ctrl_cost_weight = 0.5
    contact_cost_weight = 5e-4
    healthy_reward = 1.0
    terminate_when_unhealthy = True
    healthy_z_range = (0.2, 1.0)
    contact_force_range = (-1.0, 1.0)
    reset_noise_scale = 0.1
    main_body = 1

    def _obs(self, out, probe=False):
        d = self.data
        if probe:
            return d.qpos.size - 2 + d.qvel.size + d.cfrc_ext.size - 6
        n = _fill(out, (d.qpos[2:], d.qvel), False)
        lo, hi = self.contact_force_range
        m = d.cfrc_ext.size - 6
        _clip(d.cfrc_ext[1:].ravel(), lo, hi, out=out[n:n + m])
        return n + m

    _reset_model = MujocoEnv._reset_normal_qvel


class _ForwardTask(MujocoEnv):
    """A task observing ``qpos[obs_skip:] + qvel``, rewarded for forward velocity minus the
    control cost, never terminating (HalfCheetah, Swimmer)."""

    native_kind = "forward"
    obs_skip = 1
    forward_reward_weight = 1.0
    ctrl_cost_weight = 0.1

    def _obs(self, out, probe=False):
        return _fill(out, (self._qpos[self.obs_skip:], self._qvel), probe)


class HalfCheetah(_ForwardTask):
    """``HalfCheetah-v5``: obs 17 = qpos[1:] + qvel; never terminates."""

    xml = "half_cheetah.xml"
    frame_skip = 5
    forward_reward_weight = 1.0
    ctrl_cost_weight = 0.1
    reset_noise_scale = 0.1

    _reset_model = MujocoEnv._reset_normal_qvel


class Hopper(MujocoEnv):
    """``Hopper-v5``: obs 11 = qpos[1:] + clip(qvel, -10, 10)."""

    xml = "hopper.xml"
    frame_skip = 4
    native_kind = "hopper"
    forward_reward_weight = 1.0
    ctrl_cost_weight = 1e-3
    healthy_reward = 1.0
    terminate_when_unhealthy = True
    healthy_state_range = (-100.0, 100.0)
    healthy_z_range = (0.7, float("inf"))
    healthy_angle_range = (-0.2, 0.2)
    reset_noise_scale = 5e-3
    _checks_state = True  # healthy_state_range applies (Walker2d: not)

    def _obs(self, out, probe=False):
        d = self.data
        n = _fill(out, (d.qpos[1:],), probe)
        m = d.qvel.size
        if not probe:
            _clip(d.qvel, -10, 10, out=out[n:n + m])
        return n + m


class Walker2d(Hopper):
    """``Walker2d-v5``: obs 17 = qpos[1:] + clip(qvel, -10, 10)."""

    xml = "walker2d_v5.xml"
    healthy_z_range = (0.8, 2.0)
    healthy_angle_range = (-1.0, 1.0)
    _checks_state = False


class Swimmer(_ForwardTask):
    """``Swimmer-v5``: obs 8 = qpos[2:] + qvel; never terminates."""

    xml = "swimmer.xml"
    frame_skip = 4
    obs_skip = 2
    forward_reward_weight = 1.0
    ctrl_cost_weight = 1e-4
    reset_noise_scale = 0.1


class Humanoid(MujocoEnv):
    """``Humanoid-v5``: obs 348 = qpos[2:] (22) + qvel (23) + cinert[1:] (130) + cvel[1:] (78)
    + qfrc_actuator[6:] (17) + cfrc_ext[1:] (78)."""

    uses_cfrc_ext = True
    native_kind = "humanoid"

    xml = "humanoid.xml"
    frame_skip = 5
    forward_reward_weight = 1.25
    ctrl_cost_weight = 0.1
    contact_cost_weight = 5e-7
    contact_cost_range = (-np.inf, 10.0)
    healthy_reward = 5.0
    terminate_when_unhealthy = True
    healthy_z_range = (1.0, 2.0)
    reset_noise_scale = 1e-2

    def _obs(self, out, probe=False):
        d = self.data
        return _fill(out, (d.qpos[2:], d.qvel, d.cinert[1:], d.cvel[1:], d.qfrc_actuator[6:],
                           d.cfrc_ext[1:]), probe)


class HumanoidStandup(Humanoid):
    """``HumanoidStandup-v5``: Humanoid's observation; reward for the torso's height."""

    xml = "humanoidstandup.xml"
    uph_cost_weight = 1.0
    ctrl_cost_weight = 0.1
    impact_cost_weight = 0.5e-6
    impact_cost_range = (-np.inf, 10.0)
    native_kind = None  # its own reward (below), through Python

    def _before(self):
        return None

    def _reward(self, action, before):
        d = self.data
        uph = (d.qpos[2] - 0) / self.model.opt.timestep
        ctrl = self.ctrl_cost_weight * np.square(d.ctrl).sum()
        impact = np.clip(self.impact_cost_weight * np.square(d.cfrc_ext).sum(),
                         *self.impact_cost_range)
        return uph - ctrl - impact + 1, False


class InvertedPendulum(MujocoEnv):
    """``InvertedPendulum-v5``: obs 4 = qpos + qvel; reward 1 while |angle| <= 0.2."""

    xml = "inverted_pendulum.xml"
    frame_skip = 2
    reset_noise_scale = 0.01

    def _obs(self, out, probe=False):
        return _fill(out, (self._qpos, self._qvel), probe)

    def _reward(self, action, before):
        d = self.data
        terminated = bool(
            not (np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all())
            or abs(d.qpos[1]) > 0.2
        )
        return int(not terminated), terminated


class InvertedDoublePendulum(MujocoEnv):
    """``InvertedDoublePendulum-v5``: obs 9 = x, sin/cos of the two angles, clipped qvel and
    the cart's constraint force."""

    xml = "inverted_double_pendulum.xml"
    frame_skip = 5
    healthy_reward = 10.0
    reset_noise_scale = 0.1

    def _obs(self, out, probe=False):
        d = self.data
        if probe:
            return 1 + 2 * (d.qpos.size - 1) + d.qvel.size + 1
        q = d.qpos
        n = q.size - 1
        out[0] = q[0]
        np.sin(q[1:], out=out[1:1 + n])
        np.cos(q[1:], out=out[1 + n:1 + 2 * n])
        k = 1 + 2 * n
        m = d.qvel.size
        _clip(d.qvel, -10, 10, out=out[k:k + m])
        out[k + m] = min(max(d.qfrc_constraint[0], -10), 10)
        return k + m + 1

    def _reward(self, action, before):
        d = self.data
        x, _, y = d.site_xpos[0]
        terminated = bool(y <= 1)
        v1, v2 = d.qvel[1:3]
        dist_penalty = 0.01 * x**2 + (y - 2) ** 2
        vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
        alive = self.healthy_reward * int(not terminated)
        return alive - dist_penalty - vel_penalty, terminated

    _reset_model = MujocoEnv._reset_normal_qvel


class Reacher(MujocoEnv):
    """``Reacher-v5``: obs 10 = cos/sin of the arm angles, target xy, arm velocities,
    fingertip - target (xy); 50 steps."""

    xml = "reacher.xml"
    frame_skip = 2
    max_episode_steps = 50
    reward_dist_weight = 1.0
    reward_control_weight = 1.0

    def _setup(self):
        self._tip = self.model.body("fingertip").id
        self._target = self.model.body("target").id

    def _obs(self, out, probe=False):
        d = self.data
        if probe:
            return 4 + (d.qpos.size - 2) + 2 + 2
        theta = d.qpos[:2]
        np.cos(theta, out=out[0:2])
        np.sin(theta, out=out[2:4])
        n = 4 + d.qpos.size - 2
        out[4:n] = d.qpos[2:]
        out[n:n + 2] = d.qvel[:2]
        out[n + 2:n + 4] = (d.xpos[self._tip] - d.xpos[self._target])[:2]
        return n + 4

    def _reward(self, action, before):
        d = self.data
        vec = d.xpos[self._tip] - d.xpos[self._target]
        reward_dist = -np.linalg.norm(vec) * self.reward_dist_weight
        reward_ctrl = -np.square(action).sum() * self.reward_control_weight
        return reward_dist + reward_ctrl, False

    def _reset_model(self, rng):
        qpos = rng.uniform(low=-0.1, high=0.1, size=self.model.nq) + self.init_qpos
        while True:
            goal = rng.uniform(low=-0.2, high=0.2, size=2)
            if np.linalg.norm(goal) < 0.2:
                break
        qpos[-2:] = goal
        qvel = self.init_qvel + rng.uniform(low=-0.005, high=0.005, size=self.model.nv)
        qvel[-2:] = 0
        return qpos, qvel


class Pusher(MujocoEnv):
    """``Pusher-v5``: obs 23 = arm qpos[:7], qvel[:7], tips_arm/object/goal positions;
    100 steps."""

    xml = "pusher_v5.xml"
    frame_skip = 5
    max_episode_steps = 100
    reward_near_weight = 0.5
    reward_dist_weight = 1.0
    reward_control_weight = 0.1

    def _setup(self):
        m = self.model
        self._tips, self._object, self._goal = (
            m.body("tips_arm").id, m.body("object").id, m.body("goal").id)

    def _obs(self, out, probe=False):
        d = self.data
        if probe:
            return 23
        out[0:7] = d.qpos[:7]
        out[7:14] = d.qvel[:7]
        out[14:17] = d.xpos[self._tips]
        out[17:20] = d.xpos[self._object]
        out[20:23] = d.xpos[self._goal]
        return 23

    def _reward(self, action, before):
        d = self.data
        vec_1 = d.xpos[self._object] - d.xpos[self._tips]
        vec_2 = d.xpos[self._object] - d.xpos[self._goal]
        reward_near = -np.linalg.norm(vec_1) * self.reward_near_weight
        reward_dist = -np.linalg.norm(vec_2) * self.reward_dist_weight
        reward_ctrl = -np.square(action).sum() * self.reward_control_weight
        return reward_dist + reward_ctrl + reward_near, False

    def _reset_model(self, rng):
        qpos = self.init_qpos.copy()
        goal_pos = np.asarray([0, 0])
        while True:
            cylinder_pos = np.concatenate([
                rng.uniform(low=-0.3, high=0, size=1),
                rng.uniform(low=-0.2, high=0.2, size=1),
            ])
            if np.linalg.norm(cylinder_pos - goal_pos) > 0.17:
                break
        qpos[-4:-2] = cylinder_pos
        qpos[-2:] = goal_pos
        qvel = self.init_qvel + rng.uniform(low=-0.005, high=0.005, size=self.model.nv)
        qvel[-4:] = 0
        return qpos, qvel


TASKS: dict[str, type[MujocoEnv]] = {
    f"{cls.__name__}-v5": cls
    for cls in (Ant, HalfCheetah, Hopper, Humanoid, HumanoidStandup, InvertedPendulum,
                InvertedDoublePendulum, Pusher, Reacher, Swimmer, Walker2d)
}


def list_tasks() -> list[str]:
    """The MuJoCo task ids, ``<Task>-v5``."""
    return sorted(TASKS)


def make_env(task_id: str = "Ant-v5", **kwargs) -> MujocoEnv:
    """Factory used by :func:`gristmill.samplers.make`: ``make_env("Hopper-v5", seed=0)``."""
    try:
        cls = TASKS[task_id]
    except KeyError:
        raise ValueError(
            f"unknown MuJoCo task {task_id!r}; expected one of {', '.join(list_tasks())}"
        ) from None
    return cls(**kwargs)

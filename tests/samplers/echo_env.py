"""A tiny deterministic env for checking rollout machinery end to end (no simulator needed).

A plain module beside the sampler tests (``tests/samplers/conftest.py`` puts this folder on
``sys.path``, so it is imported as ``echo_env``): a test helper, not part of the package.

:class:`EchoEnv` observes ``[env_index, step, last_action]`` (float32), pays the action as the
reward, truncates after ``episode_length`` steps and can raise once at a given step, so a test
can verify that every action landed where it should and that a crash is survived. Its one
per-agent parameter (``set_agent_params``, the rollout layout's per-policy table) multiplies
the reward.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["EchoEnv", "EchoEnvFactory", "MultiEchoEnv"]

_CRASH_ARMED: set[int] = set()


class EchoEnv(gym.Env):
    def __init__(
        self,
        env_index: int,
        episode_length: int = 5,
        crash_at: int | None = None,
        num_actions: int = 4,
    ):
        self.env_index = env_index
        self.episode_length = episode_length
        self.crash_at = crash_at
        self.observation_space = spaces.Box(-1e9, 1e9, (3,), np.float32)
        self.action_space = spaces.Discrete(num_actions)
        self.steps = 0
        self.total_steps = 0
        self.reward_scale = 1.0

    agent_param_names = ("reward_scale",)

    def set_agent_params(self, agent: int, values) -> None:
        assert agent == 0, agent
        (self.reward_scale,) = (float(v) for v in values)

    def _obs(self, action: float) -> np.ndarray:
        return np.array([self.env_index, self.steps, action], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(-1.0), {}

    def step(self, action):
        self.total_steps += 1
        if self.crash_at is not None and self.total_steps == self.crash_at:
            self.crash_at = None
            raise RuntimeError(f"EchoEnv {self.env_index} crashed on purpose")
        self.steps += 1
        truncated = self.steps >= self.episode_length
        return self._obs(float(action)), self.reward_scale * float(action), False, truncated, {}


class MultiEchoEnv:
    """``num_agents`` :class:`EchoEnv` s stepped together (per-agent lists, as
    ``DoomMultiAgentEnv``); agent ``j`` of env ``i`` observes id ``10 * i + j``."""

    def __init__(self, env_index: int, num_agents: int = 2, episode_length: int = 5):
        self.num_agents = num_agents
        self.agents = [EchoEnv(10 * env_index + j, episode_length) for j in range(num_agents)]
        self.observation_space = self.agents[0].observation_space
        self.action_space = self.agents[0].action_space

    def reset(self, *, seed=None):
        out = [a.reset(seed=seed) for a in self.agents]
        return [o for o, _ in out], [i for _, i in out]

    def set_agent_params(self, agent: int, values) -> None:
        self.agents[agent].set_agent_params(0, values)

    def step(self, actions):
        out = [a.step(x) for a, x in zip(self.agents, actions)]
        return tuple(list(x) for x in zip(*out))

    def close(self):
        pass


@dataclass(frozen=True)
class EchoEnvFactory:
    """Picklable ``factory(env_index)``; the first env ``crash_env`` made in a process raises at
    its ``crash_at``-th step (its replacement does not)."""

    episode_length: int = 5
    crash_env: int = -1
    crash_at: int | None = None
    num_agents: int = 1

    def __call__(self, env_index: int) -> EchoEnv:
        if self.num_agents > 1:
            return MultiEchoEnv(env_index, self.num_agents, self.episode_length)
        crash = None
        if env_index == self.crash_env and env_index not in _CRASH_ARMED:
            _CRASH_ARMED.add(env_index)
            crash = self.crash_at
        return EchoEnv(env_index, self.episode_length, crash)

"""A Gymnasium env whose only work is a chosen amount of CPU per step: the pool's test load.

PufferLib's ``PerformanceEnv`` idea: to see what a sampler costs, step an env whose cost is
known and tunable. Each step busy-waits ``U``-free Gaussian CPU time (mean ``cost`` seconds,
standard deviation ``cost_std``, never below 0, drawn from the env's own seeded generator so
two runs burn the same sequence), then returns a small observation that encodes the env's step
count, so a test can also check where each result came from. Picklable (spawned workers).
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

__all__ = ["PerformanceEnv"]


class PerformanceEnv(gym.Env):
    """Args: ``cost``/``cost_std`` CPU seconds per step, ``obs_dim``, ``episode_length``
    (truncation), ``num_actions``. Observation ``[step / episode_length, ...]`` float32."""

    metadata: dict = {}

    def __init__(
        self,
        cost: float = 0.0005,
        cost_std: float = 0.0,
        obs_dim: int = 8,
        episode_length: int = 200,
        num_actions: int = 4,
    ):
        if cost < 0 or cost_std < 0:
            raise ValueError(f"cost and cost_std must be >= 0, got {cost}, {cost_std}")
        if obs_dim < 1 or episode_length < 1 or num_actions < 1:
            raise ValueError("obs_dim, episode_length and num_actions must be >= 1")
        self.cost, self.cost_std = float(cost), float(cost_std)
        self.episode_length = int(episode_length)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Discrete(num_actions)
        self.t = 0
        self._rng = np.random.default_rng()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        return np.full(self.observation_space.shape, self.t / self.episode_length, np.float32)

    def step(self, action):
        cost = self.cost
        if self.cost_std > 0:
            cost = max(0.0, self._rng.normal(self.cost, self.cost_std))
        end = time.process_time() + cost
        while time.process_time() < end:
            pass
        self.t += 1
        return self._obs(), 1.0, False, self.t >= self.episode_length, {}

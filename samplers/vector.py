"""The pool seen as a ``gymnasium.vector.VectorEnv`` (Gymnasium >= 1.0, next-step autoreset).

``VectorEnvView(make("CartPole-v1", num_envs=8))`` behaves like ``SyncVectorEnv`` /
``AsyncVectorEnv`` with ``autoreset_mode=NEXT_STEP``: ``observation_space`` is batched,
``single_observation_space``/``single_action_space`` are one env's, ``step`` returns the
5-tuple of arrays for all envs in env-id order, ``reset(seed=, options={"reset_mask": m})``.
Observations are copied out of shared memory (a VectorEnv's results may be kept by the
caller); use the pool directly for zero-copy views.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from .pool import EnvPool

__all__ = ["VectorEnvView"]


class VectorEnvView(gym.vector.VectorEnv):
    """A synchronous :class:`~gristmill.samplers.pool.EnvPool` as a Gymnasium VectorEnv."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, pool: EnvPool):
        if pool.is_async:
            raise ValueError("VectorEnvView needs a synchronous pool (batch_size == num_envs); "
                             f"got {pool!r}")
        self.pool = pool
        self.num_envs = pool.num_envs
        self.single_observation_space = pool.single_observation_space
        self.single_action_space = pool.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.spec = None
        self.render_mode = None
        self._obs = None

    def reset(self, *, seed=None, options=None):
        mask = None if not options or "reset_mask" not in options else np.asarray(
            options["reset_mask"], bool)
        if mask is not None:
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got "
                                 f"{mask.shape}")
            if self._obs is None:
                raise ValueError("reset with a reset_mask before a full reset")
            ids = np.flatnonzero(mask)
            if isinstance(seed, (list, tuple, np.ndarray)):
                seed = np.asarray(seed)[ids]
            obs, info = self.pool.reset(env_id=ids, seed=seed)
            self._obs[ids] = obs
            return self._obs.copy(), self._info(info)
        obs, info = self.pool.reset(seed=seed)
        self._obs = np.array(obs)
        return self._obs.copy(), self._info(info)

    def step(self, actions):
        actions = np.asarray(actions)
        if isinstance(self.single_action_space, gym.spaces.Box):
            actions = actions.astype(self.single_action_space.dtype, copy=False)
        obs, rew, term, trunc, info = self.pool.step(actions)
        self._obs = np.array(obs)
        return (self._obs.copy(), rew.astype(np.float64), term.copy(), trunc.copy(),
                self._info(info))

    def _info(self, info: dict) -> dict:
        out = {}
        for k, v in info.items():
            out[k] = np.array(v)
            out["_" + k] = np.ones(self.num_envs, bool)
        return out

    def close_extras(self, **kwargs):
        self.pool.close()

"""The pool as a Stable-Baselines3 ``VecEnv`` (SB3's same-step auto-reset semantics).

``model = PPO("MlpPolicy", to_sb3(make("CartPole-v1", num_envs=8)))``. SB3 expects the
observation returned with ``done=True`` to be the *next episode's first* observation and the
final one in ``infos[i]["terminal_observation"]`` (with ``"TimeLimit.truncated"``). The pool
resets on the next step instead, so after a step that ends episodes the adapter sends those
envs one more (ignored) action, which resets them, and splices the first observations in.

stable-baselines3 (and so torch) is imported only when :func:`to_sb3` is called: the samplers
package itself needs neither.
"""

from __future__ import annotations

import importlib

import numpy as np

__all__ = ["to_sb3"]

_CLASS = None


def _build_class():
    vec_env = importlib.import_module("stable_baselines3.common.vec_env")
    base = vec_env.VecEnv

    class PoolVecEnv(base):
        """A synchronous EnvPool behind SB3's ``VecEnv`` interface."""

        def __init__(self, pool):
            if pool.is_async:
                raise ValueError("to_sb3 needs a synchronous pool (batch_size == num_envs)")
            self.pool = pool
            super().__init__(pool.num_envs, pool.single_observation_space,
                             pool.single_action_space)
            self._actions = None
            self._noop = np.zeros((pool.num_envs,) + pool._act_shape, pool._act_dtype)

        def reset(self):
            seeds = None
            if any(s is not None for s in self._seeds):
                seeds = [0 if s is None else int(s) for s in self._seeds]
            obs, _ = self.pool.reset(seed=seeds)
            self._reset_seeds()
            self._reset_options()
            return np.array(obs)

        def step_async(self, actions):
            self._actions = np.asarray(actions).reshape((self.num_envs,) + self.pool._act_shape)

        def step_wait(self):
            a = self._actions
            if a.dtype.kind != self.pool._act_dtype.kind:
                a = a.astype(self.pool._act_dtype)
            obs, rew, term, trunc, info = self.pool.step(a)
            obs = np.array(obs)
            rew = np.array(rew)
            term = np.array(term)
            trunc = np.array(trunc)
            dones = term | trunc
            infos = [{} for _ in range(self.num_envs)]
            for k, v in info.items():
                if k == "env_id":
                    continue
                for i in range(self.num_envs):
                    infos[i][k] = v[i].item() if np.ndim(v[i]) == 0 else np.array(v[i])
            done_ids = np.flatnonzero(dones)
            if len(done_ids):
                for i in done_ids:
                    infos[i]["terminal_observation"] = obs[i].copy()
                    infos[i]["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                first, *_ = self.pool.step(self._noop[done_ids], env_id=done_ids)
                obs[done_ids] = first
            return obs, rew, dones, infos

        def close(self):
            self.pool.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(self.pool, attr_name)] * len(self._get_indices(indices))

        def set_attr(self, attr_name, value, indices=None):
            raise AttributeError("attributes of envs inside pool workers cannot be set")

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            raise AttributeError("methods of envs inside pool workers cannot be called")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._get_indices(indices))

    return PoolVecEnv


def to_sb3(pool):
    """Wrap a synchronous pool as a ``stable_baselines3`` ``VecEnv``."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _build_class()
    return _CLASS(pool)

"""gristmill.samplers: env stepping loops.

- :func:`make` / :class:`EnvPool` (:mod:`gristmill.samplers.pool`) -- an EnvPool-compatible
  asynchronous env pool: worker processes write results straight into shared memory; runs
  gristmill's Atari/MuJoCo tasks, any Gymnasium id and any Python env factory.
- :class:`VectorEnvView` (:mod:`gristmill.samplers.vector`) -- the pool as a
  ``gymnasium.vector.VectorEnv``.
- :func:`to_sb3` (:mod:`gristmill.samplers.sb3`) -- the pool as a Stable-Baselines3 ``VecEnv``
  (imports stable-baselines3 only when called).
- :func:`register` (:mod:`gristmill.samplers.registry`) -- task ids resolved at run time.
"""

from .errors import APIUsageError, WorkerError
from .pool import EnvPool, make
from .registry import register, register_provider
from .sb3 import to_sb3
from .vector import VectorEnvView

__all__ = [
    "APIUsageError",
    "EnvPool",
    "VectorEnvView",
    "WorkerError",
    "make",
    "register",
    "register_provider",
    "to_sb3",
]

"""gristmill.samplers: env stepping loops.

- :func:`make` / :class:`EnvPool` (:mod:`gristmill.samplers.pool`) -- an EnvPool-compatible
  asynchronous env pool: worker processes write results straight into shared memory; runs
  gristmill's Atari/MuJoCo tasks, any Gymnasium id and any Python env factory.
- :class:`VectorEnvView` (:mod:`gristmill.samplers.vector`) -- the pool as a
  ``gymnasium.vector.VectorEnv``.
- :func:`to_sb3` (:mod:`gristmill.samplers.sb3`) -- the pool as a Stable-Baselines3 ``VecEnv``
  (imports stable-baselines3 only when called).
- :func:`register` (:mod:`gristmill.samplers.registry`) -- task ids resolved at run time.
- :func:`autotune` (:mod:`gristmill.samplers.autotune`) -- the fastest pool layout for a task,
  measured; :class:`PerformanceEnv` (:mod:`gristmill.samplers.perf_env`) -- a known CPU cost
  per step, the pool's test load.
- The rollout protocol for asynchronous training (:mod:`.rollout`, :mod:`.rollout_protocol`,
  :mod:`.rollout_worker`, :mod:`.inference_server`, :mod:`.spaces`).
- :mod:`.supervision` -- the worker supervision that the env pool and the rollout workers
  share: failures (exit, heartbeat), restart by generation, restart budget, crash reports.
"""

from .autotune import autotune
from .errors import APIUsageError, RestartLimitError, WorkerError
from .perf_env import PerformanceEnv
from .pool import EnvPool, make
from .registry import register, register_provider
from .sb3 import to_sb3
from .vector import VectorEnvView

__all__ = [
    "APIUsageError",
    "EnvPool",
    "PerformanceEnv",
    "RestartLimitError",
    "VectorEnvView",
    "WorkerError",
    "autotune",
    "make",
    "register",
    "register_provider",
    "to_sb3",
]

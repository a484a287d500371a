"""gristmill: reinforcement learning at the throughput of a cluster, on one machine.

Packages, bottom to top (each may import only those below it; checked by import-linter):

- :mod:`gristmill.kernels` -- shared-memory arrays and queues, advantage/return kernels
  (numpy, numba, Cython; never torch or gymnasium).
- :mod:`gristmill.envs` -- Doom, Atari, MuJoCo and Generals environments.
- :mod:`gristmill.samplers` -- env stepping loops: sync, async pools, rollout workers.
- :mod:`gristmill.learners` -- models, losses, APPO/PPO (torch); ``league`` holds population
  building blocks (PBT rules, match-making, payoffs) that no app trains with yet.
- :mod:`gristmill.apps` -- the command-line applications.

Importing ``gristmill`` imports none of them, so ``from gristmill.kernels.advantage import
vtrace`` stays light.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

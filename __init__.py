"""gristmill: reinforcement learning at the throughput of a cluster, on one machine.

Packages, bottom to top (each may import only those below it; checked by import-linter):

- :mod:`gristmill.kernels` -- shared-memory arrays and queues, advantage/return kernels
  (numpy, numba, Cython; never torch or gymnasium).
- :mod:`gristmill.envs` -- Doom, Atari, MuJoCo and Generals environments.
- :mod:`gristmill.samplers` -- env stepping loops: sync, async pools, the rollout protocol
  (rollout workers, inference server, slot ledger).
- :mod:`gristmill.learners` -- models, losses, APPO/PPO (torch); ``league``: populations,
  PBT, match-making, payoff and rating tables (used by gristmill-doom and gristmill-generals).
- :mod:`gristmill.apps` -- the command-line applications.

Importing ``gristmill`` imports none of them, so ``from gristmill.kernels.advantage import
vtrace`` stays light.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

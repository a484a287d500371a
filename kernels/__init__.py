"""gristmill.kernels: the small, composable hot paths everything else stands on.

Import only what you need; each module is independent and none needs torch or gymnasium:

- :mod:`gristmill.kernels.advantage` -- GAE, V-trace and discounted returns (Numba), each
  with a plain NumPy reference.
- :mod:`gristmill.kernels.args` -- argument checks that name the argument they refuse.
- :mod:`gristmill.kernels.dispatch` -- a batch of env ids validated and appended to
  per-worker command rings in two calls (Numba), the env pool's ``send``.
- :mod:`gristmill.kernels.pixels` -- exact per-pixel moments and a normalise-to-channels-last
  pass over uint8 image batches (Numba), a CPU learner's running observation normalisation.
- :mod:`gristmill.kernels.shm` -- named POSIX shared memory as numpy arrays, owned and
  cleaned up.
- :mod:`gristmill.kernels.shmqueue` -- a multi-producer multi-consumer shared-memory queue
  (Cython) with the stdlib ``queue`` semantics.
- :mod:`gristmill.kernels.shmsignal` -- process-shared semaphores and atomic counters in a
  shared buffer (Cython); the env pool's hand-off.
- :mod:`gristmill.kernels.stacked_linear` -- per-slot linear layers at a few rows per slot
  (Numba), a population's inference round.
"""

__all__ = [
    "advantage", "args", "dispatch", "pixels", "shm", "shmqueue", "shmsignal", "stacked_linear",
]

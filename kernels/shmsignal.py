"""Process-shared semaphores and atomic counters inside a shared-memory buffer (Cython).

The coordination primitive of gristmill's env pool (:mod:`gristmill.samplers`): workers and
the main process hand work back and forth through these instead of pipes, and *block* (futex
sleep, GIL released) rather than spin, so that an oversubscribed machine is not burnt on
busy-waiting (EnvPool's weak point under load). A short optional spin covers the
microsecond-latency case.

- :class:`SignalSet` -- ``n_sems`` unnamed POSIX semaphores (``sem_init(pshared=1)``) and
  ``n_counters`` int64 counters with atomic ``fetch_add``/``load``/``store``, one cache line
  each, laid out in a caller's buffer. Because they are unnamed they add no ``/dev/shm``
  entry: they live and die with the buffer's segment (e.g. a
  :class:`gristmill.kernels.shm.SharedArrays` field of ``nbytes(...)`` uint8).
- :func:`nbytes` -- the buffer size needed.

Example::

    from gristmill.kernels.shm import SharedArray
    from gristmill.kernels.shmsignal import SignalSet, nbytes

    buf = SharedArray.create((nbytes(2, 1),), "uint8")
    sig = SignalSet(buf.array, 2, 1, init=True)   # creator; children: init=False
    sig.post(0); assert sig.wait(0, timeout=1.0)
    assert sig.fetch_add(0, 5) == 0 and sig.load(0) == 5
"""

from gristmill.kernels._shmsignal import SignalSet, nbytes

__all__ = ["SignalSet", "nbytes"]

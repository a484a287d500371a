"""gristmill.kernels.shmsignal: process-shared semaphores and atomic counters."""

import multiprocessing as mp
import time

import numpy as np
import pytest
from gristmill.kernels.shm import SharedArray
from gristmill.kernels.shmsignal import SignalSet, nbytes

pytestmark = pytest.mark.usefixtures("shm_clean")  # tests/conftest.py


def test_post_wait_timeout_and_counters():
    buf = np.zeros(nbytes(2, 3), np.uint8)
    s = SignalSet(buf, 2, 3, init=True)
    assert not s.wait(0, timeout=0.01)
    s.post(0, 2)
    assert s.value(0) == 2
    assert s.wait(0, timeout=0) and s.trywait(0) and not s.trywait(0)
    assert s.fetch_add(2, 5) == 0 and s.fetch_add(2, -1) == 5 and s.load(2) == 4
    s.store(1, 9)
    assert s.load(1) == 9 and s.load(0) == 0
    t = time.monotonic()
    assert not s.wait(1, timeout=0.15, spin=100)
    assert time.monotonic() - t >= 0.14
    with pytest.raises(IndexError):
        s.post(2)
    with pytest.raises(IndexError):
        s.load(3)
    s.destroy()
    with pytest.raises(ValueError, match="destroyed"):
        s.post(0)


def test_too_small_buffer():
    with pytest.raises(ValueError, match="too small"):
        SignalSet(np.zeros(8, np.uint8), 1, 1)


def _child(arr, n):
    s = SignalSet(arr.array, 2, 1)
    for _ in range(n):
        assert s.wait(0, timeout=10)
        s.fetch_add(0, 1)
        s.post(1)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_ping_pong_across_processes(method):
    with SharedArray.create((nbytes(2, 1),), np.uint8) as arr:
        s = SignalSet(arr.array, 2, 1, init=True)
        n = 200
        p = mp.get_context(method).Process(target=_child, args=(arr, n))
        p.start()
        for i in range(n):
            s.post(0)
            assert s.wait(1, timeout=10)
            assert s.load(0) == i + 1
        p.join(10)
        assert p.exitcode == 0
        s.destroy()
    if method == "spawn":  # spawn started multiprocessing's resource tracker: stop it
        from multiprocessing import resource_tracker

        resource_tracker._resource_tracker._stop()

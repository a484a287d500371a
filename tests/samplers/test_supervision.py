"""The samplers' one worker supervision (samplers.supervision), which the env pool and the
rollout workers share: failure detection (exit, heartbeat), generation restart, restart budget."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest
from gristmill.samplers.errors import RestartLimitError
from gristmill.samplers.supervision import RestartBudget, WorkerProcesses, end_process


def test_restart_budget_refuses_past_its_total_and_past_its_rate_per_minute():
    total = RestartBudget(total=2)
    assert total.spend(0.0) is None and total.spend(1e6) is None
    assert total.spend(2e6) == "3 times in all"

    rate = RestartBudget(per_minute=2)
    assert rate.spend(0.0) is None and rate.spend(10.0) is None
    assert rate.spend(20.0) == "3 times in the last minute"  # a crash loop
    assert rate.spend(200.0) is None  # faults spread over a long run are not
    assert RestartBudget().spend() is None
    with pytest.raises(ValueError, match="per_minute"):
        RestartBudget(per_minute=-1)


def _sleep_forever():
    time.sleep(600)


def test_worker_processes_find_dead_and_silent_workers_and_replace_them_by_generation(
    shm_clean,
):
    ctx = mp.get_context("fork")
    spawned = []

    def spawn(w, generation):
        p = ctx.Process(target=_sleep_forever, daemon=True)
        p.start()
        spawned.append((w, generation))
        return p

    beats = np.zeros(2)
    workers = WorkerProcesses(2, spawn, heartbeats=beats, heartbeat_timeout=30.0,
                              budget=RestartBudget(total=2), grace=0.0, wait=5.0)
    generation = workers.generation  # readers keep the list: it is updated in place
    try:
        workers.start()
        assert workers.failures() == [] and spawned == [(0, 0), (1, 0)]
        os.kill(workers.procs[0].pid, signal.SIGKILL)
        workers.procs[0].join(10)
        beats[1] -= 100.0  # worker 1 went silent
        found = dict(workers.failures())
        assert found[0] == f"exited with code {-signal.SIGKILL}"
        assert found[1].startswith("no heartbeat for 10")
        silent = workers.procs[1]
        reclaimed = []
        assert workers.replace(0, lambda w: reclaimed.append((w, generation[w])) or "slots") \
            == "slots"
        workers.replace(1)
        assert not silent.is_alive()  # a hung worker is ended before its successor starts
        assert reclaimed == [(0, 1)]  # reclaim runs after the generation moved on
        assert generation == [1, 1] and workers.restarts == 2
        assert spawned[2:] == [(0, 1), (1, 1)] and workers.failures() == []
        before = list(workers.procs)
        with pytest.raises(RestartLimitError, match="3 times in all"):
            workers.replace(0)
        assert workers.procs == before and generation == [1, 1]  # refused: nothing done
    finally:
        for p in workers.procs:
            if p is not None:
                end_process(p, grace=0.0)

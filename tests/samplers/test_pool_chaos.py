"""Found by bench/chaos.py pool-fire (issue 18): in restart mode, a worker killed again while
its replacement is still starting must be restarted once more, not make the pool raise."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
from gristmill.samplers import make


def test_restart_mode_survives_a_kill_of_the_replacement_while_it_starts(shm_clean):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool = make("CartPole-v1", num_envs=4, batch_size=2, num_workers=2, seed=0,
                    on_error="restart", max_restarts=10, step_timeout=60)  # fmt: skip
        with pool:
            pool.async_reset()
            old = pool.worker_pids()[1]
            os.kill(old, signal.SIGKILL)

            def kill_replacement():
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    pid = pool.worker_pids()[1]
                    if pid != old:
                        os.kill(pid, signal.SIGKILL)
                        return
                    time.sleep(0.0005)

            killer = threading.Thread(target=kill_replacement, daemon=True)
            killer.start()
            back: set[int] = set()  # envs of worker 1 back after both kills
            deadline = time.monotonic() + 60
            # the pool restarts workers inside recv: keep stepping while the killer waits
            while back != {1, 3} and time.monotonic() < deadline:
                obs, rew, term, trunc, info = pool.recv()
                if not killer.is_alive() and pool.restarts >= 2:
                    back.update(set(np.asarray(info["env_id"]).tolist()) & {1, 3})
                pool.send(np.zeros(len(info["env_id"]), np.int64), info["env_id"])
            killer.join()
            assert back == {1, 3} and pool.restarts == 2

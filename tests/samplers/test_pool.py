"""gristmill.samplers.pool: EnvPool API, semantics, misuse, crashes and cleanup."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest
from gristmill.kernels import procfs
from gristmill.samplers import APIUsageError, WorkerError, make

pytestmark = pytest.mark.usefixtures("shm_clean")  # tests/conftest.py


def _assert_gone(pids):
    deadline = time.monotonic() + 5
    while any(procfs.alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(procfs.alive(p) for p in pids), "worker processes survived"


def test_sync_matches_gymnasium_with_next_step_autoreset():
    """Env i seeded seed+i; the step after an episode's end resets (action ignored)."""
    n, seed = 4, 7
    refs = [gym.make("CartPole-v1") for _ in range(n)]
    ref_obs = [r.reset(seed=seed + i)[0] for i, r in enumerate(refs)]
    ref_done = [False] * n
    with make("CartPole-v1", num_envs=n, num_workers=2, seed=seed) as pool:
        assert pool.observation_space == refs[0].observation_space
        assert pool.action_space == refs[0].action_space
        obs, info = pool.reset()
        np.testing.assert_array_equal(obs, np.stack(ref_obs))
        np.testing.assert_array_equal(info["env_id"], np.arange(n))
        rng = np.random.default_rng(0)
        resets = 0
        for _ in range(120):
            acts = rng.integers(0, 2, n)
            obs, rew, term, trunc, info = pool.step(acts)
            for i, r in enumerate(refs):
                if ref_done[i]:
                    o, _ = r.reset()
                    ro, rr, rt, rtr = o, 0.0, False, False
                    assert info["elapsed_step"][i] == 0
                    resets += 1
                else:
                    ro, rr, rt, rtr, _ = r.step(int(acts[i]))
                np.testing.assert_allclose(obs[i], ro, rtol=1e-6)
                assert (rew[i], term[i], trunc[i]) == (rr, rt, rtr)
                ref_done[i] = rt or rtr
        assert resets > 0


def test_async_returns_batches_and_zero_copy_views():
    with make("Pong-v5", num_envs=4, batch_size=2, num_workers=2) as pool:
        assert pool.is_async
        pool.async_reset()
        seen = set()
        deadline = time.monotonic() + 60  # the first to finish come first: poll, don't count
        while seen != {0, 1, 2, 3} and time.monotonic() < deadline:
            obs, rew, term, trunc, info = pool.recv()
            assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
            assert np.shares_memory(obs, pool._obs)  # a view of shared memory, no copy
            assert set(info) >= {"env_id", "elapsed_step", "lives", "reward", "terminated"}
            seen.update(info["env_id"].tolist())
            pool.send(np.ones(2, np.int64), info["env_id"])
        assert seen == {0, 1, 2, 3}


def test_async_batch_need_not_divide_num_envs_and_last_batch_is_partial():
    with make("CartPole-v1", num_envs=5, batch_size=2, num_workers=2) as pool:
        pool.async_reset()
        seen = []
        # completion order: a worker descheduled on a loaded box leaves its envs out of many
        # batches in a row (200 recvs of the other worker's CartPole steps take milliseconds),
        # so poll until every env came back, up to a deadline, rather than count recvs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            obs, rew, term, trunc, info = pool.recv()
            assert len(info["env_id"]) == 2
            seen.extend(info["env_id"].tolist())
            pool.send(np.zeros(2, np.int64), info["env_id"])
            if len(seen) >= 20 and set(seen) == set(range(5)):
                break
        assert set(seen) == set(range(5))
        sizes = []
        while True:  # stop sending: the 5 results in flight come back as 2 + 2 + 1
            try:
                sizes.append(len(pool.recv()[4]["env_id"]))
            except APIUsageError:
                break
        assert sizes == [2, 2, 1]
        obs, info = pool.reset()  # and the pool is usable again
        assert obs.shape == (2, 4)


class _SleepyEnv(gym.Env):
    """Env 0 (by seed) sleeps ``nap`` seconds per step; the others return at once."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)
    nap = 2.0

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.idx = seed
        return np.zeros(1, np.float32), {}

    def step(self, action):
        if self.idx == 0:
            time.sleep(self.nap)
        return np.zeros(1, np.float32), 0.0, False, False, {}


def test_async_recv_returns_the_first_envs_to_finish():
    """A slow env holds back only itself, not the batches it would have been part of."""
    with make(_SleepyEnv, num_envs=6, batch_size=2, num_workers=2, seed=0) as pool:
        pool.async_reset()
        slow_seen, during_nap = 0, 0
        deadline = time.monotonic() + 60
        while slow_seen < 2 and time.monotonic() < deadline:
            obs, rew, term, trunc, info = pool.recv()
            ids = info["env_id"].tolist()
            if 0 in ids:
                slow_seen += 1
                if slow_seen == 2:  # env 0's first step (the first was its reset)
                    break
            elif slow_seen == 1:
                during_nap += len(ids)
            pool.send(np.zeros(len(ids), np.int64), info["env_id"])
        # worker 1's envs (1, 3, 5) kept cycling while env 0 slept through its first step
        assert slow_seen == 2 and during_nap >= 10


def test_mujoco_pool_equals_direct_env():
    from gristmill.envs.mujoco import make_env

    n = 2
    with make("Hopper-v5", num_envs=n, num_workers=2, seed=3) as pool:
        refs = [make_env("Hopper-v5") for _ in range(n)]
        ref_obs = np.stack([r.reset(seed=3 + i)[0] for i, r in enumerate(refs)])
        obs, _ = pool.reset()
        np.testing.assert_array_equal(obs, ref_obs)
        rng = np.random.default_rng(2)
        for _ in range(10):
            a = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
            obs, rew, term, trunc, _ = pool.step(a)
            for i, r in enumerate(refs):
                o, rr, t, tr, _ = r.step(a[i])
                if not (term[i] or trunc[i]):
                    np.testing.assert_array_equal(obs[i], o)
                    assert rew[i] == np.float32(rr)


@pytest.mark.parametrize("task", ["Hopper-v5", "Humanoid-v5"])
def test_async_mujoco_pool_equals_direct_envs_across_episode_ends(task):
    """The worker's compiled loop steps MuJoCo envs natively and hands each episode's reset to
    Python: results, flags and elapsed_step equal envs stepped here, through many episodes."""
    from gristmill.envs.mujoco import make_env

    n, steps = 6, 12
    refs = [make_env(task, seed=3 + i, max_episode_steps=steps) for i in range(n)]
    assert all(r.native_step() is not None for r in refs)
    done = [True] * n  # the next result of env i is a reset
    pending: dict[int, np.ndarray] = {}
    rng = np.random.default_rng(0)
    ends = 0
    with make(task, num_envs=n, batch_size=3, num_workers=2, seed=3,
              max_episode_steps=steps) as pool:
        pool.async_reset()
        for _ in range(80):
            obs, rew, term, trunc, info = pool.recv()
            ids = info["env_id"].copy()
            for j, e in enumerate(ids.tolist()):
                r = refs[e]
                o = np.empty(r.observation_space.shape)
                if done[e]:
                    r.reset_into(o)
                    want = (0.0, False, False)
                else:
                    want = r.step_into(pending[e], o)
                np.testing.assert_array_equal(obs[j], o)
                assert (rew[j], term[j], trunc[j]) == (np.float32(want[0]), *want[1:])
                assert info["elapsed_step"][j] == r.elapsed_step
                done[e] = bool(term[j] or trunc[j])
                ends += done[e]
            acts = rng.uniform(-1, 1, (len(ids),) + pool.single_action_space.shape)
            acts = acts.astype(np.float32)
            pending.update({e: acts[j] for j, e in enumerate(ids.tolist())})
            pool.send(acts, ids)
    assert ends >= n  # every env went through episode ends


class NativeOnly(gym.Env):
    """Resets through Python; a step through Python fails: only the native step may run."""

    observation_space = gym.spaces.Box(0, 255, (4,), np.uint8)
    action_space = gym.spaces.Discrete(4)
    info_spec: dict = {}

    def reset_into(self, out, seed=None):
        out[:] = 7

    def step_into(self, action, out):
        raise AssertionError("a native env was stepped through Python")

    def native_step(self):
        from gristmill.samplers._worker_loop import noop_native_step

        return noop_native_step()


@pytest.mark.parametrize("batch", [3, 6])
def test_native_steps_run_in_the_compiled_loop_without_python(batch):
    """Sync and async: every step after the reset is the native no-op (reward 0, no flags),
    elapsed_step counting up per env."""
    with make(NativeOnly, num_envs=6, batch_size=batch, num_workers=2) as pool:
        pool.async_reset()
        seen = np.full(6, -1)
        # Async batches of 3 hold whichever envs finish first: on a loaded box one worker can
        # serve dozens of rounds while the other waits for a core, so step until every env has
        # stepped 5 times (a deadline, not a round count, bounds the wait).
        deadline = time.monotonic() + 60.0
        while seen.min() < 5:
            assert time.monotonic() < deadline, f"envs starved for a minute: {seen.tolist()}"
            obs, rew, term, trunc, info = pool.recv()
            ids = info["env_id"].copy()
            assert (rew == 0).all() and not (term | trunc).any()
            np.testing.assert_array_equal(info["elapsed_step"], seen[ids] + 1)
            assert (obs[seen[ids] < 0] == 7).all()  # the resets' observations
            seen[ids] += 1
            pool.send(np.zeros(len(ids), np.int64), ids)


def test_partial_reset_and_subset_step_in_sync_mode():
    with make("CartPole-v1", num_envs=4, num_workers=2) as pool:
        pool.reset()
        obs, info = pool.reset(env_id=np.array([3, 1]))
        assert obs.shape == (2, 4)
        np.testing.assert_array_equal(info["env_id"], [3, 1])
        obs, rew, *_ , info = pool.step(np.zeros(2, np.int64), env_id=np.array([2, 0]))
        np.testing.assert_array_equal(info["env_id"], [2, 0])
        obs, info = pool.reset(seed=5)
        ref = gym.make("CartPole-v1").reset(seed=7)[0]
        np.testing.assert_array_equal(obs[2], ref)


def test_misuse_raises_clear_errors():
    with pytest.raises(ValueError, match="unknown task"):
        make("NoSuchEnv-v0", num_envs=2)
    with pytest.raises(ValueError, match="batch_size"):
        make("CartPole-v1", num_envs=2, batch_size=3)
    with make("CartPole-v1", num_envs=4, batch_size=2, num_workers=2) as pool:
        with pytest.raises(APIUsageError, match="recv before reset"):
            pool.recv()
        with pytest.raises(APIUsageError, match="send before reset"):
            pool.send(np.zeros(2, np.int64), np.array([0, 1]))
        pool.async_reset()
        with pytest.raises(APIUsageError, match="outstanding"):
            pool.async_reset()
        obs, rew, term, trunc, info = pool.recv()
        ids = info["env_id"].copy()
        with pytest.raises(ValueError, match="shape"):
            pool.send(np.zeros(3, np.int64), ids)
        with pytest.raises(ValueError, match="dtype"):
            pool.send(np.zeros(2, np.float32), ids)
        with pytest.raises(ValueError, match="out of range"):
            pool.send(np.zeros(2, np.int64), np.array([0, 9]))
        other = np.setdiff1d(np.arange(4), ids)
        with pytest.raises(APIUsageError, match="not received"):
            pool.send(np.zeros(2, np.int64), other)  # still stepping
        pool.send(np.zeros(2, np.int64), ids)
        pool.recv()
        pool.recv()
        with pytest.raises(APIUsageError, match="nothing outstanding"):
            pool.recv()
        obs, info = pool.reset()  # drains whatever is in flight
        assert obs.shape == (2, 4)
    with pytest.raises(APIUsageError, match="closed"):
        pool.recv()
    with make("Pendulum-v1", num_envs=2, num_workers=1) as pool:
        pool.reset()
        with pytest.raises(ValueError, match="dtype"):
            pool.step(np.zeros((2, 1), np.int64))
        with pytest.raises(ValueError, match="shape"):
            pool.step(np.zeros((2, 2), np.float32))


class _Crashy(gym.Env):
    """Raises on its ``crash_at``-th step (env 1 only)."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, crash_at=3):
        self.crash_at = crash_at
        self.t = 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        self.idx = seed % 100 if seed is not None else -1
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.idx == 1 and self.t == self.crash_at:
            raise RuntimeError("boom from env 1")
        return np.full(2, self.t / 100, np.float32), 1.0, False, False, {}


def test_worker_exception_is_reported_with_env_ids_and_traceback():
    pool = make(_Crashy, num_envs=4, num_workers=2, seed=0)
    pids = pool.worker_pids()
    pool.reset()
    with pytest.raises(WorkerError) as e:
        for _ in range(5):
            pool.step(np.zeros(4, np.int64))
    assert 1 in e.value.env_ids and "boom from env 1" in e.value.traceback
    assert pool.closed
    _assert_gone(pids)


def test_worker_restart_reports_truncated_and_continues():
    pool = make(_Crashy, num_envs=4, num_workers=2, seed=0, on_error="restart")
    pool.reset()
    with pytest.warns(RuntimeWarning, match="restarting"):
        truncs = []
        for _ in range(6):
            _, _, _, trunc, info = pool.step(np.zeros(4, np.int64))
            truncs.append(trunc.copy())
    assert pool.restarts >= 1
    hit = np.array(truncs).any(axis=0)
    assert hit[1] and hit[3] and not hit[0] and not hit[2]  # worker 1 owns envs 1 and 3
    pool.close()


def test_async_worker_death_is_noticed_while_other_workers_fill_every_batch():
    """Worker 0's envs alone keep async batches full: the dead worker 1 must still be found,
    restarted, and its envs must come back (truncated)."""
    with make(_Crashy, num_envs=4, batch_size=2, num_workers=2, seed=0,
              on_error="restart") as pool:
        pool.async_reset()
        truncated, after = set(), np.zeros(4, int)
        deadline = time.monotonic() + 60
        with pytest.warns(RuntimeWarning, match="restarting"):
            while (pool.restarts == 0 or after.min() < 3) and time.monotonic() < deadline:
                _, _, _, trunc, info = pool.recv()
                ids = info["env_id"]
                truncated.update(ids[trunc].tolist())
                if pool.restarts:
                    after[ids] += 1
                pool.send(np.zeros(len(ids), np.int64), ids)
        assert pool.restarts >= 1
        assert {1, 3} <= truncated and after.min() >= 3  # every env steps after the restart


def test_killed_worker_is_detected():
    pool = make("CartPole-v1", num_envs=2, num_workers=2)
    pool.reset()
    os.kill(pool.worker_pids()[1], signal.SIGKILL)
    with pytest.raises(WorkerError, match="died"):
        for _ in range(50):
            pool.step(np.zeros(2, np.int64))
    assert pool.closed


def test_close_and_garbage_collection_leave_nothing():
    pool = make("CartPole-v1", num_envs=2, num_workers=2)
    pids = pool.worker_pids()
    pool.reset()
    pool.close()
    pool.close()  # idempotent
    _assert_gone(pids)
    pool = make("CartPole-v1", num_envs=2, num_workers=2)
    pids = pool.worker_pids()
    pool.reset()
    del pool
    gc.collect()
    _assert_gone(pids)


def test_ctrl_c_leaves_no_process_and_no_shm():
    code = textwrap.dedent("""
        import numpy as np, sys
        from gristmill.samplers import make
        pool = make("CartPole-v1", num_envs=4, num_workers=2)
        print(" ".join(map(str, pool.worker_pids())), pool._a.name, flush=True)
        pool.reset()
        pool.step(np.zeros(4, np.int64))
        print("stepping", flush=True)
        while True:
            pool.step(np.zeros(4, np.int64))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    pids, name = [int(x) for x in line[:-1]], line[-1]
    assert proc.stdout.readline().strip() == "stepping"  # Ctrl-C lands in the step loop
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert proc.returncode != 0
    _assert_gone(pids)
    assert not os.path.exists(f"/dev/shm/{name}")


def test_spawn_start_method():
    """Workers started with spawn (in a subprocess, so that multiprocessing's resource
    tracker, which spawn starts, ends with it)."""
    code = textwrap.dedent("""
        import numpy as np
        from gristmill.samplers import make
        if __name__ == "__main__":
            with make("CartPole-v1", num_envs=2, num_workers=2, start_method="spawn") as pool:
                obs, _ = pool.reset()
                obs, rew, *_ = pool.step(np.ones(2, np.int64))
                assert obs.shape == (2, 4) and (rew == 1).all()
            print("spawn-ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "spawn-ok" in out.stdout, out.stderr


class _SlowEnv(gym.Env):
    """A deliberately slow pure-Python env (sleeps 1 ms per step)."""

    observation_space = gym.spaces.Discrete(10)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return 0, {}

    def step(self, action):
        time.sleep(0.001)
        self.t += 1
        return self.t % 10, float(action), self.t >= 5, False, {}


def test_python_env_factory_and_discrete_obs():
    with make(_SlowEnv, num_envs=4, batch_size=2, num_workers=2) as pool:
        pool.async_reset()
        total = 0
        for _ in range(12):
            obs, rew, term, trunc, info = pool.recv()
            assert obs.dtype == np.int64 and obs.shape == (2,)
            total += int(term.sum())
            pool.send(np.full(2, 2, np.int64), info["env_id"])
        assert total > 0


class _HangEnv(_SlowEnv):
    """Hangs (sleeps a minute) on its second step."""

    def step(self, action):
        self.t += 1
        if self.t == 2:
            time.sleep(60)
        return 0, 0.0, False, False, {}


def test_hung_worker_times_out_naming_the_envs():
    pool = make(_HangEnv, num_envs=2, num_workers=1, step_timeout=0.5)
    pids = pool.worker_pids()
    pool.reset()
    pool.step(np.zeros(2, np.int64))
    t = time.monotonic()
    with pytest.raises(TimeoutError, match=r"outstanding envs: \[0, 1\]"):
        pool.step(np.zeros(2, np.int64))
    assert time.monotonic() - t < 5
    pool.close()
    _assert_gone(pids)


def test_a_batch_with_an_env_not_waiting_for_a_result_is_refused_not_returned():
    """The last line of defence against stale or duplicate results (issue 21): if a block
    ever held an env with no request in flight, recv raises and closes the pool."""
    pool = make("CartPole-v1", num_envs=4, num_workers=2, seed=0)
    pids = pool.worker_pids()
    pool.reset()
    pool.send(np.zeros(4, np.int64))
    pool._outstanding[2] = False  # as if env 2's result had already been handed out
    pool._n_outstanding -= 1
    with pytest.raises(RuntimeError, match="internal error"):
        pool.recv()
    assert pool.closed
    _assert_gone(pids)

"""Rollout workers + shared-memory trajectory slots, driven by a NumPy 'inference' side.

Checks the protocol end to end with real worker processes: actions land in the env that asked,
slots chain (bootstrap obs = next slot's first obs), episode ends, back-pressure, env crashes
survived, a killed worker detected and restarted, and nothing left in /dev/shm.
"""

import os
import signal
import threading
import time
from queue import Empty

import numpy as np
import pytest
from echo_env import EchoEnvFactory  # tests/samplers/echo_env.py
from gristmill.samplers.inference_server import InferenceServer
from gristmill.samplers.rollout import RolloutChannels, RolloutLayout
from gristmill.samplers.rollout_worker import RolloutWorkerPool
from gristmill.samplers.spaces import action_from_row, action_spec_of, obs_spec_of
from gristmill.samplers.supervision import lower_thread_priority
from gymnasium import spaces

T = 4


pytestmark = pytest.mark.usefixtures("shm_clean")  # tests/conftest.py


def make(num_workers=2, envs=4, slots=None, agents=1, env_report=None, niceness=0,
         start_method=None, param_rows=0, **factory):
    layout = RolloutLayout(
        param_rows=param_rows,
        param_width=1 if param_rows else 0,
        num_workers=num_workers,
        envs_per_worker=envs,
        rollout=T,
        agents_per_env=agents,
        num_slots=slots or 2 * num_workers * envs * agents + 8,
        obs={"obs": ((3,), np.float32)},
        action_dim=1,
        num_logits=4,
        state_size=2,
    )
    ch = RolloutChannels(layout)
    factory = EchoEnvFactory(num_agents=agents, **factory)
    pool = RolloutWorkerPool(
        factory, ch, seed=0, heartbeat_timeout=30, env_report=env_report, niceness=niceness,
        start_method=start_method,
    )
    return layout, ch, pool


def numpy_policy(rng, version=7):
    """A NumPy ``policy_fn``: random actions, state = the input state + 1 (so a reset shows)."""

    def policy_fn(policy_id, obs, state):
        n = len(state)
        return {
            "actions": rng.integers(0, 4, (n, 1)).astype(np.float32),
            "log_prob_actions": np.zeros(n, np.float32),
            "action_logits": np.zeros((n, 4), np.float32),
            "values": np.zeros(n, np.float32),
            "rnn_states": state + 1,
            "version": version,
        }

    return policy_fn


def serve(ch, pool, rng, version=7):
    """One round of inference with :func:`numpy_policy`; returns the steps served."""
    return InferenceServer(ch, pool.generation, numpy_policy(rng, version)).serve(0.5)


KEYS = (
    "obs_obs",
    "actions",
    "rewards",
    "dones",
    "time_outs",
    "valids",
    "rnn_states",
    "policy_version",
)


def collect(ch, pool, count, timeout=60, free=True):
    """Serve inference until ``count`` slots complete; snapshot them (and free them, as a
    learner would, unless ``free`` is False). Returns the snapshots."""
    rng = np.random.default_rng(0)
    done, deadline = [], time.time() + timeout
    while len(done) < count:
        assert time.time() < deadline, f"only {len(done)} of {count} trajectories in {timeout}s"
        serve(ch, pool, rng)
        try:
            slots = pool.ledger.accept(ch.trajectories.get_many_nowait())
        except Empty:
            slots = []
        for s in slots:
            done.append({k: ch.arrays[k][s].copy() for k in KEYS} | {"slot": s})
            if free:
                pool.ledger.free([s])
        assert not pool.check(), pool.check()
    return done


def serve_trajectories(server, pool, ch, n: int, keys) -> list[dict]:
    """Serve inference until at least ``n`` finished trajectories are accepted (60 s budget);
    copies of ``keys`` of each, in arrival order."""
    trajs, deadline = [], time.time() + 60
    while len(trajs) < n:
        assert time.time() < deadline
        server.serve(0.5)
        try:
            slots = pool.ledger.accept(ch.trajectories.get_many_nowait())
        except Empty:
            continue
        trajs += [{k: ch.arrays[k][s].copy() for k in keys} for s in slots]
        pool.ledger.consume(slots)
    return trajs


def test_spaces_to_specs_and_rows():
    t = spaces.Tuple((spaces.Discrete(3), spaces.Discrete(2), spaces.Box(-1, 1, (2,))))
    assert action_spec_of(t) == ((3, 2), 2)
    assert action_from_row(t, np.array([2, 1, 0.5, -0.5], np.float32))[:2] == (2, 1)
    assert action_spec_of(spaces.MultiDiscrete([3, 4])) == ((3, 4), 0)
    with pytest.raises(TypeError, match="must come last"):
        action_spec_of(spaces.Tuple((spaces.Box(-1, 1, (1,)), spaces.Discrete(2))))
    d = spaces.Dict({"obs": spaces.Box(0, 255, (3, 8, 8), np.uint8), "m": spaces.Box(0, 1, (5,))})
    assert obs_spec_of(d) == {
        "obs": ((3, 8, 8), np.dtype(np.uint8)),
        "m": ((5,), np.dtype(np.float32)),
    }
    with pytest.raises(ValueError, match="divisible"):
        RolloutLayout(num_workers=1, envs_per_worker=3, rollout=4, num_slots=10)


def test_trajectories_are_consistent():
    layout, ch, pool = make()
    try:
        pool.start()
        trajs = collect(ch, pool, 24)
        for a in trajs:
            obs, acts, rew = a["obs_obs"], a["actions"][:, 0], a["rewards"]
            env = int(obs[0, 0])
            assert np.all(obs[:, 0] == env), "one env per slot"
            # the env echoes the action it received: it is the one inference wrote
            # (after an episode end the next obs is a reset: last action -1)
            echoed = np.where(a["dones"] == 1, -1.0, acts)
            assert np.array_equal(obs[1:, 2], echoed) and np.array_equal(rew, acts)
            assert np.all(a["policy_version"] == 7) and np.all(a["valids"] == 1)
            for t in range(T):
                if a["dones"][t]:  # episode of 5 steps: truncated, next obs is a reset
                    assert a["time_outs"][t] == 1 and obs[t + 1, 1] == 0
                    # inference read step t + 1's state as zeros (the policy adds 1)
                    if t + 1 < T:
                        assert np.all(a["rnn_states"][t + 2] == 1), "state reset after an end"
                else:
                    assert obs[t + 1, 1] == obs[t, 1] + 1
    finally:
        pool.stop()
        ch.close()


def test_spawned_workers_import_the_test_env_by_name():
    """With ``spawn`` the factory is pickled by reference: ``echo_env`` (tests/samplers) must
    import in a fresh interpreter, which the folder on sys.path (conftest) provides."""
    layout, ch, pool = make(num_workers=1, envs=2, start_method="spawn")
    try:
        pool.start()
        trajs = collect(ch, pool, 2)
        assert len(trajs) >= 2 and {int(a["obs_obs"][0, 0]) for a in trajs} <= {0, 1}
    finally:
        pool.stop()
        ch.close()


def test_back_pressure_stops_workers_without_free_slots():
    layout, ch, pool = make(num_workers=1, envs=2, slots=3)
    try:
        pool.start()
        got = collect(ch, pool, 1, free=False)  # one env finished a slot, took the last free one
        rng = np.random.default_rng(1)
        for _ in range(6):
            serve(ch, pool, rng)
        # Nobody returns slots: at most 3 - 2 + 1 trajectories can ever complete.
        try:
            more = pool.ledger.accept(ch.trajectories.get_many_nowait())
        except Empty:
            more = []
        assert 1 <= len(got) + len(more) <= 2
        pool.ledger.free([g["slot"] for g in got] + more)
        got2 = collect(ch, pool, 2)  # returning slots lets them go on
        assert len(got2) >= 2
    finally:
        pool.stop()
        ch.close()


def test_env_crash_is_reported_and_survived():
    layout, ch, pool = make(num_workers=1, envs=2, crash_env=1, crash_at=3)
    try:
        pool.start()
        trajs = collect(ch, pool, 6)
        reports = []
        deadline = time.time() + 10
        while not any(r["kind"] == "env_error" for r in reports) and time.time() < deadline:
            try:
                reports += ch.reports.get_many(timeout=0.5)
            except Empty:
                pass
        err = [r for r in reports if r["kind"] == "env_error"]
        assert err and err[0]["env"] == 1 and "crashed on purpose" in err[0]["error"]
        lost = [(a, t) for a in trajs for t in range(T) if a["valids"][t] == 0]
        assert len(lost) == 1
        a, t = lost[0]
        assert a["dones"][t] == 1 and a["obs_obs"][0, 0] == 1
    finally:
        pool.stop()
        ch.close()


def test_killed_worker_is_detected_and_restarted():
    layout, ch, pool = make(num_workers=2, envs=2)
    try:
        pool.start()
        collect(ch, pool, 4)
        rng = np.random.default_rng(2)
        deadline = time.time() + 30
        while (ch.arrays["slot_owner"] == 1).sum() < 2:  # worker 1 is up and holds its slots
            assert time.time() < deadline, "worker 1 never took its slots"
            serve(ch, pool, rng)
            try:  # hand finished slots back, or the free pool drains and worker 1 may starve
                pool.ledger.free(pool.ledger.accept(ch.trajectories.get_many_nowait()))
            except Empty:
                pass
        os.kill(pool.procs[1].pid, signal.SIGKILL)
        pool.procs[1].join(10)
        bad = pool.check()
        assert bad and bad[0][0] == 1 and "-9" in bad[0][1]
        freed = pool.restart(1)
        assert len(freed) >= 2  # the dead worker's slots came back
        assert pool.generation[1] == 1
        collect(ch, pool, 8)
        assert not pool.check()
    finally:
        pool.stop()
        ch.close()


def test_multi_agent_envs_give_each_agent_a_slot():
    layout, ch, pool = make(num_workers=1, envs=2, agents=2)
    try:
        pool.start()
        trajs = collect(ch, pool, 12)
        ids = set()
        for a in trajs:
            obs, acts = a["obs_obs"], a["actions"][:, 0]
            assert np.all(obs[:, 0] == obs[0, 0]), "one agent per slot"
            ids.add(int(obs[0, 0]))
            echoed = np.where(a["dones"] == 1, -1.0, acts)
            assert np.array_equal(obs[1:, 2], echoed)
        assert ids == {0, 1, 10, 11}
    finally:
        pool.stop()
        ch.close()


def echo_env_report(env):
    return {"echo_index": env.env_index}


def env_started_reports(ch, count: int, timeout: float = 30.0) -> list[dict]:
    """Read the report queue until ``count`` ``env_started`` reports arrived; return them."""
    reports, deadline = [], time.time() + timeout
    while len([r for r in reports if r["kind"] == "env_started"]) < count:
        assert time.time() < deadline, reports
        try:
            reports += ch.reports.get_many(timeout=0.5)
        except Empty:
            pass
    return [r for r in reports if r["kind"] == "env_started"]


def test_env_report_hook_tells_the_supervisor_about_every_env_made():
    """Each env made (and re-made after a crash) is reported with the hook's items, so a
    supervisor can learn what a worker owns outside itself before the worker dies."""
    layout, ch, pool = make(
        num_workers=2, envs=2, env_report=echo_env_report, crash_env=1, crash_at=3
    )
    try:
        pool.start()
        collect(ch, pool, 8)
        started = env_started_reports(ch, 5)
        assert sorted(r["env"] for r in started) == [0, 1, 1, 2, 3]  # env 1 crashed once
        for r in started:
            assert r["echo_index"] == r["env"] and r["generation"] == 0
            assert r["worker"] == r["env"] // 2 and r["pid"] == pool.procs[r["worker"]].pid
    finally:
        pool.stop()
        ch.close()


def nice_report(env) -> dict:
    """env_report hook: the nice value the worker runs (and starts env processes) at."""
    return {"nice": os.getpriority(os.PRIO_PROCESS, 0)}


def test_niceness_lowers_the_workers_priority_before_envs_exist():
    """Workers (and the simulator processes their envs start, which inherit it) run
    ``niceness`` below the supervisor, so a learner sharing the cores keeps its share."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    layout, ch, pool = make(num_workers=2, envs=2, env_report=nice_report, niceness=3)
    try:
        pool.start()
        collect(ch, pool, 4)
        nices = {r["nice"] for r in env_started_reports(ch, 4)}
        assert nices == {min(19, base + 3)}
        for p in pool.procs:
            assert os.getpriority(os.PRIO_PROCESS, p.pid) == min(19, base + 3)
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the supervisor is untouched
    finally:
        pool.stop()
        ch.close()
    ch = RolloutChannels(layout)
    try:
        with pytest.raises(ValueError, match="niceness"):
            RolloutWorkerPool(EchoEnvFactory(), ch, niceness=-1)
    finally:
        ch.close()


def test_lower_thread_priority_changes_only_the_calling_thread():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    seen = {}

    def body():
        seen["changed"] = lower_thread_priority(2)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["noop"] = lower_thread_priority(0)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == {"changed": True, "nice": min(19, base + 2), "noop": False}
    assert os.getpriority(os.PRIO_PROCESS, 0) == base


@pytest.mark.parametrize("fused", [False, True], ids=["policy_fn", "policies_fn"])
def test_policy_ids_run_end_to_end(fused):
    """The match-maker's next_policy takes effect at the agent's next episode: inference calls
    that policy (one policy_fn call per policy in a batch, or one policies_fn call with a group
    per policy), each group's outputs land in its own agents' slots, and the steps, the
    trajectory and the episode report carry its id."""
    layout, ch, pool = make(num_workers=1, envs=2)
    a = ch.arrays
    a["next_policy"][:] = [0, 1]  # env 1 switches to policy 1 after its first episode
    calls, batches = [], []

    def policy_fn(policy_id, obs, state):
        calls.append((policy_id, len(state)))
        n = len(state)
        out = numpy_policy(np.random.default_rng(0))(policy_id, obs, state)
        out["actions"] = np.full((n, 1), 100 * policy_id + 1, np.float32)
        return out

    def policies_fn(groups):
        batches.append([pid for pid, _, _ in groups])
        return [policy_fn(*g) for g in groups]

    server = InferenceServer(ch, pool.generation, policy_fn,
                             policies_fn=policies_fn if fused else None)
    try:
        pool.start()
        trajs = serve_trajectories(server, pool, ch, 8, ("obs_obs", "policy_id", "dones"))
        for tr in trajs:
            env = int(tr["obs_obs"][0, 0])
            echoed = tr["obs_obs"][1:, 2]
            acted = np.where(tr["dones"] == 1, -1, 100 * tr["policy_id"] + 1)
            assert np.array_equal(echoed, acted), tr  # each step ran the policy it names
            if env == 0:
                assert np.all(tr["policy_id"] == 0)
        env1 = np.concatenate([tr["policy_id"] for tr in trajs if tr["obs_obs"][0, 0] == 1])
        first_end = 5  # episodes of 5 steps: steps 0-4 under policy 0, then policy 1
        assert np.all(env1[:first_end] == 0) and np.all(env1[first_end:] == 1), env1
        assert {p for p, _ in calls} == {0, 1}
        if fused:  # one call per batch, a group per policy (whether both policies share a
            # batch depends on when the requests arrive: a loaded box may serve them apart)
            assert all(len(set(b)) == len(b) for b in batches), batches
            assert any(0 in b for b in batches) and any(1 in b for b in batches), batches
            assert sum(len(b) for b in batches) == len(calls)  # every group went through it
        reports = []
        while len([r for r in reports if r["kind"] == "episode"]) < 3:
            reports += ch.reports.get_many(timeout=5)
        episodes = [r for r in reports if r["kind"] == "episode" and r["env"] == 1]
        assert episodes[0]["policy_id"] == 0 and all(r["policy_id"] == 1 for r in episodes[1:])
    finally:
        pool.stop()
        ch.close()


def test_each_agent_gets_its_policys_env_params_at_its_next_episode():
    """The per-policy parameter table (here the echo env's reward factor): an agent's env
    takes the row of the policy that drives it when that policy takes effect, so policy 1's
    factor scales only the rewards of the agent it drives, and a row changed mid-episode
    applies from the agent's next episode."""
    layout, ch, pool = make(num_workers=1, envs=2, agents=2, param_rows=2)
    a = ch.arrays
    a["policy_params"][:, 0] = [1.0, 10.0]
    a["agent_policy"][:] = a["next_policy"][:] = [0, 1, 0, 0]  # env 0: p0 vs p1; env 1: p0, p0
    server = InferenceServer(ch, pool.generation, numpy_policy(np.random.default_rng(0)))
    try:
        pool.start()
        keys = ("obs_obs", "rewards", "dones")
        trajs = serve_trajectories(server, pool, ch, 4, keys)
        a["policy_params"][0, 0] = 3.0  # e.g. PBT mutated policy 0
        trajs += serve_trajectories(server, pool, ch, 24 - len(trajs), keys)
        by_agent = {}
        for tr in trajs:
            agent = int(tr["obs_obs"][0, 0])  # 10 * env + agent
            # reward = factor * action; the action is echoed in the next observation
            acts = np.where(tr["dones"] == 1, np.nan, tr["obs_obs"][1:, 2])
            ok = acts > 0
            by_agent.setdefault(agent, []).append(np.round(tr["rewards"][ok] / acts[ok], 3))
        factors = {agent: set(np.concatenate(v).tolist()) for agent, v in by_agent.items()}
        assert factors[1] == {10.0}, factors  # only the agent policy 1 drives
        for agent in (0, 10, 11):
            assert factors[agent] <= {1.0, 3.0} and 3.0 in factors[agent], factors
            # the new factor starts at an episode boundary: never 1.0 after a 3.0
            seq = np.concatenate(by_agent[agent])
            first3 = int(np.argmax(seq == 3.0))
            assert np.all(seq[first3:] == 3.0), seq
    finally:
        pool.stop()
        ch.close()

"""Rollout workers SIGKILLed at chosen points of the protocol (issue 20).

Inference here is a recording :class:`InferenceServer` whose actions are a running counter,
so every action served is unique: with the echo env, the action an env received is in its next
observation and must equal the one recorded in the slot. Kill points: with an answer queued but
not yet read (between requesting actions and stepping; the old protocol's successor worker
acted on that answer and from then on on actions nobody had computed), mid-rollout, and right
after a slot was handed to the learner. After each, every trajectory the learner accepts is
complete and served for its own fill, none is accepted twice, and every slot is back in
circulation. The same kill points run with real VizDoom games.
"""

import os
import signal
import time
from collections import Counter
from queue import Empty

import numpy as np
import pytest
from echo_env import EchoEnvFactory  # tests/samplers/echo_env.py
from gristmill.samplers.inference_server import InferenceServer
from gristmill.samplers.rollout import RolloutChannels, RolloutLayout
from gristmill.samplers.rollout_protocol import (
    FILLING,
    FINISHED,
    FREE,
    ActionRequest,
    ActionsReady,
    TrajectoryReady,
)
from gristmill.samplers.rollout_worker import RolloutWorkerPool
from gristmill.samplers.spaces import obs_spec_of

T = 4


class Recorder:
    """Inference that records the protocol: every request's ``(worker, generation, split)``
    must have at most one request open at a time."""

    def __init__(self, ch, pool, num_actions=None):
        self.ch, self.pool, self.count = ch, pool, 0
        self.num_actions = num_actions
        self.double_open = 0
        self.server = InferenceServer(ch, pool.generation, self.policy_fn)

    def policy_fn(self, policy_id, obs, state):
        n = len(state)
        acts = np.arange(self.count + 1, self.count + n + 1, dtype=np.float32)
        self.count += n
        if self.num_actions:
            acts = acts % self.num_actions
        return {
            "actions": acts[:, None],
            "log_prob_actions": np.zeros(n, np.float32),
            "action_logits": np.zeros((n, self.ch.layout.num_logits), np.float32),
            "values": np.zeros(n, np.float32),
            "rnn_states": state + 1,
            "version": 3,
        }

    def serve(self, timeout=0.5) -> list:
        msgs = self.server._pending(timeout)
        keys = [(m.worker, m.generation, m.split) for m in msgs]
        self.double_open += len(keys) - len(set(keys))
        time.sleep(0.005)  # inference takes time: a worker acting on a stale answer runs ahead
        with self.server.lock:
            self.server._serve(msgs)
        return msgs


def make(factory, num_workers=2, envs=2, obs=None, num_logits=4, slots=None):
    layout = RolloutLayout(
        num_workers=num_workers,
        envs_per_worker=envs,
        rollout=T,
        num_slots=slots or num_workers * envs + 6,
        obs=obs or {"obs": ((3,), np.float32)},
        action_dim=1,
        num_logits=num_logits,
        state_size=2,
    )
    ch = RolloutChannels(layout)
    pool = RolloutWorkerPool(factory, ch, seed=0, heartbeat_timeout=60)
    return ch, pool


def learn(ch, pool, rec, count, timeout=90, kill_on_handoff=None):
    """Serve until ``count`` trajectories were accepted; returns their snapshots. With
    ``kill_on_handoff=w``, SIGKILL worker ``w`` (and restart it) the first time one of its
    slots arrives, before the learner takes it."""
    got, deadline = [], time.time() + timeout
    a = ch.arrays
    while len(got) < count:
        assert time.time() < deadline, f"{len(got)} of {count} trajectories in {timeout} s"
        rec.serve(0.2)
        try:
            msgs = ch.trajectories.get_many_nowait()
        except Empty:
            continue
        if kill_on_handoff is not None and any(
            a["slot_owner"][m.slot] == kill_on_handoff for m in msgs
        ):
            kill(pool, kill_on_handoff, rec.server.lock)
            kill_on_handoff = None
            assert pool.ledger.counters["slots_reclaimed/finished"] >= 1
        for s in pool.ledger.accept(msgs):
            got.append({k: a[k][s].copy() for k in ("obs_obs", "actions", "acted", "dones")}
                       | {"fill": int(a["slot_fill"][s])})
            pool.ledger.consume([s])
        assert not pool.check(), pool.check()
    return got


def kill(pool, w, lock):
    os.kill(pool.procs[w].pid, signal.SIGKILL)
    pool.procs[w].join(10)
    with lock:  # as the trainer does: no batch is served while a worker's slots are freed
        pool.restart(w)


def kill_with_answer_queued(ch, pool, rec, w):
    """Stop worker ``w`` with a request open, answer it, then SIGKILL it: the answer stays on
    its queue, unread."""
    pid = pool.procs[w].pid
    deadline = time.time() + 120
    while True:
        assert time.time() < deadline, "worker never had a request open"
        wait_until = time.time() + 30
        while not _holds_slots(ch, w) and time.time() < wait_until:
            time.sleep(0.01)
        os.kill(pid, signal.SIGSTOP)
        msgs = rec.serve(0.2)
        if any(m.worker == w for m in msgs):
            break
        os.kill(pid, signal.SIGCONT)
        # let it run (and ask) before the next try: on a loaded box stopping it again at once
        # left it no time to reach its next request (a CI failure)
        rec.serve(0.2)
    kill(pool, w, rec.server.lock)


def _holds_slots(ch, w) -> bool:
    """Whether worker ``w`` is up (holds the slots it fills)."""
    a = ch.arrays
    return bool(np.any((a["slot_owner"] == w) & (a["slot_state"] == FILLING)))


def assert_circulation(ch, pool, served=None):
    """After the workers stopped: each slot is exactly once on the free queue (state FREE) or
    held as FILLING/FINISHED by a worker; none lost, none twice. With ``served``, every step
    served is trained, dropped, lost with a dead worker or in flight: the books balance."""
    a = ch.arrays
    if served is not None:
        books = pool.ledger.books(served)
        assert books["balanced"], books
    queued = []
    while True:
        try:
            queued += [int(s) for s in ch.free_slots.get_many_nowait()]
        except Empty:
            break
    held = [int(s) for s in np.flatnonzero(np.isin(a["slot_state"], (FILLING, FINISHED)))]
    assert not [s for s, n in Counter(queued).items() if n > 1], "a slot queued twice"
    assert sorted(queued + held) == list(range(ch.layout.num_slots)), (queued, held)
    assert all(a["slot_state"][s] == FREE for s in queued)


def assert_echoes(trajs):
    """Every step was served for the slot's own fill, and the env received that action."""
    for tr in trajs:
        assert np.all(tr["acted"] == tr["fill"])
        echoed = np.where(tr["dones"] == 1, -1.0, tr["actions"][:, 0])
        assert np.array_equal(tr["obs_obs"][1:, 2], echoed), (tr["obs_obs"], tr["actions"])
    fills = [tr["fill"] for tr in trajs]
    assert len(set(fills)) == len(fills), "a trajectory accepted twice"


@pytest.mark.parametrize("point", ["answer_queued", "mid_rollout", "after_handoff"])
def test_killed_worker_leaves_no_unserved_step_and_every_slot_circulates(point, shm_clean):
    ch, pool = make(EchoEnvFactory(episode_length=1000))
    rec = Recorder(ch, pool)
    try:
        pool.start()
        trajs = learn(ch, pool, rec, 4)
        for _ in range(3):  # repeated kills of both workers
            for w in (0, 1):
                if point == "answer_queued":
                    kill_with_answer_queued(ch, pool, rec, w)
                    trajs += learn(ch, pool, rec, 4)
                elif point == "mid_rollout":
                    for _ in range(3):
                        rec.serve(0.2)
                    kill(pool, w, rec.server.lock)
                    trajs += learn(ch, pool, rec, 4)
                else:
                    trajs += learn(ch, pool, rec, 4, kill_on_handoff=w)
        assert pool.restarts == 6
        assert rec.double_open == 0, "a worker had two requests open for one split"
        assert_echoes(trajs)
    finally:
        try:
            pool.stop()
            assert_circulation(ch, pool, rec.server.served_steps)
        finally:
            ch.close()


def test_a_stray_answer_is_reported_and_ignored(shm_clean):
    """An answer for another generation, or for a step not served, never makes a worker step."""
    ch, pool = make(EchoEnvFactory(episode_length=1000), num_workers=1)
    rec = Recorder(ch, pool)
    try:
        pool.start()
        trajs = learn(ch, pool, rec, 2)
        ch.actions[0].put(ActionsReady(pool.generation[0] + 5, 0, 0))
        ch.actions[0].put(ActionsReady(pool.generation[0], 1, 3))  # not stamped for its fill
        ch.actions[0].put("garbage")
        trajs += learn(ch, pool, rec, 4)
        assert rec.double_open == 0
        assert_echoes(trajs)
        reports, deadline = [], time.time() + 10
        while len([r for r in reports if r["kind"] == "stale_answer"]) < 2:
            assert time.time() < deadline, reports
            try:
                reports += ch.reports.get_many(timeout=0.5)
            except Empty:
                pass
    finally:
        pool.stop()
        ch.close()


def test_learner_refuses_duplicates_and_unserved_trajectories(shm_clean):
    ch, pool = make(EchoEnvFactory(episode_length=1000), num_workers=1)
    rec = Recorder(ch, pool)
    try:
        pool.start()
        deadline = time.time() + 30
        msgs = []
        while len(msgs) < 2:
            assert time.time() < deadline
            rec.serve(0.2)
            try:
                msgs += ch.trajectories.get_many_nowait()
            except Empty:
                pass
        first, second = msgs[:2]
        ch.arrays["acted"][second.slot, 1] = -7  # as if step 1 had never been served
        ok = pool.ledger.accept([first, first, second, TrajectoryReady(first.slot, 12345)])
        assert ok == [first.slot]
        c = pool.ledger.counters
        assert c["trajectories_dropped/duplicate"] == 2
        assert c["trajectories_dropped/unserved_step"] == 1
        assert c["steps_dropped/unserved_step"] == T - 1  # the steps that were served
        pool.ledger.free(ok)
    finally:
        try:
            pool.stop()
            assert_circulation(ch, pool)
        finally:
            ch.close()


@pytest.mark.parametrize("point", ["answer_queued", "mid_rollout", "after_handoff"])
def test_killed_doom_worker_protocol_holds(point, shm_clean):
    """The same kill points with real VizDoom games (doom_basic, 3 actions)."""
    from gristmill.apps.doom.env_factory import DoomEnvFactory
    from gristmill.apps.doom.games import WorkerGames, report_worker_games
    from gristmill.samplers.supervision import become_subreaper

    become_subreaper()  # the killed workers' games re-parent to us, to be reaped

    factory = DoomEnvFactory("doom_basic", res_w=64, res_h=36)
    probe = factory(0)
    obs = obs_spec_of(probe.observation_space)
    n_actions = int(probe.action_space.n)
    probe.close()
    ch, pool = make(factory, num_workers=2, envs=2, obs=obs, num_logits=n_actions)
    pool.env_report = report_worker_games
    games = WorkerGames()
    rec = Recorder(ch, pool, num_actions=n_actions)
    try:
        pool.start()
        trajs = learn(ch, pool, rec, 4)
        for w in (0, 1):
            if point == "answer_queued":
                kill_with_answer_queued(ch, pool, rec, w)
            elif point == "mid_rollout":
                for _ in range(3):
                    rec.serve(0.2)
                kill(pool, w, rec.server.lock)
            drain_games(ch, games)
            games.cleanup(w)
            on_handoff = w if point == "after_handoff" else None
            trajs += learn(ch, pool, rec, 6, kill_on_handoff=on_handoff)
        assert rec.double_open == 0, "a worker had two requests open for one split"
        for tr in trajs:
            assert np.all(tr["acted"] == tr["fill"])
        fills = [tr["fill"] for tr in trajs]
        assert len(set(fills)) == len(fills)
    finally:
        try:
            pool.stop()
            drain_games(ch, games)
            games.cleanup()
            assert_circulation(ch, pool, rec.server.served_steps)
        finally:
            ch.close()


def drain_games(ch, games):
    while True:
        try:
            reports = ch.reports.get_many_nowait()
        except Empty:
            return
        for r in reports:
            if r.get("kind") == "env_started":
                games.record(r)


def _hold_lock_in_put(q):
    """Hold ``q``'s lock (inside put, mid-message) until killed: a worker stopped there."""
    from gristmill.kernels._shmqueue import set_debug_put_pause

    set_debug_put_pause(600.0)
    q.put(b"never committed")


def test_a_worker_stopped_holding_its_answer_queue_lock_delays_only_its_own_answers(shm_clean):
    """A worker SIGSTOPped while it held the lock of its answer queue: the server answers the
    other workers at once, keeps the stopped one's answer (no put blocks the serving thread,
    which would stall every worker and the supervisor that must kill the stopped one), and
    delivers it once the queue is free again; an answer to a generation that ended is dropped."""
    import multiprocessing as mp
    import threading

    ch, pool = make(EchoEnvFactory(episode_length=1000), num_workers=2, envs=2)
    rec = Recorder(ch, pool)
    server, a = rec.server, ch.arrays
    a["slot_fill"][:2] = [5, 6]
    requests = [ActionRequest(w, 0, 0, 0, (w,), (5 + w,)) for w in (0, 1)]
    holder = mp.get_context("fork").Process(target=_hold_lock_in_put, args=(ch.actions[0],))
    try:
        holder.start()
        deadline = time.monotonic() + 60
        while ch.actions[0]._debug_holder() != holder.pid:
            assert time.monotonic() < deadline and holder.is_alive(), "holder never paused"
            time.sleep(0.01)
        os.kill(holder.pid, signal.SIGSTOP)
        t = threading.Thread(target=server._serve, args=(requests,), daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), "serving blocked on the stopped worker's queue"
        assert ch.actions[1].get(timeout=10) == ActionsReady(0, 0, 0)
        assert server.counters["answers_delayed/queue_blocked"] == 1
        assert list(a["acted"][[0, 1], 0]) == [5, 6]  # both served
        os.kill(holder.pid, signal.SIGKILL)
        os.kill(holder.pid, signal.SIGCONT)
        holder.join(60)
        server._retry_at = 0.0
        server.serve(0.01)
        assert ch.actions[0].get(timeout=10) == ActionsReady(0, 0, 0)
        assert not server._undelivered
        # an answer held back past its worker's restart is dropped, not delivered
        server._undelivered.append((1, ActionsReady(0, 0, 1)))
        pool.generation[1] += 1
        server._retry_at = 0.0
        server.serve(0.01)
        assert server.counters["answers_dropped/dead_worker"] == 1
        with pytest.raises(Empty):
            ch.actions[1].get(timeout=0.2)
    finally:
        if holder.is_alive():
            os.kill(holder.pid, signal.SIGKILL)
            os.kill(holder.pid, signal.SIGCONT)
            holder.join(60)
        ch.close()

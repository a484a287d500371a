"""`gristmill-doom train --ray`: population members as Ray actors, on Ray clusters that the
tests start themselves (a private one per run; simulated nodes with ``ray.cluster_utils``),
with Ray's token authentication on and the token in a file of the test's own. Each test ends
with no Ray process of its cluster, no VizDoom game and no gristmill /dev/shm entry left."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from gristmill.envs.doom import game_processes
from gristmill.kernels import procfs

# Ray reads RAY_AUTH_MODE when it is first imported: this module imports it only inside the
# test that needs it in-process, after the fixture has set the environment.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="needs the ray extra")  # fmt: skip

TINY = ["--num_workers", "1", "--num_envs_per_worker", "2", "--rollout", "8",
        "--batch_size", "32", "--rnn_size", "32", "--res_w", "64", "--res_h", "48",
        "--stats_every_sec", "2", "--torch_threads", "1", "--ray_sync_every_sec", "2",
        "--ray_member_cpus", "1"]  # fmt: skip


def cli(*args):
    return [sys.executable, "-m", "gristmill.apps.doom", *args]


def last_json(stdout: str) -> dict:
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (a Ray temp dir: every Ray
    process of a cluster names it)."""
    out = []
    for pid in procfs.pids():
        st = procfs.stat(pid)
        if st is not None and st.state != "Z" and text.encode() in b" ".join(procfs.cmdline(pid)):
            out.append(pid)
    return out


def orphan_games() -> set[int]:
    return {p for p in game_processes() if (s := procfs.stat(p)) is not None and s.ppid == 1}


@pytest.fixture
def ray_env(monkeypatch, shm_clean):
    """A short Ray temp dir (Unix socket paths are limited to 107 bytes) and a token of the
    test's own (RAY_AUTH_MODE=token), set here and for the subprocesses; afterwards no
    process of this Ray and no new orphan VizDoom game may be left."""
    tmp = tempfile.mkdtemp(prefix="gmray", dir="/tmp")
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write(os.urandom(16).hex())
    for k, v in {"RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token,
                 "RAY_ADDRESS": ""}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    games = orphan_games()
    yield tmp
    deadline = time.time() + 30
    while (processes_mentioning(tmp) or orphan_games() - games) and time.time() < deadline:
        time.sleep(0.5)
    left = processes_mentioning(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    assert not left, f"Ray processes outlived the run: {left}"
    assert not orphan_games() - games, "VizDoom processes outlived the run"


def test_pbt_on_ray_copies_weights_from_one_member_actor_to_another(tmp_path, ray_env):
    """Two policies as two Ray actors with short PBT periods and zero gaps: the worse member
    receives the better one's weights through the object store (the checksum it loaded is the
    one sent), its version jumps by max_policy_lag + 1 and its stale samples are masked; every
    event is in pbt.jsonl; eval reads the member's checkpoint through checkpoints/p<k>."""
    run = subprocess.run(
        cli("train", "--env", "doom_basic", *TINY, "--ray", "local", "--num_policies", "2",
            "--with_pbt", "true", "--pbt_start_mutation", "0", "--pbt_period_env_steps", "400",
            "--pbt_replace_reward_gap", "0", "--pbt_replace_reward_gap_absolute", "0",
            "--pbt_replace_fraction", "0.5", "--max_policy_lag", "5",
            "--pbt_mix_policies_in_one_env", "false", "--train_for_env_steps", "4000",
            "--train_dir", str(tmp_path), "--experiment", "pbt"),
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = last_json(run.stdout)
    assert (
        summary["ray"]["started_cluster"]
        and summary["ray"]["token"] == os.environ["RAY_AUTH_TOKEN_PATH"]
    )
    pols = summary["policies"]
    # two actors, two processes, neither of them the driver
    assert len({p["pid"] for p in pols}) == 2 and run.args and all(p["pid"] for p in pols)
    assert all(p["env_frames"] >= 2500 and p["version"] >= 1 for p in pols), pols
    exp = tmp_path / "pbt"
    events = [json.loads(ln) for ln in (exp / "pbt.jsonl").read_text().splitlines()]
    copies = [e for e in events if e["event"] == "update" and e["donor"] is not None]
    assert copies and all(e["version_jump"] == 6 for e in copies), events
    moved = summary["league"]["weight_transfers"]
    assert moved, summary["league"]
    pairs = {(f"p{e['policy']}", f"p{e['donor']}") for e in copies}
    for t in moved:
        assert (t["receiver"], t["donor"]) in pairs
        assert t["received"] == t["checksum"]  # what the receiver loaded is what was sent
        assert t["version"] - t["version_before"] == 6  # max_policy_lag + 1
    # a receiver that trained after its copy masked the samples it had in flight
    final = {f"p{p['policy']}": p for p in pols}
    trained_after = [t for t in moved if final[t["receiver"]]["version"] > t["version"]]
    assert trained_after, (moved, pols)  # copies come early enough in the budget to see it
    assert all(final[t["receiver"]]["masked_batches"] >= 1 for t in trained_after), pols
    assert "PBT: policy" in run.stderr
    state = json.loads((exp / "ray_league.json").read_text())
    assert state["pbt"]["last_update"] != [0, 0]

    ev = subprocess.run(cli("eval", "--checkpoint", str(exp), "--policy", "1", "--max_steps",
                            "20"), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-3000:]


def _wait_for(what: str, check, timeout: float, proc: subprocess.Popen):
    """Poll ``check()`` until it returns something true (generous timeouts: the 2-core box
    may be loaded 10x over; a hang still fails)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read()[-3000:]
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}:\n{err}")
        got = check()
        if got:
            return got
        time.sleep(0.5)
    proc.kill()  # what the driver said, for the report
    err = proc.communicate()[1][-3000:]
    raise AssertionError(f"timed out waiting for {what}; the driver said:\n{err}")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _members_log(exp: Path, k: int) -> list[dict]:
    try:
        lines = (exp / "members" / f"p{k}" / "member.log").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(ln) for ln in lines if ln.strip()]


def test_a_member_on_a_killed_node_restarts_from_its_checkpoint_and_the_league_keeps_its_payoff(
    tmp_path, ray_env
):
    """Simulated nodes (ray.cluster_utils.Cluster): a head and a second node with one CPU
    each, one doom_duel member on each. When the second node is killed mid-run and a new
    node joins, Ray restarts that member there; it resumes from its last checkpoint, the
    driver's payoff table has lost no match, and both members keep training."""
    from ray.cluster_utils import Cluster  # noqa: PLC0415 - after the token is set

    doom_shm = lambda: {n for n in os.listdir("/dev/shm") if n.startswith("ViZDoom")}  # noqa: E731
    shm_before = doom_shm()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    proc = refused = None
    try:
        victim_node = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        exp = tmp_path / "duel"
        # a driver holding another token is refused with a message that says so (meanwhile)
        wrong = tmp_path / "wrong_token"
        wrong.write_text(os.urandom(16).hex())
        refused = subprocess.Popen(
            cli("train", "--ray", cluster.address, "--num_policies", "2", "--train_dir",
                str(tmp_path), "--experiment", "refused"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RAY_AUTH_TOKEN_PATH": str(wrong)},
        )  # fmt: skip
        proc = subprocess.Popen(
            cli("train", "--env", "doom_duel", "--env_frameskip", "2", "--timelimit", "0.05",
                *TINY, "--ray", cluster.address, "--num_policies", "2",
                "--save_every_sec", "3", "--train_for_env_steps", "10000000",
                "--train_for_seconds", "400", "--train_dir", str(tmp_path),
                "--experiment", "duel"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        def victim():
            for k in (0, 1):
                log = _members_log(exp, k)
                if log and log[-1]["node"] == victim_node.node_id:
                    return (k,)  # truthy for member 0 too
            return None

        (k,) = _wait_for("a member on the second node", victim, 300, proc)
        manifest = exp / "members" / f"p{k}" / "population.json"

        def ready():
            league = _read_json(exp / "ray_league.json")
            saved = _read_json(manifest)
            return (league, saved) if league and league["matches"] >= 1 and saved else None

        before, saved = _wait_for("a scored match and a member checkpoint", ready, 400, proc)
        checkpoint_frames = saved["policies"][0]["env_steps"] * 2  # frameskip 2
        old_pid = _members_log(exp, k)[-1]["pid"]

        cluster.remove_node(victim_node)  # the machine is gone ...
        cluster.add_node(num_cpus=1)  # ... and another one joins

        _wait_for("the member's restart", lambda: len(_members_log(exp, k)) >= 2, 300, proc)

        def seen_by_driver():
            members = (_read_json(exp / "ray_league.json") or {}).get("members", [{}] * 2)
            return members[k].get("restarts", 0) >= 1

        _wait_for("the driver to see it", seen_by_driver, 300, proc)
        time.sleep(5)  # some training after the restart
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=240)
        _, refused_err = refused.communicate(timeout=120)
    finally:
        for p in (proc, refused):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
        cluster.shutdown()
        # a failed run's driver was killed: end the games its members' deaths left behind
        from gristmill.apps.doom.ray_member import reap_games_of_dead_members  # noqa: PLC0415
        from gristmill.kernels.shm_cli import clean  # noqa: PLC0415

        reap_games_of_dead_members(str(tmp_path / "duel" / "members"))
        members = {r["pid"] for k in (0, 1) for r in _members_log(tmp_path / "duel", k)}
        deadline = time.monotonic() + 60  # a killed node's workers may take a while to go
        while any(procfs.alive(p) for p in members) and time.monotonic() < deadline:
            time.sleep(0.2)
        clean(pids=members)  # and the shared memory of the members that died with it
    assert refused.returncode != 0 and "refused this driver's token" in refused_err, refused_err
    assert proc.returncode == 130, err[-3000:]  # interrupted, and said so
    # the games that died with the node left VizDoom's entries: the driver removed them
    # (from the member's ledger of its games), as it did the live games' of the others
    assert doom_shm() <= shm_before, doom_shm() - shm_before
    summary = last_json(out)
    assert summary["ray"]["member_restarts"][k] >= 1, summary["ray"]
    member = summary["policies"][k]
    assert member["pid"] != old_pid and member["resumed_frames"] >= checkpoint_frames
    assert member["env_frames"] >= member["resumed_frames"]
    assert f"member p{k} restarted" in err
    # the payoff table survived: no pair lost a recorded match
    after = summary["league"]["payoff"]
    names = before["payoff"]["members"]
    rec_before, rec_after = before["payoff"]["record"], after["record"]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            ia, ib = after["members"].index(a), after["members"].index(b)
            assert sum(rec_after[ia][ib]) >= sum(rec_before[i][j]), (a, b)
    assert summary["league"]["matches"] >= before["matches"]
    assert all(p["version"] >= 1 for p in summary["policies"])

"""`gristmill-doom` in subprocesses on a tiny budget: train, resume, eval to video, Ctrl-C and
a killed rollout worker — each leaving no game process and nothing in /dev/shm (gristmill's
own segments and VizDoom's entries of the games)."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gristmill.envs.doom import game_instances, game_processes
from gristmill.kernels import procfs

TINY = [
    "--env",
    "doom_basic",
    "--num_workers",
    "1",
    "--num_envs_per_worker",
    "2",
    "--rollout",
    "8",
    "--batch_size",
    "32",
    "--rnn_size",
    "32",
    "--res_w",
    "64",
    "--res_h",
    "48",
    "--stats_every_sec",
    "1",
    "--torch_threads",
    "1",
]


ROOT = Path(__file__).resolve().parents[2]


def cli(*args, **kw):
    return [sys.executable, "-m", "gristmill.apps.doom", *args]


def shm_of(pid):
    return [p for p in os.listdir("/dev/shm") if f"gristmill_{pid}_" in p]


def last_json(stdout: str) -> dict:
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])


def orphan_games() -> set[int]:
    """VizDoom games whose parent is gone (re-parented to init): leaked by someone.

    Games of other live runs (a benchmark in parallel) have live parents and do not count.
    """
    return {p for p in game_processes() if (s := procfs.stat(p)) is not None and s.ppid == 1}


@pytest.fixture
def no_new_games():
    before = orphan_games()
    yield
    deadline = time.time() + 10
    while orphan_games() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not orphan_games() - before, "VizDoom processes outlived the trainer"


def test_help_lists_options():
    out = subprocess.run(cli("train", "--help"), capture_output=True, text=True, check=True)
    assert "--train_for_env_steps" in out.stdout and "--with_vtrace" in out.stdout


def test_train_resume_and_eval(tmp_path, no_new_games):
    args = [*TINY, "--train_dir", str(tmp_path), "--experiment", "smoke"]
    run = subprocess.run(
        cli("train", *args, "--train_for_env_steps", "1000"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = last_json(run.stdout)
    assert summary["env_frames"] >= 1000 and summary["version"] >= 1
    # the learner stops at the budget: at most one batch (32 samples x frameskip 4) over it
    assert summary["env_frames"] < 1000 + 32 * 4
    exp = tmp_path / "smoke"
    assert json.loads((exp / "config.json").read_text())["batch_size"] == 32
    ckpts = sorted((exp / "checkpoints" / "p0").glob("checkpoint_*.pt"))
    assert ckpts and not list((exp / "checkpoints").rglob("*.tmp*"))
    assert (exp / "population.json").exists()  # the manifest naming every policy's file
    assert list((exp / "tb").glob("events.out.tfevents.*"))
    assert "frames" in run.stderr and "fps" in run.stderr  # the console progress line

    again = subprocess.run(
        cli("train", *args, "--train_for_env_steps", "2000"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr
    resumed = last_json(again.stdout)
    assert resumed["version"] > summary["version"] and resumed["env_frames"] >= 2000
    assert len(list((exp / "checkpoints" / "p0").glob("checkpoint_*.pt"))) <= 2  # keep

    video = tmp_path / "basic.mp4"
    ev = subprocess.run(
        cli("eval", "--checkpoint", str(exp), "--video", str(video), "--max_steps", "40"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads(ev.stdout)
    assert len(result["episode_rewards"]) == 1 and video.stat().st_size > 1000


def test_quickstart_trains_evaluates_and_says_where_everything_is(tmp_path, no_new_games):
    """`quickstart` on tiny settings: one JSON line on stdout, the checkpoint, curve PNG,
    video and summary.json in the experiment dir; `plot` overlays runs into one PNG."""
    run = subprocess.run(
        cli("quickstart", *TINY, "--train_dir", str(tmp_path), "--train_for_env_steps", "3000",
            "--episodes", "1"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.stdout.splitlines()) == 1  # stdout is the summary, nothing else
    summary = json.loads(run.stdout)
    exp = tmp_path / "quickstart"
    assert summary["app"] == "gristmill-doom" and summary["frames"] >= 3000
    assert summary["experiment_dir"] == str(exp) and len(summary["eval_rewards"]) == 1
    for key in ("checkpoint", "curves_png", "video"):
        assert Path(summary[key]).is_file() and Path(summary[key]).stat().st_size > 1000, key
    assert json.loads((exp / "summary.json").read_text()) == summary
    for where in (summary["checkpoint"], summary["curves_png"], summary["video"]):
        assert where in run.stderr  # the closing notice names every file
    status = [ln for ln in run.stderr.splitlines() if re.match(r"\[\s*[\d.]+s\] frames", ln)]
    assert status and all(re.search(r"\| version \d+$", ln) for ln in status)  # none split

    out = tmp_path / "both.png"
    plot = subprocess.run(
        cli("plot", str(exp), str(exp), "--out", str(out)), capture_output=True, text=True
    )
    assert plot.returncode == 0, plot.stderr[-3000:]
    assert out.read_bytes()[:4] == b"\x89PNG"


def train_until_stopped(tmp_path, experiment: str, stdout) -> subprocess.Popen:
    """``gristmill-doom train`` on the tiny settings with no frame budget to reach (the test
    stops it); stderr is piped, text mode."""
    return subprocess.Popen(
        cli("train", *TINY, "--train_dir", str(tmp_path), "--experiment", experiment,
            "--train_for_env_steps", "100000000", "--save_every_sec", "1000"),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_crashed_game_killed_worker_and_ctrl_c(tmp_path, no_new_games):
    proc = train_until_stopped(tmp_path, "intr", stdout=subprocess.PIPE)
    try:
        # Both envs made: the first game has finished starting (a game killed while starting
        # fails the worker's start instead, another path).
        worker, games = wait_for("the rollout worker's 2 games", lambda: rollout_worker(proc.pid))
        # A game process dies: the worker reports its env and re-creates it.
        os.kill(min(games), signal.SIGKILL)
        wait_for(
            "the worker to re-create the env or die",
            lambda: is_gone_or_zombie(worker) or game_instances(worker).keys() - games.keys(),
        )
        # The whole worker dies: the trainer reports it, reaps its games and restarts it.
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone (and being restarted): the assertions below still hold
        wait_for(
            "the restarted worker's games",
            lambda: (r := rollout_worker(proc.pid)) and r[0] != worker,
        )
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # the trainer's faulthandler: every thread's stack
            time.sleep(2)
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the trainer did not stop within 120 s of Ctrl-C; stacks:\n{err[-8000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # VizDoom's client sometimes segfaults when its game dies: then the whole worker is
    # reported and restarted instead of the one env.
    assert ("crashed" in err and "re-created" in err) or "exited with code -11" in err, err[-3000:]
    assert "rollout worker 0" in err and "restarting" in err, err[-3000:]
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err
    assert not shm_of(proc.pid), "shared memory left behind"
    assert not vizdoom_shm(set(games.values())), "VizDoom shared memory left behind"
    # every step inference served is accounted for: trained, dropped, lost with the killed
    # worker's unfinished slots, or in flight at the stop
    summary = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert summary["steps"]["balanced"], summary["steps"]
    assert summary["sampler"]["worker_restarts"] >= 1, summary["sampler"]


def vizdoom_shm(instances) -> list[str]:
    """VizDoom's /dev/shm entries (``ViZDoomSM<id>``, ``ViZDoomMQ...<id>``) of ``instances``."""
    return sorted(
        n
        for n in os.listdir("/dev/shm")
        if n.startswith("ViZDoom") and any(n.endswith(i) for i in instances)
    )


def game_children(pid) -> list[int]:
    """VizDoom games whose parent is ``pid``, running or exited but not reaped (zombies)."""
    return [c for c in procfs.children(pid) if (s := procfs.stat(c)) and s.comm == "vizdoom"]


def is_gone_or_zombie(pid) -> bool:
    return not procfs.alive(pid)


def wait_for(what, check, timeout=120):
    """Poll ``check()`` until it returns something truthy (generous deadline: loaded box)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def rollout_worker(trainer_pid, games=2):
    """The trainer's rollout worker once it runs ``games`` games: ``(pid, {game pid: id})``."""
    for c in procfs.children(trainer_pid):
        python = any(b"python" in a for a in procfs.cmdline(c))
        instances = game_instances(c)
        if python and len(instances) >= games:
            return c, instances
    return None


def trained_frames(lines: list[str]) -> int:
    """Frames in the trainer's latest progress line (0 before the first)."""
    for line in reversed(lines):
        m = re.search(r"frames\s+([\d,]+) \|", line)
        if m:
            return int(m.group(1).replace(",", ""))
    return 0


def test_hard_killed_worker_leaves_no_vizdoom_shm_or_games(tmp_path, no_new_games):
    """A worker SIGKILLed just after one of its games died (the case where VizDoom's client
    segfaults): the worker can clean up nothing, and the dead game's instance id can no longer
    be read from /proc. The trainer ends and reaps the worker's games (the dead one a zombie)
    and removes their VizDoom /dev/shm entries when it restarts the worker, and again at exit."""
    proc = train_until_stopped(tmp_path, "killed", stdout=subprocess.DEVNULL)
    lines: list[str] = []

    def read_stderr():
        for line in proc.stderr:
            lines.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        # Trained frames: the worker made all its envs (and reported their games) and steps.
        wait_for("training to start", lambda: trained_frames(lines) > 0)
        worker, games = wait_for("the rollout worker's 2 games", lambda: rollout_worker(proc.pid))
        old_ids = set(games.values())
        assert vizdoom_shm(old_ids), "VizDoom made no /dev/shm entries: the test is moot"
        # Freeze the worker so it cannot notice its game dying and clean up after it.
        os.kill(worker, signal.SIGSTOP)
        victim = next(iter(games))
        os.kill(victim, signal.SIGKILL)
        wait_for("the killed game to exit", lambda: is_gone_or_zombie(victim))
        os.kill(worker, signal.SIGKILL)

        _, new_games = wait_for(
            "the restarted worker's games",
            lambda: (r := rollout_worker(proc.pid)) and r[0] != worker and r,
        )
        assert not set(new_games.values()) & old_ids
        # The restart's cleanup runs right after the new worker starts: allow it to finish.
        wait_for(
            "the old games' shm and processes to go",
            lambda: not vizdoom_shm(old_ids) and not game_children(proc.pid),
            timeout=60,
        )
        assert vizdoom_shm(set(new_games.values())), "the live worker's entries must stay"
        all_ids = old_ids | set(new_games.values())
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # a failed check: still let the trainer clean up
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=30)
    err = "".join(lines)
    assert "rollout worker 0" in err and "exited with code -9" in err, err[-3000:]
    assert proc.returncode == 130, err[-3000:]
    assert not vizdoom_shm(all_ids), "VizDoom shared memory left behind"
    assert not set(game_instances().values()) & all_ids, "VizDoom games outlived the trainer"
    assert not shm_of(proc.pid), "shared memory left behind"


def test_self_play_duel_trains_both_players(tmp_path, no_new_games):
    run = subprocess.run(
        cli(
            "train",
            *TINY,
            "--env",
            "doom_duel",
            "--env_frameskip",
            "2",
            "--timelimit",
            "0.05",
            "--train_dir",
            str(tmp_path),
            "--train_for_env_steps",
            "1200",
        ),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = last_json(run.stdout)
    assert summary["env_frames"] >= 1200 and summary["version"] >= 1
    # Both players act every step, so each served exactly half the steps: trained steps beyond
    # half of them can only be if the learner trained on both players' trajectories.
    books = summary["steps"]
    assert books["balanced"] and books["trained"] > books["served"] / 2, books
    # 0.05-minute matches end for both players at once: both report their episodes.
    assert summary["episodes"] >= 2 and summary["true_objective_mean_100"] is not None


def test_a_failing_learner_stops_the_run_and_is_reported(tmp_path, no_new_games, shm_clean):
    """An exception in the learner thread ends the run with "learner failed" (the cause
    chained), after the workers and games are stopped and the shared memory released."""
    from gristmill.apps.config_cli import config_from_args
    from gristmill.apps.doom.cli import _parser
    from gristmill.apps.doom.config import TrainConfig
    from gristmill.apps.doom.trainer import DoomTrainer

    ns = _parser().parse_args(
        ["train", *TINY, "--train_dir", str(tmp_path), "--experiment", "boom"]
    )
    trainer = DoomTrainer(config_from_args(TrainConfig, ns))

    def boom(batch):
        raise ValueError("boom in train")

    trainer.learner.train = boom
    with pytest.raises(RuntimeError, match="learner failed") as info:
        trainer.run()
    assert isinstance(info.value.__cause__, ValueError)
    assert all(p is None or not p.is_alive() for p in trainer.supervisor.pool.procs)


# ---------------------------------------------------------------- populations (issue 14)
def run_train(*args, timeout=300):
    out = subprocess.run(cli("train", *TINY, *args), capture_output=True, text=True,
                         timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return last_json(out.stdout), out.stderr


def test_every_policy_trains_checkpoints_and_resumes(tmp_path, no_new_games):
    args = ["--num_policies", "2", "--train_dir", str(tmp_path), "--experiment", "pop",
            "--pbt_mix_policies_in_one_env", "false",
            "--snapshot_every_env_steps", "300"]  # fmt: skip
    summary, err = run_train(*args, "--train_for_env_steps", "600")
    pols = summary["policies"]
    assert [p["policy"] for p in pols] == [0, 1]
    # Sample Factory's budget: every policy trained for it
    assert all(p["env_frames"] >= 600 and p["version"] >= 1 for p in pols), pols
    exp = tmp_path / "pop"
    manifest = json.loads((exp / "population.json").read_text())
    assert [p["name"] for p in manifest["policies"]] == ["p0", "p1"]
    for k in (0, 1):
        assert list((exp / "checkpoints" / f"p{k}").glob("checkpoint_*.pt"))
    assert summary["steps"]["balanced"], summary["steps"]

    manifest = json.loads((exp / "population.json").read_text())
    window = manifest["components"]["episodes"]
    assert window["num_episodes"] == [p["episodes"] for p in pols]
    again, err = run_train(*args, "--train_for_env_steps", "1200")
    assert "resumed from" in err
    # the episode window (what PBT ranks on) came back: counts go on from where they were
    for before, after in zip(pols, again["policies"]):
        assert after["episodes"] >= before["episodes"]
    resumed = json.loads((exp / "population.json").read_text())["components"]["episodes"]
    assert sum(window["num_episodes"]) > 0 and max(resumed["num_episodes"]) <= 100
    for k in (0, 1):  # fewer than 100 episodes: the saved window is the head of the new one
        old = window["objectives"][k]
        assert resumed["objectives"][k][: len(old)] == old
    # the snapshots came back with the population, and more joined
    first = summary["league"]["snapshots"]
    assert first and again["league"]["snapshots"][: len(first)] == first
    for before, after in zip(pols, again["policies"]):
        assert after["version"] > before["version"] and after["env_frames"] >= 1200

    ev = subprocess.run(cli("eval", "--checkpoint", str(exp), "--policy", "1", "--max_steps",
                            "20"), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert len(json.loads(ev.stdout)["episode_rewards"]) == 1


def test_pbt_replaces_a_policy_and_its_stale_samples_are_masked(tmp_path, no_new_games):
    """Short PBT periods and zero gaps: the worse policy copies the better one's weights (its
    version jumps by max_policy_lag + 1), so the samples it had in flight are too stale and are
    masked in its next batch (the learner's valids fraction drops below 1); every event is in
    pbt.jsonl."""
    summary, err = run_train(
        "--num_policies", "2", "--with_pbt", "true", "--pbt_start_mutation", "0",
        "--pbt_period_env_steps", "400", "--pbt_replace_reward_gap", "0",
        "--pbt_replace_reward_gap_absolute", "0", "--pbt_replace_fraction", "0.5",
        "--max_policy_lag", "5", "--train_dir", str(tmp_path), "--experiment", "pbt",
        "--pbt_mix_policies_in_one_env", "false",  # no other policy's steps to mask
        "--train_for_env_steps", "3000",
    )  # fmt: skip
    events = [json.loads(ln) for ln in (tmp_path / "pbt" / "pbt.jsonl").read_text().splitlines()]
    assert [e["policy"] for e in events if e["event"] == "init"] == [0, 1]
    copies = [e for e in events if e["event"] == "update" and e["donor"] is not None]
    assert copies, events
    assert all(e["version_jump"] == 6 for e in copies)
    receivers = {e["policy"] for e in copies}
    masked = {p["policy"]: p["masked_batches"] for p in summary["policies"]}
    assert any(masked[k] >= 1 for k in receivers), (masked, copies)
    assert "PBT: policy" in err
    assert len(summary["league"]["pbt_events"]) == len(
        [e for e in events if e["event"] == "update"]
    )


def test_self_play_duel_between_two_policies_is_scored(tmp_path, no_new_games):
    """doom_duel with 2 policies mixed per agent and frozen snapshots as opponents: matches
    between different members update the payoff and rating tables, both policies train, and
    gristmill-doom match plays them against each other and the bots."""
    summary, err = run_train(
        "--env", "doom_duel", "--env_frameskip", "2", "--timelimit", "0.05",
        "--num_policies", "2", "--train_dir", str(tmp_path), "--train_for_env_steps", "1200",
        "--snapshot_every_env_steps", "400", "--snapshot_opponent_prob", "0.5",
    )  # fmt: skip
    assert all(p["version"] >= 1 for p in summary["policies"])
    assert summary["league"]["matches"] >= 1, summary["league"]
    assert summary["league"]["payoff"] is not None
    assert summary["league"]["ratings"]["names"][:2] == ["p0", "p1"], summary["league"]["ratings"]
    # frozen snapshots joined the league; what they played was served but not trained on
    snaps = summary["league"]["snapshots"]
    assert snaps and "joins the league" in err
    assert set(snaps) <= set(summary["league"]["ratings"]["names"])
    assert summary["steps"]["balanced"], summary["steps"]

    # gristmill-doom match: the two policies in a duel and each against a bot
    video = tmp_path / "duel.mp4"
    exp = summary["experiment_dir"]
    out = subprocess.run(
        cli("match", f"{exp}:0", f"{exp}:1", "--episodes", "1", "--bot_episodes", "1",
            "--timelimit", "0.05", "--video", str(video)),
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = last_json(out.stdout)
    assert [r["duel"]["games"] for r in result["rows"]] == [1, 1]
    assert [r["vs_bots"]["games"] for r in result["rows"]] == [1, 1]
    assert result["draws"] + sum(r["duel"]["wins"] for r in result["rows"]) == 1
    assert "| player | duel wins |" in out.stderr and video.stat().st_size > 1000
    # one progress line per finished game, on stderr (stdout holds only the JSON result)
    # (not anchored at a line start: the games' own output may leave a line unfinished)
    assert re.search(r"duel 1/1 \(seed 0\): frags A -?\d+ B -?\d+, (A won|B won|draw)\n",
                     out.stderr), out.stderr[-2000:]  # fmt: skip
    assert len(re.findall(r"vs bot 1/1 \(seed 0\): frags -?\d+, deaths \d+\n", out.stderr)) == 2

    # a frozen snapshot (RUN:p<k>@<version>, weights only: the run's config) against the
    # uniformly random baseline, in two matches started at once: each claims its own port
    # (both used to pick the same free port and join each other's games)
    procs = [
        subprocess.Popen(
            cli("match", f"{exp}:{snaps[0]}", "random", "--episodes", "1", "--bot_episodes",
                "0", "--timelimit", "0.05", "--seed", str(seed)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for seed in (0, 1)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for seed, proc, (stdout, stderr) in zip((0, 1), procs, outs):
        assert proc.returncode == 0, stderr[-3000:]
        result = last_json(stdout)
        checkpoints = [r["checkpoint"] for r in result["rows"]]
        assert checkpoints[0].endswith(f"snapshots/{snaps[0]}.pt") and checkpoints[1] == "random"
        assert [r["duel"]["games"] for r in result["rows"]] == [1, 1]
        assert result["seed"] == seed
    # bench/doom_ladder.py fits the rating ladder on match results
    results = tmp_path / "duels.jsonl"
    results.write_text("".join(stdout for stdout, _ in outs))
    ladder = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "doom_ladder.py"), str(results), "--bootstrap", "20"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ladder.returncode == 0, ladder.stderr[-2000:]
    assert f"| {snaps[0]} | random | 2 |" in ladder.stdout, ladder.stdout
    assert "(anchor)" in ladder.stdout

    # SIGTERM stops a match at once and closes its games before it exits
    proc = subprocess.Popen(
        cli("match", f"{exp}:{snaps[0]}", "random", "--episodes", "3", "--bot_episodes", "0",
            "--timelimit", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while len(games := game_processes(proc.pid)) < 2 and proc.poll() is None:
            assert time.time() < deadline, "the match's games did not start"
            time.sleep(0.2)
        time.sleep(1.0)  # into the duel
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "match stopped by SIGTERM" in stderr
    assert not [g for g in games if procfs.alive(g)], "games outlived the match"

    # the match polls its stop flag before every step too: a KeyboardInterrupt raised by the
    # signal handler inside a callback that swallows exceptions (a ctypes callback of numba's
    # JIT cache once did) used to let the match play on and exit 0
    from gristmill.apps.doom.match import match

    polls = []
    with pytest.raises(KeyboardInterrupt):
        match(f"{exp}:{snaps[0]}", "random", episodes=2, bot_episodes=0, timelimit=0.05,
              should_stop=lambda: polls.append(1) or len(polls) > 5)  # fmt: skip
    assert len(polls) == 6  # stopped at the first poll that said so, inside the first duel
    assert not game_processes(os.getpid()), "games outlived the stopped match"


def _scalars(run_dir, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = []
    for f in sorted((Path(run_dir) / "tb").glob("events.out.tfevents*")):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            values += [e.value for e in acc.Scalars(tag)]
    return values


def test_pbt_shapes_rewards_per_policy_and_resume_restores_the_coefficients(tmp_path, no_new_games):
    """Sample Factory's PBT perturbs the duel's shaping coefficients per policy (here every one
    of policy 1's, mutation rate 1): pbt.jsonl logs each value before and after, per-policy
    TensorBoard shows them, the checkpoint keeps them, and resuming (with another seed, whose
    fresh draws would differ) restores them into the table the workers read."""
    import torch
    from gristmill.apps.doom.config import TrainConfig
    from gristmill.apps.doom.trainer import DoomTrainer
    from gristmill.envs.doom.shaping import scheme_vector
    from gristmill.samplers.rollout import RolloutChannels

    args = ["--env", "doom_duel", "--env_frameskip", "2", "--timelimit", "0.05",
            "--num_policies", "2", "--with_pbt", "true", "--pbt_mutation_rate", "1",
            "--train_dir", str(tmp_path), "--experiment", "shape"]  # fmt: skip
    run_train(*args, "--train_for_env_steps", "200")
    exp = tmp_path / "shape"
    log = (exp / "pbt.jsonl").read_text().splitlines()
    init = {e["policy"]: e for e in map(json.loads, log)}
    assert init[0]["mutations"] == []  # policy 0 keeps the defaults
    shaped = [m for m in init[1]["mutations"] if m["path"][0] in ("delta", "selected_weapon")]
    assert len(shaped) == len(scheme_vector(init[0]["reward_shaping"]))
    assert all(m["before"] != m["after"] for m in shaped if m["before"] != 0)
    frag_up = init[1]["reward_shaping"]["delta"]["FRAGCOUNT"][0]
    assert frag_up != 1.0
    tag = "{}/pbt/zz_pbt/rew_FRAGCOUNT_0"
    p1 = _scalars(exp, tag.format("p1"))
    assert p1 and p1 == pytest.approx([frag_up] * len(p1))  # TensorBoard stores float32
    assert set(_scalars(exp, tag.format("p0"))) == {1.0}

    manifest = json.loads((exp / "population.json").read_text())
    saved = torch.load(exp / manifest["policies"][1]["checkpoint"], weights_only=False)
    assert saved["reward_shaping"]["delta"]["FRAGCOUNT"][0] == pytest.approx(frag_up)

    # a resumed run (in-process up to its start): each policy's row of the channels' table
    cfg = TrainConfig(**{**json.loads((exp / "config.json").read_text()), "seed": 9})
    trainer = DoomTrainer(cfg)
    trainer._resume()
    assert (exp / "pbt.jsonl").read_text().splitlines() == log  # no fresh starting values
    channels = RolloutChannels(trainer.layout)
    try:
        trainer.league.assign_initial(channels.arrays)
        for k in (0, 1):
            expect = scheme_vector(trainer.league.population[k].reward_shaping)
            assert np.array_equal(channels.arrays["policy_params"][k], expect)
        expect1 = scheme_vector(json.loads(json.dumps(saved["reward_shaping"])))
        np.testing.assert_allclose(channels.arrays["policy_params"][1], expect1)
    finally:
        channels.close()


def test_reward_shaping_override_reaches_the_table_the_workers_read(tmp_path, no_new_games):
    """--reward_shaping replaces the env's default coefficients for every policy of a fresh
    run: the channels' policy_params rows (what each player's env shapes with) hold them."""
    from gristmill.apps.doom.config import TrainConfig
    from gristmill.apps.doom.trainer import DoomTrainer
    from gristmill.envs.doom import doom_spec
    from gristmill.envs.doom.shaping import default_scheme, override_scheme, scheme_vector
    from gristmill.samplers.rollout import RolloutChannels

    cfg = TrainConfig(env="doom_duel", num_policies=2, num_workers=1, num_envs_per_worker=2,
                      reward_shaping="DAMAGECOUNT=0.15,-0.15", train_dir=str(tmp_path),
                      experiment="override")
    trainer = DoomTrainer(cfg)
    trainer._resume()
    expect = scheme_vector(override_scheme(default_scheme(doom_spec("doom_duel").shaping),
                                           "DAMAGECOUNT=0.15,-0.15"))
    assert not np.array_equal(expect, scheme_vector(default_scheme("deathmatch_v1")))
    channels = RolloutChannels(trainer.layout)
    try:
        trainer.league.assign_initial(channels.arrays)
        for k in (0, 1):
            assert np.array_equal(channels.arrays["policy_params"][k], expect)
    finally:
        channels.close()

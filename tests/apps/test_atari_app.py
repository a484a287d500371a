"""`gristmill-atari train` (CleanRL PPO on the env pool) in a subprocess on a tiny budget."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from gristmill.kernels import procfs

pytestmark = pytest.mark.usefixtures("shm_clean")  # tests/conftest.py: no gristmill segment left


def _train_cmd(tmp_path, total: int, stats_every_sec: float = 0) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gristmill.apps.atari",
        "train",
        "--env",
        "Pong-v5",
        "--train_dir",
        str(tmp_path),
        "--num_envs",
        "2",
        "--num_steps",
        "16",
        "--total_timesteps",
        str(total),
        "--num_workers",
        "1",
        "--stats_every_sec",
        str(stats_every_sec),
        "--save_every_sec",
        "3600",
    ]


def test_pong_smoke(tmp_path):
    cmd = _train_cmd(tmp_path, 64, stats_every_sec=1)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 64 and summary["updates"] == 2
    exp = tmp_path / "Pong-v5"
    assert list((exp / "checkpoints").glob("checkpoint_*.pt"))
    assert list((exp / "tb").glob("events.out.tfevents.*"))
    assert "SPS" in run.stderr


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err_file:
        proc = subprocess.Popen(
            _train_cmd(tmp_path, 10**9),
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            start_new_session=True,
        )
    try:
        # Wait for three updates (a stats line each, stats_every_sec=0), then SIGTERM.
        deadline = time.monotonic() + 180
        while log.read_text().count("SPS") < 3:
            assert proc.poll() is None, "the trainer ended before three updates"
            assert time.monotonic() < deadline, "no three updates in 180 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = log.read_text()
    assert proc.returncode == 130, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] == "SIGTERM"
    assert "stopping on SIGTERM" in err
    steps = summary["steps"]
    assert steps >= 3 * 32 and steps % 32 == 0  # whole updates only
    ckpts = sorted((tmp_path / "Pong-v5" / "checkpoints").glob("checkpoint_*.pt"))
    assert ckpts, "no checkpoint written on SIGTERM"
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no pool worker outlived the trainer

    # Resume: one more update on top of the saved state.
    run = subprocess.run(
        _train_cmd(tmp_path, steps + 32), capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resumed from" in run.stderr and f"{steps:,} steps" in run.stderr
    resumed = json.loads(run.stdout.strip().splitlines()[-1])
    assert resumed["steps"] == steps + 32
    assert resumed["updates"] == summary["updates"] + 1


def _forked_children(pid: int) -> list[int]:
    """Child processes forked from ``pid`` (same command line): its env pool workers."""
    return [c for c in procfs.children(pid) if procfs.cmdline(c) == procfs.cmdline(pid)]


def test_a_killed_pool_worker_is_replaced_and_its_cut_games_are_not_episodes(tmp_path):
    """SIGKILL the env pool's worker mid-run: the trainer finishes its budget, reports the
    restart, and does not log the two games the kill cut short as episodes (a Pong game
    lasts far longer than this run)."""
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err_file:
        proc = subprocess.Popen(_train_cmd(tmp_path, 32 * 6), stdout=subprocess.PIPE,
                                stderr=err_file, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while log.read_text().count("SPS") < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no two updates in 180 s"
            time.sleep(0.2)
        (worker,) = _forked_children(proc.pid)
        os.kill(worker, signal.SIGKILL)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["pool_worker_restarts"] == 1 and summary["steps"] == 32 * 6
    assert summary["episodes"] == 0

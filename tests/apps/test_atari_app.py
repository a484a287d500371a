"""`gristmill-atari train` (CleanRL PPO on the env pool) in a subprocess on a tiny budget."""

import json
import subprocess
import sys


def test_pong_smoke(tmp_path):
    cmd = [
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
        "64",
        "--num_workers",
        "1",
        "--stats_every_sec",
        "1",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 64 and summary["updates"] == 2
    exp = tmp_path / "Pong-v5"
    assert list((exp / "checkpoints").glob("checkpoint_*.pt"))
    assert list((exp / "tb").glob("events.out.tfevents.*"))
    assert "SPS" in run.stderr

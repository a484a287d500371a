"""``gristmill-generals``: play bots, write replays, render them (subprocess smoke tests)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from gristmill.envs.generals import Replay

CLI = [sys.executable, "-m", "gristmill.apps.generals"]


def run(*args, cwd=None):
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_and_entry_point():
    assert "play" in run("--help") and "render" in run("--help")
    exe = Path(sys.executable).with_name("gristmill-generals")
    assert exe.exists() or shutil.which("gristmill-generals"), "entry point not installed"


def test_play_writes_replays_that_render(tmp_path):
    out = run("play", "general", "random", "--games", "4", "--truncation", "300",
              "--replays", str(tmp_path / "reps"), "--keep", "2")
    assert "| general | random | 4 |" in out
    reps = sorted((tmp_path / "reps").glob("*.npz"))
    assert len(reps) == 2
    rep = Replay.load(reps[0])
    assert rep.num_ticks > 0 and "A" in rep.layout
    out = run("render", str(reps[0]), "--out", str(tmp_path / "g.gif"), "--view", "0")
    assert (tmp_path / "g.gif").stat().st_size > 1000
    text = run("render", str(reps[0]), "--ansi", "--tick", "10")
    assert text.startswith("t=10")


def test_table_and_bad_arguments(tmp_path):
    out = run("table", "--games", "4", "--truncation", "200", "--bots", "random", "expander")
    assert "| random | expander | 4 |" in out
    proc = subprocess.run(CLI + ["play", "general", "nobody"], capture_output=True, text=True)
    assert proc.returncode == 2 and "neither a bot" in proc.stderr

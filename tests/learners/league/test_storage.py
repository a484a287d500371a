"""learners.league.storage: a writer SIGKILLed mid-write leaves a temporary file that the next
write removes; a live writer's temporary file is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from gristmill.learners.league.storage import atomic_torch_save, torch_load


def test_a_dead_writers_temporary_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_tmp = tmp_path / f"checkpoint_000000001_10.pt.tmp{int(dead.stdout)}"
    live_tmp = tmp_path / f"checkpoint_000000002_20.pt.tmp{os.getppid()}"
    dead_tmp.write_bytes(b"half a checkpoint")
    live_tmp.write_bytes(b"being written")
    atomic_torch_save({"w": torch.ones(1)}, str(tmp_path / "checkpoint_000000003_30.pt"))
    assert not dead_tmp.exists() and live_tmp.exists()
    assert torch_load(str(tmp_path / "checkpoint_000000003_30.pt"))["w"].item() == 1.0

"""learners.league.storage: a writer SIGKILLed mid-write leaves a temporary file that the next
write removes; a live writer's temporary file is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from gristmill.learners.league.storage import (
    atomic_torch_save,
    checkpoint_name,
    list_checkpoints,
    prune_checkpoints,
    torch_load,
)


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


def test_checkpoints_list_in_training_order_and_prune_keeps_the_newest_and_the_protected(tmp_path):
    d = str(tmp_path)
    for version, steps in ((3, 30), (12, 120), (12, 100), (7, 70)):
        (tmp_path / checkpoint_name(version, steps)).write_bytes(b"x")
    (tmp_path / f"{checkpoint_name(99, 1)}.tmp123").write_bytes(b"partial")
    names = [os.path.basename(p) for p in list_checkpoints(d)]
    assert names == ["checkpoint_000000003_30.pt", "checkpoint_000000007_70.pt",
                     "checkpoint_000000012_100.pt", "checkpoint_000000012_120.pt"]  # fmt: skip
    protect = os.path.join(d, "checkpoint_000000003_30.pt")
    gone = prune_checkpoints(d, keep=1, protect=protect)
    assert sorted(map(os.path.basename, gone)) == [
        "checkpoint_000000007_70.pt", "checkpoint_000000012_100.pt"]  # fmt: skip
    assert [os.path.basename(p) for p in list_checkpoints(d)] == [
        "checkpoint_000000003_30.pt", "checkpoint_000000012_120.pt"]  # fmt: skip
    assert list_checkpoints(str(tmp_path / "none")) == []

"""apps.checkpoints: newest-N kept, never a partial file, sorted by version, resume."""

import os

import torch
from gristmill.apps.checkpoints import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
)


def test_keep_newest_and_load(tmp_path):
    d = str(tmp_path)
    for version in (3, 12, 7, 100):
        save_checkpoint(d, {"w": torch.full((2,), float(version))}, version, version * 10, keep=2)
    names = [os.path.basename(p) for p in list_checkpoints(d)]
    assert names == ["checkpoint_000000012_120.pt", "checkpoint_000000100_1000.pt"]
    assert not [p for p in os.listdir(d) if ".tmp" in p]
    assert float(load_checkpoint(latest_checkpoint(d))["w"][0]) == 100.0


def test_a_leftover_temporary_file_is_ignored(tmp_path):
    d = str(tmp_path)
    save_checkpoint(d, {"v": 1}, 1, 10)
    (tmp_path / "checkpoint_000000002_20.pt.tmp123").write_bytes(b"partial")
    assert latest_checkpoint(d).endswith("checkpoint_000000001_10.pt")


def test_resume_takes_the_newest_unless_restarting(tmp_path):
    d = str(tmp_path / "checkpoints")
    assert resume_checkpoint(d) is None  # no folder yet: a fresh run
    save_checkpoint(d, {"v": 1}, 1, 10)
    save_checkpoint(d, {"v": 2}, 2, 20)
    path, state = resume_checkpoint(d)
    assert path.endswith("checkpoint_000000002_20.pt") and state == {"v": 2}
    assert resume_checkpoint(d, restart=True) is None

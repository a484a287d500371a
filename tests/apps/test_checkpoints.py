"""Atomic checkpoints: newest-N kept, never a partial file, sorted by policy version."""

import os

import pytest
import torch
from gristmill.apps.doom.checkpoints import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from gristmill.apps.doom.config import TrainConfig, _field_help


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


def test_every_option_has_help():
    helps = _field_help()
    missing = [f for f in TrainConfig.__dataclass_fields__ if f not in helps]
    assert not missing, f"options without a help comment: {missing}"


def test_configs_that_would_deadlock_or_misfit_are_refused():
    with pytest.raises(ValueError, match="num_batches_to_accumulate"):
        TrainConfig(num_batches_to_accumulate=0).validate()
    with pytest.raises(ValueError, match="multiple of rollout"):
        TrainConfig(batch_size=1000).validate()
    for nice in (-1, 20):  # raising a priority needs privileges; 19 is the floor
        with pytest.raises(ValueError, match="sampler_nice"):
            TrainConfig(sampler_nice=nice).validate()
    TrainConfig().validate()  # the defaults are fine


def test_learner_threads_take_half_the_cores_unless_set(monkeypatch):
    from gristmill.apps.doom.trainer import learner_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert learner_threads(TrainConfig()) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert learner_threads(TrainConfig()) == 8
    assert learner_threads(TrainConfig(torch_threads=3)) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert learner_threads(TrainConfig()) == 1

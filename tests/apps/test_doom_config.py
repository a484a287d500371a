"""gristmill-doom's config: refused settings, its flags, and its mapping onto the model's and
APPO's configs by field name."""

import argparse
import dataclasses
import os

import pytest
from gristmill.apps.config_cli import add_arguments, config_from_args
from gristmill.apps.doom.config import TrainConfig
from gristmill.apps.doom.model import appo_config, model_config
from gristmill.learners import APPOConfig


def test_configs_that_would_deadlock_or_misfit_are_refused():
    with pytest.raises(ValueError, match="num_batches_to_accumulate"):
        TrainConfig(num_batches_to_accumulate=0).validate()
    with pytest.raises(ValueError, match="multiple of rollout"):
        TrainConfig(batch_size=1000).validate()
    for nice in (-1, 20):  # raising a priority needs privileges; 19 is the floor
        with pytest.raises(ValueError, match="sampler_nice"):
            TrainConfig(sampler_nice=nice).validate()
    TrainConfig().validate()  # the defaults are fine


def test_flags_round_trip_and_are_validated():
    p = argparse.ArgumentParser()
    add_arguments(p, TrainConfig)  # raises if a field has no help text
    cfg = config_from_args(TrainConfig, p.parse_args(["--batch_size", "64", "--use_rnn", "no"]))
    assert cfg == TrainConfig(batch_size=64, use_rnn=False)
    with pytest.raises(ValueError, match="multiple of rollout"):
        config_from_args(TrainConfig, p.parse_args(["--batch_size", "33"]))


def test_learner_and_model_configs_take_every_shared_field():
    cfg = TrainConfig(gamma=0.5, batch_size=64, max_policy_lag=7, rnn_size=16, use_rnn=False)
    appo = appo_config(cfg)
    shared = {f.name for f in dataclasses.fields(APPOConfig)} & set(cfg.__dataclass_fields__)
    assert len(shared) >= 20  # the hyper-parameters Sample Factory names alike
    assert all(getattr(appo, k) == getattr(cfg, k) for k in shared)
    model = model_config(cfg)
    assert model.rnn_size == 16 and model.core == "none" and model.encoder == cfg.encoder
    assert model_config(TrainConfig(rnn_type="lstm")).core == "lstm"


def test_learner_threads_take_half_the_cores_unless_set(monkeypatch):
    from gristmill.apps.doom.trainer import learner_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert learner_threads(TrainConfig()) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert learner_threads(TrainConfig()) == 8
    assert learner_threads(TrainConfig(torch_threads=3)) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert learner_threads(TrainConfig()) == 1


def test_reward_shaping_overrides_are_checked_before_any_process_starts():
    TrainConfig(env="doom_duel", reward_shaping="DAMAGECOUNT=0.15,-0.15").validate()
    with pytest.raises(ValueError, match="no variable 'DAMAGE'"):
        TrainConfig(env="doom_duel", reward_shaping="DAMAGE=0.15,-0.15").validate()
    with pytest.raises(ValueError, match="expected VAR=up,down"):
        TrainConfig(env="doom_duel", reward_shaping="DAMAGECOUNT=0.15").validate()
    with pytest.raises(ValueError, match="no coefficients"):  # doom_basic shapes nothing
        TrainConfig(env="doom_basic", reward_shaping="DAMAGECOUNT=0.15,-0.15").validate()
    for bad in ("-1", "DAMAGE=0.15,-0.15"):  # each message names the option (a fuzzer's find)
        with pytest.raises(ValueError, match="^reward_shaping: "):
            TrainConfig(env="doom_basic", reward_shaping=bad).validate()

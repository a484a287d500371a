"""apps.config_cli: dataclass fields as flags with their help, misdeclared configs named."""

import argparse
import json
from dataclasses import asdict, dataclass, field, fields

import pytest
from gristmill.apps.config_cli import (
    RunConfig,
    add_arguments,
    config_from_args,
    option,
    shared_fields,
)


@dataclass
class Cfg:
    lr: float = option(0.1, "learning rate")
    steps: int = option(10, "how many steps")
    fast: bool = option(True, "go fast")
    name: str = option("x", "run name")

    def validate(self):
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


def parser(defaults=None):
    p = argparse.ArgumentParser(prog="t")
    add_arguments(p, Cfg, defaults)
    return p


def test_every_field_is_a_flag_with_its_help_and_default():
    text = parser().format_help()
    for flag, help_text in [("--lr", "learning rate (default: 0.1)"),
                            ("--fast", "go fast (default: True)")]:
        assert flag in text and help_text in text
    cfg = config_from_args(Cfg, parser().parse_args(["--lr", "0.5", "--fast", "off"]))
    assert cfg == Cfg(lr=0.5, fast=False)


def test_presets_override_defaults_and_unknown_presets_are_refused():
    assert config_from_args(Cfg, parser({"steps": 3}).parse_args([])).steps == 3
    with pytest.raises(ValueError, match="no fields.*'stpes'"):
        parser({"stpes": 3})


def test_bad_values_are_refused_by_name():
    with pytest.raises(SystemExit):
        parser().parse_args(["--fast", "maybe"])
    with pytest.raises(ValueError, match="steps must be >= 0"):
        config_from_args(Cfg, parser().parse_args(["--steps", "-1"]))


def test_a_field_without_help_or_of_an_odd_type_is_named():
    @dataclass
    class NoHelp:
        a: int = option(1, "documented")
        b: int = 2

    @dataclass
    class Odd:
        a: list = field(default_factory=list, metadata={"help": "a list"})

    with pytest.raises(ValueError, match=r"without help.*\['b'\]"):
        add_arguments(argparse.ArgumentParser(), NoHelp)
    with pytest.raises(TypeError, match="Odd.a"):
        add_arguments(argparse.ArgumentParser(), Odd)


def test_shared_fields_map_by_name_and_keep_the_targets_defaults():
    @dataclass
    class Target:
        lr: float = 1.0
        steps: int = 5
        other: str = "kept"

    t = shared_fields(Target, Cfg(lr=0.25, steps=7), steps=9)
    assert t == Target(lr=0.25, steps=9, other="kept")


def test_run_config_subclasses_keep_their_own_defaults_and_name_the_experiment():
    @dataclass
    class App(RunConfig):
        env: str = option("Pong-v5", "task")
        steps: int = option(3, "steps")

    names = [f.name for f in fields(App)]
    assert names[:6] == ["env", "experiment", "train_dir", "restart", "seed", "device"]
    assert App().experiment_name == "Pong-v5" and App(experiment="x").experiment_name == "x"
    assert json.loads(App(steps=5).to_json()) == {**asdict(App()), "steps": 5}

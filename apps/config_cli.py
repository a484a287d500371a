"""Run configurations as dataclasses: one command-line flag per field, and sub-configs by name.

An app's config is a dataclass (a :class:`RunConfig`: task, run directory, seed, device)
whose fields are declared with :func:`option` (default + help text). :func:`add_arguments`
turns every field into ``--name`` (``bool`` fields take ``true/false``; the help shows the
default), :func:`config_from_args` builds the dataclass back from the parsed namespace, and
:func:`shared_fields` fills a learner's config (``APPOConfig``, ``PPOConfig``,
``ModelConfig``) from the fields whose names it shares with the app's, so a hyper-parameter is
named once and mapped by that name rather than copied line by line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "RunConfig", "add_arguments", "check_ranges", "config_from_args", "option", "parse_bool",
    "shared_fields",
]  # fmt: skip

T = TypeVar("T")


def option(default: Any, help: str) -> Any:  # noqa: A002 - argparse's word
    """A config field with its default and its ``--help`` text."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class RunConfig:
    """What every training app's config has: the task, where the run lives, seed and device.

    An app's config subclasses it (redeclaring ``env`` and ``seed`` with its own defaults) and
    adds its own fields, which come after these in ``--help``."""

    env: str = option("", "task id")
    experiment: str = option("", "run name; default: the env id")
    train_dir: str = option("runs", "experiments live in train_dir/experiment")
    restart: bool = option(False, "ignore existing checkpoints of the experiment")
    seed: int = option(0, "seeds torch and the envs")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.env

    def to_json(self) -> str:
        """Every field, as the run's ``config.json`` holds it."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def parse_bool(text: str) -> bool:
    """``true/false`` (also 1/0, yes/no, y/n, on/off; any case) as a flag's value."""
    low = text.lower()
    if low in ("1", "true", "yes", "y", "on"):
        return True
    if low in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


_PARSERS = {bool: parse_bool, int: int, float: float, str: str}


def add_arguments(
    parser: argparse.ArgumentParser, cls: type, defaults: dict[str, Any] | None = None
) -> None:
    """Every field of dataclass ``cls`` as ``--<name>``; ``defaults`` overrides some defaults
    (a preset such as ``gristmill-doom quickstart``'s).

    Raises ``TypeError`` for a field that is not bool/int/float/str and ``ValueError`` naming
    the fields declared without help text, or the ``defaults`` that are no field."""
    hints = typing.get_type_hints(cls)
    defaults = dict(defaults or {})
    fields = dataclasses.fields(cls)
    unknown = sorted(set(defaults) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {unknown}")
    no_help = [f.name for f in fields if not f.metadata.get("help")]
    if no_help:
        raise ValueError(f"{cls.__name__} fields without help (declare them with option()): "
                         f"{no_help}")
    for f in fields:
        kind = _PARSERS.get(hints[f.name])
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: {hints[f.name]} cannot be a flag "
                            "(bool, int, float or str)")
        default = defaults.get(f.name, f.default)
        parser.add_argument(
            f"--{f.name}", type=kind, default=default,
            help=f"{f.metadata['help']} (default: {default})",
        )


def check_ranges(cfg: Any, positive=(), non_negative=(), unit=()) -> None:
    """ValueError naming the first field of ``cfg`` out of its range: ``positive`` (> 0),
    ``non_negative`` (>= 0), ``unit`` (in [0, 1]); and any float field that is NaN or
    infinite (``--learning_rate nan`` parses, then trains on NaN)."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{f.name} must be a finite number, got {v}")
    for names, ok, what in ((positive, lambda v: v > 0, "> 0"),
                            (non_negative, lambda v: v >= 0, ">= 0"),
                            (unit, lambda v: 0 <= v <= 1, "in [0, 1]")):  # fmt: skip
        for name in names:
            if not ok(getattr(cfg, name)):
                raise ValueError(f"{name} must be {what}, got {getattr(cfg, name)}")


def config_from_args(cls: type[T], ns: argparse.Namespace) -> T:
    """The ``cls`` that :func:`add_arguments`' flags describe, ``validate()``-d when it has
    that method."""
    cfg = cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def shared_fields(target: type[T], source: Any, **overrides: Any) -> T:
    """A ``target`` dataclass taking every field that dataclass ``source`` has under the same
    name (the others keep ``target``'s defaults), then ``overrides``."""
    have = {f.name for f in dataclasses.fields(source)}
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(target)
              if f.name in have}
    return target(**{**values, **overrides})

"""Fuzzing the training apps' command lines and checkpoints: every ``train`` option of
gristmill-doom and gristmill-atari with values of the wrong type, negative or zero sizes, NaN,
and unknown options; corrupt and foreign checkpoint files. Each is refused with a message that
names the option (argparse's or the config's ``validate``) or the file, or parses to a config
whose sizes are all in range -- never a run that starts on nonsense."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import pickle

import pytest
import torch
from gristmill.apps.atari import cli as atari_cli
from gristmill.apps.atari.config import TrainConfig as AtariConfig
from gristmill.apps.checkpoints import load_checkpoint, resume_checkpoint, save_checkpoint
from gristmill.apps.config_cli import config_from_args
from gristmill.apps.doom import cli as doom_cli
from gristmill.apps.doom.config import TrainConfig as DoomConfig
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
VALUES = st.sampled_from(["-1", "0", "1", "3", "abc", "1.5", "", "1e9", "nan", "inf", "true",
                          "-0.5", "2"])  # fmt: skip
APPS = {"doom": (doom_cli, DoomConfig), "atari": (atari_cli, AtariConfig)}


def _numeric(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.type in ("int", "float", int, float)]


@FUZZ
@given(app=st.sampled_from(sorted(APPS)), data=st.data())
def test_train_options_parse_to_a_sane_config_or_are_refused_by_name(within, app, data):
    cli, cls = APPS[app]
    names = [f.name for f in dataclasses.fields(cls)] + ["no_such_option"]
    opts = data.draw(st.dictionaries(st.sampled_from(names), VALUES, min_size=1, max_size=3))
    argv = ["train"] + [a for k, v in opts.items() for a in (f"--{k}", v)]
    err = io.StringIO()
    with within(30):
        try:
            with contextlib.redirect_stderr(err):
                ns = cli._parser().parse_args(argv)
        except SystemExit:
            event("refused: argparse error (SystemExit 2)")
            assert any(f"--{k}" in err.getvalue() for k in opts), err.getvalue()
            return
        try:
            cfg = config_from_args(cls, ns)
        except ValueError as exc:
            event("refused: ValueError (validate)")
            assert any(k in str(exc) for k in opts), exc
            return
    for name in _numeric(cls):
        v = getattr(cfg, name)
        assert math.isfinite(v), f"{name}={v} accepted"
    # the sizes that were given must be usable ones
    for k, v in opts.items():
        if k == "reward_scale" or k not in _numeric(cls):  # a negative scale has a meaning
            continue
        if float(v) < 0:
            pytest.fail(f"--{k} {v} accepted into a config")


def _checkpoint_files(tmp_path):
    good = save_checkpoint(str(tmp_path), {"learner": {"w": torch.ones(2)}}, 1, 10)
    torn = tmp_path / "torn.pt"
    torn.write_bytes(open(good, "rb").read()[:50])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.pt"
    torch.save([1, 2, 3], foreign)
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle.dumps({"learner": 1}))
    return good, [torn, garbage, foreign]


def test_corrupt_or_foreign_checkpoints_are_refused_naming_the_file(tmp_path):
    good, bad = _checkpoint_files(tmp_path)
    assert load_checkpoint(good)["learner"]["w"].sum() == 2
    for path in bad:
        with pytest.raises(ValueError, match=str(path.name)):
            load_checkpoint(str(path))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_resume_from_a_corrupt_newest_checkpoint_names_it(tmp_path):
    save_checkpoint(str(tmp_path), {"learner": {}}, 1, 10)
    newest = tmp_path / "checkpoint_000000002_20.pt"
    newest.write_bytes(b"\x80\x04corrupt")
    with pytest.raises(ValueError, match="checkpoint_000000002_20.pt"):
        resume_checkpoint(str(tmp_path))
    assert resume_checkpoint(str(tmp_path), restart=True) is None

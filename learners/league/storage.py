"""Checkpoint files: atomic writes (temporary file, fsync, rename), names, the newest N kept.

A run killed at any moment leaves either the old file or the new one, never a torn one
(``os.replace`` is atomic on POSIX); the directory is fsynced so the rename survives a crash.
Checkpoints are named ``checkpoint_<version:09d>_<env_steps>.pt`` (:func:`checkpoint_name`), so
a folder lists in training order and a temporary file is never taken for one. The population's
per-policy folders and the apps' single-learner runs (:mod:`gristmill.apps.checkpoints`) share
these.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import IO

import numpy as np
import torch
from gristmill.kernels import procfs

__all__ = [
    "atomic_torch_save",
    "atomic_write_json",
    "checkpoint_name",
    "list_checkpoints",
    "prune_checkpoints",
    "read_json",
    "torch_load",
]


_TMP = re.compile(r"\.tmp(\d+)$")
_CHECKPOINT = re.compile(r"^checkpoint_(\d{9})_(\d+)\.pt$")


def checkpoint_name(version: int, env_steps: int) -> str:
    """``checkpoint_<version:09d>_<env_steps>.pt``."""
    return f"checkpoint_{int(version):09d}_{int(env_steps)}.pt"


def list_checkpoints(directory: str) -> list[str]:
    """Paths of the complete checkpoints in ``directory``, oldest first (by version, then env
    steps); empty when the folder does not exist."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(m, n) for n in names if (m := _CHECKPOINT.match(n))]
    found.sort(key=lambda x: (int(x[0].group(1)), int(x[0].group(2))))
    return [os.path.join(directory, n) for _, n in found]


def prune_checkpoints(directory: str, keep: int, protect: str | None = None) -> list[str]:
    """Delete all but the newest ``keep`` checkpoints of ``directory`` (none when ``keep`` <= 0),
    never ``protect`` (a path: the one a manifest names); returns the paths deleted."""
    old = list_checkpoints(directory)[:-keep] if keep > 0 else []
    gone = [p for p in old if protect is None or os.path.abspath(p) != os.path.abspath(protect)]
    for path in gone:
        try:
            os.remove(path)
        except FileNotFoundError:  # pruned by another process meanwhile
            pass
    return gone


def _remove_dead_temporaries(directory: str) -> None:
    """Temporary files of writers that died mid-write (SIGKILL runs no ``finally``): nobody
    else will remove them, and a run killed at every checkpoint would pile them up."""
    for name in os.listdir(directory):
        m = _TMP.search(name)
        if m and int(m.group(1)) != os.getpid() and not procfs.alive(int(m.group(1))):
            try:
                os.remove(os.path.join(directory, name))
            except FileNotFoundError:  # removed by another writer meanwhile
                pass


def _atomic(path: str, write: Callable[[IO], None], mode: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _remove_dead_temporaries(directory)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` to ``path`` atomically."""
    _atomic(path, lambda f: torch.save(obj, f), "wb")


def atomic_write_json(obj, path: str) -> None:
    """JSON to ``path`` atomically (floats written with ``repr``: they read back exactly)."""
    text = json.dumps(obj, indent=1, allow_nan=False, default=_json_default)
    _atomic(path, lambda f: f.write(text), "w")


def _json_default(x):
    if isinstance(x, np.generic):  # numpy scalars from app code
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} {x!r} as JSON")


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def torch_load(path: str, device: str | torch.device = "cpu"):
    """Load one of gristmill's own checkpoint files (they hold plain dicts and numpy scalars
    besides tensors, so not ``weights_only``); a missing, torn or foreign file is named."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} is missing")
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # torn or foreign: say which file
        raise ValueError(f"checkpoint {path} is not readable "
                         f"({type(exc).__name__}: {exc})") from exc  # fmt: skip

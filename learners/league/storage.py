"""Atomic files for population checkpoints: write a temporary file, fsync, rename.

A run killed at any moment leaves either the old file or the new one, never a torn one
(``os.replace`` is atomic on POSIX); the directory is fsynced so the rename survives a crash.
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

__all__ = ["atomic_write_json", "atomic_torch_save", "read_json", "torch_load"]


_TMP = re.compile(r"\.tmp(\d+)$")


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
    """Load one of the population's own files (they hold plain dicts besides tensors)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"population checkpoint {path} is missing")
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # torn or foreign: say which file
        raise ValueError(f"population checkpoint {path} is not readable "
                         f"({type(exc).__name__}: {exc})") from exc  # fmt: skip

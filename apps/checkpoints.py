"""Training checkpoints of the apps: atomic files, the newest N kept, resume from the newest.

``checkpoint_<version>_<env_steps>.pt`` in a run's ``checkpoints/`` folder, written through
:func:`gristmill.learners.league.atomic_torch_save` (temporary file, fsync, rename): a run
killed at any moment leaves either the previous set or the new one, never a truncated file, and
a leftover temporary file is never taken for a checkpoint. ``gristmill-doom`` and
``gristmill-atari`` use it; so can any app whose state is one ``torch.save``-able dict.
"""

from __future__ import annotations

import glob
import os
import re

import torch
from gristmill.learners.league.storage import atomic_torch_save

__all__ = [
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "resume_checkpoint",
    "save_checkpoint",
]

_NAME = re.compile(r"checkpoint_(\d{9})_(\d+)\.pt$")


def list_checkpoints(directory: str) -> list[str]:
    """Complete checkpoints in ``directory``, oldest first (by version)."""
    paths = [p for p in glob.glob(os.path.join(directory, "checkpoint_*.pt")) if _NAME.search(p)]
    return sorted(paths, key=lambda p: int(_NAME.search(p).group(1)))


def latest_checkpoint(directory: str) -> str | None:
    """The newest complete checkpoint in ``directory`` (None if there is none)."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(
    directory: str, state: dict, version: int, env_steps: int, keep: int = 2
) -> str:
    """Atomically write ``state`` as ``checkpoint_<version>_<env_steps>.pt`` and delete all but
    the newest ``keep`` (all kept when ``keep`` <= 0); returns the path."""
    path = os.path.join(directory, f"checkpoint_{version:09d}_{env_steps}.pt")
    atomic_torch_save(state, path)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        try:
            os.remove(old)
        except FileNotFoundError:  # pruned by another process meanwhile
            pass
    return path


def load_checkpoint(path: str, device: str | torch.device = "cpu") -> dict:
    """A checkpoint written by :func:`save_checkpoint`, tensors on ``device``."""
    # Our own files: they hold dataclass dicts and numpy scalars besides tensors.
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a torn, foreign or corrupt file: say which file
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}: "
                         f"{exc})") from exc  # fmt: skip
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a gristmill checkpoint (it holds a "
                         f"{type(state).__name__}, not a dict)")  # fmt: skip
    return state


def resume_checkpoint(
    directory: str, restart: bool = False, device: str | torch.device = "cpu"
) -> tuple[str, dict] | None:
    """``(path, state)`` of the newest checkpoint to resume from; None when there is none or
    ``restart`` asks to ignore them (the apps' ``--restart``)."""
    path = None if restart else latest_checkpoint(directory)
    return None if path is None else (path, load_checkpoint(path, device))

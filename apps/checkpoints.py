"""Training checkpoints of the apps: atomic files, the newest N kept, resume from the newest.

``checkpoint_<version>_<env_steps>.pt`` in a run's ``checkpoints/`` folder, written, named and
pruned by :mod:`gristmill.learners.league.storage` (the same files a population keeps per
policy): a run killed at any moment leaves either the previous set or the new one, never a
truncated file, and a leftover temporary file is never taken for a checkpoint.
``gristmill-atari`` keeps its learner this way; any app whose state is one
``torch.save``-able dict can.
"""

from __future__ import annotations

import os

import torch
from gristmill.learners.league.storage import (
    atomic_torch_save,
    checkpoint_name,
    list_checkpoints,
    prune_checkpoints,
    torch_load,
)

__all__ = [
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "resume_checkpoint",
    "save_checkpoint",
]


def latest_checkpoint(directory: str) -> str | None:
    """The newest complete checkpoint in ``directory`` (None if there is none)."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(
    directory: str, state: dict, version: int, env_steps: int, keep: int = 2
) -> str:
    """Atomically write ``state`` as ``checkpoint_<version>_<env_steps>.pt`` and delete all but
    the newest ``keep`` (all kept when ``keep`` <= 0); returns the path."""
    path = os.path.join(directory, checkpoint_name(version, env_steps))
    atomic_torch_save(state, path)
    prune_checkpoints(directory, keep)
    return path


def load_checkpoint(path: str, device: str | torch.device = "cpu") -> dict:
    """A checkpoint written by :func:`save_checkpoint`, tensors on ``device``."""
    state = torch_load(path, device)
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

"""Atomic checkpoints: write to a temporary file, fsync, rename; keep the newest N.

A run killed at any moment leaves either the previous checkpoint set or the new one, never a
truncated file; resuming loads the newest complete checkpoint.
"""

from __future__ import annotations

import glob
import os
import re

import torch

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "list_checkpoints"]

_NAME = re.compile(r"checkpoint_(\d{9})_(\d+)\.pt$")


def list_checkpoints(directory: str) -> list[str]:
    """Complete checkpoints in ``directory``, oldest first (by policy version)."""
    paths = [p for p in glob.glob(os.path.join(directory, "checkpoint_*.pt")) if _NAME.search(p)]
    return sorted(paths, key=lambda p: int(_NAME.search(p).group(1)))


def latest_checkpoint(directory: str) -> str | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(
    directory: str, state: dict, version: int, env_steps: int, keep: int = 2
) -> str:
    """Atomically write ``state`` as ``checkpoint_<version>_<env_steps>.pt``; prune to ``keep``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"checkpoint_{version:09d}_{env_steps}.pt")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        try:
            os.remove(old)
        except FileNotFoundError:
            pass
    return path


def load_checkpoint(path: str, device: str | torch.device = "cpu") -> dict:
    # Our own files: they hold dataclass dicts and numpy scalars besides tensors.
    return torch.load(path, map_location=device, weights_only=False)

"""Device selection: CUDA when present, else CPU (with all cores for torch)."""

from __future__ import annotations

import torch

__all__ = ["select_device"]


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` if available else ``cpu``; otherwise ``torch.device(name)``.

    Asking for CUDA on a machine without it raises a ``ValueError`` naming the device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev

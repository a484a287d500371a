"""Codecs between Gymnasium spaces and the rollout protocol's flat arrays.

Observations are stored per key (a Box is the key ``"obs"``); an action is one float row
``[*categorical indices, *continuous values]``, which covers Discrete, MultiDiscrete, Box and
Tuples of them (Box parts last), Sample Factory's action spaces for Doom included.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

__all__ = ["obs_spec_of", "action_spec_of", "action_from_row"]


def obs_spec_of(space: spaces.Space) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per-key ``(shape, dtype)`` of a Box or Dict-of-Box observation space (Box -> ``"obs"``)."""
    if isinstance(space, spaces.Box):
        return {"obs": (tuple(space.shape), np.dtype(space.dtype))}
    if isinstance(space, spaces.Dict):
        out = {}
        for key, sub in space.spaces.items():
            if not isinstance(sub, spaces.Box):
                raise TypeError(f"observation {key!r} must be a Box, got {sub}")
            out[key] = (tuple(sub.shape), np.dtype(sub.dtype))
        return out
    raise TypeError(f"observation space must be Box or Dict of Box, got {space}")


def action_spec_of(space: spaces.Space) -> tuple[tuple[int, ...], int]:
    """``(categorical sizes, continuous dims)`` of Discrete / MultiDiscrete / Box / Tuple."""
    if isinstance(space, spaces.Discrete):
        return (int(space.n),), 0
    if isinstance(space, spaces.MultiDiscrete):
        return tuple(int(n) for n in np.asarray(space.nvec).ravel()), 0
    if isinstance(space, spaces.Box):
        return (), int(np.prod(space.shape))
    if isinstance(space, spaces.Tuple):
        discrete: list[int] = []
        continuous = 0
        for sub in space.spaces:
            d, c = action_spec_of(sub)
            if d and continuous:
                raise TypeError(f"Box sub-actions must come last in {space}")
            discrete += d
            continuous += c
        return tuple(discrete), continuous
    raise TypeError(f"unsupported action space {space}")


def action_from_row(space: spaces.Space, row: np.ndarray):
    """The env action encoded by a float row ``[*categorical indices, *continuous values]``."""
    if isinstance(space, spaces.Discrete):
        return int(row[0])
    if isinstance(space, spaces.MultiDiscrete):
        return row.astype(np.int64).reshape(np.asarray(space.nvec).shape)
    if isinstance(space, spaces.Box):
        return row.astype(space.dtype).reshape(space.shape)
    if isinstance(space, spaces.Tuple):
        out, i = [], 0
        for sub in space.spaces:
            if isinstance(sub, spaces.Box):
                n = int(np.prod(sub.shape))
                out.append(row[i : i + n].astype(sub.dtype).reshape(sub.shape))
                i += n
            else:
                out.append(int(row[i]))
                i += 1
        return tuple(out)
    raise TypeError(f"unsupported action space {space}")

"""Sample Factory's VizDoom action spaces and their conversion to VizDoom button vectors.

Each scenario exposes a gymnasium space built from sub-spaces; every ``Discrete(n)`` sub-space is
``n - 1`` mutually exclusive buttons plus a no-op at index 0, and a :class:`Discretized` sub-space
is one delta button (e.g. ``TURN_LEFT_RIGHT_DELTA``) driven by ``n`` evenly spaced values. This
is the layout of ``sf_examples/vizdoom/doom/action_space.py`` (Sample Factory 2.1.1), so policies
and curves are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

__all__ = [
    "Discretized",
    "action_to_buttons",
    "button_count",
    "space_basic",
    "space_extended",
    "space_full_discretized",
    "space_discretized_no_weapons",
    "space_turn_and_attack",
]


class Discretized(spaces.Discrete):
    """A continuous control discretized into ``n`` evenly spaced values in [min_action, max_action].

    Action ``i`` maps to ``min_action + i * (max_action - min_action) / (n - 1)`` (Sample Factory's
    ``Discretized``, used for turning with ``TURN_LEFT_RIGHT_DELTA`` in degrees).
    """

    def __init__(self, n: int, min_action: float, max_action: float):
        if n < 2:
            raise ValueError(f"Discretized needs n >= 2 values, got n={n}")
        super().__init__(n)
        self.min_action = float(min_action)
        self.max_action = float(max_action)

    def to_continuous(self, action: int) -> float:
        step = (self.max_action - self.min_action) / (self.n - 1)
        return self.min_action + int(action) * step

    def __repr__(self) -> str:
        return f"Discretized({self.n}, {self.min_action}, {self.max_action})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Discretized)
            and self.n == other.n
            and self.min_action == other.min_action
            and self.max_action == other.max_action
        )


def space_turn_and_attack() -> spaces.Tuple:
    """TURN_LEFT, TURN_RIGHT | ATTACK: ``Tuple(Discrete(3), Discrete(2))``."""
    return spaces.Tuple((spaces.Discrete(3), spaces.Discrete(2)))


def space_basic() -> spaces.Tuple:
    """TURN_LEFT, TURN_RIGHT | MOVE_FORWARD, MOVE_BACKWARD: ``Tuple(Discrete(3), Discrete(3))``."""
    return spaces.Tuple((spaces.Discrete(3), spaces.Discrete(3)))


def space_extended() -> spaces.Tuple:
    """TURN_LEFT/RIGHT | MOVE_FORWARD/BACKWARD | MOVE_LEFT/RIGHT | ATTACK: ``Tuple(3, 3, 3, 2)``."""
    return spaces.Tuple(
        (spaces.Discrete(3), spaces.Discrete(3), spaces.Discrete(3), spaces.Discrete(2))
    )


def space_discretized_no_weapons() -> spaces.Tuple:
    """Battle: move, strafe, attack, sprint, turn ``Discretized(11, -10, 10)`` degrees."""
    return spaces.Tuple(
        (
            spaces.Discrete(3),
            spaces.Discrete(3),
            spaces.Discrete(2),
            spaces.Discrete(2),
            Discretized(11, -10.0, 10.0),
        )
    )


def space_full_discretized(with_use: bool = False) -> spaces.Tuple:
    """Deathmatch: move, strafe, weapon (8), attack, sprint, [use], turn Discretized(21, ±12.5)."""
    subs: list[spaces.Space] = [
        spaces.Discrete(3),
        spaces.Discrete(3),
        spaces.Discrete(8),
        spaces.Discrete(2),
        spaces.Discrete(2),
    ]
    if with_use:
        subs.append(spaces.Discrete(2))
    subs.append(Discretized(21, -12.5, 12.5))
    return spaces.Tuple(subs)


def _subspaces(space: spaces.Space) -> Sequence[spaces.Space]:
    return space.spaces if isinstance(space, spaces.Tuple) else (space,)


def button_count(space: spaces.Space) -> int:
    """Number of VizDoom buttons a space drives (``n - 1`` per Discrete, 1 per Discretized/Box)."""
    total = 0
    for sub in _subspaces(space):
        if isinstance(sub, Discretized):
            total += 1
        elif isinstance(sub, spaces.Discrete):
            total += int(sub.n) - 1
        elif isinstance(sub, spaces.Box):
            total += int(np.prod(sub.shape))
        else:
            raise TypeError(f"unsupported Doom action sub-space {sub!r}")
    return total


def action_to_buttons(space: spaces.Space, action, box_scale: float = 7.5) -> list[float]:
    """Convert an action of ``space`` into the flat button vector ``DoomGame.make_action`` takes.

    ``Discrete`` index ``k > 0`` presses button ``k - 1`` of its group; ``Discretized`` gives the
    delta value; ``Box`` values are scaled by ``box_scale`` (Sample Factory's 7.5).
    """
    subs = _subspaces(space)
    acts = action if isinstance(space, spaces.Tuple) else (action,)
    if len(acts) != len(subs):
        raise ValueError(f"action {action!r} has {len(acts)} parts, space {space} has {len(subs)}")
    out: list[float] = []
    for sub, a in zip(subs, acts):
        if isinstance(sub, Discretized):
            out.append(sub.to_continuous(int(a)))
        elif isinstance(sub, spaces.Discrete):
            a = int(a)
            if not 0 <= a < sub.n:
                raise ValueError(f"action {a} out of range for {sub}")
            group = [0.0] * (int(sub.n) - 1)
            if a > 0:
                group[a - 1] = 1.0
            out.extend(group)
        elif isinstance(sub, spaces.Box):
            out.extend(float(x) * box_scale for x in np.asarray(a, dtype=np.float64).ravel())
        else:
            raise TypeError(f"unsupported Doom action sub-space {sub!r}")
    return out

"""Opponents for the play server: a scripted bot or a trained agent behind one interface.

An opponent is a :class:`Player`: a ``name`` and ``spawn(num_boards, seed)`` returning an
:class:`Actor`, whose ``act(obs, masks, scalars, seats, out)`` writes actions int32 [N, 2, 5]
for the seated players from the engine's compact observations (the interface of
:class:`gristmill.envs.generals.Bot`, which the tournament tool also uses). A trained agent
plugs in by providing ``spawn`` (``gristmill.apps.generals.agent.NetPlayer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from gristmill.envs.generals import BOTS, Bot

__all__ = ["Actor", "Player", "ScriptedPlayer", "load_opponent"]


class Actor(Protocol):
    def act(self, obs: np.ndarray, masks: np.ndarray, scalars: np.ndarray, seats,
            out: np.ndarray | None = None) -> np.ndarray: ...


class Player(Protocol):
    name: str

    def spawn(self, num_boards: int, seed: int | None = None) -> Actor: ...


class ScriptedPlayer:
    """One of the scripted bots (``random``, ``expander``, ``general``) as a :class:`Player`."""

    def __init__(self, name: str):
        if name not in BOTS:
            raise ValueError(f"unknown bot {name!r}; choose from {BOTS}")
        self.name = name

    def spawn(self, num_boards: int, seed: int | None = None) -> Bot:
        return Bot(self.name, num_boards, seed=seed)


def load_opponent(spec: str) -> Player:
    """A bot name from ``BOTS`` or the path of a trained agent's checkpoint (loaded once;
    every game spawns its own memory from it)."""
    if spec in BOTS:
        return ScriptedPlayer(spec)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"opponent {spec!r} is neither a bot {BOTS} nor a checkpoint file")
    try:
        from gristmill.apps.generals.agent import NetPlayer
    except ImportError as e:
        raise RuntimeError(f"loading the agent {path} needs torch (install gristmill[learn]): "
                           f"{e}") from e
    return NetPlayer.load(path, greedy=True)

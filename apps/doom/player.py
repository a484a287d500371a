"""A trained Doom policy as a player: its checkpoint, network and recurrent state.

``DoomPlayer.config_of("runs/doom_duel:1")`` finds policy 1 of a run (``RUN`` alone: policy
0; a checkpoint file: that file; ``RUN:p1@246``: a frozen snapshot of the league, whose config
is the run's) and the config to rebuild it with. :meth:`DoomPlayer.act` takes one agent's
observation as the env returns it and gives the env's action, carrying the recurrent state
between calls; :meth:`DoomPlayer.reset` starts a new episode. Used by ``gristmill-doom eval``
and ``gristmill-doom match``."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import torch
from gristmill.apps.checkpoints import latest_checkpoint, load_checkpoint
from gristmill.apps.doom.config import TrainConfig
from gristmill.apps.doom.model import build_model
from gristmill.samplers.spaces import action_from_row

__all__ = ["RANDOM", "DoomPlayer", "RandomPlayer", "resolve_checkpoint"]

RANDOM = "random"
"""The member spec of :class:`RandomPlayer`, accepted wherever a checkpoint is."""


_SNAPSHOT = re.compile(r"p\d+@\d+")


def resolve_checkpoint(spec: str, policy: int | None = None) -> str:
    """The checkpoint file of ``spec``: a file, a run directory (optionally ``RUN:k`` for
    policy k; ``policy`` overrides), whose newest checkpoint of that policy is taken, or
    ``RUN:p<k>@<version>``, a frozen snapshot of the run's league."""
    path, k = spec, policy
    if not os.path.exists(spec) and ":" in spec:
        path, _, idx = spec.rpartition(":")
        if _SNAPSHOT.fullmatch(idx):
            snap = os.path.join(path, "checkpoints", "snapshots", f"{idx}.pt")
            if not os.path.isfile(snap):
                raise FileNotFoundError(f"{spec!r}: no snapshot {snap}")
            return snap
        if not idx.isdigit():
            raise ValueError(
                f"{spec!r}: expected RUN_DIR[:policy index], RUN_DIR:p<k>@<version> (a "
                "snapshot) or a checkpoint file"
            )
        k = int(idx) if policy is None else policy
    k = 0 if k is None else k
    if os.path.isdir(path):
        for candidate in (path, os.path.join(path, "checkpoints", f"p{k}")):
            found = latest_checkpoint(candidate)
            if found:
                return found
        raise FileNotFoundError(f"no checkpoint of policy {k} under {path}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found")
    return path


def _run_config(snapshot: str) -> TrainConfig:
    """The config of the run a snapshot file belongs to: the first ``config.json`` in the
    folders above it (``RUN/checkpoints/snapshots/p0@246.pt`` -> ``RUN/config.json``)."""
    folder = os.path.dirname(os.path.abspath(snapshot))
    for _ in range(3):
        found = os.path.join(folder, "config.json")
        if os.path.isfile(found):
            with open(found) as f:
                return TrainConfig(**json.load(f))
        folder = os.path.dirname(folder)
    raise ValueError(
        f"{snapshot} is a snapshot (weights only) and no run config.json was found above it"
    )


class DoomPlayer:
    """A policy that plays: ``act(obs) -> action`` for one agent, state kept across calls."""

    def __init__(self, cfg: TrainConfig, state: dict, path: str, obs_space, action_space):
        self.cfg, self.path = cfg, path
        self.action_space = action_space
        self.model = build_model(cfg, obs_space, action_space)
        self.model.load_state_dict(state["model"])
        self.model.eval()
        self.h = self.model.initial_state(1)

    @staticmethod
    def config_of(spec: str, policy: int | None = None) -> tuple[TrainConfig, dict, str]:
        """``(config, checkpoint state, path)`` of a member (see :func:`resolve_checkpoint`)."""
        path = resolve_checkpoint(spec, policy)
        state = load_checkpoint(path)  # a policy's file (learners.league.Population.save)
        if isinstance(state, dict) and "model" in state and "parent" in state:
            return _run_config(path), state, path  # a snapshot: weights only
        if not isinstance(state, dict) or "model" not in state or "config" not in state.get(
            "extra", {}
        ):
            raise ValueError(
                f"{path} is not a gristmill-doom policy checkpoint (no model and config in it)"
            )
        return TrainConfig(**state["extra"]["config"]), state, path

    def reset(self) -> None:
        self.h = self.model.initial_state(1)

    @torch.no_grad()
    def act(self, obs, deterministic: bool = False):
        obs = obs if isinstance(obs, dict) else {"obs": obs}
        batch = {k: torch.from_numpy(np.asarray(v))[None] for k, v in obs.items()}
        out = self.model.act(batch, self.h, deterministic=deterministic)
        self.h = out["state"]
        return action_from_row(self.action_space, out["actions"][0].numpy())


class RandomPlayer:
    """The baseline opponent: a uniformly random action each step (the action space's own
    ``sample``, seeded), no state."""

    path = RANDOM

    def __init__(self, action_space, seed: int = 0):
        self.action_space = action_space
        self.action_space.seed(seed)

    def reset(self) -> None:
        pass

    def act(self, obs, deterministic: bool = False):
        return self.action_space.sample()

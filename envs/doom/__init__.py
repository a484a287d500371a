"""VizDoom environments with Sample Factory's action spaces, observations and shaping.

``DoomEnv("doom_basic")`` is a Gymnasium env; :class:`DoomMultiAgentEnv` runs several
policy-driven players in one match (host/join on loopback ports). See :mod:`.specs` for the
scenarios.
"""

from gristmill.envs.doom.game import (
    DoomEnv,
    DoomEnvError,
    game_instance,
    game_instances,
    scratch_dir,
    unlink_game_shm,
)
from gristmill.envs.doom.multiplayer import (
    DoomMultiAgentEnv,
    claim_free_port,
    find_free_port,
    game_processes,
)
from gristmill.envs.doom.spaces import Discretized, action_to_buttons
from gristmill.envs.doom.specs import DOOM_ENVS, DoomSpec, doom_env_ids, doom_spec

__all__ = [
    "DOOM_ENVS",
    "Discretized",
    "DoomEnv",
    "DoomEnvError",
    "DoomMultiAgentEnv",
    "DoomSpec",
    "action_to_buttons",
    "claim_free_port",
    "doom_env_ids",
    "doom_spec",
    "find_free_port",
    "game_instance",
    "game_instances",
    "game_processes",
    "make_doom",
    "scratch_dir",
    "unlink_game_shm",
]


def make_doom(env_id: str, **kwargs):
    """A :class:`DoomEnv` for single-agent ids, a :class:`DoomMultiAgentEnv` for self-play ids."""
    if doom_spec(env_id).num_agents > 1 and "player_id" not in kwargs:
        return DoomMultiAgentEnv(env_id, **kwargs)
    return DoomEnv(env_id, **kwargs)

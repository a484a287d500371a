"""gristmill.envs.generals: a Numba-batched Generals.io simulator (generals-bots 2.5.0 rules).

- :class:`GeneralsEngine`: N boards in arrays, one Numba kernel steps them all and writes both
  players' compact observations, move masks and rewards in place, auto-resetting finished games;
  :func:`expand_planes` turns compact observations into generals-bots' 15 float32 planes.
- :class:`MapGenerator` (generals-bots ``GridFactory`` draw for draw), :func:`parse_map`.
- :class:`MemoryFeatures`: cells seen, remembered structures, last-seen enemy army, army deltas;
  :class:`AgentFeatures`: the league agent's input planes (observation + memory + time phase).
- Interfaces: ``gristmill/Generals-v0`` (:class:`GeneralsEnv`, Gymnasium), PettingZoo
  :class:`GeneralsParallelEnv` / :func:`aec_env`, and :class:`GeneralsVectorEnv`.
- :class:`Bot` (``random``, ``expander``, ``general``), :class:`Replay`, ``render_*``;
  :func:`load_gioreplay`: generals.io 1v1 ``.gioreplay`` JSON as an engine map + actions.

Importing this module registers ``gristmill/Generals-v0`` with Gymnasium, so
``gymnasium.make("gristmill.envs.generals:gristmill/Generals-v0")`` works too.
"""

import gymnasium as _gym

from .agent_input import AgentFeatures
from .bots import BOTS, Bot
from .encoding import NUM_PLANES, PLANE_NAMES, decode, expand_planes
from .engine import GeneralsEngine, MapPool
from .gioreplay import GioReplay, GioReplayError, load_gioreplay
from .gym_env import GeneralsEnv
from .maps import InvalidMapError, MapArrays, MapGenerator, format_map, parse_map
from .memory import MemoryFeatures
from .pettingzoo_env import GeneralsParallelEnv, aec_env, parallel_env
from .render import render_ansi, render_rgb
from .replay import Replay
from .rewards import RewardInput, ShapedReward, WinLoseReward
from .vector_env import GeneralsVectorEnv

ENV_ID = "gristmill/Generals-v0"
if ENV_ID not in _gym.registry:
    _gym.register(
        id=ENV_ID,
        entry_point="gristmill.envs.generals.gym_env:GeneralsEnv",
        vector_entry_point="gristmill.envs.generals.vector_env:GeneralsVectorEnv",
    )

__all__ = [
    "AgentFeatures",
    "BOTS",
    "ENV_ID",
    "NUM_PLANES",
    "PLANE_NAMES",
    "Bot",
    "GeneralsEngine",
    "GeneralsEnv",
    "GeneralsParallelEnv",
    "GeneralsVectorEnv",
    "GioReplay",
    "GioReplayError",
    "InvalidMapError",
    "MapArrays",
    "MapGenerator",
    "MapPool",
    "MemoryFeatures",
    "Replay",
    "RewardInput",
    "ShapedReward",
    "WinLoseReward",
    "aec_env",
    "decode",
    "expand_planes",
    "format_map",
    "load_gioreplay",
    "parallel_env",
    "parse_map",
    "render_ansi",
    "render_rgb",
]

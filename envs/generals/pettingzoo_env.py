"""PettingZoo interfaces: ``GeneralsParallelEnv`` (``ParallelEnv``) and ``aec_env`` (AEC).

Agents ``"player_0"`` and ``"player_1"`` act simultaneously each tick. Per agent:

- observation: ``Dict(observation=Box float32 [15, S, S], move_mask=Box int8 [S, S, 4])``:
  ``move_mask[r, c, d]`` is 1 when moving from (r, c) in direction d is valid (passing always
  is). It is not named ``action_mask`` because it masks (row, col, direction) jointly, which a
  per-dimension ``MultiDiscrete`` mask (what PettingZoo's tools expect there) cannot express;
- action: ``MultiDiscrete([2, S, S, 4, 2])`` = [pass, row, col, direction, split];
- reward: the player's reward (``"winlose"``, ``"shaped"`` or a callable, :mod:`.rewards`);
- terminations/truncations: per-agent bools (both end together);
- info: ``status``, ``invalid_moves``, ``army``, ``land``, ``time`` (and ``winner`` at the end).

The AEC version is PettingZoo's ``parallel_to_aec`` over the parallel env: player 0 and then
player 1 choose, and the tick runs once both have.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from .encoding import NUM_PLANES, expand_planes
from .engine import GeneralsEngine
from .gym_env import action_space, check_action, make_generator, planes_space
from .maps import DEFAULT_PAD, MapGenerator
from .render import render_ansi, render_rgb
from .replay import Replay
from .rewards import RewardInput

AGENTS = ("player_0", "player_1")

__all__ = ["AGENTS", "GeneralsParallelEnv", "aec_env", "parallel_env"]


class GeneralsParallelEnv(ParallelEnv):
    """Two-player Generals.io, simultaneous moves (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 6, "name": "generals_v0",
                "is_parallelizable": True}

    def __init__(
        self,
        maps: Any = "uniform",
        pad_to: int = DEFAULT_PAD,
        truncation: int | None = 500,
        priority: str = "priority",
        reward: Any = "winlose",
        render_mode: str | None = None,
        record_replay: bool = False,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.pad_to = pad_to
        self._maps = make_generator(maps)
        self._reward_fn = None if isinstance(reward, str) else reward
        self._rng = np.random.default_rng()
        first = self._next_layout()
        self.engine = GeneralsEngine(1, [first], pad_to=pad_to, truncation=truncation,
                                     priority=priority,
                                     reward=reward if isinstance(reward, str) else "winlose")
        self._obs_space = spaces.Dict({
            "observation": planes_space(pad_to),
            "move_mask": spaces.Box(0, 1, (pad_to, pad_to, 4), np.int8),
        })
        self._act_space = action_space(pad_to)
        self._planes = np.zeros((1, 2, NUM_PLANES, pad_to, pad_to), np.float32)
        self._actions = np.zeros((1, 2, 5), np.int32)
        self.record_replay = record_replay
        self.replay: Replay | None = None
        self._prev: list[RewardInput] | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        self._agent_index(agent)
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space:
        self._agent_index(agent)
        return self._act_space

    @staticmethod
    def _agent_index(agent: str) -> int:
        try:
            return AGENTS.index(agent)
        except ValueError:
            raise KeyError(f"unknown agent {agent!r}; agents are {AGENTS}") from None

    def _next_layout(self) -> str:
        if isinstance(self._maps, MapGenerator):
            self._maps.set_rng(self._rng)
            return self._maps.generate()
        return self._maps[int(self._rng.integers(len(self._maps)))]

    def _observations(self) -> dict[str, dict[str, np.ndarray]]:
        e = self.engine
        expand_planes(e.obs, e.scalars, self._planes)
        return {a: {"observation": self._planes[0, p].copy(),
                    "move_mask": e.masks[0, p].astype(np.int8)}
                for p, a in enumerate(AGENTS)}

    def _infos(self) -> dict[str, dict[str, Any]]:
        e = self.engine
        done = bool(e.terminated[0] or e.truncated[0])
        out = {}
        for p, a in enumerate(AGENTS):
            info = {"status": int(e.status[0, p]), "invalid_moves": int(e.invalid_count[0, p]),
                    "army": int(e.scalars[0, p, 1]), "land": int(e.scalars[0, p, 0]),
                    "time": int(e.state.time[0])}
            if done:
                info["winner"] = int(e.state.winner[0])
            out[a] = info
        return out

    def _inputs(self) -> list[RewardInput]:
        e = self.engine
        w = int(e.state.winner[0])
        done = bool(e.terminated[0] or e.truncated[0])
        return [RewardInput(e.obs[0, p].copy(), e.scalars[0, p].copy(), done,
                            0 if w < 0 else (1 if w == p else -1)) for p in range(2)]

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = options or {}
        layout = options.get("grid") or self._next_layout()
        self.engine.load(0, layout)
        self.agents = list(AGENTS)
        if self.record_replay:
            self.replay = Replay(layout, priority=self.engine.priority,
                                 truncation=self.engine.truncation, pad_to=self.pad_to,
                                 players=AGENTS)
        self._prev = self._inputs() if self._reward_fn is not None else None
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("the game is over (or reset() was never called): call reset()")
        if not isinstance(actions, dict):
            raise TypeError(f"actions must be a dict agent -> action, got {type(actions)}")
        unknown = set(actions) - set(AGENTS)
        if unknown:
            raise KeyError(f"actions for unknown agents {sorted(unknown)}; agents are {AGENTS}")
        a = self._actions
        for p, agent in enumerate(AGENTS):
            if agent in actions and actions[agent] is not None:
                a[0, p] = check_action(actions[agent], (5,), self.pad_to)
            else:
                a[0, p] = (1, 0, 0, 0, 0)  # a missing action is a pass
        if self.replay is not None:
            self.replay.append(a[0])
        e = self.engine
        e.step(a, check=False)
        if self._reward_fn is not None:
            cur = self._inputs()
            rew = [float(self._reward_fn(self._prev[p], cur[p])) for p in range(2)]
            self._prev = cur
        else:
            rew = [float(r) for r in e.rewards[0]]
        term, trunc = bool(e.terminated[0]), bool(e.truncated[0])
        obs, infos = self._observations(), self._infos()
        rewards = {a_: rew[p] for p, a_ in enumerate(AGENTS)}
        terminations = {a_: term for a_ in AGENTS}
        truncations = {a_: trunc for a_ in AGENTS}
        if term or trunc:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self):
        s = self.engine.state
        h, w = s.dims[0]
        args = (s.terrain[0, :h, :w], s.owner[0, :h, :w], s.army[0, :h, :w], (h, w))
        cap = f"t={int(s.time[0])}"
        if self.render_mode == "rgb_array":
            return render_rgb(*args, caption=cap)
        if self.render_mode == "ansi":
            return render_ansi(*args, caption=cap)
        return None

    def state(self) -> np.ndarray:
        """Global state: both players' planes, float32 [2, 15, S, S]."""
        expand_planes(self.engine.obs, self.engine.scalars, self._planes)
        return self._planes[0].copy()

    def close(self):
        pass


def parallel_env(**kwargs) -> GeneralsParallelEnv:
    return GeneralsParallelEnv(**kwargs)


def aec_env(**kwargs):
    """The AEC version (PettingZoo's ``parallel_to_aec`` over :class:`GeneralsParallelEnv`)."""
    return parallel_to_aec(GeneralsParallelEnv(**kwargs))

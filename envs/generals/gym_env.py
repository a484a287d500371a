"""``gristmill/Generals-v0``: Gymnasium interface to one Generals board.

Single-agent mode (default): the agent plays player 0 against a built-in bot (``opponent`` =
``"random"``, ``"expander"`` or ``"general"``, see :mod:`.bots`).

- observation: float32 [15, S, S], generals-bots' planes (:mod:`.encoding`);
- action: ``MultiDiscrete([2, S, S, 4, 2])`` = [pass, row, col, direction, split];
- reward: float, the player's reward (``reward="winlose"``/``"shaped"`` or a callable, see
  :mod:`.rewards`);
- info: ``action_mask`` bool [S, S, 4], ``status`` (0 pass, 1 moved, 2 invalid, 3 skipped),
  ``invalid_moves`` (count this game), ``army``, ``land``, ``time`` and, at the end, ``winner``.

Joint mode (``opponent=None``): both players at once, observation [2, 15, S, S], action [2, 5]
(``MultiDiscrete`` of shape (2, 5)), reward = player 0's (player 1's is ``info["rewards"][1]``),
masks [2, S, S, 4].

Malformed actions (wrong shape, non-integer dtype, out of range) raise ``ValueError``;
semantically invalid moves are passes, reported in ``info``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .bots import Bot
from .encoding import NUM_PLANES, expand_planes
from .engine import GeneralsEngine
from .maps import DEFAULT_PAD, MapGenerator
from .render import render_ansi, render_rgb
from .replay import Replay
from .rewards import RewardInput

__all__ = ["GeneralsEnv", "action_space", "make_generator", "planes_space"]


def planes_space(pad_to: int, players: int | None = None) -> spaces.Box:
    shape = (NUM_PLANES, pad_to, pad_to) if players is None else (players, NUM_PLANES, pad_to,
                                                                   pad_to)
    return spaces.Box(0.0, float(2**31), shape, np.float32)


def action_space(pad_to: int, players: int | None = None) -> spaces.MultiDiscrete:
    nvec = np.array([2, pad_to, pad_to, 4, 2], np.int64)
    if players is not None:
        nvec = np.tile(nvec, (players, 1))
    return spaces.MultiDiscrete(nvec)


def make_generator(maps, seed=None) -> MapGenerator | list[str]:
    """``"uniform"``/``"generalsio"`` -> MapGenerator; a MapGenerator or layout list as is."""
    if isinstance(maps, str):
        return MapGenerator(maps, seed=seed)
    if isinstance(maps, MapGenerator):
        return maps
    layouts = list(maps)
    if not layouts or not all(isinstance(m, str) for m in layouts):
        raise ValueError("maps must be 'uniform', 'generalsio', a MapGenerator or layout strings")
    return layouts


def check_action(action, shape: tuple[int, ...], pad_to: int) -> np.ndarray:
    a = np.asarray(action)
    if a.shape != shape:
        raise ValueError(f"action must have shape {shape} ([pass, row, col, direction, split]), "
                         f"got {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"action must be integers, got dtype {a.dtype}")
    hi = np.array([1, pad_to - 1, pad_to - 1, 3, 1])
    bad = (a < 0) | (a > hi)
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        names = ("pass", "row", "col", "direction", "split")
        raise ValueError(f"action {names[idx[-1]]}={int(a[idx])} is out of range "
                         f"0..{hi[idx[-1]]}")
    return a.astype(np.int32)


class GeneralsEnv(gym.Env):
    """Generals.io for Gymnasium (see the module docstring).

    Args:
        opponent: bot name for player 1 (or a player object with ``name`` and
            ``spawn(num_boards, seed)``, e.g. a trained net), or ``None`` for the joint mode.
        maps: ``"uniform"``, ``"generalsio"``, a :class:`MapGenerator` or a list of layouts;
            ``reset(options={"grid": layout})`` plays a given map.
        pad_to, truncation, priority: as :class:`GeneralsEngine` (``truncation=None``: never).
        reward: ``"winlose"``, ``"shaped"`` or a callable ``fn(prev, cur) -> float``.
        render_mode: ``"rgb_array"`` (full view) or ``"ansi"``.
        record_replay: keep a :class:`Replay` of the current game in ``self.replay``.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 6}

    def __init__(
        self,
        opponent: str | None = "expander",
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
        self.joint = opponent is None
        # a bot name, or a player object with .name and .spawn(num_boards, seed) (a trained net)
        self.opponent_name = opponent if opponent is None or isinstance(opponent, str) \
            else opponent.name
        self.pad_to = pad_to
        self._maps = make_generator(maps)
        self._reward_fn = None if isinstance(reward, str) else reward
        first = self._next_layout(np.random.default_rng(0))
        self.engine = GeneralsEngine(1, [first], pad_to=pad_to, truncation=truncation,
                                     priority=priority,
                                     reward=reward if isinstance(reward, str) else "winlose")
        self.bot = None if self.joint else (Bot(opponent, 1, seed=0) if isinstance(opponent, str)
                                            else opponent.spawn(1, 0))
        self.record_replay = record_replay
        self.replay: Replay | None = None
        self.observation_space = planes_space(pad_to, 2 if self.joint else None)
        self.action_space = action_space(pad_to, 2 if self.joint else None)
        self._planes = np.zeros((1, 2, NUM_PLANES, pad_to, pad_to), np.float32)
        self._actions = np.zeros((1, 2, 5), np.int32)
        self._done = True
        self._prev: list[RewardInput] | None = None

    def _next_layout(self, rng: np.random.Generator) -> str:
        if isinstance(self._maps, MapGenerator):
            self._maps.set_rng(rng)
            return self._maps.generate()
        return self._maps[int(rng.integers(len(self._maps)))]

    def _inputs(self) -> list[RewardInput]:
        e = self.engine
        w = int(e.state.winner[0])
        done = bool(e.terminated[0] or e.truncated[0])
        return [RewardInput(e.obs[0, p].copy(), e.scalars[0, p].copy(), done,
                            0 if w < 0 else (1 if w == p else -1)) for p in range(2)]

    def _obs(self):
        expand_planes(self.engine.obs, self.engine.scalars, self._planes)
        return self._planes[0].copy() if self.joint else self._planes[0, 0].copy()

    def _info(self, rewards=None) -> dict[str, Any]:
        e = self.engine
        sl = slice(None) if self.joint else 0
        info = {
            "action_mask": e.masks[0, sl].astype(bool),
            "status": e.status[0, sl].copy(),
            "invalid_moves": e.invalid_count[0, sl].copy(),
            "army": e.scalars[0, sl, 1].copy(),
            "land": e.scalars[0, sl, 0].copy(),
            "time": int(e.state.time[0]),
        }
        if rewards is not None:
            info["rewards"] = rewards
        if e.terminated[0] or e.truncated[0]:
            info["winner"] = int(e.state.winner[0])
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        layout = options.get("grid")
        if layout is None:
            layout = self._next_layout(self.np_random)
        self.engine.load(0, layout)
        if isinstance(self.bot, Bot):
            self.bot.rng[:] = self.np_random.integers(1, 2**63, size=(1, 2), dtype=np.uint64)
            self.bot.mem[:] = -1
        if self.record_replay:
            self.replay = Replay(layout, priority=self.engine.priority,
                                 truncation=self.engine.truncation, pad_to=self.pad_to,
                                 players=("agent", self.opponent_name or "player_1"))
        self._done = False
        self._prev = self._inputs() if self._reward_fn is not None else None
        return self._obs(), self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("the game is over (or reset() was never called): call reset()")
        a = self._actions
        if self.joint:
            a[0] = check_action(action, (2, 5), self.pad_to)
        else:
            a[0, 0] = check_action(action, (5,), self.pad_to)
            self.bot.act(self.engine.obs, self.engine.masks, self.engine.scalars,
                         (False, True), a)
        if self.replay is not None:
            self.replay.append(a[0])
        e = self.engine
        e.step(a, check=False)
        if self._reward_fn is not None:
            cur = self._inputs()
            rewards = np.array([self._reward_fn(self._prev[p], cur[p]) for p in range(2)],
                               np.float32)
            self._prev = cur
        else:
            rewards = e.rewards[0].copy()
        terminated = bool(e.terminated[0])
        truncated = bool(e.truncated[0])
        self._done = terminated or truncated
        info = self._info(rewards)
        return self._obs(), float(rewards[0]), terminated, truncated, info

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

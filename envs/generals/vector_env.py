"""``GeneralsVectorEnv``: a ``gymnasium.vector.VectorEnv`` over the batched engine.

Two layouts of the batch:

- ``opponent="expander"`` (or any bot): env ``i`` is board ``i``'s player 0; the bot plays
  player 1 of every board inside the same Numba call;
- ``opponent=None`` (self-play): ``num_envs`` must be even; env ``2 b + p`` is board ``b``'s
  player ``p``, so a learner can act for both seats (or a sampler can split them).

Observations are ``obs_type="planes"`` (float32 [num_envs, 15, S, S]) or ``"compact"`` (int32
[num_envs, S, S], :mod:`.encoding`; expand later with :func:`expand_planes`). Actions int
[num_envs, 5]. ``infos["action_mask"]`` is bool [num_envs, S, S, 4]; ``infos["status"]``
uint8 [num_envs] (0 pass, 1 moved, 2 invalid, 3 skipped); ``infos["winner"]``/``"_winner"``
and ``infos["episode_length"]`` are set for envs whose game just ended.

Autoreset follows Gymnasium's default ``NEXT_STEP`` mode: after a terminal step the next
``step`` ignores that env's action and returns the first observation of a new game with
reward 0. Returned arrays are fresh copies unless ``copy=False``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .bots import Bot
from .encoding import NUM_PLANES, expand_planes
from .engine import GeneralsEngine
from .gym_env import action_space, planes_space
from .maps import DEFAULT_PAD

__all__ = ["GeneralsVectorEnv"]


class GeneralsVectorEnv(VectorEnv):
    """Batched Generals.io for Gymnasium vector APIs (see the module docstring).

    Args:
        num_envs: number of learner seats (boards, or 2 x boards in self-play).
        opponent: bot name for player 1, or ``None`` for self-play.
        maps, pad_to, truncation, priority, reward, pool_size, parallel: as
            :class:`GeneralsEngine` (``reward`` must be a built-in name here).
        obs_type: ``"planes"`` or ``"compact"``.
        copy: return copies of the engine's buffers (``False``: views, overwritten next step).
        seed: seeds maps, pool picks and the bot.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 8,
        opponent: str | None = "expander",
        maps: Any = "uniform",
        pad_to: int = DEFAULT_PAD,
        truncation: int | None = 500,
        priority: str = "priority",
        reward: str = "winlose",
        obs_type: str = "planes",
        pool_size: int | None = None,
        parallel: bool = False,
        copy: bool = True,
        seed: int | None = None,
    ):
        if obs_type not in ("planes", "compact"):
            raise ValueError(f"obs_type must be 'planes' or 'compact', got {obs_type!r}")
        if not isinstance(reward, str):
            raise ValueError("GeneralsVectorEnv takes a built-in reward name ('winlose' or "
                             "'shaped'); wrap it for custom rewards")
        self.selfplay = opponent is None
        if self.selfplay and num_envs % 2:
            raise ValueError(f"self-play needs an even num_envs (2 seats per board), got "
                             f"{num_envs}")
        self.num_envs = int(num_envs)
        self.num_boards = self.num_envs // 2 if self.selfplay else self.num_envs
        self.engine = GeneralsEngine(self.num_boards, maps, pad_to=pad_to, truncation=truncation,
                                     priority=priority, reward=reward, pool_size=pool_size,
                                     seed=seed, parallel=parallel)
        self.bot = None if self.selfplay else Bot(opponent, self.num_boards, seed=seed,
                                                  parallel=parallel)
        self.obs_type = obs_type
        self.copy = copy
        self.pad_to = S = pad_to
        if obs_type == "planes":
            self.single_observation_space = planes_space(S)
            self._planes = np.zeros((self.num_boards, 2, NUM_PLANES, S, S), np.float32)
        else:
            self.single_observation_space = spaces.Box(0, np.iinfo(np.int32).max, (S, S),
                                                       np.int32)
        self.single_action_space = action_space(S)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._actions = np.zeros((self.num_boards, 2, 5), np.int32)
        self._actions[:, :, 0] = 1
        self._seats = np.array([True, True]) if self.selfplay else np.array([False, True])

    # -- helpers ---------------------------------------------------------------------------
    def _view(self, arr):
        """[boards, 2, ...] -> learner seats [num_envs, ...]."""
        return arr.reshape(self.num_envs, *arr.shape[2:]) if self.selfplay else arr[:, 0]

    def _per_env(self, arr):
        """[boards] -> [num_envs]."""
        return np.repeat(arr, 2) if self.selfplay else arr

    def _obs(self):
        e = self.engine
        if self.obs_type == "planes":
            expand_planes(e.obs, e.scalars, self._planes, parallel=e.parallel)
            out = self._view(self._planes)
        else:
            out = self._view(e.obs)
        return out.copy() if self.copy else out

    def _infos(self, ended=None) -> dict[str, Any]:
        e = self.engine
        infos = {"action_mask": self._view(e.masks).astype(bool),
                 "status": self._view(e.status).copy()}
        if ended is not None and ended.any():
            env_ended = self._per_env(ended)
            infos["winner"] = self._per_env(e.episode_winner).astype(np.int64) * env_ended
            infos["_winner"] = env_ended
            infos["episode_length"] = self._per_env(e.episode_length) * env_ended
            infos["_episode_length"] = env_ended
        return infos

    # -- API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.engine.reset(seed)
            if self.bot is not None:
                self.bot = Bot(self.bot.name, self.num_boards, seed=seed,
                               parallel=self.bot.parallel)
        else:
            self.engine.reset()
        return self._obs(), self._infos()

    def step(self, actions):
        a = np.asarray(actions)
        if a.shape != (self.num_envs, 5):
            raise ValueError(f"actions must have shape ({self.num_envs}, 5) "
                             f"([pass, row, col, direction, split] per env), got {a.shape}")
        if a.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers, got dtype {a.dtype}")
        e = self.engine
        if self.selfplay:
            self._actions[:] = a.reshape(self.num_boards, 2, 5)
        else:
            self._actions[:, 0] = a
            self.bot.act(e.obs, e.masks, e.scalars, self._seats, self._actions)
        e.step(self._actions)  # checks ranges, names the bad entry
        ended = e.terminated | e.truncated
        rewards = self._view(e.rewards).copy()
        return (self._obs(), rewards, self._per_env(e.terminated).copy(),
                self._per_env(e.truncated).copy(), self._infos(ended))

    def close_extras(self, **kwargs):
        pass

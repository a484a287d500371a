"""Atari 2600 games through ale-py's ``ALEInterface``, with EnvPool's ``<Game>-v5`` semantics.

One :class:`AtariEnv` drives one emulator directly (no gymnasium ALE env, no wrapper stack) and
applies the DeepMind/baselines preprocessing in a few GIL-releasing OpenCV/numpy calls:

* ``frame_skip`` (4) emulator frames per step, rewards summed; the observation is the
  pixel-wise max of the last two frames (only when ``frame_skip > 1``);
* grayscale straight from the palette, or RGB;
* resize to ``img_height x img_width`` (84x84) with ``INTER_AREA`` (``use_inter_area_resize``)
  or bilinear; gray ``INTER_AREA`` downscales run :class:`~._area_resize.AreaResize`, equal to
  OpenCV's output bit for bit at a quarter of its cost, and from one step to the next redo only
  the pixels that changed (:class:`~._ale_frames.IncrementalGrayArea`: ~20 us instead of ~52 us
  of Pong's preprocessing, same output);
* a stack of the last ``stack_num`` (4) frames, channel-first: obs ``(4, 84, 84) uint8``
  (``(3*stack_num, H, W)`` for RGB); the stack is a ring buffer, copied out once per step;
* ``noop_max`` (30): 1..30 no-ops after a game reset, then FIRE when the game has it
  (``use_fire_reset``);
* ``episodic_life`` (False): a lost life ends the episode, but the game is reset only at game
  over; ``reward_clip`` (False): the reward is its sign, the raw one is in ``info["reward"]``;
* ``repeat_action_probability`` 0, ``full_action_space`` False, ``max_episode_steps`` 27000
  agent steps (= 108k frames) then ``truncated``.

``info`` carries ``lives``, ``reward`` (unclipped), ``terminated`` (the game really ended) and
``elapsed_step``; the pool adds ``env_id``. These are EnvPool's Atari defaults
(``envpool/atari/atari_env.h``), i.e. ``NoFrameskip-v4`` + baselines preprocessing, not
gymnasium's ALE v5 (sticky actions).

The pool uses the allocation-free fast path :meth:`AtariEnv.reset_into` /
:meth:`AtariEnv.step_into`, which write the observation straight into a (shared-memory) row.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from ale_py import Action, ALEInterface, LoggerMode, roms
from gristmill.kernels.args import flag, whole
from gymnasium import spaces
from gymnasium.utils import seeding

from ._ale_frames import IncrementalGrayArea
from ._area_resize import AreaResize, supported

__all__ = ["AtariEnv", "game_of_task", "list_tasks", "make_env"]

# Each env steps one emulator on one core: OpenCV's own thread pool would only contend with
# the pool's worker processes.
cv2.setNumThreads(1)



@lru_cache(maxsize=1)
def _games() -> dict[str, str]:
    """``{"Pong": "pong", "KungFuMaster": "kung_fu_master", ...}`` for every ROM in the wheel."""
    out = {}
    for rom in roms.get_all_rom_ids():
        camel = "".join(p[:1].upper() + p[1:] for p in rom.split("_"))
        out[camel] = rom
    return out


def list_tasks() -> list[str]:
    """Every Atari task id, ``<Game>-v5``, one per ROM shipped in ale-py."""
    return sorted(f"{g}-v5" for g in _games())


def game_of_task(task_id: str) -> str:
    """The ROM name for ``"Pong-v5"`` (-> ``"pong"``); also accepts ROM names themselves."""
    m = re.fullmatch(r"(?:ALE/)?([A-Za-z0-9_]+?)(?:NoFrameskip)?(?:-v\d+)?", task_id)
    games = _games()
    if m:
        name = m.group(1)
        if name in games:
            return games[name]
        if name in games.values():
            return name
    raise ValueError(
        f"unknown Atari task {task_id!r}; expected <Game>-v5 with Game one of "
        f"{', '.join(sorted(games)[:8])}, ... ({len(games)} games)"
    )


class AtariEnv(gym.Env):
    """One Atari game with EnvPool's preprocessing (see the module docstring).

    Args:
        game: ROM name (``"pong"``) or task id (``"Pong-v5"``).
        seed: the default seed of the first :meth:`reset` (EnvPool seeds env ``i`` with
            ``seed + i``; the pool passes it).

    Observation: ``Box(0, 255, (stack_num, img_height, img_width), uint8)`` (gray) or
    ``(3 * stack_num, H, W)`` (RGB). Action: ``Discrete(n)`` over the minimal action set
    (``full_action_space=False``).
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        game: str = "pong",
        *,
        frame_skip: int = 4,
        gray_scale: bool = True,
        img_height: int = 84,
        img_width: int = 84,
        stack_num: int = 4,
        noop_max: int = 30,
        use_fire_reset: bool = True,
        episodic_life: bool = False,
        reward_clip: bool = False,
        repeat_action_probability: float = 0.0,
        full_action_space: bool = False,
        max_episode_steps: int = 27000,
        use_inter_area_resize: bool = True,
        mode: int | None = None,
        difficulty: int | None = None,
        seed: int | None = None,
        render_mode: str | None = None,
    ):
        frame_skip, stack_num = whole("frame_skip", frame_skip, 1), whole("stack_num", stack_num, 1)
        noop_max = whole("noop_max", noop_max, 0)
        img_height, img_width = whole("img_height", img_height, 1), whole("img_width", img_width, 1)
        max_episode_steps = whole("max_episode_steps", max_episode_steps, 1)
        for name, value in (("gray_scale", gray_scale), ("use_fire_reset", use_fire_reset),
                            ("episodic_life", episodic_life), ("reward_clip", reward_clip),
                            ("full_action_space", full_action_space),
                            ("use_inter_area_resize", use_inter_area_resize)):  # fmt: skip
            flag(name, value)
        if not isinstance(repeat_action_probability, (int, float)) or not (
            0.0 <= repeat_action_probability <= 1.0
        ):
            raise ValueError(f"repeat_action_probability must be in [0, 1], got "
                             f"{repeat_action_probability!r}")  # fmt: skip
        if seed is not None:
            seed = whole("seed", seed, 0)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.game = game_of_task(game)
        self.frame_skip = int(frame_skip)
        self.gray_scale = bool(gray_scale)
        self.stack_num = int(stack_num)
        self.noop_max = int(noop_max)
        self.episodic_life = bool(episodic_life)
        self.reward_clip = bool(reward_clip)
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self._interp = cv2.INTER_AREA if use_inter_area_resize else cv2.INTER_LINEAR
        self._size = (int(img_width), int(img_height))  # cv2 order
        self._mode, self._difficulty = mode, difficulty

        self.ale = ALEInterface()
        self.ale.setLoggerMode(LoggerMode.Error)
        self.ale.setFloat("repeat_action_probability", float(repeat_action_probability))
        self._seed_game(seed)
        self._load_game()
        ale = self.ale
        actions = ale.getLegalActionSet() if full_action_space else ale.getMinimalActionSet()
        self._action_set = list(actions)
        self._fire = use_fire_reset and Action.FIRE in self._action_set
        self._pending_seed = seed
        # loadROM costs ~0.1-0.5 s: a first reset with the constructor's seed reuses the load
        self._fresh_seed = seed

        h, w = self.ale.getScreenDims()
        c = 1 if self.gray_scale else 3
        # OpenCV's INTER_AREA, bit for bit, ~4x faster (envs._area_resize)
        self._area = (
            AreaResize((h, w), (int(img_height), int(img_width)))
            if self.gray_scale and use_inter_area_resize
            and supported((h, w), (int(img_height), int(img_width)))
            else None
        )
        # gray + INTER_AREA: only the pixels that changed since the last step are redone
        self._inc = (
            IncrementalGrayArea(self.ale, self.game, (h, w), self._area.dst_hw)
            if self._area is not None and w % 8 == 0 else None
        )
        # Full screens (the last frame, the one before it): only the non-incremental path
        # reads them; the incremental one keeps its own palette-index screens.
        self._raw = (
            None if self._inc is not None
            else np.zeros((2, h, w) if self.gray_scale else (2, h, w, 3), np.uint8)
        )
        self._rows = None if self._raw is None else (self._raw[0], self._raw[1])
        self._screen = self.ale.getScreenGrayscale if self.gray_scale else self.ale.getScreenRGB
        # ring of resized frames: slot _head holds the newest
        self._ring = np.zeros((self.stack_num, img_height, img_width) + (() if c == 1 else (3,)),
                              np.uint8)
        self._head = 0
        obs_shape = (self.stack_num * c, int(img_height), int(img_width))
        self.observation_space = spaces.Box(0, 255, obs_shape, np.uint8)
        self.action_space = spaces.Discrete(len(self._action_set))

        self.lives = 0
        self.elapsed_step = 0
        self.raw_reward = 0.0
        self.game_terminated = False

    # ---- gristmill fast path ----------------------------------------------------------------
    info_spec = {
        "lives": ((), np.int32),
        "reward": ((), np.float32),
        "terminated": ((), np.int32),
        "elapsed_step": ((), np.int32),
    }

    def info_values(self) -> tuple:
        """The values of :attr:`info_spec`'s keys, in order, for the last step/reset."""
        return (self.lives, self.raw_reward, int(self.game_terminated), self.elapsed_step)

    def reset_into(self, obs_out: np.ndarray, seed: int | None = None) -> None:
        """Reset and write the first observation into ``obs_out`` (shape of the obs space)."""
        # The construction seed serves the first reset only, also when that reset names a seed
        # (as the pool's does). Else the next unseeded reset reseeded: a ROM load (~0.17 CPU-s,
        # ~300 Breakout steps) per env at its second episode, which replayed the first one's
        # noops and ALE randomness.
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        fresh, self._fresh_seed = self._fresh_seed, None
        if seed is not None and seed == fresh:
            self._game_reset()
        elif seed is not None:
            self._seed_game(seed)
            self._load_game()
            self._game_reset()
        elif self.episodic_life and not self.ale.game_over() and self.elapsed_step < (
            self.max_episode_steps
        ) and self.elapsed_step > 0:
            # life lost: continue the same game (baselines EpisodicLifeEnv: one no-op)
            self.ale.act(self._action_set[0])
            if self.ale.game_over():
                self._game_reset()
        else:
            self._game_reset()
        self.lives = self.ale.lives()
        self.elapsed_step = 0
        self.raw_reward = 0.0
        self.game_terminated = False
        if self._inc is not None:
            self._inc.reset()
            self._inc.grab(0)
            self._inc.frame(self._ring[0])
            self._ring[1:] = self._ring[0]
        else:
            self._grab(0)
            self._raw[1].fill(0)
            self._ring[:] = self._process()
        self._head = 0
        self._write_obs(obs_out)

    def step_into(self, action, obs_out: np.ndarray) -> tuple[float, bool, bool]:
        """One agent step; writes the observation into ``obs_out``; returns
        ``(reward, terminated, truncated)``."""
        ale = self.ale
        act, game_over = ale.act, ale.game_over
        a = self._action_set[int(action)]
        reward = 0
        fs = self.frame_skip
        inc = self._inc
        if inc is not None:
            grab = inc.grab
            for t in range(fs):
                reward += act(a)
                if game_over():
                    break
                if t == fs - 2:
                    grab(1)
            grab(0)
        else:
            screen, (last, before_last) = self._screen, self._rows
            for t in range(fs):
                reward += act(a)
                if game_over():
                    screen(last)
                    break
                if t == fs - 2:
                    screen(before_last)
                elif t == fs - 1:
                    screen(last)
        self.elapsed_step += 1
        game_over = ale.game_over()
        lives = ale.lives()
        terminated = game_over or (self.episodic_life and lives < self.lives)
        truncated = (not terminated) and self.elapsed_step >= self.max_episode_steps
        self.lives = lives
        self.game_terminated = game_over
        self.raw_reward = float(reward)
        self._head = (self._head + 1) % self.stack_num
        if inc is not None:
            inc.frame(self._ring[self._head])
        else:
            self._process(self._ring[self._head])
        self._write_obs(obs_out)
        r = float(np.sign(reward)) if self.reward_clip else float(reward)
        return r, bool(terminated), bool(truncated)

    # ---- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs = np.empty(self.observation_space.shape, np.uint8)
        self.reset_into(obs, seed=seed)
        return obs, self._info()

    def step(self, action):
        obs = np.empty(self.observation_space.shape, np.uint8)
        r, term, trunc = self.step_into(action, obs)
        return obs, r, term, trunc, self._info()

    def render(self):
        return self.ale.getScreenRGB()

    def close(self):
        self.ale = self._screen = None

    # ---- internals --------------------------------------------------------------------------
    def _info(self) -> dict:
        return dict(zip(self.info_spec, self.info_values(), strict=True))

    def _seed_game(self, seed):
        # same derivation as ale_py.env.AtariEnv.seed_game, so noop counts match gymnasium's
        ss = np.random.SeedSequence(seed)
        np_seed, ale_seed = ss.generate_state(n_words=2)
        self._np_random, _ = seeding.np_random(int(np_seed))
        self.ale.setInt("random_seed", np.int32(ale_seed))

    def _load_game(self):
        self.ale.loadROM(roms.get_rom_path(self.game))
        if self._mode is not None:
            self.ale.setMode(self._mode)
        if self._difficulty is not None:
            self.ale.setDifficulty(self._difficulty)

    def _game_reset(self):
        ale = self.ale
        ale.reset_game()
        noops = int(self._np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        if self._fire and noops > 0:
            noops -= 1
        noop = self._action_set[0]
        for _ in range(noops):
            ale.act(noop)
            if ale.game_over():
                ale.reset_game()
        if self._fire:
            ale.act(Action.FIRE)
            if ale.game_over():
                ale.reset_game()

    def _grab(self, i: int) -> None:
        if self.gray_scale:
            self.ale.getScreenGrayscale(self._raw[i])
        else:
            self.ale.getScreenRGB(self._raw[i])

    def _process(self, out: np.ndarray | None = None) -> np.ndarray:
        raw = self._raw
        if self.frame_skip > 1:
            np.maximum(raw[0], raw[1], out=raw[0])
        if self._area is not None:
            return self._area(raw[0], out)
        return cv2.resize(raw[0], self._size, dst=out, interpolation=self._interp)

    def _write_obs(self, out: np.ndarray) -> None:
        ring, h, n = self._ring, self._head, self.stack_num
        if not self.gray_scale:
            out = out.reshape(n, 3, *out.shape[1:])
            ring = ring.transpose(0, 3, 1, 2)
        k = n - 1 - h  # frames older than the head, at the end of the ring
        out[:k] = ring[h + 1:]
        out[k:] = ring[:h + 1]


def make_env(task_id: str = "Pong-v5", **kwargs) -> AtariEnv:
    """Factory used by :func:`gristmill.samplers.make`: ``make_env("Breakout-v5", seed=1)``."""
    return AtariEnv(task_id, **kwargs)

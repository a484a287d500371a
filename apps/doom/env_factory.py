"""Picklable Doom env factory for rollout workers (imports no torch, so workers stay light)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DoomEnvFactory"]


@dataclass(frozen=True)
class DoomEnvFactory:
    """``factory(env_index) -> DoomEnv`` with the trainer's observation settings (CHW)."""

    env: str
    res_w: int = 128
    res_h: int = 72
    grayscale: bool = False
    frame_skip: int = 4
    episode_horizon: int | None = None

    def __call__(self, env_index: int):
        from gristmill.envs.doom import DoomEnv  # noqa: PLC0415 - imported in the worker

        return DoomEnv(
            self.env,
            resolution=(self.res_w, self.res_h),
            grayscale=self.grayscale,
            channels_first=True,
            frame_skip=self.frame_skip,
            episode_horizon=self.episode_horizon,
        )

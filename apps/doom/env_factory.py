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

    timelimit: float | None = None  # multiplayer match minutes (None: the scenario's)
    # multiplayer: env i's matches try ports from first_port + 10 i (trainers sharing a
    # machine, e.g. the members of a Ray population, start theirs apart)
    first_port: int = 40300

    def __call__(self, env_index: int):
        """A ``DoomEnv``, or a ``DoomMultiAgentEnv`` (per-agent lists) for self-play ids."""
        from gristmill.envs.doom import DoomEnv, DoomMultiAgentEnv, doom_spec  # noqa: PLC0415

        kwargs = dict(
            resolution=(self.res_w, self.res_h),
            grayscale=self.grayscale,
            channels_first=True,
            frame_skip=self.frame_skip,
        )
        if self.timelimit is not None:
            kwargs["timelimit"] = self.timelimit
        if doom_spec(self.env).num_agents > 1:
            # Spread the first ports so that envs starting together rarely collide.
            return DoomMultiAgentEnv(self.env, port=self.first_port + 10 * env_index, **kwargs)
        return DoomEnv(self.env, episode_horizon=self.episode_horizon, **kwargs)

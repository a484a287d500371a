"""`gristmill-doom eval`: run a checkpoint's policy and render episodes to a video.

As in Sample Factory's ``enjoy``, the game runs with frame skip 1 and each action repeats for
the training frame skip, so every game frame lands in the video (35 fps) while the policy
sees what it saw in training.
"""

from __future__ import annotations

import os

import cv2
from gristmill.apps.doom.player import DoomPlayer
from gristmill.envs.doom import DoomEnv

__all__ = ["evaluate", "open_video"]


def evaluate(
    checkpoint: str,
    episodes: int = 1,
    video: str | None = None,
    deterministic: bool = False,
    max_steps: int = 10_000,
    seed: int = 0,
    policy: int = 0,
) -> dict:
    """Play ``episodes`` episodes with policy ``policy`` of the run (a population's member);
    returns rewards/true objectives and writes ``video``."""
    cfg, state, path = DoomPlayer.config_of(checkpoint, policy)
    skip = cfg.env_frameskip
    env = DoomEnv(
        cfg.env,
        resolution=(cfg.res_w, cfg.res_h),
        grayscale=cfg.grayscale,
        channels_first=True,
        frame_skip=1,
        render_mode="rgb_array",
    )
    writer = None
    rewards, objectives, lengths = [], [], []
    try:
        player = DoomPlayer(cfg, state, path, env.observation_space, env.action_space)
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            player.reset()
            total, steps, done, info = 0.0, 0, False, {}
            while not done and steps < max_steps:
                action = player.act(obs, deterministic)
                for _ in range(skip):
                    frame = env.render()
                    if video is not None and frame is not None:
                        if writer is None:
                            writer = open_video(video, frame.shape[1], frame.shape[0])
                        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    obs, r, term, trunc, info = env.step(action)
                    total += r
                    if term or trunc:
                        done = True
                        break
                steps += 1
            rewards.append(total)
            lengths.append(steps)
            objectives.append(float(info.get("true_objective", total)))
    finally:
        env.close()
        if writer is not None:
            writer.release()
    return {
        "checkpoint": path,
        "episode_rewards": rewards,
        "true_objectives": objectives,
        "lengths": lengths,
        "video": video,
    }


def open_video(path: str, width: int, height: int):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 35.0, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"could not open a video writer for {path}")
    return writer

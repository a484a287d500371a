"""PPO exactly as CleanRL's ``ppo_atari_envpool.py``, on :func:`gristmill.samplers.make`
(EnvPool semantics: episodic life, reward clipping, 4-frame stacks of 84x84 gray frames,
next-step auto-reset). The command line is :mod:`.cli`, the options :mod:`.config`.

Hyper-parameters default to CleanRL's (8 envs x 128 steps, 4 minibatches x 4 epochs, lr 2.5e-4
annealed, clip 0.1, entropy 0.01, GAE 0.99/0.95, grad clip 0.5); CleanRL reports Pong-v5
20.45 +- 0.09 after 10M frames. Episode returns are the unclipped game score over all lives
(``info["reward"]``, ended by ``info["terminated"]``, the real game over), as CleanRL's
``RecordEpisodeStatistics`` for envpool computes them.

Ctrl-C or SIGTERM stops the run at the next env step and writes a checkpoint (the partial
rollout is dropped); the same command resumes from the newest checkpoint (``--restart`` starts
over). A second signal interrupts at once (:mod:`gristmill.apps.stop_signal`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque

import numpy as np
import torch
from gristmill.apps.atari.config import TrainConfig
from gristmill.apps.checkpoints import resume_checkpoint, save_checkpoint
from gristmill.apps.config_cli import shared_fields
from gristmill.apps.console import RunConsole
from gristmill.apps.curves import tensorboard_writer
from gristmill.apps.stop_signal import StopSignal
from gristmill.learners import (
    ActionSpec,
    ActorCritic,
    PPOConfig,
    PPOLearner,
    retain_freed_memory,
    select_device,
)
from gristmill.learners.ppo import cleanrl_atari_model_config
from gristmill.samplers import make

__all__ = ["train"]


def train(args: TrainConfig, console: RunConsole | None = None) -> dict:
    """Run PPO until ``total_timesteps`` or a stop signal; returns a summary dict (its
    ``"interrupted"`` names the signal when one stopped the run)."""
    with StopSignal() as stop:
        return _train(args, console, stop)


def _train(args: TrainConfig, console: RunConsole | None, stop: StopSignal) -> dict:
    console = console or RunConsole(args.total_timesteps * 4)
    exp_dir = os.path.join(args.train_dir, args.experiment_name)
    ckpt_dir = os.path.join(exp_dir, "checkpoints")
    os.makedirs(exp_dir, exist_ok=True)
    with open(os.path.join(exp_dir, "config.json"), "w") as f:
        f.write(args.to_json())
    torch.manual_seed(args.seed)
    retain_freed_memory()
    device = select_device(args.device)
    pool = make(
        args.env,
        num_envs=args.num_envs,
        num_workers=args.num_workers or None,
        seed=args.seed,
        on_error="restart" if args.max_worker_restarts > 0 else "raise",
        max_restarts=args.max_worker_restarts,
        episodic_life=True,
        reward_clip=True,
    )
    writer = tensorboard_writer(exp_dir)
    try:
        obs_shape = tuple(pool.single_observation_space.shape)
        n_actions = int(pool.single_action_space.n)
        model = ActorCritic(
            {"obs": obs_shape}, ActionSpec((n_actions,)), cleanrl_atari_model_config()
        )
        # CleanRL's names: PPOConfig takes every field it shares with the app's config
        cfg = shared_fields(PPOConfig, args, target_kl=args.target_kl or None)
        learner = PPOLearner(model, cfg, device)

        def save() -> str:
            state = {"learner": learner.state_dict(), "config": dataclasses.asdict(args)}
            return save_checkpoint(ckpt_dir, state, learner.updates, learner.env_steps)

        found = resume_checkpoint(ckpt_dir, args.restart, device)
        if found:
            path, state = found
            learner.load_state_dict(state["learner"])
            console.print(f"resumed from {path}: {learner.env_steps:,} steps")
        n, t = args.num_envs, args.num_steps
        batch_steps = n * t
        num_updates = max(1, args.total_timesteps // batch_steps)
        obs_buf = torch.zeros((t, n) + obs_shape, dtype=torch.uint8)
        act_buf = torch.zeros((t, n, 1))
        logp_buf, val_buf, rew_buf = torch.zeros(t, n), torch.zeros(t, n), torch.zeros(t, n)
        done_buf = torch.zeros(t, n, dtype=torch.bool)
        ep_ret, ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)
        returns, lengths = deque(maxlen=100), deque(maxlen=100)
        next_obs, _ = pool.reset()
        next_obs = torch.from_numpy(np.array(next_obs))
        t0 = last_log = last_save = time.time()
        steps0, stats = learner.env_steps, {}
        state = model.initial_state(n, device)
        update = learner.updates
        while update < num_updates and not stop.requested:
            for step in range(t):
                obs_buf[step] = next_obs
                with torch.no_grad():
                    out = model.act({"obs": next_obs.to(device)}, state)
                act_buf[step], logp_buf[step] = out["actions"].cpu(), out["log_probs"].cpu()
                val_buf[step] = out["values"].cpu()
                o, r, term, trunc, info = pool.step(out["actions"][:, 0].long().cpu().numpy())
                rew_buf[step] = torch.from_numpy(np.asarray(r, dtype=np.float32))
                done_buf[step] = torch.from_numpy(np.logical_or(term, trunc))
                next_obs = torch.from_numpy(np.array(o))
                ep_ret += info["reward"]
                ep_len += 1
                # a first observation flagged truncated: a pool worker died and this env's
                # game restarted; the transition is cut (done), the lost game is not a return
                cut = np.asarray(trunc, bool) & (np.asarray(info["elapsed_step"]) == 0)
                ended = (np.asarray(info["terminated"], bool) | np.asarray(trunc, bool)) & ~cut
                for i in np.flatnonzero(ended):
                    returns.append(float(ep_ret[i]))
                    lengths.append(int(ep_len[i]))
                ep_ret[ended | cut] = 0.0
                ep_len[ended | cut] = 0
                if stop.requested:
                    break
            if stop.requested:
                # The partial rollout is dropped: the learner (and so the checkpoint) only
                # counts steps it trained on, and a resumed run collects them again.
                break
            with torch.no_grad():
                next_value = model.act({"obs": next_obs.to(device)}, state)["values"].cpu()
            stats = learner.update(
                {
                    "obs": {"obs": obs_buf},
                    "actions": act_buf,
                    "log_probs": logp_buf,
                    "values": val_buf,
                    "rewards": rew_buf,
                    "dones": done_buf,
                    "next_values": next_value,
                },
                progress=update / num_updates,
            )
            update = learner.updates
            now = time.time()
            if now - last_log >= args.stats_every_sec or update >= num_updates:
                frames = learner.env_steps * 4
                sps = (learner.env_steps - steps0) / max(now - t0, 1e-6)
                mean_ret = float(np.mean(returns)) if returns else float("nan")
                console.status(
                    now - t0,
                    frames,
                    4 * sps,
                    mean_ret,
                    steps=f"{learner.env_steps:,}",
                    SPS=f"{sps:,.0f}",
                    loss=stats["loss"],
                )
                writer.add_scalar("charts/SPS", sps, learner.env_steps)
                writer.add_scalar("charts/pool_worker_restarts", pool.restarts, learner.env_steps)
                if returns:
                    writer.add_scalar("charts/episodic_return", mean_ret, learner.env_steps)
                    writer.add_scalar("charts/episodic_length", np.mean(lengths), learner.env_steps)
                for k, v in stats.items():
                    writer.add_scalar(f"losses/{k}", v, learner.env_steps)
                writer.flush()
                last_log = now
            if now - last_save >= args.save_every_sec:
                save()
                last_save = now
        if stop.requested:
            console.print(f"stopping on {stop.name}: saving a checkpoint")
        save()
    finally:
        restarts = pool.restarts
        pool.close()
        writer.close()
    elapsed = time.time() - t0
    summary = {
        "env": args.env,
        "steps": learner.env_steps,
        "frames": learner.env_steps * 4,
        "updates": learner.updates,
        "seconds": elapsed,
        "sps": (learner.env_steps - steps0) / max(elapsed, 1e-6),
        "return_mean_100": float(np.mean(returns)) if returns else None,
        "episodes": len(returns),
        "pool_worker_restarts": restarts,
    }
    if stop.requested:
        summary["interrupted"] = stop.name
    return summary

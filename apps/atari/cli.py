"""``gristmill-atari train``: PPO exactly as CleanRL's ``ppo_atari_envpool.py``, on
:func:`gristmill.samplers.make` (EnvPool semantics: episodic life, reward clipping, 4-frame
stacks of 84x84 gray frames, next-step auto-reset).

Hyper-parameters default to CleanRL's (8 envs x 128 steps, 4 minibatches x 4 epochs, lr 2.5e-4
annealed, clip 0.1, entropy 0.01, GAE 0.99/0.95, grad clip 0.5); CleanRL reports Pong-v5
20.45 +- 0.09 after 10M frames. Episode returns are the unclipped game score over all lives
(``info["reward"]``, ended by ``info["terminated"]``, the real game over), as CleanRL's
``RecordEpisodeStatistics`` for envpool computes them.

Ctrl-C or SIGTERM stops the run at the next env step and writes a checkpoint (the partial
rollout is dropped); the same command resumes from the newest checkpoint (``--restart`` starts
over). A second signal interrupts at once.

Examples::

    gristmill-atari train --env Pong-v5 --total_timesteps 10000000
    gristmill-atari train --env Breakout-v5 --num_envs 16 --device cuda
    gristmill-atari plot runs/Pong-v5 runs/Breakout-v5    # reward curves, one PNG

Status lines, the progress bar, ``--quiet`` and the JSON summary on stdout follow
:mod:`gristmill.apps.console`; every run ends with ``<experiment>/curves.png`` and
``<experiment>/summary.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, fields

# Idle OpenMP threads sleep rather than spin while the pool's workers need the cores (read
# when torch loads OpenMP, so before the import).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gristmill.apps.checkpoints import (  # noqa: E402
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from gristmill.apps.console import RunConsole, run_summary  # noqa: E402
from gristmill.learners import (  # noqa: E402
    ActionSpec,
    ActorCritic,
    PPOConfig,
    PPOLearner,
    retain_freed_memory,
    select_device,
)
from gristmill.learners.ppo import cleanrl_atari_model_config  # noqa: E402

__all__ = ["Args", "main", "train"]


@dataclass
class Args:
    """CleanRL ppo_atari_envpool defaults."""

    env: str = "Pong-v5"  # Atari task id (EnvPool naming)
    experiment: str = ""  # run name (default: the env id)
    train_dir: str = "runs"  # experiments live in train_dir/experiment
    restart: bool = False  # ignore existing checkpoints
    seed: int = 1  # pool and torch seed
    device: str = "auto"  # auto | cpu | cuda
    total_timesteps: int = 10_000_000  # agent steps (x4 frames with frame skip 4)
    num_envs: int = 8  # parallel games
    num_workers: int = 0  # pool worker processes (0: one per core)
    max_worker_restarts: int = 100  # crashed pool workers replaced before the run stops (0: none)
    num_steps: int = 128  # steps per env per rollout
    learning_rate: float = 2.5e-4  # Adam learning rate (annealed to 0)
    anneal_lr: bool = True  # linear learning-rate decay
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    num_minibatches: int = 4  # minibatches per epoch
    update_epochs: int = 4  # epochs per rollout
    norm_adv: bool = True  # standardise advantages per minibatch
    clip_coef: float = 0.1  # PPO clip
    clip_vloss: bool = True  # PPO2 value clipping
    ent_coef: float = 0.01  # entropy bonus
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient clip
    target_kl: float = 0.0  # early-stop epochs above this approx KL (0: off)
    save_every_sec: float = 300.0  # checkpoint period
    stats_every_sec: float = 10.0  # console/TensorBoard period


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if text.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gristmill-atari", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    train_p = sub.add_parser("train", help="train PPO (CleanRL ppo_atari)")
    for f in fields(Args):
        kind = {"bool": _bool, "int": int, "float": float, "str": str}[str(f.type)]
        train_p.add_argument(
            f"--{f.name}", type=kind, default=f.default, help=f"(default: {f.default})"
        )
    train_p.add_argument("--quiet", action="store_true",
                         help="no progress: errors and the JSON summary only")
    pl = sub.add_parser("plot", help="reward vs frames and vs wall time of runs, one PNG")
    pl.add_argument("runs", nargs="+", help="experiment directories (train_dir/experiment)")
    pl.add_argument("--out", default=None,
                    help="PNG path (default: RUN/curves.png for one run, curves.png for several)")
    return p


class _StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop at the next env step (a
    checkpoint is then written at a consistent point); a second one interrupts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __call__(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(args: Args, console: RunConsole | None = None) -> dict:
    """Run PPO until ``total_timesteps`` or a stop signal; returns a summary dict (its
    ``"interrupted"`` names the signal when one stopped the run)."""
    with _StopRequest() as stop:
        return _train(args, console, stop)


def _train(args: Args, console: RunConsole | None, stop: _StopRequest) -> dict:
    from gristmill.samplers import make  # noqa: PLC0415
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - slow import

    console = console or RunConsole(args.total_timesteps * 4)
    exp_dir = os.path.join(args.train_dir, args.experiment or args.env)
    ckpt_dir = os.path.join(exp_dir, "checkpoints")
    os.makedirs(exp_dir, exist_ok=True)
    with open(os.path.join(exp_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(args), f, indent=2)
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
    writer = SummaryWriter(os.path.join(exp_dir, "tb"))
    try:
        obs_shape = tuple(pool.single_observation_space.shape)
        n_actions = int(pool.single_action_space.n)
        model = ActorCritic(
            {"obs": obs_shape}, ActionSpec((n_actions,)), cleanrl_atari_model_config()
        )
        cfg = PPOConfig(
            learning_rate=args.learning_rate,
            anneal_lr=args.anneal_lr,
            gamma=args.gamma,
            gae_lambda=args.gae_lambda,
            num_minibatches=args.num_minibatches,
            update_epochs=args.update_epochs,
            norm_adv=args.norm_adv,
            clip_coef=args.clip_coef,
            clip_vloss=args.clip_vloss,
            ent_coef=args.ent_coef,
            vf_coef=args.vf_coef,
            max_grad_norm=args.max_grad_norm,
            target_kl=args.target_kl or None,
        )
        learner = PPOLearner(model, cfg, device)
        path = None if args.restart else latest_checkpoint(ckpt_dir)
        if path:
            learner.load_state_dict(load_checkpoint(path, device)["learner"])
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
        while update < num_updates and stop.signum is None:
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
                if stop.signum is not None:
                    break
            if stop.signum is not None:
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
                save_checkpoint(
                    ckpt_dir,
                    {"learner": learner.state_dict(), "config": dataclasses.asdict(args)},
                    learner.updates,
                    learner.env_steps,
                )
                last_save = now
        if stop.signum is not None:
            console.print(f"stopping on {signal.Signals(stop.signum).name}: saving a checkpoint")
        save_checkpoint(
            ckpt_dir,
            {"learner": learner.state_dict(), "config": dataclasses.asdict(args)},
            learner.updates,
            learner.env_steps,
        )
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
    if stop.signum is not None:
        summary["interrupted"] = signal.Signals(stop.signum).name
    return summary


def main(argv: list[str] | None = None) -> int:
    from gristmill.apps.curves import plot_command, plot_curves  # noqa: PLC0415

    ns = _parser().parse_args(argv)
    if ns.command == "plot":
        return plot_command("gristmill-atari", ns.runs, ns.out)
    args = Args(**{f.name: getattr(ns, f.name) for f in fields(Args)})
    exp = os.path.join(args.train_dir, args.experiment or args.env)
    try:
        with RunConsole(args.total_timesteps * 4, quiet=ns.quiet) as con:
            s = train(args, con)
    except KeyboardInterrupt:
        print(json.dumps({"reason": "interrupted"}))
        return 130
    try:
        curves = plot_curves([exp], os.path.join(exp, "curves.png"),
                             title=f"gristmill-atari {args.env}")
    except (ValueError, ImportError) as e:  # no episode finished yet / no matplotlib
        con.print(f"no learning curve: {e}")
        curves = None
    reason = f"interrupted ({s['interrupted']})" if "interrupted" in s else "done"
    con.summary(
        run_summary(
            "gristmill-atari", args.env, reason, s["frames"], s["seconds"], 4 * s["sps"],
            s["return_mean_100"], s["episodes"],
            {**s, "experiment_dir": exp,
             "checkpoint": latest_checkpoint(os.path.join(exp, "checkpoints")),
             "tensorboard": os.path.join(exp, "tb"), "curves_png": curves},
        ),
        exp,
    )
    return 130 if "interrupted" in s else 0


if __name__ == "__main__":
    sys.exit(main())

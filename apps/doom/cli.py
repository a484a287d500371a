"""``gristmill-doom``: train APPO on VizDoom (Sample Factory's algorithm) and evaluate policies.

Examples::

    gristmill-doom quickstart          # doom_basic to Sample Factory's reward, eval, video
    gristmill-doom train --env doom_basic --train_for_env_steps 500000
    gristmill-doom train --env doom_duel --num_policies 4 --with_pbt true --ray auto
    gristmill-doom eval --checkpoint runs/doom_basic --video basic.mp4
    gristmill-doom plot runs/doom_basic runs/other     # reward curves overlaid, one PNG
    gristmill-doom envs

Status lines, the progress bar, ``--quiet`` and the JSON summary on stdout follow
:mod:`gristmill.apps.console`; every run ends with ``<experiment>/curves.png`` and
``<experiment>/summary.json``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys

from gristmill.apps.config_cli import add_arguments, config_from_args
from gristmill.apps.console import RunConsole, run_summary
from gristmill.apps.doom.config import TrainConfig
from gristmill.apps.stop_signal import StopSignal

__all__ = ["QUICKSTART", "main"]

# `quickstart`: doom_basic with BENCHMARKS.md's curve settings (2 workers x 4 envs, 500k
# frames): Sample Factory 2.1.1 ends at a mean reward of 0.733 there, gristmill at 0.721
# (3 seeds each), in about 4 minutes on 2 cores.
QUICKSTART = {
    "env": "doom_basic",
    "experiment": "quickstart",
    "num_workers": 2,
    "num_envs_per_worker": 4,
    "train_for_env_steps": 500_000,
}
SF_DOOM_BASIC_REWARD = 0.733  # Sample Factory 2.1.1's mean final reward there (BENCHMARKS.md)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gristmill-doom", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a policy (asynchronous APPO)")
    add_arguments(train, TrainConfig)
    quick = sub.add_parser(
        "quickstart",
        help="train doom_basic to Sample Factory's reward (~4 min on 2 cores), evaluate it, "
        "write a video and the learning curve",
    )
    add_arguments(quick, TrainConfig, QUICKSTART)
    quick.add_argument("--episodes", type=int, default=5, help="evaluation episodes")
    for cmd in (train, quick):
        cmd.add_argument("--quiet", action="store_true", help="no progress: errors and the "
                         "JSON summary only")
    pl = sub.add_parser("plot", help="reward vs frames and vs wall time of runs, one PNG")
    pl.add_argument("runs", nargs="+", help="experiment directories (train_dir/experiment)")
    pl.add_argument("--out", default=None,
                    help="PNG path (default: RUN/curves.png for one run, curves.png for several)")
    ev = sub.add_parser("eval", help="play a checkpoint and optionally record a video")
    ev.add_argument("--checkpoint", required=True, help="checkpoint file or experiment directory")
    ev.add_argument("--episodes", type=int, default=1)
    ev.add_argument("--video", default=None, help="write an .mp4 of the episodes here")
    ev.add_argument("--deterministic", action="store_true", help="argmax actions")
    ev.add_argument("--max_steps", type=int, default=10_000, help="steps per episode at most")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--policy", type=int, default=0, help="which policy of a population run")
    ma = sub.add_parser("match", help="two policies in duels and against the bots: a result "
                        "table (wins, frags, deaths) and a video")
    ma.add_argument("a", help="RUN_DIR[:policy], a checkpoint file, or 'random'")
    ma.add_argument("b", help="RUN_DIR[:policy], a checkpoint file, or 'random' (the "
                    "uniformly random baseline)")
    ma.add_argument("--episodes", type=int, default=10, help="duels between A and B")
    ma.add_argument("--bot_episodes", type=int, default=5, help="games of each vs one bot")
    ma.add_argument("--timelimit", type=float, default=4.0, help="match minutes")
    ma.add_argument("--video", default=None, help="write player A's view of the first duel")
    ma.add_argument("--deterministic", action="store_true", help="argmax actions")
    ma.add_argument("--seed", type=int, default=0, help="duel k plays game seed SEED + k; "
                    "chunks of N duels with seeds 0, N, 2N... are independent")
    sub.add_parser("envs", help="list the Doom env ids")
    return p


def _interrupt() -> None:
    raise KeyboardInterrupt


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout holds only the JSON result


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP threads sleep instead of spinning: on a small box the spin steals the cores
    # the games and the other torch thread need (must be set before torch starts OpenMP).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # `kill -USR1 <pid>` prints every thread's stack to stderr: a run that seems stuck can be
    # inspected without stopping it
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    args = _parser().parse_args(argv)
    if args.command == "envs":
        from gristmill.envs.doom import DOOM_ENVS  # noqa: PLC0415

        for spec in DOOM_ENVS:
            print(f"{spec.name:38s} {spec.action_space()}")
        return 0
    if args.command == "eval":
        from gristmill.apps.doom.evaluate import evaluate  # noqa: PLC0415

        result = evaluate(
            args.checkpoint,
            args.episodes,
            args.video,
            args.deterministic,
            args.max_steps,
            args.seed,
            args.policy,
        )
        print(json.dumps(result, indent=2))
        return 0
    if args.command == "match":
        from gristmill.apps.doom.match import format_table, match  # noqa: PLC0415

        # SIGTERM ends the match at once, and its games with it (`finally` closes them); the
        # match also polls the flag, in case the interrupt was raised where it is swallowed.
        try:
            with StopSignal(on_stop=_interrupt) as stop:
                result = match(args.a, args.b, args.episodes, args.bot_episodes, args.timelimit,
                               args.video, args.deterministic, args.seed,
                               should_stop=lambda: stop.requested,
                               progress=_progress)  # fmt: skip
            if stop.requested:  # arrived after the last step
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            name = stop.name or "SIGINT"
            print(f"match stopped by {name}; its games are closed", file=sys.stderr)
            return 130
        print(format_table(result), file=sys.stderr)
        print(json.dumps(result), flush=True)
        return 0
    if args.command == "plot":
        from gristmill.apps.curves import plot_command  # noqa: PLC0415

        return plot_command("gristmill-doom", args.runs, args.out)
    cfg = config_from_args(TrainConfig, args)
    with RunConsole(cfg.train_for_env_steps, cfg.train_for_seconds, quiet=args.quiet) as con:
        summary = _train(cfg, con)
    ok = summary["reason"] in ("done", "time limit")
    if args.command == "quickstart" and ok:
        summary = _quickstart_eval(summary, args.episodes, con)
    _closing_note(summary, con)
    con.summary(summary, summary["experiment_dir"])
    return 0 if ok else 130


def _train(cfg: TrainConfig, con: RunConsole) -> dict:
    """Train, then draw the run's curve; the run summary with where its files are."""
    from gristmill.apps.checkpoints import latest_checkpoint  # noqa: PLC0415
    from gristmill.apps.curves import plot_curves  # noqa: PLC0415
    from gristmill.apps.doom.trainer import DoomTrainer  # noqa: PLC0415

    if cfg.ray:  # each policy a Ray actor, the league here
        from gristmill.apps.doom.ray_population import RayPopulation  # noqa: PLC0415

        trainer = RayPopulation(cfg, con)
    else:
        trainer = DoomTrainer(cfg, con)
    s = trainer.run()
    exp = trainer.exp_dir
    try:
        png = os.path.join(exp, "curves.png")
        ref = None
        if cfg.env == "doom_basic":
            ref = (SF_DOOM_BASIC_REWARD, "Sample Factory 2.1.1, 500k frames")
        curves = plot_curves([exp], png, title=f"gristmill-doom {cfg.env}", reference=ref)
    except (ValueError, ImportError) as e:  # no episode finished yet / no matplotlib
        con.print(f"no learning curve: {e}")
        curves = None
    return run_summary(
        "gristmill-doom",
        cfg.env,
        s["reason"],
        s["env_frames"],
        s["seconds"],
        s["fps"],
        s["reward_mean_100"],
        s["episodes"],
        {
            **s,
            "experiment_dir": exp,
            "checkpoint": latest_checkpoint(trainer.ckpt_dir),
            "tensorboard": os.path.join(exp, "tb"),
            "curves_png": curves,
        },
    )


def _quickstart_eval(summary: dict, episodes: int, con: RunConsole) -> dict:
    """Play the trained policy into ``<experiment>/eval.mp4``; the summary with the result."""
    from gristmill.apps.doom.evaluate import evaluate  # noqa: PLC0415

    video = os.path.join(summary["experiment_dir"], "eval.mp4")
    con.print(f"evaluating {episodes} episodes into {video} ...")
    result = evaluate(summary["experiment_dir"], episodes, video)
    rewards = [round(r, 3) for r in result["episode_rewards"]]
    mean = round(sum(rewards) / len(rewards), 4)
    return {**summary, "eval_rewards": rewards, "eval_reward_mean": mean, "video": video}


def _closing_note(s: dict, con: RunConsole) -> None:
    """What the run got and where its files are, for a human (stderr)."""
    reward = "-" if s["reward_mean_100"] is None else f"{s['reward_mean_100']:.3f}"
    text = (
        f"\n[bold]{s['env']}[/bold] ({s['reason']}): {s['frames']:,} frames in "
        f"{s['seconds'] / 60:.1f} min, {s['fps']:,.0f} frames/s; mean reward of the last 100 "
        f"training episodes {reward}"
    )
    if s["env"] == "doom_basic":
        text += f" (Sample Factory 2.1.1 at 500k frames: {SF_DOOM_BASIC_REWARD})"
    if "eval_rewards" in s:
        rewards = ", ".join(f"{r:.2f}" for r in s["eval_rewards"])
        text += f"\nevaluation: {rewards} (mean {s['eval_reward_mean']:.3f})"
    where = [
        ("checkpoint", s["checkpoint"]),
        ("TensorBoard", f"tensorboard --logdir {s['tensorboard']}"),
        ("curves", s["curves_png"]),
        ("video", s.get("video")),
        ("summary", os.path.join(s["experiment_dir"], "summary.json")),
    ]
    text += "".join(f"\n  {k:<12} {v}" for k, v in where if v)
    con.print(text)


if __name__ == "__main__":
    sys.exit(main())

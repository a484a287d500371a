"""``gristmill-atari``: CleanRL's PPO on gristmill's env pool (:mod:`.trainer`), its options
(:mod:`.config`) as flags, and reward plots.

Examples::

    gristmill-atari train --env Pong-v5 --total_timesteps 10000000
    gristmill-atari train --env Breakout-v5 --num_envs 16 --device cuda
    gristmill-atari plot runs/Pong-v5 runs/Breakout-v5    # reward curves, one PNG

Ctrl-C or SIGTERM stops a run at the next env step with a checkpoint; the same command resumes.
Status lines, the progress bar, ``--quiet`` and the JSON summary on stdout follow
:mod:`gristmill.apps.console`; every run ends with ``<experiment>/curves.png`` and
``<experiment>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from gristmill.apps.atari.config import TrainConfig
from gristmill.apps.config_cli import add_arguments, config_from_args
from gristmill.apps.console import RunConsole, run_summary
from gristmill.apps.curves import plot_command, plot_curves

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gristmill-atari", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    train_p = sub.add_parser("train", help="train PPO (CleanRL ppo_atari)")
    add_arguments(train_p, TrainConfig)
    train_p.add_argument("--quiet", action="store_true",
                         help="no progress: errors and the JSON summary only")
    pl = sub.add_parser("plot", help="reward vs frames and vs wall time of runs, one PNG")
    pl.add_argument("runs", nargs="+", help="experiment directories (train_dir/experiment)")
    pl.add_argument("--out", default=None,
                    help="PNG path (default: RUN/curves.png for one run, curves.png for several)")
    return p


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP threads sleep rather than spin while the pool's workers need the cores (read
    # when torch loads OpenMP, so before the trainer imports it).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ns = _parser().parse_args(argv)
    if ns.command == "plot":
        return plot_command("gristmill-atari", ns.runs, ns.out)
    from gristmill.apps.atari.trainer import train  # noqa: PLC0415 - loads torch
    from gristmill.apps.checkpoints import latest_checkpoint  # noqa: PLC0415

    args = config_from_args(TrainConfig, ns)
    exp = os.path.join(args.train_dir, args.experiment_name)
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

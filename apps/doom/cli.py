"""``gristmill-doom``: train APPO on VizDoom (Sample Factory's algorithm) and evaluate policies.

Examples::

    gristmill-doom train --env doom_basic --train_for_env_steps 500000
    gristmill-doom eval --checkpoint runs/doom_basic --video basic.mp4
    gristmill-doom envs
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys

from gristmill.apps.doom.config import add_arguments, from_args

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gristmill-doom", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a policy (asynchronous APPO)")
    add_arguments(train)
    ev = sub.add_parser("eval", help="play a checkpoint and optionally record a video")
    ev.add_argument("--checkpoint", required=True, help="checkpoint file or experiment directory")
    ev.add_argument("--episodes", type=int, default=1)
    ev.add_argument("--video", default=None, help="write an .mp4 of the episodes here")
    ev.add_argument("--deterministic", action="store_true", help="argmax actions")
    ev.add_argument("--max_steps", type=int, default=10_000, help="steps per episode at most")
    ev.add_argument("--seed", type=int, default=0)
    sub.add_parser("envs", help="list the Doom env ids")
    return p


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
        )
        print(json.dumps(result, indent=2))
        return 0
    from gristmill.apps.doom.trainer import DoomTrainer  # noqa: PLC0415

    cfg = from_args(args)
    summary = DoomTrainer(cfg).run()
    print(json.dumps(summary))
    return 0 if summary["reason"] in ("done", "time limit") else 130


if __name__ == "__main__":
    sys.exit(main())

"""``gristmill-generals``: play Generals.io bots against each other, write and render replays.

Examples::

    gristmill-generals play general expander --games 200 --replays runs/replays --keep 2
    gristmill-generals play runs/g/policy.pt general --games 200    # a trained agent
    gristmill-generals table --games 200            # win-rate table of every pair of bots
    gristmill-generals render runs/replays/game_000.npz --out game.gif [--view 0]
    gristmill-generals render runs/replays/game_000.npz --ansi --tick 100
    gristmill-generals view runs/replays --out games.html      # browser replay viewer
    gristmill-generals serve --opponent general                # play in the browser
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gristmill.envs.generals import BOTS, Replay
from gristmill.envs.generals.engine import PRIORITY_RULES
from gristmill.envs.generals.tournament import play_match

from .agent_cli import add_commands as add_agent_commands


def _add_rules(p: argparse.ArgumentParser) -> None:
    p.add_argument("--games", type=int, default=200, help="games per pairing (default 200)")
    p.add_argument("--maps", choices=("uniform", "generalsio"), default="generalsio")
    p.add_argument("--truncation", type=int, default=1000, help="ticks before a draw")
    p.add_argument("--priority", choices=sorted(PRIORITY_RULES), default="priority")
    p.add_argument("--seed", type=int, default=0)


def _row(r) -> str:
    return (f"| {r.bot_a} | {r.bot_b} | {r.games} | {r.wins_a} | {r.wins_b} | {r.draws} | "
            f"{100 * r.score_a:.1f} % | {r.mean_length:.0f} |")


HEADER = ("| bot A | bot B | games | A wins | B wins | draws | A score | mean ticks |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|")


def cmd_play(args) -> int:
    from .players import load_opponent

    try:
        a, b = load_opponent(args.bot_a), load_opponent(args.bot_b)
    except (ValueError, RuntimeError) as e:
        print(f"play: {e}", file=sys.stderr)
        return 2
    r = play_match(a, b, args.games, args.maps, args.truncation, args.priority,
                   args.seed, keep_replays=args.keep if args.replays else 0)
    print(HEADER)
    print(_row(r))
    if args.replays:
        out = Path(args.replays)
        out.mkdir(parents=True, exist_ok=True)
        for k, rep in enumerate(r.replays):
            path = rep.save(out / f"game_{k:03d}.npz")
            print(f"replay: {path} ({rep.num_ticks} ticks, {path.stat().st_size} bytes)")
    return 0


def cmd_table(args) -> int:
    print(f"maps={args.maps} truncation={args.truncation} priority={args.priority} "
          f"seed={args.seed}; seats alternate between games; draw = truncated")
    print(HEADER)
    names = args.bots or list(BOTS)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            r = play_match(a, b, args.games, args.maps, args.truncation, args.priority,
                           args.seed)
            print(_row(r), flush=True)
    return 0


def cmd_render(args) -> int:
    rep = Replay.load(args.replay)
    if args.ansi:
        frames = list(rep.ansi(args.view))
        tick = min(args.tick if args.tick is not None else len(frames) - 1, len(frames) - 1)
        print(frames[tick])
        return 0
    if not args.out:
        print("render: give --out FILE.gif|FILE.mp4 or --ansi", file=sys.stderr)
        return 2
    path = rep.export(args.out, fps=args.fps, view=args.view)
    print(f"wrote {path}")
    return 0


def cmd_view(args) -> int:
    from .viewer import write_viewer

    try:
        path = write_viewer(args.replay, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"view: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, self-contained: open it in a "
          "browser)")
    return 0


def cmd_serve(args) -> int:
    try:
        from .server import PlayConfig, serve
    except ImportError as e:
        print(f"serve: {e}; install the web extra: pip install 'gristmill[web]'",
              file=sys.stderr)
        return 2
    try:
        cfg = PlayConfig(opponent=args.opponent, tick_seconds=args.tick, turn_based=args.turns,
                         truncation=args.truncation, maps=args.maps, replays=args.replays,
                         seed=args.seed)
        serve(cfg, args.port)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"serve: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gristmill-generals", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("play", help="play two bots or agent checkpoints against each other")
    p.add_argument("bot_a", help=f"a bot ({', '.join(BOTS)}) or an agent checkpoint (.pt)")
    p.add_argument("bot_b", help="the same for the other side")
    _add_rules(p)
    p.add_argument("--replays", help="folder to write replays (.npz) into")
    p.add_argument("--keep", type=int, default=1, help="replays to write (default 1)")
    p.set_defaults(fn=cmd_play)
    p = sub.add_parser("table", help="win-rate table of every pair of bots")
    _add_rules(p)
    p.add_argument("--bots", nargs="+", choices=BOTS)
    p.set_defaults(fn=cmd_table)
    p = sub.add_parser("render", help="render a replay to GIF/MP4 or ANSI text")
    p.add_argument("replay")
    p.add_argument("--out", help="output .gif or .mp4")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--view", type=int, choices=(0, 1), help="a player's fogged view")
    p.add_argument("--ansi", action="store_true", help="print one tick as ANSI text")
    p.add_argument("--tick", type=int, help="tick for --ansi (default: the last)")
    p.set_defaults(fn=cmd_render)
    p = sub.add_parser("view", help="write a self-contained HTML replay viewer")
    p.add_argument("replay", help="a replay (.npz) or a directory of them (shown as a list)")
    p.add_argument("--out", help="output .html (default: beside the replay / DIR/index.html)")
    p.set_defaults(fn=cmd_view)
    p = sub.add_parser("serve", help="play against a bot or an agent in the browser")
    p.add_argument("--opponent", default="expander",
                   help=f"a bot ({', '.join(BOTS)}) or an agent checkpoint (default expander)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free)")
    p.add_argument("--tick", type=float, default=0.5, help="seconds per tick (generals.io: 0.5)")
    p.add_argument("--turns", action="store_true", help="turn by turn: tick on space only")
    p.add_argument("--truncation", type=int, default=1000, help="ticks before a draw")
    p.add_argument("--maps", choices=("uniform", "generalsio"), default="generalsio")
    p.add_argument("--replays", default="runs/generals_web", help="where games are saved")
    p.add_argument("--seed", type=int)
    p.set_defaults(fn=cmd_serve)
    add_agent_commands(sub)
    args = ap.parse_args(argv)
    least = 0 if args.cmd == "bc-data" else 1  # bc-data: 0 = replays or own games alone
    if getattr(args, "games", 1) < least:
        ap.error(f"--games must be >= {least}")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

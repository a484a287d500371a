"""A rating ladder from ``gristmill-doom match`` results: Bradley-Terry ratings of every member.

The league's own rating table gives frozen snapshots few games (they are drawn as opponents
with a small probability), so it cannot show a population's rise. This fits the table of
record (``gristmill.learners.league.fit_ratings``: batch Elo, a draw counts 1/2, bootstrap
intervals) on dedicated evaluation duels instead: the JSON lines that ``gristmill-doom match``
prints, one per call, from any number of files. A member is named by its spec, a snapshot
file by its stem (``RUN:p0@246``, ``runs/x/kept/p0@246.pt`` and
``runs/x/checkpoints/snapshots/p0@246.pt`` are all ``p0@246``).

    gristmill-doom match RUN:0 RUN:p0@246 --episodes 10 --seed 100 >> duels.jsonl
    python bench/doom_ladder.py duels.jsonl --anchor random
"""

from __future__ import annotations

import os
import sys

# bench/ holds modules named like the stdlib's (bench/queue.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from gristmill.learners.league import DRAW, LOSS, WIN, PayoffTable, fit_ratings  # noqa: E402


def member(spec: str) -> str:
    """A member's name in the ladder: a snapshot's name (``RUN:p0@246``, a snapshot file's stem),
    a checkpoint file's stem, else the spec itself (``RUN:0``, ``random``)."""
    if spec.endswith(".pt"):
        return Path(spec).stem
    tail = spec.rpartition(":")[2]
    return tail if "@" in tail else spec


def read_duels(paths: list[str]) -> list[tuple[str, str, int, int, int]]:
    """``(a, b, a_wins, b_wins, draws)`` per match result line of ``paths``."""
    out = []
    for path in paths:
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
                a, b = (member(row["player"]) for row in r["rows"])
                wa, wb = (int(row["duel"]["wins"]) for row in r["rows"])
                draws = int(r["draws"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a gristmill-doom match result: {exc}") from exc
            if r["duels"]:
                out.append((a, b, wa, wb, draws))
    return out


def ladder(duels, anchor: str, bootstrap: int = 500):
    """The duels' payoff table (``league.PayoffTable``) and its rating table."""
    table = PayoffTable(sorted({m for d in duels for m in d[:2]}))
    if anchor not in table:
        raise ValueError(f"anchor {anchor!r} played no duel; members: {table.members}")
    for a, b, wa, wb, d in duels:
        for result, n in ((WIN, wa), (DRAW, d), (LOSS, wb)):
            for _ in range(n):
                table.update(a, b, result)
    return table, fit_ratings(table.members, table.record, anchor, bootstrap=bootstrap)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", help="files of gristmill-doom match JSON lines")
    p.add_argument("--anchor", default="random", help="the member rated 0")
    p.add_argument("--bootstrap", type=int, default=500)
    args = p.parse_args(argv)
    duels = read_duels(args.results)
    table, ratings = ladder(duels, args.anchor, args.bootstrap)
    pairs: dict[frozenset, tuple[str, str]] = {}  # each pair once, as its first duel named it
    for a, b, *_ in duels:
        pairs.setdefault(frozenset((a, b)), (a, b))
    record = table.record
    print("| A | B | duels | A wins | B wins | draws | A wins % |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for a, b in sorted(pairs.values()):
        wa, d, wb = (int(x) for x in record[table.index(a), table.index(b)])
        n = wa + wb + d
        print(f"| {a} | {b} | {n} | {wa} | {wb} | {d} | {100 * wa / n:.0f} % |")
    print(f"\nratings (Bradley-Terry Elo, {args.anchor} = 0, a draw = 1/2):")
    print(ratings.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

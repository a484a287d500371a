"""``gristmill-shm``: list and remove shared memory left behind by dead gristmill processes.

Every segment gristmill creates is named ``gristmill_<owner pid>_...`` in ``/dev/shm``; its owner
unlinks it on close and exit. An owner killed with SIGKILL cannot, so ``gristmill-shm list``
shows each gristmill entry with its owner's pid and whether that process is alive, and
``gristmill-shm clean`` removes the entries of dead owners (``--all`` also those of live ones:
only use it when no gristmill process is running).

Liveness is read from ``/proc`` in this pid namespace (a zombie counts as dead: an owner killed
with its node may wait long for a reaper): run the command in the same container as the
processes that made the segments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass

from gristmill.kernels import procfs
from gristmill.kernels.shm import parse_owner_pid

__all__ = ["Entry", "clean", "list_entries", "main"]

SHM_DIR = "/dev/shm"


@dataclass(frozen=True)
class Entry:
    """One gristmill entry in ``/dev/shm``."""

    name: str
    pid: int
    size: int
    alive: bool


def list_entries(shm_dir: str = SHM_DIR) -> list[Entry]:
    """Every gristmill segment/semaphore in ``shm_dir``, sorted by name."""
    out = []
    try:
        names = os.listdir(shm_dir)
    except FileNotFoundError:
        return out
    for name in sorted(names):
        pid = parse_owner_pid(name)
        if pid is None:
            continue
        try:
            size = os.stat(os.path.join(shm_dir, name)).st_size
        except FileNotFoundError:
            continue  # unlinked meanwhile
        out.append(Entry(name, pid, size, procfs.alive(pid)))
    return out


def clean(
    include_alive: bool = False,
    dry_run: bool = False,
    shm_dir: str = SHM_DIR,
    pids: Collection[int] | None = None,
):
    """Remove entries whose owner is dead (or all, with ``include_alive``), only those owned
    by ``pids`` when given (the processes of one run); return them."""
    removed = []
    for entry in list_entries(shm_dir):
        if entry.alive and not include_alive:
            continue
        if pids is not None and entry.pid not in pids:
            continue
        if not dry_run:
            try:
                os.unlink(os.path.join(shm_dir, entry.name))
            except FileNotFoundError:
                continue
        removed.append(entry)
    return removed


def _fmt_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gristmill-shm",
        description="List or remove gristmill shared memory in /dev/shm left by dead processes.",
    )
    parser.add_argument("--dir", default=SHM_DIR, help="shared-memory directory (%(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show gristmill entries, their owner pid and whether it lives")
    p_clean = sub.add_parser("clean", help="remove entries whose owner process is dead")
    p_clean.add_argument(
        "--all", action="store_true", help="also remove entries of live owners (dangerous)"
    )
    p_clean.add_argument("--dry-run", action="store_true", help="only print what would go")
    args = parser.parse_args(argv)

    if args.command == "list":
        entries = list_entries(args.dir)
        if not entries:
            print(f"no gristmill entries in {args.dir}")
            return 0
        print(f"{'name':<48} {'pid':>8} {'owner':>6} {'size':>10}")
        for e in entries:
            owner = "alive" if e.alive else "DEAD"
            print(f"{e.name:<48} {e.pid:>8} {owner:>6} {_fmt_size(e.size):>10}")
        dead = sum(not e.alive for e in entries)
        print(f"{len(entries)} entries, {dead} of dead owners (remove: gristmill-shm clean)")
        return 0

    removed = clean(include_alive=args.all, dry_run=args.dry_run, shm_dir=args.dir)
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.name} (pid {e.pid}, {_fmt_size(e.size)})")
    print(f"{verb} {len(removed)} entries")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Processes as Linux's ``/proc`` shows them: the one parser every package uses.

``/proc/<pid>/stat`` puts the command name in parentheses and the name may itself hold spaces
and parentheses (``(Web Content)``), so the fields after it are read from the *last* ``)``.
Every reader returns ``None``/empty for a process that is gone (or on a system without
``/proc``) instead of raising: processes come and go between two reads.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = [
    "ProcStat",
    "stat",
    "alive",
    "children",
    "descendants",
    "cmdline",
    "cpu_seconds",
    "pids",
    "environ",
    "fd_targets",
    "mapped_paths",
]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcStat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` that gristmill reads."""

    pid: int
    comm: str  # the command name (up to 15 characters; may hold spaces)
    state: str  # R, S, D, Z (zombie), T (stopped), ...
    ppid: int
    utime: float  # user CPU seconds
    stime: float  # system CPU seconds


def stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat``, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    if len(fields) < 13:
        return None
    return ProcStat(
        int(pid),
        head.partition("(")[2],
        fields[0],
        int(fields[1]),
        int(fields[11]) / _TICK,
        int(fields[12]) / _TICK,
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    s = stat(pid)
    return s is not None and s.state != "Z"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (of all its threads), zombies included."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> list[bytes]:
    """``argv`` of ``pid`` (empty for a zombie, a kernel thread or a process that is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return raw.split(b"\0")[:-1] if raw else []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 if gone)."""
    s = stat(pid)
    return 0.0 if s is None else s.utime + s.stime


def pids() -> list[int]:
    """Every process id visible in ``/proc``."""
    try:
        return [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []


def environ(pid: int) -> dict[bytes, bytes]:
    """The environment ``pid`` started with (empty if gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key] = value
    return out


def fd_targets(pid: int) -> dict[int, str]:
    """``pid``'s open file descriptors and what each points to (``/dev/shm/x``,
    ``pipe:[123]``, ``socket:[456]``, ...); empty if gone or not ours to read."""
    out: dict[int, str] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except (OSError, ValueError):
            pass
    return out


def mapped_paths(pid: int) -> set[str]:
    """Files ``pid`` has mapped into memory (``/proc/<pid>/maps``' path column)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    out = set()
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            out.add(parts[5].removesuffix(" (deleted)"))
    return out

"""Suite-wide guards: the project's shared memory and child processes are owned.

Every segment and semaphore gristmill creates is named ``gristmill_*`` in /dev/shm. The
suite fails if any new one is left behind when it ends, or if a child process of the test
run is still alive.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

SHM = Path("/dev/shm")
PREFIX = "gristmill_"


def _owner_pid(name: str) -> int | None:
    # gristmill_<pid>_<tag> (segments) or sem.gristmill_<pid>_<tag> (semaphores)
    head = name.split(PREFIX, 1)[1].split("_", 1)[0] if PREFIX in name else ""
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def gristmill_shm_entries() -> set[str]:
    """gristmill's entries in /dev/shm that this test run answers for.

    Counts segments and ``sem.`` semaphores owned by this process, by its descendants, or by
    owners that have died; a live unrelated process (another test run on the same box) may
    create its own meanwhile and is not counted.
    """
    if not SHM.is_dir():
        return set()
    me = os.getpid()
    out = set()
    for entry in SHM.iterdir():
        if PREFIX not in entry.name:
            continue
        pid = _owner_pid(entry.name)
        if pid is None or pid == me or not _alive(pid) or me in _ancestors(pid):
            out.add(entry.name)
    return out


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


_BEFORE: set[str] = set()


def pytest_sessionstart(session):
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a non-interactive shell (`cmd &`, nohup): SIGINT is
        # ignored, every child inherits that and never sees KeyboardInterrupt, so the Ctrl-C
        # tests would hang. A handler (unlike SIG_IGN) resets to the default on exec.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _BEFORE.update(gristmill_shm_entries())


def pytest_sessionfinish(session, exitstatus):
    leaked = sorted(gristmill_shm_entries() - _BEFORE)
    # multiprocessing's resource tracker (started by any spawn) exits with its parent.
    orphans = [
        c for c in _children(os.getpid())
        if _alive(c) and b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
    ]
    problems = []
    if leaked:
        problems.append(f"/dev/shm entries left behind by the test run: {leaked}")
    if orphans:
        cmdlines = [
            Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for c in orphans
        ]
        problems.append(f"child processes still alive at the end of the run: {cmdlines}")
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for p in problems:
            if reporter is not None:
                reporter.write_line(f"ERROR: {p}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def shm_clean():
    """Asserts that the test leaves /dev/shm's gristmill entries as it found them."""
    before = gristmill_shm_entries()
    yield
    after = gristmill_shm_entries()
    assert after - before == set(), f"leaked /dev/shm entries: {sorted(after - before)}"

"""Suite-wide guards: the project's shared memory and child processes are owned.

Every segment and semaphore gristmill creates is named ``gristmill_*`` in /dev/shm. The
suite fails if any new one is left behind when it ends, or if a child process of the test
run is still alive.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHM = Path("/dev/shm")
PREFIX = "gristmill_"


def gristmill_shm_entries() -> set[str]:
    """Names of gristmill's entries in /dev/shm (segments and ``sem.`` semaphores)."""
    if not SHM.is_dir():
        return set()
    return {p.name for p in SHM.iterdir() if PREFIX in p.name}


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
    _BEFORE.update(gristmill_shm_entries())


def pytest_sessionfinish(session, exitstatus):
    leaked = sorted(gristmill_shm_entries() - _BEFORE)
    orphans = [
        c for c in _children(os.getpid())
        if Path(f"/proc/{c}/stat").exists()
        and Path(f"/proc/{c}/stat").read_text().split()[2] != "Z"
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

"""Suite-wide guards: the project's shared memory and child processes are owned.

Every segment and semaphore gristmill creates is named ``gristmill_*`` in /dev/shm. The
suite fails if any new one is left behind when it ends, or if a child process of the test
run is still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from gristmill.kernels import procfs

SHM = Path("/dev/shm")
PREFIX = "gristmill_"


def _owner_pid(name: str) -> int | None:
    # gristmill_<pid>_<tag> (segments) or sem.gristmill_<pid>_<tag> (semaphores)
    head = name.split(PREFIX, 1)[1].split("_", 1)[0] if PREFIX in name else ""
    return int(head) if head.isdigit() else None


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        st = procfs.stat(pid)
        if st is None:
            break
        pid = st.ppid
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
        if pid is None or pid == me or not procfs.alive(pid) or me in _ancestors(pid):
            out.add(entry.name)
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
        c for c in procfs.children(os.getpid())
        if procfs.alive(c) and not any(b"resource_tracker" in a for a in procfs.cmdline(c))
    ]
    problems = []
    if leaked:
        problems.append(f"/dev/shm entries left behind by the test run: {leaked}")
    if orphans:
        cmdlines = [b" ".join(procfs.cmdline(c))[:120] for c in orphans]
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


@pytest.fixture(scope="session")
def shm_entries():
    """:func:`gristmill_shm_entries` itself, for a check per hypothesis example (``shm_clean``
    runs once per test function; session-scoped, so hypothesis may use it)."""
    return gristmill_shm_entries


@contextlib.contextmanager
def _within(seconds: float):
    """Raise TimeoutError in the main thread if the block runs longer than ``seconds`` (a
    hang, for the fuzz tests' examples; a call blocked in C is caught when it returns or by
    pytest-timeout)."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"example still running after {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def within():
    """``with within(seconds): ...`` -- a per-example time limit for hypothesis tests
    (session-scoped, so hypothesis may use it)."""
    return _within


def assert_names(exc: BaseException, *names: str) -> None:
    """The error message names one of ``names`` (the offending argument). Inside a hypothesis
    example the error class is also an event (``--hypothesis-show-statistics`` counts them)."""
    from hypothesis import event
    from hypothesis.errors import InvalidArgument

    with contextlib.suppress(InvalidArgument):
        event(f"refused: {type(exc).__name__}")
    msg = str(exc)
    assert any(n in msg for n in names), f"{type(exc).__name__}({msg!r}) names none of {names}"


@pytest.fixture(scope="session")
def names_arg():
    """``names_arg(exc, "num_envs", ...)``: assert the error message names the argument."""
    return assert_names

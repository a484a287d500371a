"""SharedArray / SharedArrays: named POSIX shared memory as numpy arrays, owned and cleaned up.

Every test runs under the ``shm_clean`` fixture (tests/conftest.py): /dev/shm's gristmill
entries must be left exactly as found, including after children or owners are SIGKILLed.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from gristmill.kernels import procfs, shm_cli
from gristmill.kernels.shm import PREFIX, SharedArray, SharedArrays, parse_owner_pid

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
pytestmark = pytest.mark.usefixtures("shm_clean")


@pytest.fixture
def workers(monkeypatch):
    """The child-process bodies, importable by name in spawn children too."""
    monkeypatch.syspath_prepend(str(HERE))
    import shm_workers

    return shm_workers


def _exists(name: str) -> bool:
    return os.path.exists(f"/dev/shm/{name}")


def _run_script(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


# -- creation, attributes, lifetime ---------------------------------------------------------
def test_create_is_zero_filled_named_and_owned():
    with SharedArray.create((3, 5), np.float32) as a:
        assert a.name.startswith(f"{PREFIX}{os.getpid()}_")
        assert parse_owner_pid(a.name) == os.getpid()
        assert _exists(a.name)
        assert a.shape == (3, 5) and a.dtype == np.float32 and a.nbytes == 60
        assert a.array.shape == (3, 5) and a.array.dtype == np.float32
        assert not a.array.any()
        assert a.is_owner
        a[1, 2] = 4.5
        assert np.asarray(a)[1, 2] == 4.5
        assert len(a) == 3
    assert a.closed and not _exists(a.name)


def test_close_is_idempotent_and_views_survive_it():
    a = SharedArray.create(4, np.int64)
    view = a.array
    view[:] = [1, 2, 3, 4]
    a.close()
    a.close()
    assert not _exists(a.name)
    # The name is gone but the mapping lives while a view does (no use-after-unmap).
    assert view.tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="closed"):
        a.array  # noqa: B018


def test_exception_inside_with_block_unlinks():
    with pytest.raises(RuntimeError, match="boom"):
        with SharedArray.create(8, np.uint8) as a:
            name = a.name
            assert _exists(name)
            raise RuntimeError("boom")
    assert not _exists(name)


def test_garbage_collection_unlinks():
    a = SharedArray.create(16, np.uint8)
    name = a.name
    del a
    gc.collect()
    assert not _exists(name)


def test_explicit_name_and_bad_inputs():
    name = f"{PREFIX}{os.getpid()}_explicit"
    with SharedArray.create(2, np.int32, name=name) as a:
        assert a.name == name and _exists(name)
        with pytest.raises(FileExistsError):
            SharedArray.create(2, np.int32, name=name)
    with pytest.raises(ValueError, match="must start with"):
        SharedArray.create(2, np.int32, name="not_ours")
    with pytest.raises(TypeError, match="Python objects"):
        SharedArray.create(2, object)
    with pytest.raises(ValueError, match="negative"):
        SharedArray.create((2, -1), np.float32)
    with pytest.raises(FileNotFoundError):
        SharedArray.attach(f"{PREFIX}{os.getpid()}_missing", 2, np.int32)


def test_zero_size_array():
    with SharedArray.create((0, 3), np.float64) as a:
        assert a.array.shape == (0, 3) and a.nbytes == 0
        b = pickle.loads(pickle.dumps(a))
        assert b.array.shape == (0, 3)
        b.close()


def test_attach_shares_memory_and_checks_size():
    with SharedArray.create((2, 3), np.int16) as a:
        b = SharedArray.attach(a.name, (2, 3), np.int16)
        assert not b.is_owner
        b.array[1, 1] = 7
        assert a.array[1, 1] == 7
        with pytest.raises(ValueError, match="too small"):
            SharedArray.attach(a.name, (2, 4), np.int16)
        b.close()  # a non-owner never unlinks
        assert _exists(a.name)


def test_pickle_gives_attached_view():
    with SharedArray.create(5, np.float64) as a:
        b = pickle.loads(pickle.dumps(a))
        assert b.name == a.name and not b.is_owner
        assert b.shape == a.shape and b.dtype == a.dtype
        b.array[2] = 3.0
        assert a.array[2] == 3.0
        del b
        gc.collect()
        assert _exists(a.name)
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(a)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_child_writes_are_visible_and_child_never_unlinks(method, workers):
    with SharedArray.create((4, 4), np.int32) as a:
        p = mp.get_context(method).Process(target=workers.fill_array, args=(a, 9))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert (a.array == 9).all()
        assert _exists(a.name), "a child's exit must not unlink its parent's segment"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_segments_created_by_a_multiprocessing_child_go_when_it_exits(method, workers):
    """mp children leave through os._exit (no atexit): gristmill still cleans up there."""
    ctx = mp.get_context(method)
    names = ctx.SimpleQueue()
    p = ctx.Process(target=workers.create_and_return, args=(names,))
    p.start()
    created = names.get()
    p.join(60)
    assert p.exitcode == 0
    assert all(n.startswith(PREFIX) and parse_owner_pid(n) == p.pid for n in created)
    assert not any(_exists(n) for n in created)


def test_forked_child_does_not_inherit_ownership():
    with SharedArray.create(3, np.uint8) as a:
        pid = os.fork()
        if pid == 0:  # child: closing an inherited owner handle must not unlink
            code = 0
            try:
                a.close()
                code = 0 if os.path.exists(f"/dev/shm/{a.name}") else 5
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _exists(a.name)


def test_torch_from_numpy_is_zero_copy():
    torch = pytest.importorskip("torch")
    with SharedArray.create((2, 3), np.float32) as a:
        t = torch.from_numpy(a.array)
        assert t.data_ptr() == a.array.ctypes.data
        t[0, 1] = 2.5
        assert a.array[0, 1] == 2.5
        b = pickle.loads(pickle.dumps(a))
        assert torch.from_numpy(b.array)[0, 1].item() == 2.5
        b.close()


def test_kernels_import_without_torch():
    code = (
        "import sys; import gristmill.kernels.shm, gristmill.kernels.shmqueue, "
        "gristmill.kernels.shm_cli; "
        "bad = [m for m in ('torch', 'gymnasium') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- SharedArrays arena ---------------------------------------------------------------------
def test_shared_arrays_arena():
    spec = {"obs": ((4, 3, 5), np.uint8), "rew": (4, np.float32), "done": ((4,), np.bool_)}
    with SharedArrays.create(spec) as arena:
        assert set(arena) == {"obs", "rew", "done"} and len(arena) == 3
        assert arena["obs"].shape == (4, 3, 5) and arena["rew"].dtype == np.float32
        for arr in arena.values():
            assert arr.ctypes.data % 64 == 0
            assert not arr.any()
        arena["rew"][:] = [1, 2, 3, 4]
        other = pickle.loads(pickle.dumps(arena))
        assert not other.is_owner and other["rew"].tolist() == [1, 2, 3, 4]
        other["done"][2] = True
        assert arena["done"][2]
        other.close()
        assert _exists(arena.name)
    assert not _exists(arena.name)
    with pytest.raises(TypeError, match="shape, dtype"):
        SharedArrays.create({"x": np.float32})


# -- cleanup on abnormal exits --------------------------------------------------------------
_OWNER = """
    import sys, time, numpy as np
    from gristmill.kernels.shm import SharedArray
    a = SharedArray.create((1000,), np.float32)
    print(a.name, flush=True)
    mode = sys.argv[1]
    if mode == "raise":
        raise RuntimeError("uncaught")
    if mode == "wait":
        time.sleep(600)
"""


@pytest.mark.parametrize("mode", ["exit", "raise"])
def test_owner_exit_and_uncaught_exception_unlink(mode):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_OWNER), mode], capture_output=True, text=True
    )
    name = proc.stdout.split()[0]
    assert name.startswith(PREFIX)
    assert (proc.returncode != 0) == (mode == "raise")
    assert not _exists(name)


def _start_owner() -> tuple[subprocess.Popen, str]:
    """A process that creates a segment, prints its name and waits: (process, name)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_OWNER), "wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().split()[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_owner_ctrl_c_and_sigterm_unlink(sig):
    proc, name = _start_owner()
    assert _exists(name)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    else:
        assert proc.returncode == -signal.SIGTERM  # still dies of SIGTERM, after cleaning up
    assert not _exists(name)


def test_sigkilled_attached_child_leaves_nothing(workers):
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    with SharedArray.create(8, np.int8) as a:
        attached = pickle.loads(pickle.dumps(a))
        p = ctx.Process(target=workers.attach_and_sleep, args=(attached, ready))
        p.start()
        assert ready.wait(60)
        os.kill(p.pid, signal.SIGKILL)
        p.join(60)
        assert p.exitcode == -signal.SIGKILL
        assert a.array[0] == 1 and _exists(a.name)
    assert not _exists(a.name)


def test_sigkilled_owner_leftover_is_listed_and_cleaned(capsys):
    proc, name = _start_owner()
    try:
        # While the owner lives, its segment is listed as alive and `clean` keeps it.
        entry = {e.name: e for e in shm_cli.list_entries()}[name]
        assert entry.pid == proc.pid and entry.alive and entry.size >= 4000
        assert name not in [e.name for e in shm_cli.clean()]
        assert _exists(name)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert _exists(name), "SIGKILL leaves the segment behind: that is what the CLI is for"
    assert shm_cli.main(["list"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith(name))
    assert "DEAD" in line and str(proc.pid) in line
    assert shm_cli.main(["clean", "--dry-run"]) == 0
    assert _exists(name)
    # The installed console script, as a user would run it.
    script = Path(sys.executable).parent / "gristmill-shm"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gristmill.kernels.shm_cli"]
    res = subprocess.run(cmd + ["clean"], capture_output=True, text=True, check=True)
    assert name in res.stdout
    assert not _exists(name)


def test_a_killed_owner_not_yet_reaped_counts_as_dead_and_its_leftover_is_cleaned():
    """A zombie owner (killed, its parent has not waited for it: a worker whose Ray node was
    killed waits for a reaper) can never unlink its segment again."""
    proc, name = _start_owner()
    try:
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while procfs.stat(proc.pid).state != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert procfs.stat(proc.pid).state == "Z"  # not reaped: kill(pid, 0) still succeeds
        entry = {e.name: e for e in shm_cli.list_entries()}[name]
        assert not entry.alive
        assert name in [e.name for e in shm_cli.clean()] and not _exists(name)
    finally:
        proc.kill()
        proc.communicate(timeout=60)


def test_parse_owner_pid():
    assert parse_owner_pid("gristmill_123_abc") == 123
    assert parse_owner_pid("/gristmill_77_qdeadbeef") == 77
    assert parse_owner_pid("sem.gristmill_5_x") == 5
    assert parse_owner_pid("ViZDoomSM123") is None
    assert parse_owner_pid("gristmill_notapid_x") is None


def test_many_segments_get_unique_names_and_all_go():
    names = set()
    for _ in range(200):
        with SharedArray.create(64, np.uint8) as a:
            names.add(a.name)
    assert len(names) == 200
    assert all(not _exists(n) for n in names)


def test_clean_with_pids_removes_only_those_owners_leftovers():
    """A run cleans after its own dead processes, not after another run's (whose owner may be
    just as dead, but is someone else's to report)."""
    procs = [_start_owner() for _ in range(2)]
    try:
        for proc, _ in procs:
            proc.kill()
            proc.communicate(timeout=60)
        (mine, my_name), (other, other_name) = procs
        assert [e.name for e in shm_cli.clean(pids={mine.pid})] == [my_name]
        assert not _exists(my_name) and _exists(other_name)
        assert [e.name for e in shm_cli.clean(pids={other.pid})] == [other_name]
    finally:
        for proc, name in procs:
            proc.kill()
            proc.communicate(timeout=60)
            if _exists(name):
                os.unlink(f"/dev/shm/{name}")

"""kernels.procfs against real processes: a child with a known environment, open file and
shared-memory mapping, and one whose name holds spaces and parentheses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from gristmill.kernels import procfs
from gristmill.kernels.shm import SharedArray

_CHILD = """
import sys, time
f = open(sys.argv[1], "rb")
print("ready", flush=True)
time.sleep(60)
"""


def test_environ_fds_and_maps_of_a_live_child_then_empty_when_gone(tmp_path, shm_clean):
    path = tmp_path / "held.bin"
    path.write_bytes(b"x")
    env = {**os.environ, "PROCFS_TEST": "a=b c"}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], env=env,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "ready"
        assert procfs.environ(child.pid)[b"PROCFS_TEST"] == b"a=b c"
        assert str(path) in procfs.fd_targets(child.pid).values()
        assert procfs.alive(child.pid) and child.pid in procfs.children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert procfs.environ(child.pid) == {} and procfs.fd_targets(child.pid) == {}
    assert procfs.mapped_paths(child.pid) == set() and procfs.stat(child.pid) is None


def test_mapped_paths_show_this_process_shared_memory(shm_clean):
    arr = SharedArray.create((1024,), "float64")
    try:
        seg = f"/dev/shm/{arr.name}"
        assert seg in procfs.mapped_paths(os.getpid())
    finally:
        arr.close()


def test_stat_reads_fields_after_a_name_with_spaces_and_parentheses(tmp_path):
    exe = tmp_path / "a) b (c"
    exe.symlink_to(sys.executable)
    child = subprocess.Popen([str(exe), "-c", "import time; time.sleep(60)"])
    try:
        for _ in range(3000):  # until exec has renamed it (30 s at most)
            s = procfs.stat(child.pid)
            if s is None or s.comm == "a) b (c":
                break
            time.sleep(0.01)
        assert s is not None and s.ppid == os.getpid() and s.state in "RSD"
    finally:
        child.kill()
        child.wait()


def test_children_descendants_and_a_zombie_that_is_not_alive():
    """A child running a grandchild: both are descendants, the child's argv is read back; once
    killed and not yet reaped the child is a zombie (stat still there, not alive, no argv)."""
    code = "import subprocess, sys, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code, "tag-arg"])
    try:
        for _ in range(3000):  # until the grandchild exists (30 s at most)
            grandkids = procfs.children(child.pid)
            if grandkids:
                break
            time.sleep(0.01)
        assert child.pid in procfs.children(os.getpid())
        assert set(procfs.descendants(os.getpid())) >= {child.pid, *grandkids}
        assert procfs.cmdline(child.pid)[-1] == b"tag-arg" and procfs.alive(child.pid)
        assert procfs.cpu_seconds(os.getpid()) > 0
        os.kill(grandkids[0], signal.SIGKILL)
        child.kill()
        for _ in range(3000):
            s = procfs.stat(child.pid)
            if s is not None and s.state == "Z":
                break
            time.sleep(0.01)
        assert s.state == "Z" and not procfs.alive(child.pid) and procfs.cmdline(child.pid) == []
    finally:
        child.kill()
        child.wait()
    assert procfs.stat(child.pid) is None and procfs.cpu_seconds(child.pid) == 0.0

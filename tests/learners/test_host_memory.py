"""retain_freed_memory: a freed 64 MiB block is reused without page faults (in a subprocess,
so the test process keeps glibc's defaults)."""

import json
import subprocess
import sys

import pytest

_PROBE = """
import json, resource, sys
import numpy as np
from gristmill.learners.host_memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def faults_of_one_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(64 << 20, dtype=np.uint8)  # touches every page
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_one_block()
print(json.dumps([faults_of_one_block() for _ in range(3)]))
"""


def _faults(mode: str) -> list[int]:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_blocks_stay_mapped():
    default, retained = _faults("default"), _faults("retain")
    pages = (64 << 20) // 4096
    # glibc's default maps and unmaps the block every time: a fault per page (or per huge page
    # chunk when THP backs it, hence the loose bound), while the retained heap faults ~never.
    assert min(default) > 8
    assert max(retained) < min(default) / 4 and max(retained) < pages / 100


def test_rejects_bad_threshold():
    from gristmill.learners import host_memory

    host_memory._applied = False
    try:
        with pytest.raises(ValueError, match="trim_threshold"):
            host_memory.retain_freed_memory(0)
    finally:
        host_memory._applied = False

"""generals-bots 2.5.0 in its own virtual environment (it pins numba/numpy), for the tests.

``reference_python()`` returns the interpreter of ``<repo>/.venv-generals`` and creates that venv
(``pip install generals-bots==2.5.0``) on first use; ``GRISTMILL_GENERALS_VENV`` overrides the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
RUNNER = Path(__file__).with_name("_reference_runner.py")
PIN = "generals-bots==2.5.0"


def reference_python() -> Path:
    venv = Path(os.environ.get("GRISTMILL_GENERALS_VENV", ROOT / ".venv-generals"))
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import generals, importlib.metadata as m; "
             "assert m.version('generals-bots') == '2.5.0'"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", PIN], check=True)
    subprocess.run(probe, check=True)
    return py


def run_reference(tmp: Path, maps, actions, planes=(), gen_specs=()) -> dict:
    """Play ``maps[g]`` with ``actions[g]`` ([T, 2, 5]) in generals-bots; see the runner."""
    inp, outp = tmp / "ref_in.npz", tmp / "ref_out.npz"
    payload = {f"actions_{g}": np.asarray(a, np.int64) for g, a in enumerate(actions)}
    payload["maps"] = np.array(list(maps), dtype=object)
    payload["planes"] = np.array(list(planes), dtype=np.int64)
    payload["gen_specs"] = np.array(list(gen_specs), dtype=object).reshape(-1, 4)
    np.savez(inp, **payload)
    proc = subprocess.run([str(reference_python()), str(RUNNER), str(inp), str(outp)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(outp, allow_pickle=True) as f:
        return {k: f[k] for k in f.files}

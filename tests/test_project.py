"""Project-wide contracts: the layer rules, lint, and the light kernel import."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; it is part of the dev extra")
    return found


def test_layer_contracts_hold():
    """import-linter checks the README's package table: dependencies point down only."""
    proc = subprocess.run(
        [_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_ruff_clean():
    proc = subprocess.run(
        [_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_importing_gristmill_imports_no_subpackage():
    code = (
        "import sys, gristmill; "
        "print(','.join(m for m in sys.modules if m.startswith('gristmill.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing gristmill pulled in {out}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [line for line in lines if "pytest" in line]
    assert commands, ".ci/run runs no pytest command"
    for command in commands:
        assert command in readme, f"README.md does not name .ci/run's command: {command}"

"""Every console script of pyproject.toml resolves and answers --help."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_imports_and_answers_help(name):
    module, _, func = SCRIPTS[name].partition(":")
    code = (
        f"import sys; from {module} import {func} as main; "
        f"sys.argv = [{name!r}, '--help']; sys.exit(main())"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"usage: {name}" in run.stdout, run.stdout[:500]

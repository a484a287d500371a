"""Sampler tests' helpers: this folder on ``sys.path`` so that ``echo_env`` (the test env the
rollout workers run) is importable by name, under pytest's importlib mode as in a child process
started with ``spawn`` (which imports the factory's module by name)."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

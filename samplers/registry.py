"""Task ids -> env factories, resolved at run time (samplers never import gristmill.envs).

:func:`resolve` turns what a user passes to :func:`gristmill.samplers.make` into a picklable
:class:`EnvFactory`:

1. a callable (``lambda: MyEnv()``, a class) -- any Python env;
2. a registered gristmill task: ``"Pong-v5"`` (every ALE ROM), ``"Ant-v5"`` (the 11 MuJoCo
   tasks), or ids added with :func:`register`; providers are ``"module:function"`` strings
   imported only when needed;
3. ``"module:function"`` itself (called with the task kwargs);
4. any Gymnasium id (``"CartPole-v1"``, ``"gymnasium_robotics:FetchReach-v4"``), made with
   ``gymnasium.make(id, disable_env_checker=True, **kwargs)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = ["EnvFactory", "register", "register_provider", "resolve"]

# Providers: (module, lister, maker). ``lister()`` returns the ids a provider owns.
_PROVIDERS: list[tuple[str, str, str]] = [
    ("gristmill.envs.mujoco", "list_tasks", "make_env"),
    ("gristmill.envs.atari", "list_tasks", "make_env"),
]
# The pip extra that brings each built-in provider's simulators (named when one is missing).
_EXTRAS = {"gristmill.envs.mujoco": "envs", "gristmill.envs.atari": "envs"}
_EXPLICIT: dict[str, str] = {}


def register(task_id: str, entry_point: str) -> None:
    """Map ``task_id`` to ``"module:factory"``; ``factory(task_id=..., **kwargs)`` is not
    assumed: it is called as ``factory(**kwargs)``."""
    if ":" not in entry_point:
        raise ValueError(f"entry_point must be 'module:function', got {entry_point!r}")
    _EXPLICIT[task_id] = entry_point


def register_provider(module: str, lister: str = "list_tasks", maker: str = "make_env") -> None:
    """Add a module whose ``lister()`` names task ids made by ``maker(task_id, **kwargs)``."""
    _PROVIDERS.append((module, lister, maker))


def _load(entry: str) -> Callable:
    mod, _, attr = entry.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class EnvFactory:
    """A picklable recipe for one env: ``factory()`` builds it in a worker process."""

    task_id: str
    kind: str  # "callable" | "provider" | "entry" | "gymnasium"
    target: Any  # the callable, "module:maker", or the gymnasium id
    kwargs: dict = field(default_factory=dict)

    def __call__(self, **extra):
        kw = {**self.kwargs, **extra}
        if self.kind == "callable":
            return self.target(**kw)
        if self.kind == "provider":
            return _load(self.target)(self.task_id, **kw)
        if self.kind == "entry":
            return _load(self.target)(**kw)
        return gym.make(self.target, disable_env_checker=True, **kw)


def resolve(task, kwargs: dict | None = None) -> EnvFactory:
    """The :class:`EnvFactory` for ``task`` (see the module docstring); ``ValueError`` names
    an unknown task."""
    kwargs = dict(kwargs or {})
    if callable(task) and not isinstance(task, str):
        return EnvFactory(getattr(task, "__name__", repr(task)), "callable", task, kwargs)
    if not isinstance(task, str) or not task:
        raise ValueError(f"task must be a task id string or an env factory, got {task!r}")
    if task in _EXPLICIT:
        return EnvFactory(task, "entry", _EXPLICIT[task], kwargs)
    broken: list[str] = []  # providers that cannot be imported, and why
    for module, lister, maker in _PROVIDERS:
        try:
            ids = _load(f"{module}:{lister}")()
        except ImportError as e:
            broken.append(_import_failure(module, e))
            continue
        if task in ids:
            return EnvFactory(task, "provider", f"{module}:{maker}", kwargs)
    if ":" in task:
        mod, _, attr = task.partition(":")
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise ValueError(f"unknown task {task!r}: cannot import {mod!r} ({e})") from None
        try:
            gym.spec(task)
            return EnvFactory(task, "gymnasium", task, kwargs)
        except gym.error.Error:
            pass
        try:
            _load(task)
        except AttributeError:
            raise ValueError(f"unknown task {task!r}: {mod!r} has no {attr!r}") from None
        return EnvFactory(task, "entry", task, kwargs)
    try:
        gym.spec(task)
    except gym.error.Error as e:
        if broken:  # most likely the cause: say it first
            raise ValueError(
                f"unknown task {task!r}: {'; '.join(broken)}; and it is not registered with "
                f"gristmill.samplers.register nor a Gymnasium id ({e})"
            ) from None
        raise ValueError(
            f"unknown task {task!r}: not an Atari <Game>-v5 or MuJoCo <Task>-v5 id, not "
            f"registered with gristmill.samplers.register, and not a Gymnasium id ({e})"
        ) from None
    return EnvFactory(task, "gymnasium", task, kwargs)


def _import_failure(module: str, exc: ImportError) -> str:
    """Why ``module``'s tasks are unavailable: the module that is missing and the extra that
    brings it, e.g. "gristmill.envs.atari cannot be imported: module 'cv2' is missing (install
    the 'envs' extra: pip install 'gristmill[envs]')"."""
    name = getattr(exc, "name", None)
    what = f"module {name!r} is missing" if name and name != module else str(exc)
    text = f"{module} cannot be imported: {what}"
    extra = _EXTRAS.get(module)
    if extra:
        text += f" (install the {extra!r} extra: pip install 'gristmill[{extra}]')"
    return text

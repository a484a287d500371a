"""One console convention for gristmill's training apps (``gristmill-doom``, ``gristmill-atari``).

- Everything human goes to stderr; stdout carries one line, the run's JSON summary, so
  ``gristmill-doom train ... | jq .reward_mean_100`` works. The summary is also written to
  ``<experiment dir>/summary.json``.
- Status lines hold the same key figures in the same order in every app::

      [  62.3s] frames     143,360 | fps  2,301 (mean 1,934) | reward  -0.412 | left 2:31 | ...

  elapsed wall time, env frames (frame skip counted), frames/s over the last interval and,
  from the second line on, the mean since the first line (a learner that trains in batches
  makes the interval's rate swing between 0 and twice the mean), the mean reward of the last
  100 episodes, the time left when the budget is fixed, then the app's own figures
  (``key value`` pairs).
- On a terminal, a progress bar under the status lines shows frames done of the budget, the
  rate and the time left. In a file or a pipe there is no bar and the console is
  :data:`PIPE_WIDTH` columns wide, so a status line never splits in two.
- The summary starts with the same keys in every app (:func:`run_summary`), then the app's own.
- ``quiet=True`` (the apps' ``--quiet``): no bar, no status lines, no notices; errors (messages
  marked ``[red]``) and the JSON summary still appear.
"""

from __future__ import annotations

import json
import math
import os
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["PIPE_WIDTH", "RunConsole", "format_status", "make_console", "run_summary"]

PIPE_WIDTH = 200  # columns when stderr is not a terminal (rich's default there is 80)


def make_console(file=None) -> Console:
    """A rich console on ``file`` (default stderr): the terminal's width on a terminal,
    :data:`PIPE_WIDTH` columns otherwise."""
    console = Console(file=file, stderr=file is None)
    if not console.is_terminal:
        console = Console(file=file, stderr=file is None, width=PIPE_WIDTH)
    return console


def _clock(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``; ``-:--`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-:--"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def format_status(
    elapsed: float,
    frames: int,
    fps: float,
    reward: float | None,
    left: float | None = None,
    mean_fps: float | None = None,
    **extra,
) -> str:
    """One status line (see the module docstring); ``extra`` values are printed as given,
    floats with 3 decimals."""
    r = float("nan") if reward is None else reward
    rate = f"fps {fps:6,.0f}" + ("" if mean_fps is None else f" (mean {mean_fps:,.0f})")
    parts = [f"[{elapsed:7.1f}s] frames {frames:>11,}", rate, f"reward {r:7.3f}"]
    if left is not None:
        parts.append(f"left {_clock(left)}")
    for key, value in extra.items():
        parts.append(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}")
    return " | ".join(parts)


class RunConsole:
    """The console of one training run: status lines, a progress bar, the JSON summary.

    ``total_frames``: the frame budget (``None``: open-ended, no bar and no time left);
    ``seconds``: a wall-time budget (0: none), whichever ends first sets the time left.
    Use as a context manager around the run (the bar lives between enter and exit). It
    duck-types ``rich.console.Console.print`` for the apps' notices.
    """

    def __init__(
        self,
        total_frames: int | None = None,
        seconds: float = 0.0,
        quiet: bool = False,
        console: Console | None = None,
        bar: bool | None = None,
    ):
        self.console = console or make_console()
        self.quiet = quiet
        self.total = total_frames
        self.seconds = seconds
        # (elapsed, frames, budget frames) of the first status line
        self._first: tuple[float, int, int] | None = None
        show = (self.console.is_terminal and not quiet) if bar is None else bar
        self.progress: Progress | None = None
        if show and total_frames:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:>12,.0f} / {task.total:,.0f} frames"),
                TextColumn("| {task.fields[rate]} | elapsed"),
                TimeElapsedColumn(),
                TextColumn("| left {task.fields[left]}"),
                console=self.console,
                transient=True,  # the status lines stay; a stale bar would not add to them
            )
            self._task = self.progress.add_task("training", total=total_frames, rate="", left="")

    def __enter__(self) -> RunConsole:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def print(self, *objects, **kwargs) -> None:
        """A notice (suppressed by ``quiet`` unless it is an error marked ``[red]``)."""
        if self.quiet and not any("[red]" in str(o) for o in objects):
            return
        kwargs.setdefault("soft_wrap", True)  # a long notice stays one line in a log file
        self.console.print(*objects, **kwargs)

    def mean_fps(self, elapsed: float, frames: int) -> float | None:
        """Frames/s since the first status line (a resumed run counts from its resume);
        ``None`` before a second line."""
        if self._first is None or elapsed <= self._first[0]:
            return None
        return (frames - self._first[1]) / (elapsed - self._first[0])

    def time_left(self, elapsed: float, budget_frames: int) -> float | None:
        """Seconds to the end of the budget at the mean rate of ``budget_frames`` (see
        :meth:`status`) since the first status line; ``None`` when there is no fixed budget,
        ``inf`` while the rate is unknown."""
        if not self.total and not self.seconds:
            return None
        left = math.inf
        first = self._first
        if self.total and first is not None and elapsed > first[0]:
            rate = (budget_frames - first[2]) / (elapsed - first[0])
            if rate > 0:
                left = max(0.0, self.total - budget_frames) / rate
            elif budget_frames >= self.total:
                left = 0.0
        if self.seconds:
            left = min(left, max(0.0, self.seconds - elapsed))
        return left

    def status(
        self,
        elapsed: float,
        frames: int,
        fps: float,
        reward: float | None,
        budget_frames: int | None = None,
        **extra,
    ) -> None:
        """Print one status line (see :func:`format_status`) and move the bar.
        ``budget_frames``: the frames that count against ``total_frames`` where they are not
        ``frames``; a population trains every policy ``total_frames``, so its bar and time left
        follow its slowest policy while the line shows the frames of all."""
        budget = frames if budget_frames is None else budget_frames
        if self._first is None:
            self._first = (elapsed, frames, budget)
        left = self.time_left(elapsed, budget)
        if self.progress is not None:
            self.progress.update(
                self._task,
                completed=min(budget, self.total),
                rate=f"{fps:,.0f} frames/s",
                left=_clock(left if left is not None else math.inf),
            )
        if not self.quiet:
            line = format_status(elapsed, frames, fps, reward, left,
                                 self.mean_fps(elapsed, frames), **extra)
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def summary(self, summary: dict, exp_dir: str | None = None) -> None:
        """Write ``summary`` to ``exp_dir/summary.json`` (when given) and print it as one JSON
        line on stdout, the only thing a run writes there."""
        if exp_dir is not None:
            os.makedirs(exp_dir, exist_ok=True)
            with open(os.path.join(exp_dir, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
        print(json.dumps(summary), file=sys.stdout, flush=True)


def run_summary(
    app: str,
    env: str,
    reason: str,
    frames: int,
    seconds: float,
    fps: float,
    reward_mean_100: float | None,
    episodes: int,
    extra: dict | None = None,
) -> dict:
    """A run's summary: these keys first, in this order, in every app, then ``extra``'s (the
    app's own keys; those that repeat a key above are left out).
    ``reason``: "done", "time limit" or "interrupted (...)"; ``fps``: env frames per second of
    this session; ``reward_mean_100``: mean reward of the last 100 episodes (``None`` before
    the first one ends)."""
    head = {
        "app": app,
        "env": env,
        "reason": reason,
        "frames": int(frames),
        "seconds": round(float(seconds), 3),
        "fps": round(float(fps), 1),
        "reward_mean_100": None if reward_mean_100 is None else round(reward_mean_100, 4),
        "episodes": int(episodes),
    }
    return {**head, **{k: v for k, v in (extra or {}).items() if k not in head}}

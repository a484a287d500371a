"""Learning curves of training runs, read from their TensorBoard logs and drawn as one PNG.

A run is an experiment directory (``train_dir/experiment``) with its TensorBoard events in
``tb/``. :func:`read_curve` returns the mean reward of the last 100 episodes against env frames
(frame skip counted) and against training wall time; :func:`plot_curves` draws reward vs frames
and reward vs wall time side by side, one line per run. ``gristmill-doom`` and
``gristmill-atari`` call it at the end of every run (``<experiment>/curves.png``) and on demand
(``gristmill-doom plot RUN...``).

Wall time is training time: a resumed run adds one event file per session, and the time
between sessions is not counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = [
    "REWARD_TAGS",
    "Curve",
    "plot_command",
    "plot_curves",
    "read_curve",
    "tensorboard_writer",
]

TB_DIR = "tb"  # a run's TensorBoard events: <experiment>/tb/

# Reward scalar of each app -> env frames per TensorBoard step. gristmill-doom logs against env
# frames; gristmill-atari (CleanRL's tags) against agent steps, 4 frames each.
REWARD_TAGS = {"episode/reward": 1, "charts/episodic_return": 4}


@dataclass
class Curve:
    """One run's reward curve; arrays of equal length, sorted by frames."""

    name: str
    frames: np.ndarray  # int64, env frames
    seconds: np.ndarray  # float64, training wall time since the run started
    reward: np.ndarray  # float64, mean reward of the last 100 episodes


def tensorboard_writer(run_dir: str):
    """A ``SummaryWriter`` into the run's ``tb/`` folder, where :func:`read_curve` reads."""
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - slow import

    return SummaryWriter(os.path.join(run_dir, TB_DIR))


def _event_files(run_dir: str) -> list[str]:
    tb = os.path.join(run_dir, TB_DIR)
    folder = tb if os.path.isdir(tb) else run_dir
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no run directory {run_dir}")
    files = sorted(
        os.path.join(folder, f) for f in os.listdir(folder) if f.startswith("events.out.tfevents")
    )
    if not files:
        raise FileNotFoundError(f"no TensorBoard events in {folder}: is {run_dir} a run directory?")
    return files


def read_curve(run_dir: str, name: str | None = None) -> Curve:
    """The reward curve of the run in ``run_dir`` (see the module docstring).

    Raises ``FileNotFoundError`` when ``run_dir`` holds no TensorBoard events and
    ``ValueError`` when they hold no reward scalar (no episode finished yet).
    """
    from tensorboard.backend.event_processing.event_accumulator import (  # noqa: PLC0415
        EventAccumulator,
    )

    frames, seconds, reward = [], [], []
    offset = 0.0  # training time of the earlier sessions (event files)
    for path in _event_files(run_dir):
        acc = EventAccumulator(path, size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags().get("scalars", [])
        tag = next((t for t in REWARD_TAGS if t in tags), None)
        if tag is None:
            continue
        events = acc.Scalars(tag)
        # The session's first scalar of any kind: throughput is logged before any episode ends
        start = min(acc.Scalars(t)[0].wall_time for t in tags)
        for e in events:
            frames.append(e.step * REWARD_TAGS[tag])
            seconds.append(offset + e.wall_time - start)
            reward.append(e.value)
        offset = seconds[-1]
    if not frames:
        raise ValueError(f"{run_dir} has no reward scalar ({', '.join(REWARD_TAGS)}) yet")
    order = np.argsort(np.asarray(frames), kind="stable")
    return Curve(
        name or os.path.basename(os.path.normpath(run_dir)),
        np.asarray(frames, dtype=np.int64)[order],
        np.asarray(seconds, dtype=np.float64)[order],
        np.asarray(reward, dtype=np.float64)[order],
    )


def plot_curves(
    runs: list[str] | list[Curve],
    out: str,
    title: str | None = None,
    reference: tuple[float, str] | None = None,
) -> str:
    """Draw reward vs env frames and reward vs wall time for ``runs`` (run directories or
    :class:`Curve` objects) into the PNG ``out``; returns ``out``. ``reference``: a
    ``(reward, label)`` drawn as a dashed line (e.g. Sample Factory's final reward)."""
    import matplotlib  # noqa: PLC0415 - optional until a plot is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    curves = [r if isinstance(r, Curve) else read_curve(r) for r in runs]
    fig, (by_frames, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    minutes = max(c.seconds[-1] for c in curves) < 2 * 3600
    for c in curves:
        by_frames.plot(c.frames, c.reward, label=c.name)
        by_time.plot(c.seconds / (60 if minutes else 3600), c.reward, label=c.name)
    by_frames.set_xlabel("env frames")
    by_frames.set_ylabel("mean reward (last 100 episodes)")
    by_time.set_xlabel(f"training wall time ({'minutes' if minutes else 'hours'})")
    for ax in (by_frames, by_time):
        ax.grid(alpha=0.3)
        if reference is not None:
            ax.axhline(reference[0], color="grey", ls="--", lw=1, label=reference[1])
    by_frames.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_command(app: str, runs: list[str], out: str | None) -> int:
    """``<app> plot RUN... [--out PNG]``: draw the runs (default PNG: ``RUN/curves.png`` for
    one run, ``curves.png`` for several), print its path; a run without logs or rewards is
    named on stderr with exit status 2."""
    import sys  # noqa: PLC0415

    out = out or (os.path.join(runs[0], "curves.png") if len(runs) == 1 else "curves.png")
    try:
        print(plot_curves(runs, out, title=app))
    except (FileNotFoundError, ValueError) as e:
        print(f"{app} plot: {e}", file=sys.stderr)
        return 2
    return 0

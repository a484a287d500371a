"""Replays: the starting map plus both players' actions, saved compactly and replayed exactly.

A replay is ``layout`` (generals-bots character layout), ``actions`` uint8 [T, 2, 5] and the
rules (``priority``, ``truncation``, ``pad_to``); the engine is deterministic, so replaying the
actions through :class:`GeneralsEngine` reproduces every tick. ``save`` writes a compressed
``.npz`` (a 500-tick game is a few kB); ``load`` reads it back. ``frames`` renders each tick
(full view or one player's fogged view) and ``export`` writes a GIF (imageio) or MP4 (OpenCV).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encoding import C_FOG, C_FOG_OBSTACLE, CODE_MASK
from .engine import GeneralsEngine
from .render import render_ansi, render_rgb

__all__ = ["Replay", "ReplayState"]


@dataclass
class ReplayState:
    """One tick of a replayed game (copies; h x w arrays)."""

    time: int
    terrain: np.ndarray
    owner: np.ndarray
    army: np.ndarray
    winner: int
    fog: np.ndarray  # bool [2, h, w], True where the player cannot see
    status: np.ndarray  # uint8 [2] MOVE_* of the tick's moves


@dataclass
class Replay:
    layout: str
    actions: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 5), np.uint8))
    priority: str = "priority"
    truncation: int | None = None
    pad_to: int = 24
    players: tuple[str, str] = ("player_0", "player_1")

    def __post_init__(self):
        self._buf: list[np.ndarray] = list(np.asarray(self.actions, np.uint8).reshape(-1, 2, 5))

    def append(self, actions: np.ndarray) -> None:
        """Record one tick's actions [2, 5]."""
        self._buf.append(np.asarray(actions, np.uint8).reshape(2, 5))

    @property
    def num_ticks(self) -> int:
        return len(self._buf)

    def action_array(self) -> np.ndarray:
        return np.stack(self._buf) if self._buf else np.zeros((0, 2, 5), np.uint8)

    # -- storage ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(
                ".npz")
        meta = {"priority": self.priority, "truncation": self.truncation, "pad_to": self.pad_to,
                "players": list(self.players), "format": 1}
        np.savez_compressed(path, layout=np.array(self.layout), actions=self.action_array(),
                            meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Replay:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta.get("format") != 1:
                raise ValueError(f"{path}: unknown replay format {meta.get('format')}")
            return cls(str(f["layout"]), f["actions"], meta["priority"], meta["truncation"],
                       meta["pad_to"], tuple(meta["players"]))

    # -- playback --------------------------------------------------------------------------
    def states(self) -> Iterator[ReplayState]:
        """Tick 0 (the start) and then the state after each recorded tick, until the game ends."""
        eng = GeneralsEngine(1, [self.layout], pad_to=self.pad_to, truncation=self.truncation,
                             priority=self.priority)
        eng.reset()
        eng.load(0, self.layout)
        yield self._snap(eng)
        for a in self._buf:
            eng.step(a.astype(np.int32)[None])
            yield self._snap(eng)
            if eng.terminated[0] or eng.truncated[0]:
                return

    @staticmethod
    def _snap(eng: GeneralsEngine) -> ReplayState:
        s = eng.state
        h, w = s.dims[0]
        code = eng.obs[0, :, :h, :w] & CODE_MASK
        fog = (code == C_FOG) | (code == C_FOG_OBSTACLE)
        return ReplayState(int(s.time[0]), s.terrain[0, :h, :w].copy(), s.owner[0, :h, :w].copy(),
                           s.army[0, :h, :w].copy(), int(s.winner[0]), fog,
                           eng.status[0].copy())

    def frames(self, view: int | None = None, cell: int = 24) -> Iterator[np.ndarray]:
        """RGB frames, full information (``view=None``) or player ``view``'s fog of war."""
        for st in self.states():
            fog = None if view is None else st.fog[view]
            cap = f"t={st.time}" + (f"  winner: {self.players[st.winner]}" if st.winner >= 0
                                    else "")
            yield render_rgb(st.terrain, st.owner, st.army, st.terrain.shape, cell, fog, cap)

    def ansi(self, view: int | None = None) -> Iterator[str]:
        for st in self.states():
            fog = None if view is None else st.fog[view]
            yield render_ansi(st.terrain, st.owner, st.army, st.terrain.shape, fog,
                              f"t={st.time}")

    def export(self, path: str | Path, fps: int = 8, view: int | None = None,
               cell: int = 24) -> Path:
        """Write the game as ``.gif`` or ``.mp4``."""
        path = Path(path)
        frames = list(self.frames(view, cell))
        if path.suffix == ".gif":
            import imageio.v3 as iio

            iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0)
        elif path.suffix == ".mp4":
            import cv2

            h, w = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write MP4 to {path}")
            try:
                for f in frames:
                    writer.write(f[:, :, ::-1])
            finally:
                writer.release()
        else:
            raise ValueError(f"export writes .gif or .mp4, got {path.suffix!r}")
        return path

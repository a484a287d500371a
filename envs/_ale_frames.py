"""ALE screens to max-pooled, INTER_AREA-resized grayscale frames, updating only what changed.

An Atari step's preprocessing (DQN / EnvPool): gray of the last two emulator frames, their
pixel-wise max, ``cv2.resize(..., INTER_AREA)`` to 84x84. Done in full it costs ~52 us a step
on the reference box (two ``getScreenGrayscale`` of 17 us each, the max, the area resize),
a seventh of Pong's whole step. Yet consecutive frames barely differ: on Pong, Breakout and
Space Invaders about 0.3 % of the pixels change from one step's frame to the next.

:class:`IncrementalGrayArea` keeps, per env, the palette indices and grays of the last two
frames, their max, the horizontal pass of the area resize and the resized frame. Each new
screen is fetched as palette indices (``ALEInterface.getScreen``, a 1 us copy) and compared
with the one it replaces eight bytes at a time; only changed pixels are looked up, and only the
horizontal sums and output pixels whose taps cover a change are recomputed, with the same
float32 operations in the same order as :mod:`._area_resize` -- so the frame equals the full
computation (and OpenCV's) bit for bit. When many rows change (scrolling games, resets) the
frame is rebuilt with the vectorised full passes instead.

Grays come from a per-game lookup table from palette index to ALE's grayscale (ALE maps each
index through a fixed palette, ``ColourPalette::applyPaletteGrayscale``). The table is learnt,
not copied: a screen holding an index the table lacks is fetched once more with
``getScreenGrayscale`` and the pairs are recorded; that happens a handful of times per game
and process.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._area_resize import AreaResize, supported

__all__ = ["IncrementalGrayArea", "gray_table", "supported"]

_tables: dict[str, np.ndarray] = {}

# Rebuild with the vectorised passes when more than this share of rows changed.
FULL_ROWS = 0.5


def gray_table(key: str) -> np.ndarray:
    """The process-wide ``int16 [256]`` palette-index -> gray table for ``key`` (the game):
    ``-1`` where not yet learnt."""
    t = _tables.get(key)
    if t is None:
        t = _tables[key] = np.full(256, -1, np.int16)
    return t


@njit(cache=True, nogil=True, boundscheck=False)
def _changed_rows(new64, idx64, rows):  # pragma: no cover - compiled
    """Indices of the rows where ``new64`` and ``idx64`` differ, into ``rows``; their count.
    Its own function: inside ``_update`` the branch-free reduction does not vectorise."""
    n = 0
    for y in range(new64.shape[0]):
        a, b = new64[y], idx64[y]
        d = np.uint64(0)
        for j in range(a.shape[0]):
            d |= a[j] ^ b[j]
        if d != 0:
            rows[n] = y
            n += 1
    return n


@njit(cache=True, nogil=True, boundscheck=False)
def _update(new, new64, idx, idx64, gray, lut, lo, hi, fresh, k,
            rows):  # pragma: no cover - compiled
    """Bring frame ``k`` (``idx``/``gray``) up to the palette screen ``new``; widen row ``y``'s
    dirty columns ``[lo[y], hi[y])``. Rows are compared eight bytes at a time (``*64``: uint64
    views of the same rows; widths are multiples of 8), all pixels if ``fresh[k]`` (which is
    then cleared). Returns the number of changed pixels, or -1 at the first palette index
    missing from ``lut`` (the pixels before it are updated and recorded: a rerun after
    learning finishes the job)."""
    h, w = new.shape
    words = new64.shape[1]
    full = fresh[k] != 0
    if full:
        m = h
        for y in range(h):
            rows[y] = y
    else:
        m = _changed_rows(new64, idx64, rows)
    n = 0
    for i in range(m):
        y = rows[i]
        a64 = new64[y]
        b64 = idx64[y]
        a = new[y]
        b = idx[y]
        g = gray[y]
        first = w
        last = -1
        for j in range(words):
            if not full and a64[j] == b64[j]:
                continue
            for x in range(8 * j, 8 * j + 8):
                if full or a[x] != b[x]:
                    v = lut[a[x]]
                    if v < 0:
                        if last >= 0:
                            lo[y] = min(lo[y], first)
                            hi[y] = max(hi[y], last + 1)
                        return -1
                    g[x] = v
                    b[x] = a[x]
                    first = min(first, x)
                    last = x
                    n += 1
        if last >= 0:
            lo[y] = min(lo[y], first)
            hi[y] = max(hi[y], last + 1)
    fresh[k] = 0
    return n


@njit(cache=True, nogil=True, boundscheck=False)
def _finish(g0, g1, pool, h_t, out, lo, hi, xi, xw, yi, yw, dx_first, dx_last, dlo,
            dhi, max_rows):  # pragma: no cover - compiled
    """Recompute the dirty part of ``pool = max(g0, g1)``, of the horizontal pass ``h_t``
    ``[wd, H]`` and of ``out`` ``[hd, wd]``, in :mod:`._area_resize`'s arithmetic; clear the
    dirty ranges. Returns False, having done nothing, if more than ``max_rows`` are dirty."""
    h = pool.shape[0]
    dirty = 0
    for y in range(h):
        if lo[y] < hi[y]:
            dirty += 1
    if dirty > max_rows:
        return False
    wd = h_t.shape[0]
    hd = out.shape[0]
    nx = xi.shape[1]
    ny = yi.shape[1]
    for y in range(h):
        a, b = lo[y], hi[y]
        if a >= b:
            dlo[y] = wd
            dhi[y] = 0
            continue
        p, r0, r1 = pool[y], g0[y], g1[y]
        for x in range(a, b):
            p[x] = max(r0[x], r1[x])
        d0 = dx_first[a]
        d1 = dx_last[b - 1] + 1
        for dx in range(d0, d1):
            s = np.float32(p[xi[dx, 0]]) * xw[dx, 0]
            for k in range(1, nx):
                s += np.float32(p[xi[dx, k]]) * xw[dx, k]
            h_t[dx, y] = s
        dlo[y] = d0
        dhi[y] = d1
        lo[y] = pool.shape[1]
        hi[y] = 0
    zero, top = np.float32(0), np.float32(255)
    for dy in range(hd):
        d0, d1 = wd, 0
        for j in range(ny):
            y = yi[dy, j]
            d0 = min(d0, dlo[y])
            d1 = max(d1, dhi[y])
        o = out[dy]
        for dx in range(d0, d1):
            hr = h_t[dx]
            acc = hr[yi[dy, 0]] * yw[dy, 0]
            for j in range(1, ny):
                acc += hr[yi[dy, j]] * yw[dy, j]
            o[dx] = np.uint8(min(max(np.rint(acc), zero), top))
    return True


class IncrementalGrayArea:
    """One env's preprocessing state: ``grab(k)`` after emulator frames, ``frame(out)`` once a
    step. ``k = 0`` is the last frame of the step, ``k = 1`` the one before it (max-pooled
    with it). :meth:`reset` zeroes frame 1 as a new episode does.

    Args:
        ale: the env's ``ALEInterface`` (ROM loaded).
        key: the game, naming the shared gray table.
        src_hw: the screen's ``(height, width)``; dst_hw: the resized frame's.
    """

    def __init__(self, ale, key: str, src_hw: tuple[int, int], dst_hw: tuple[int, int]):
        self._ale = ale
        self._get_screen = ale.getScreen
        self._area = area = AreaResize(src_hw, dst_hw)  # validates the sizes
        (h, w), (hd, wd) = area.src_hw, area.dst_hw
        self._lut = gray_table(key)
        if w % 8:
            raise ValueError(f"screen width must be a multiple of 8, got {w}")
        self._new = np.zeros((h, w), np.uint8)
        self._idx = np.zeros((2, h, w), np.uint8)
        self._new64 = self._new.view(np.uint64)
        self._idx64 = [self._idx[0].view(np.uint64), self._idx[1].view(np.uint64)]
        self._gray = np.zeros((2, h, w), np.uint8)
        self._pool = np.zeros((h, w), np.uint8)
        self._h_t = np.zeros((wd, h), np.float32)
        self._out = np.zeros((hd, wd), np.uint8)
        self._lo = np.full(h, w, np.int64)
        self._hi = np.zeros(h, np.int64)
        self._rows = np.zeros(h, np.int64)
        self._dlo = np.zeros(h, np.int64)
        self._dhi = np.zeros(h, np.int64)
        self._xi, self._xw, self._yi, self._yw = area._xi, area._xw, area._yi, area._yw
        self._dx_first, self._dx_last = _coverage(self._xi, w)
        self._fresh = np.ones(2, np.uint8)  # frame k is stale: compare nothing, take all
        self._args = [
            (self._new, self._new64, self._idx[k], self._idx64[k], self._gray[k], self._lut,
             self._lo, self._hi, self._fresh, k, self._rows)
            for k in range(2)
        ]
        self._full_rows = int(FULL_ROWS * h)
        self.learnt = 0  # screens fetched twice to learn colours (for tests and curiosity)

    def reset(self) -> None:
        """A new episode: frame 1 (the one before the last) reads as black until grabbed."""
        self._gray[1].fill(0)
        self._fresh.fill(1)
        self._lo.fill(0)
        self._hi.fill(self._gray.shape[2])

    def grab(self, k: int) -> None:
        """Fetch the emulator's current screen as frame ``k`` (0: last, 1: before last)."""
        self._get_screen(self._new)
        args = self._args[k]
        if _update(*args) < 0:
            self._learn(k)
            _update(*args)

    def _learn(self, k: int) -> None:
        gray = np.empty_like(self._gray[k])
        self._ale.getScreenGrayscale(gray)
        self._lut[self._new.ravel()] = gray.ravel()
        self.learnt += 1

    def frame(self, out: np.ndarray) -> None:
        """Write the max-pooled, resized frame (uint8 ``dst_hw``) into ``out``."""
        if not _finish(self._gray[0], self._gray[1], self._pool, self._h_t, self._out,
                       self._lo, self._hi, self._xi, self._xw, self._yi, self._yw,
                       self._dx_first, self._dx_last, self._dlo, self._dhi, self._full_rows):
            self._rebuild()
        out[...] = self._out

    def _rebuild(self) -> None:
        # the vectorised full passes of _area_resize, keeping h_t for later partial updates
        np.maximum(self._gray[0], self._gray[1], out=self._pool)
        self._area.resize_into(self._pool, self._out, self._h_t)
        self._lo.fill(self._pool.shape[1])
        self._hi.fill(0)


def _coverage(xi: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """For each source column: the first and last output column whose taps read it."""
    first = np.full(w, xi.shape[0], np.int64)
    last = np.full(w, -1, np.int64)
    for dx in range(xi.shape[0]):
        for k in range(xi.shape[1]):
            x = xi[dx, k]
            first[x] = min(first[x], dx)
            last[x] = max(last[x], dx)
    if (last < 0).any():  # pragma: no cover - area taps cover every column
        raise AssertionError("area taps leave a source column unread")
    # a dirty range [a, b) maps to output columns [first[a], last[b - 1]]: both monotone
    first = np.minimum.accumulate(first[::-1])[::-1].copy()
    last = np.maximum.accumulate(last)
    return first, last

"""Generals.io maps: the character layout, its array form, and the two map generators.

Character layout (generals-bots 2.5.0 ``Grid``): one line per row, ``.`` plain, ``#`` mountain,
``A``/``B`` the generals of players 0/1 (they start with 1 army), a digit ``d`` a neutral city
holding ``40 + d`` army and ``x`` a neutral city holding 50. A valid map has exactly one ``A``
and one ``B`` joined by a 4-connected path that avoids mountains *and* cities.

Array form (:class:`MapArrays`), padded to ``pad_to`` with mountains (right and bottom):

- ``terrain`` uint8 [S, S]: :data:`PLAIN`, :data:`MOUNTAIN`, :data:`CITY`, :data:`GENERAL`;
- ``army`` int32 [S, S]: starting armies;
- ``dims`` (rows, cols) of the real board and ``generals`` int32 [2, 2] (row, col) of A, B.

:class:`MapGenerator` reproduces generals-bots 2.5.0 ``GridFactory`` draw for draw: given the
same ``numpy.random.Generator`` state it returns the same map, in both the ``"uniform"`` mode
(i.i.d. mountains/cities, generals at Manhattan distance >= max(H, W) // 2; the width uses the
height bounds, as in generals-bots) and the ``"generalsio"`` mode (18-23 sides, 20-22 % mountains,
9-11 cities, one within BFS distance 6 of each general and the rest converted from mountains,
generals >= ``min_generals_distance`` BFS steps apart, balanced open land near both generals).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

PLAIN, MOUNTAIN, CITY, GENERAL = 0, 1, 2, 3
"""Terrain codes of :attr:`MapArrays.terrain`."""

DEFAULT_PAD = 24
_CITY_CHARS = [str(i) for i in range(10)] + ["x"]
_DIRS = ((-1, 0), (1, 0), (0, -1), (0, 1))

__all__ = [
    "CITY",
    "DEFAULT_PAD",
    "GENERAL",
    "MOUNTAIN",
    "PLAIN",
    "InvalidMapError",
    "MapArrays",
    "MapGenerator",
    "format_map",
    "parse_map",
]


class InvalidMapError(ValueError):
    """A character layout that generals-bots would reject (or that gristmill cannot hold)."""


@dataclass(frozen=True)
class MapArrays:
    """A map as arrays padded to ``terrain.shape`` (see the module docstring)."""

    terrain: np.ndarray
    army: np.ndarray
    dims: tuple[int, int]
    generals: np.ndarray

    @property
    def pad_to(self) -> int:
        return int(self.terrain.shape[0])


def _char_grid(layout: str | np.ndarray) -> np.ndarray:
    if isinstance(layout, np.ndarray):
        if layout.ndim != 2:
            raise InvalidMapError(f"map array must be 2-D characters, got shape {layout.shape}")
        return layout.astype(str)
    if not isinstance(layout, str):
        raise InvalidMapError(f"map must be a str or a 2-D character array, got {type(layout)}")
    rows = layout.strip().split("\n")
    rows = [r.strip() for r in rows]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InvalidMapError(f"map rows have different lengths: {sorted(widths)}")
    return np.array([list(r) for r in rows])


def generals_connected(grid: np.ndarray) -> bool:
    """True when A reaches B through cells that are neither mountains nor cities."""
    h, w = grid.shape
    starts = np.argwhere(np.isin(grid, ["A", "B"]))
    if len(starts) < 2:
        return False
    blocked = (grid == "#") | np.char.isdigit(grid) | (grid == "x")
    seen = np.zeros((h, w), dtype=bool)
    (si, sj), (ei, ej) = starts[0], starts[1]
    queue = deque([(int(si), int(sj))])
    seen[si, sj] = True
    while queue:
        i, j = queue.popleft()
        for di, dj in _DIRS:
            a, b = i + di, j + dj
            if 0 <= a < h and 0 <= b < w and not seen[a, b] and not blocked[a, b]:
                seen[a, b] = True
                queue.append((a, b))
    return bool(seen[ei, ej])


def _validate(grid: np.ndarray) -> None:
    allowed = set(".#ABx0123456789")
    bad = sorted(set(np.unique(grid)) - allowed)
    if bad:
        raise InvalidMapError(f"map holds characters outside '.#ABx0-9': {bad}")
    if not generals_connected(grid):
        raise InvalidMapError("Invalid grid layout - generals cannot reach each other.")
    if (grid == "A").sum() != 1 or (grid == "B").sum() != 1:
        raise InvalidMapError("Exactly one 'A' and one 'B' should be present in the grid.")


def parse_map(layout: str | np.ndarray, pad_to: int = DEFAULT_PAD) -> MapArrays:
    """Character layout -> :class:`MapArrays` padded to ``pad_to`` x ``pad_to`` with mountains.

    Raises :class:`InvalidMapError` for an invalid layout or one larger than ``pad_to``.
    """
    grid = _char_grid(layout)
    _validate(grid)
    h, w = grid.shape
    if h > pad_to or w > pad_to:
        raise InvalidMapError(f"map is {h}x{w}, larger than pad_to={pad_to}")
    terrain = np.full((pad_to, pad_to), MOUNTAIN, dtype=np.uint8)
    army = np.zeros((pad_to, pad_to), dtype=np.int32)
    t = terrain[:h, :w]
    t[:] = PLAIN
    t[grid == "#"] = MOUNTAIN
    digit = np.char.isdigit(grid)
    cities = digit | (grid == "x")
    t[cities] = CITY
    army[:h, :w][digit] = 40 + grid[digit].astype(np.int32)
    army[:h, :w][grid == "x"] = 50
    gens = np.zeros((2, 2), dtype=np.int32)
    for p, ch in enumerate("AB"):
        (i, j), = np.argwhere(grid == ch)
        gens[p] = (i, j)
        t[i, j] = GENERAL
        army[i, j] = 1
    return MapArrays(terrain, army, (int(h), int(w)), gens)


def format_map(terrain: np.ndarray, army: np.ndarray, dims, generals) -> str:
    """Inverse of :func:`parse_map` for a *starting* map (cities hold 40..50 army)."""
    h, w = int(dims[0]), int(dims[1])
    rows = []
    for i in range(h):
        row = []
        for j in range(w):
            t = terrain[i, j]
            if t == MOUNTAIN:
                row.append("#")
            elif t == CITY:
                a = int(army[i, j])
                if not 40 <= a <= 50:
                    raise InvalidMapError(f"city at ({i}, {j}) holds {a}, outside 40..50")
                row.append("x" if a == 50 else str(a - 40))
            else:
                row.append(".")
        rows.append(row)
    for p, ch in enumerate("AB"):
        rows[int(generals[p][0])][int(generals[p][1])] = ch
    return "\n".join("".join(r) for r in rows)


class MapGenerator:
    """generals-bots 2.5.0 ``GridFactory``, draw for draw (same generator state, same map).

    Args:
        mode: ``"uniform"`` or ``"generalsio"``.
        min_grid_dims, max_grid_dims: inclusive side bounds (uniform mode; as in generals-bots the
            width is drawn from the *height* bounds, and generalsio mode always uses 18..23).
        mountain_density, city_density: uniform mode's i.i.d. cell probabilities.
        min_generals_distance: generalsio mode's minimum BFS distance between the generals.
        general_positions: fixed (row, col) of A and B (uniform mode).
        seed: seed of the generator's own ``numpy.random.Generator``.
    """

    def __init__(
        self,
        mode: str = "uniform",
        min_grid_dims: tuple[int, int] = (18, 18),
        max_grid_dims: tuple[int, int] = (23, 23),
        mountain_density: float = 0.20,
        city_density: float = 0.05,
        min_generals_distance: int = 20,
        general_positions: list[tuple[int, int]] | None = None,
        seed: int | None = None,
    ):
        if mode not in ("uniform", "generalsio"):
            raise ValueError(f"map generator mode must be 'uniform' or 'generalsio', got {mode!r}")
        if mountain_density + city_density > 1:
            raise ValueError("Sum of mountain_density and city_density cannot exceed 1.")
        if min(min_grid_dims) < 1 or any(a > b for a, b in zip(min_grid_dims, max_grid_dims)):
            raise ValueError(f"bad grid bounds {min_grid_dims}..{max_grid_dims}")
        self.mode = mode
        self.rng = np.random.default_rng(seed)
        self.min_grid_dims = tuple(min_grid_dims)
        self.max_grid_dims = tuple(max_grid_dims)
        self.mountain_density = mountain_density
        self.city_density = city_density
        self.min_generals_distance = min_generals_distance
        self.general_positions = general_positions

    @property
    def max_side(self) -> int:
        """The largest side this generator can produce (what observations must be padded to)."""
        return 23 if self.mode == "generalsio" else int(self.max_grid_dims[0])

    def set_rng(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def generate(self) -> str:
        """One map as a character layout."""
        while True:
            grid = self._uniform() if self.mode == "uniform" else self._generalsio()
            if grid is not None:
                return grid

    def generate_arrays(self, pad_to: int = DEFAULT_PAD) -> MapArrays:
        return parse_map(self.generate(), pad_to)

    # -- uniform ---------------------------------------------------------------------------
    def _uniform(self) -> str | None:
        rng = self.rng
        h = rng.integers(self.min_grid_dims[0], self.max_grid_dims[0] + 1)
        w = rng.integers(self.min_grid_dims[0], self.max_grid_dims[0] + 1)
        dims = (h, w)
        p_cities = self.city_density / 11
        probs = [1 - self.mountain_density - self.city_density, self.mountain_density]
        probs += [p_cities] * 11
        grid = rng.choice([".", "#"] + _CITY_CHARS, size=dims, p=probs)
        positions = self.general_positions
        if positions is None:
            min_distance = max(dims) // 2
            p1 = rng.integers(0, dims[0]), rng.integers(0, dims[1])
            while True:
                p2 = rng.integers(0, dims[0]), rng.integers(0, dims[1])
                if abs(p1[0] - p2[0]) + abs(p1[1] - p2[1]) >= min_distance:
                    break
            positions = [p1, p2]
        for i, (r, c) in enumerate(positions):
            grid[r, c] = "AB"[i]
        return self._checked(grid)

    @staticmethod
    def _checked(grid: np.ndarray) -> str | None:
        text = "\n".join("".join(row) for row in grid.astype(str))
        g = _char_grid(text)
        if not generals_connected(g) or (g == "A").sum() != 1 or (g == "B").sum() != 1:
            return None
        return text

    # -- generalsio ------------------------------------------------------------------------
    def _generalsio(self) -> str | None:
        rng = self.rng
        h = rng.integers(18, 24)
        w = rng.integers(18, 24)
        dims = (h, w)
        n = h * w
        cities_to_place = 5 + rng.choice([4, 5, 6])
        num_mountains = int(0.20 * n + 0.02 * n * rng.random())
        grid = np.full(dims, ".", dtype=str)
        free = np.argwhere(grid == ".")
        picked = free[rng.choice(len(free), size=num_mountains, replace=False)]
        grid[picked[:, 0], picked[:, 1]] = "#"

        g1 = (rng.integers(h), rng.integers(w))
        d1 = _bfs(g1, grid)
        g2 = None
        for _ in range(4):
            cand = (rng.integers(h), rng.integers(w))
            if d1[cand] >= self.min_generals_distance and d1[cand] != np.inf:
                g2 = cand
                break
        if g2 is None:
            return None
        d2 = _bfs(g2, grid)
        for d in (d1, d2):
            rows, cols = np.where((d <= 6) & (d > 0))
            k = rng.integers(0, len(rows))
            grid[rows[k], cols[k]] = rng.choice(_CITY_CHARS)
            cities_to_place -= 1
        mountains = np.argwhere(grid == "#")
        picked = mountains[rng.choice(len(mountains), size=cities_to_place, replace=False)]
        grid[picked[:, 0], picked[:, 1]] = rng.choice(_CITY_CHARS, size=cities_to_place)
        plain = grid == "."
        n1 = np.sum((d1 <= 5) & (d1 > 0) & plain)
        n2 = np.sum((d2 <= 5) & (d2 > 0) & plain)
        if abs(n1 - n2) > 10:
            return None
        for i, (r, c) in enumerate((g1, g2)):
            grid[r, c] = "AB"[i]
        return self._checked(grid)


def _bfs(start, grid: np.ndarray) -> np.ndarray:
    """generals-bots' BFS: steps from ``start`` avoiding only mountains (the start may be one)."""
    h, w = grid.shape
    dist = np.full((h, w), np.inf)
    dist[start] = 0
    mountain = grid == "#"
    queue = deque([(int(start[0]), int(start[1]))])
    while queue:
        i, j = queue.popleft()
        nd = dist[i, j] + 1
        for di, dj in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            a, b = i + di, j + dj
            if 0 <= a < h and 0 <= b < w and not mountain[a, b] and dist[a, b] == np.inf:
                dist[a, b] = nd
                queue.append((a, b))
    return dist

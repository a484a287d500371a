"""AlphaStar's payoff table: decayed per-pair results that drive match-making.

Vinyals et al., "Grandmaster level in StarCraft II using multi-agent reinforcement learning",
Nature 575 (2019), supplementary pseudocode ``Payoff``. For each ordered pair (home, away) the
table keeps wins, draws, losses and games. Before a result between A and B is added, the
counters of (A, B) and (B, A) -- and only those -- are multiplied by ``decay`` (0.99), so each
pair's win rate is an exponential average over its last ~100 games::

    P[A beats B] = (wins + draws / 2) / games          (0.5 if the pair never played)

Members are named strings and are added at any time (learning policies, frozen snapshots,
scripted bots). Besides the decayed counters the table keeps the *undecayed* match record
(``record``: wins, draws, losses per ordered pair), which :mod:`.ratings` fits.

Saving writes every float with ``repr`` (what :mod:`json` does), so :meth:`load_state_dict`
restores the table bit for bit and a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["PayoffTable", "WIN", "DRAW", "LOSS"]

WIN, DRAW, LOSS = 1.0, 0.5, 0.0
_OUTCOMES = {WIN: 0, DRAW: 1, LOSS: 2}


class PayoffTable:
    """Decayed win/draw/loss counts per ordered pair of named members.

    Args:
      members: initial member names (more can be added with :meth:`add`).
      decay: factor applied to a pair's counters before each of its games (AlphaStar: 0.99).
      prior: win rate reported for a pair that never played (AlphaStar: 0.5).
    """

    def __init__(self, members: Iterable[str] = (), decay: float = 0.99, prior: float = 0.5):
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        if not 0.0 <= prior <= 1.0:
            raise ValueError(f"prior must be in [0, 1], got {prior}")
        self.decay = float(decay)
        self.prior = float(prior)
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        # [M, M, 3] decayed (wins, draws, losses) of row against column; games = their sum
        self._counts = np.zeros((0, 0, 3), dtype=np.float64)
        # [M, M, 3] undecayed integer record (the rating fit's data)
        self._record = np.zeros((0, 0, 3), dtype=np.int64)
        for name in members:
            self.add(name)

    # ------------------------------------------------------------------ members
    @property
    def members(self) -> list[str]:
        """Member names in the order they were added (the matrices' row/column order)."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a member of the payoff table {self._names}") from None

    def add(self, name: str) -> int:
        """Add a member (never played: its win rates are ``prior``); returns its index."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"member names are non-empty strings, got {name!r}")
        if name in self._index:
            raise ValueError(f"{name!r} is already a member of the payoff table")
        m = len(self._names)
        self._names.append(name)
        self._index[name] = m
        self._counts = _grow(self._counts, m + 1)
        self._record = _grow(self._record, m + 1)
        return m

    # ------------------------------------------------------------------ results
    def update(self, home: str, away: str, result: float) -> None:
        """Record one game: ``result`` is home's score, 1 (win), 0.5 (draw) or 0 (loss).

        A game of a member against itself carries no information about P[A beats B] and is
        refused; record only games between distinct members.
        """
        i, j = self.index(home), self.index(away)
        if i == j:
            raise ValueError(f"a game of {home!r} against itself has no payoff entry")
        try:
            k = _OUTCOMES[float(result)]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"result must be 1 (win), 0.5 (draw) or 0 (loss), got {result!r}"
            ) from None
        c = self._counts
        c[i, j] *= self.decay
        c[j, i] *= self.decay
        c[i, j, k] += 1.0
        c[j, i, 2 - k] += 1.0
        self._record[i, j, k] += 1
        self._record[j, i, 2 - k] += 1

    # ------------------------------------------------------------------ queries
    def win_rate(self, home: str, away: str) -> float:
        """P[home beats away] = (wins + draws / 2) / games over the decayed counts."""
        return float(self.win_rates(home, [away])[0])

    def win_rates(self, home: str, opponents: Sequence[str]) -> np.ndarray:
        """``[len(opponents)]`` float64 win rates of ``home`` against each opponent."""
        i = self.index(home)
        js = [self.index(o) for o in opponents]
        c = self._counts[i, js]
        games = c.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = (c[:, 0] + 0.5 * c[:, 1]) / games
        return np.where(games > 0, p, self.prior)

    def matrix(self) -> np.ndarray:
        """``[M, M]`` win rates of every row member against every column member."""
        return (
            np.stack([self.win_rates(n, self._names) for n in self._names])
            if self._names
            else np.zeros((0, 0))
        )

    def games(self, home: str, away: str) -> float:
        """Decayed number of games between the pair (the weight behind its win rate)."""
        return float(self._counts[self.index(home), self.index(away)].sum())

    @property
    def record(self) -> np.ndarray:
        """``[M, M, 3]`` int64 undecayed (wins, draws, losses) of row against column (a copy)."""
        return self._record.copy()

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        """JSON-able state; :meth:`load_state_dict` restores it bit for bit."""
        return {
            "decay": self.decay,
            "prior": self.prior,
            "members": list(self._names),
            "counts": self._counts.tolist(),
            "record": self._record.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        names = list(state["members"])
        m = len(names)
        counts = np.array(state["counts"], dtype=np.float64).reshape(m, m, 3)
        record = np.array(state["record"], dtype=np.int64).reshape(m, m, 3)
        if len(set(names)) != m:
            raise ValueError(f"payoff state names a member twice: {names}")
        self.decay = float(state["decay"])
        self.prior = float(state["prior"])
        self._names = names
        self._index = {n: i for i, n in enumerate(names)}
        self._counts = counts
        self._record = record

    @classmethod
    def from_state_dict(cls, state: dict) -> PayoffTable:
        table = cls()
        table.load_state_dict(state)
        return table

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PayoffTable):
            return NotImplemented
        return (
            self._names == other._names
            and self.decay == other.decay
            and self.prior == other.prior
            and np.array_equal(self._counts, other._counts)
            and np.array_equal(self._record, other._record)
        )

    def format(
        self,
        rows: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        digits: int = 2,
    ) -> str:
        """Console table of win rates of ``rows`` (default: all) against ``columns`` (all)."""
        rows = self.members if rows is None else list(rows)
        columns = self.members if columns is None else list(columns)
        if not rows or not columns:
            return "(empty payoff table)"
        width = max(6, max(len(n) for n in rows + columns))
        lines = [" " * width + " " + " ".join(f"{n[:width]:>{width}}" for n in columns)]
        for name in rows:
            values = self.win_rates(name, columns)
            lines.append(f"{name:>{width}} " + " ".join(f"{v:>{width}.{digits}f}" for v in values))
        return "\n".join(lines)


def _grow(a: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros((m, m, 3), dtype=a.dtype)
    n = a.shape[0]
    out[:n, :n] = a
    return out

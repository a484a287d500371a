"""The rating table of record: a batch Bradley-Terry (Elo) fit with bootstrap intervals.

Bradley & Terry (1952); the maximum-likelihood batch Elo of BayesElo/Ordo. Member ``i`` has a
strength ``theta_i`` and scores against ``j`` with probability ``sigmoid(theta_i - theta_j)``;
a draw counts 1/2 to each side. The fit maximises the log-likelihood of every recorded game

    L(theta) = sum_{i<j} S_ij log s(theta_i - theta_j) + (N_ij - S_ij) log s(theta_j - theta_i)

(``S_ij`` = wins + draws / 2 of i against j, ``N_ij`` = games) by Newton's method with a
backtracking line search (L is concave), with the anchor's strength held at 0. Ratings are
reported on the Elo scale, ``anchor_rating + 400 / ln(10) * theta``, so 400 points = 10:1 odds.

Why not online Elo, TrueSkill or OpenSkill (``shared/notes/league.md`` §4): online updates
depend on game order; OpenSkill's draw leaves the means unchanged while shrinking the
uncertainty exactly as a decisive game does, so draw-heavy pairs (most weak Generals games are
draws) look certain but say nothing. The batch fit is order-free, treats a draw as half a win
and gives bootstrap intervals.

``prior_games`` virtual draws are added to every pair that has played, so that a member that
won (or lost) every game gets a finite rating (BayesElo's prior). Members with no path of
games to the anchor cannot be placed and are reported as NaN. Intervals come from resampling
each pair's games (a multinomial over its wins/draws/losses) and refitting; they are relative
to the anchor, whose interval is a point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ELO_SCALE", "RatingTable", "fit_bradley_terry", "fit_ratings"]

ELO_SCALE = 400.0 / math.log(10.0)  # Elo points per unit of log-odds


@dataclass
class RatingTable:
    """Fitted ratings: ``[M]`` arrays in the order of ``names`` (NaN: not placed)."""

    names: list[str]
    ratings: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    games: np.ndarray
    anchor: str
    anchor_rating: float
    confidence: float
    extra: dict = field(default_factory=dict)  # fit settings, for the record

    def __getitem__(self, name: str) -> float:
        return float(self.ratings[self.names.index(name)])

    def interval(self, name: str) -> tuple[float, float]:
        i = self.names.index(name)
        return float(self.lower[i]), float(self.upper[i])

    def scalars(self, prefix: str = "rating/") -> dict[str, float]:
        """``{prefix + name: rating}`` for TensorBoard (members not placed are left out)."""
        return {
            f"{prefix}{n}": float(r) for n, r in zip(self.names, self.ratings) if not np.isnan(r)
        }

    def format(self) -> str:
        """Console table, strongest first (members not placed last)."""
        order = sorted(
            range(len(self.names)),
            key=lambda i: (np.isnan(self.ratings[i]), -np.nan_to_num(self.ratings[i])),
        )
        width = max([6] + [len(n) for n in self.names])
        pct = f"{100 * self.confidence:g}%"
        lines = [f"{'member':<{width}}  {'rating':>7}  {pct + ' interval':>17}  {'games':>7}"]
        for i in order:
            mark = " (anchor)" if self.names[i] == self.anchor else ""
            lines.append(
                f"{self.names[i]:<{width}}  {self.ratings[i]:>7.1f}  "
                f"[{self.lower[i]:>7.1f}, {self.upper[i]:>7.1f}]  {int(self.games[i]):>7d}{mark}"
            )
        return "\n".join(lines)

    def state_dict(self) -> dict:
        """JSON-able (NaN as null); :meth:`from_state_dict` restores it exactly."""

        def arr(a):
            return [None if np.isnan(x) else float(x) for x in a]

        return {
            "names": list(self.names),
            "ratings": arr(self.ratings),
            "lower": arr(self.lower),
            "upper": arr(self.upper),
            "games": [int(g) for g in self.games],
            "anchor": self.anchor,
            "anchor_rating": self.anchor_rating,
            "confidence": self.confidence,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> RatingTable:
        def arr(a):
            return np.array([np.nan if x is None else x for x in a], dtype=np.float64)

        return cls(
            names=list(state["names"]),
            ratings=arr(state["ratings"]),
            lower=arr(state["lower"]),
            upper=arr(state["upper"]),
            games=np.array(state["games"], dtype=np.int64),
            anchor=state["anchor"],
            anchor_rating=float(state["anchor_rating"]),
            confidence=float(state["confidence"]),
            extra=dict(state.get("extra", {})),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RatingTable):
            return NotImplemented
        return self.state_dict() == other.state_dict()


def _check_record(record: np.ndarray) -> np.ndarray:
    r = np.asarray(record)
    if r.ndim != 3 or r.shape[0] != r.shape[1] or r.shape[2] != 3:
        raise ValueError(f"record must be [M, M, 3] (wins, draws, losses), got {r.shape}")
    if np.any(r < 0):
        raise ValueError("record holds negative counts")
    if not (np.array_equal(r[..., 0], r[..., 2].T) and np.array_equal(r[..., 1], r[..., 1].T)):
        raise ValueError("record is not mirrored: i's wins against j must be j's losses to i")
    if np.any(np.diagonal(r, axis1=0, axis2=1)):
        raise ValueError("record holds games of a member against itself")
    return r


def _connected(games: np.ndarray, start: int) -> np.ndarray:
    seen = np.zeros(games.shape[0], dtype=bool)
    seen[start] = True
    stack = [start]
    while stack:
        i = stack.pop()
        for j in np.flatnonzero((games[i] > 0) & ~seen):
            seen[j] = True
            stack.append(int(j))
    return seen


def fit_bradley_terry(
    record: np.ndarray,
    anchor: int,
    prior_games: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry strengths (natural log-odds, anchor = 0).

    Args:
      record: ``[M, M, 3]`` (wins, draws, losses) of row against column, mirrored.
      anchor: index of the member held at 0.
      prior_games: virtual drawn games added to every pair that played (> 0 keeps every
        rating finite; 0 is the plain MLE, infinite for a member that won every game).
      tol: stop when the largest Newton step is below this.
      max_iter: Newton iterations at most (raises if not converged).

    Returns:
      ``[M]`` float64 strengths; NaN for members not connected to the anchor by games.
    """
    r = _check_record(record).astype(np.float64)
    m = r.shape[0]
    if not 0 <= anchor < m:
        raise ValueError(f"anchor index {anchor} outside [0, {m})")
    games = r.sum(axis=-1)
    played = games > 0
    n = games + prior_games * played
    s = r[..., 0] + 0.5 * r[..., 1] + 0.5 * prior_games * played  # scores, row vs column
    theta = np.full(m, np.nan)
    placed = _connected(games, anchor)
    free = np.flatnonzero(placed & (np.arange(m) != anchor))
    theta[placed] = 0.0
    if free.size == 0:
        return theta
    idx = np.flatnonzero(placed)
    n, s = n[np.ix_(idx, idx)], s[np.ix_(idx, idx)]
    pos = {int(k): i for i, k in enumerate(idx)}
    f = np.array([pos[int(k)] for k in free])
    t = np.zeros(idx.size)

    def loglik(t):
        d = t[:, None] - t[None, :]
        return float(np.sum(s * -np.logaddexp(0.0, -d)))

    current = loglik(t)
    for _ in range(max_iter):
        d = t[:, None] - t[None, :]
        p = np.exp(-np.logaddexp(0.0, -d))  # sigmoid without overflow
        grad = (s - n * p).sum(axis=1)
        w = n * p * (1.0 - p)
        hess = w - np.diag(w.sum(axis=1))  # negative definite on the free block
        try:
            step = np.linalg.solve(hess[np.ix_(f, f)], -grad[f])
        except np.linalg.LinAlgError:
            break  # flat: strengths running off to infinity (only with prior_games=0)
        scale = 1.0
        while True:  # backtracking keeps every step an ascent
            trial = t.copy()
            trial[f] += scale * step
            value = loglik(trial)
            if value >= current - 1e-12 or scale < 1e-6:
                break
            scale *= 0.5
        t, current = trial, value
        if np.max(np.abs(scale * step)) < tol:
            theta[idx] = t
            return theta
    raise RuntimeError(
        f"Bradley-Terry fit did not converge in {max_iter} Newton steps (with prior_games=0 a "
        "member that won or lost every game has no finite rating)"
    )


def fit_ratings(
    names: Sequence[str],
    record: np.ndarray,
    anchor: str,
    anchor_rating: float = 0.0,
    prior_games: float = 1.0,
    bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatingTable:
    """Elo ratings of every member with bootstrap intervals (deterministic given ``seed``).

    Args:
      names: ``[M]`` member names (e.g. ``PayoffTable.members``).
      record: ``[M, M, 3]`` undecayed (wins, draws, losses) (e.g. ``PayoffTable.record``).
      anchor: the member whose rating is fixed (e.g. the random bot, or a frozen snapshot).
      anchor_rating: its rating (0, or 1000 for a familiar-looking scale).
      prior_games: see :func:`fit_bradley_terry`.
      bootstrap: resamples for the intervals (0: intervals equal the ratings).
      confidence: central interval mass.
      seed: the bootstrap's random seed.
    """
    names = list(names)
    r = _check_record(record)
    if len(names) != r.shape[0]:
        raise ValueError(f"{len(names)} names for a record of {r.shape[0]} members")
    if anchor not in names:
        raise ValueError(f"anchor {anchor!r} is not among the members {names}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a = names.index(anchor)
    theta = fit_bradley_terry(r, a, prior_games)
    ratings = anchor_rating + ELO_SCALE * theta
    lower, upper = ratings.copy(), ratings.copy()
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        iu, ju = np.triu_indices(r.shape[0], k=1)
        counts = r[iu, ju].astype(np.int64)
        total = counts.sum(axis=1)
        keep = total > 0
        iu, ju, counts, total = iu[keep], ju[keep], counts[keep], total[keep]
        samples = np.empty((bootstrap, r.shape[0]))
        for b in range(bootstrap):
            drawn = rng.multinomial(total, counts / total[:, None])
            rb = np.zeros_like(r, dtype=np.int64)
            rb[iu, ju] = drawn
            rb[ju, iu] = drawn[:, ::-1]
            samples[b] = fit_bradley_terry(rb, a, prior_games)
        q = (1.0 - confidence) / 2.0
        lower = anchor_rating + ELO_SCALE * np.quantile(samples, q, axis=0)
        upper = anchor_rating + ELO_SCALE * np.quantile(samples, 1.0 - q, axis=0)
    return RatingTable(
        names=names,
        ratings=ratings,
        lower=lower,
        upper=upper,
        games=r.sum(axis=(1, 2)),
        anchor=anchor,
        anchor_rating=float(anchor_rating),
        confidence=float(confidence),
        extra={"prior_games": prior_games, "bootstrap": bootstrap, "seed": seed},
    )

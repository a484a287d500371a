"""PayoffTable: AlphaStar's decayed payoff, hand-checked and against its pseudocode."""

import collections
import json

import numpy as np
import pytest
from gristmill.learners.league import DRAW, LOSS, WIN, PayoffTable
from hypothesis import given, settings
from hypothesis import strategies as st


class AlphaStarPayoff:
    """AlphaStar's supplementary pseudocode ``Payoff``, transcribed as the reference."""

    def __init__(self):
        self._wins = collections.defaultdict(lambda: 0)
        self._draws = collections.defaultdict(lambda: 0)
        self._losses = collections.defaultdict(lambda: 0)
        self._games = collections.defaultdict(lambda: 0)
        self._decay = 0.99

    def _win_rate(self, home, away):
        if self._games[home, away] == 0:
            return 0.5
        return (self._wins[home, away] + 0.5 * self._draws[home, away]) / self._games[home, away]

    def update(self, home, away, result):
        for stats in (self._games, self._wins, self._draws, self._losses):
            stats[home, away] *= self._decay
            stats[away, home] *= self._decay
        self._games[home, away] += 1
        self._games[away, home] += 1
        if result == "win":
            self._wins[home, away] += 1
            self._losses[away, home] += 1
        elif result == "draw":
            self._draws[home, away] += 1
            self._draws[away, home] += 1
        else:
            self._wins[away, home] += 1
            self._losses[home, away] += 1


def test_unplayed_pair_has_win_rate_one_half():
    t = PayoffTable(["a", "b"])
    assert t.win_rate("a", "b") == 0.5
    assert t.games("a", "b") == 0.0


def test_decay_hand_computed():
    t = PayoffTable(["a", "b", "c"])
    t.update("a", "b", WIN)
    t.update("a", "b", LOSS)
    t.update("a", "b", DRAW)
    # wins 0.99^2, losses 0.99, draws 1; games 0.99^2 + 0.99 + 1
    games = 0.99**2 + 0.99 + 1
    assert t.games("a", "b") == pytest.approx(games, abs=1e-15)
    assert t.win_rate("a", "b") == pytest.approx((0.99**2 + 0.5) / games, abs=1e-15)
    assert t.win_rate("b", "a") == pytest.approx((0.99 + 0.5) / games, abs=1e-15)
    # only the pair that played decays
    t.update("a", "c", WIN)
    t.update("a", "c", WIN)
    assert t.games("a", "b") == pytest.approx(games, abs=1e-15)
    assert t.win_rate("a", "c") == 1.0 and t.win_rate("c", "a") == 0.0
    assert t.record[0, 1].tolist() == [1, 1, 1] and t.record[2, 0].tolist() == [0, 0, 2]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([WIN, DRAW, LOSS])),
        max_size=60,
    )
)
def test_matches_alphastar_pseudocode(games):
    names = ["p0", "p1", "snap", "bot"]
    ours, ref = PayoffTable(names), AlphaStarPayoff()
    word = {WIN: "win", DRAW: "draw", LOSS: "loss"}
    for i, j, r in games:
        if i == j:
            continue
        ours.update(names[i], names[j], r)
        ref.update(names[i], names[j], word[r])
    for a in names:
        for b in names:
            if a != b:
                assert ours.win_rate(a, b) == pytest.approx(ref._win_rate(a, b), rel=1e-12)
    m = ours.matrix()
    assert np.all((m >= 0) & (m <= 1))
    # zero-sum: P[a beats b] + P[b beats a] = 1 for every pair (both are 0.5 when unplayed)
    assert np.allclose(m + m.T, 1.0)


def test_members_added_later_start_at_the_prior():
    t = PayoffTable(["a", "b"])
    t.update("a", "b", WIN)
    assert t.add("a@v1") == 2
    assert t.win_rates("a", ["b", "a@v1"]).tolist() == [1.0, 0.5]
    t.update("a@v1", "b", DRAW)
    assert t.win_rate("b", "a@v1") == 0.5 and t.games("b", "a@v1") == 1.0


def test_save_load_json_is_bit_exact_and_resumes_identically():
    rng = np.random.default_rng(0)
    names = [f"m{k}" for k in range(5)]
    results = [
        (names[i], names[j], [WIN, DRAW, LOSS][rng.integers(3)])
        for i, j in rng.integers(5, size=(400, 2))
        if i != j
    ]
    uninterrupted = PayoffTable(names)
    for g in results:
        uninterrupted.update(*g)

    first = PayoffTable(names)
    for g in results[:150]:
        first.update(*g)
    text = json.dumps(first.state_dict())
    resumed = PayoffTable.from_state_dict(json.loads(text))
    assert resumed == first
    for g in results[150:]:
        resumed.update(*g)
    assert resumed == uninterrupted
    assert np.array_equal(resumed.matrix(), uninterrupted.matrix())  # bitwise, not approx


def test_bad_input_is_refused_with_its_name():
    t = PayoffTable(["a", "b"])
    with pytest.raises(KeyError, match="'zed' is not a member"):
        t.update("a", "zed", WIN)
    with pytest.raises(ValueError, match="against itself"):
        t.update("a", "a", WIN)
    with pytest.raises(ValueError, match="result must be"):
        t.update("a", "b", 2)
    with pytest.raises(ValueError, match="already a member"):
        t.add("a")
    with pytest.raises(ValueError, match="decay"):
        PayoffTable(decay=0.0)


def test_format_names_every_member():
    t = PayoffTable(["learner", "random"])
    t.update("learner", "random", WIN)
    text = t.format()
    assert "learner" in text and "random" in text and "1.00" in text and "0.00" in text
    one_row = t.format(rows=["learner"], columns=["random"]).splitlines()
    assert len(one_row) == 2 and one_row[1].split() == ["learner", "1.00"]

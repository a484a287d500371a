"""Ratings: the batch Bradley-Terry fit recovers known strengths, anchored, with intervals."""

import json

import numpy as np
import pytest
from gristmill.learners.league import (
    DRAW,
    ELO_SCALE,
    LOSS,
    WIN,
    PayoffTable,
    RatingTable,
    fit_bradley_terry,
    fit_ratings,
)

TRUE_ELO = {"random": 0.0, "expander": 150.0, "p0@1": 300.0, "p0@2": 450.0, "p0": 700.0}


def simulate(games: int, seed: int) -> PayoffTable:
    """Games between random pairs; P[score] from the Elo gap, draws likelier when even."""
    rng = np.random.default_rng(seed)
    names = list(TRUE_ELO)
    table = PayoffTable(names)
    for _ in range(games):
        i, j = rng.choice(len(names), size=2, replace=False)
        p = 1.0 / (1.0 + 10 ** ((TRUE_ELO[names[j]] - TRUE_ELO[names[i]]) / 400))
        draw = 0.8 * p * (1 - p)  # win = p - draw/2 keeps the expected score at p
        u = rng.random()
        result = WIN if u < p - draw / 2 else DRAW if u < p + draw / 2 else LOSS
        table.update(names[i], names[j], result)
    return table


def mm_reference(record, anchor, prior_games=1.0, iters=20000):
    """Hunter's (2004) minorize-maximize iteration for Bradley-Terry, with the same prior."""
    r = record.astype(float)
    played = r.sum(-1) > 0
    n = r.sum(-1) + prior_games * played
    w = (r[..., 0] + 0.5 * r[..., 1] + 0.5 * prior_games * played).sum(1)
    gamma = np.ones(r.shape[0])
    for _ in range(iters):
        gamma = w / (n / (gamma[:, None] + gamma[None, :])).sum(1)
        gamma /= gamma[anchor]
    return np.log(gamma)


def test_fit_recovers_known_strengths_with_the_anchor_fixed():
    table = simulate(20000, seed=0)
    rt = fit_ratings(table.members, table.record, anchor="random", bootstrap=100, seed=1)
    assert rt["random"] == 0.0 and rt.interval("random") == (0.0, 0.0)
    inside = 0
    for name, elo in TRUE_ELO.items():
        assert abs(rt[name] - elo) < 40, (name, rt[name], elo)
        lo, hi = rt.interval(name)
        inside += lo <= elo <= hi
        assert lo <= rt[name] <= hi
    assert inside >= 4  # 95 % intervals: at most one miss among five is plausible
    # the order of the true strengths is recovered
    assert [rt[n] for n in TRUE_ELO] == sorted(rt[n] for n in TRUE_ELO)
    # anchoring elsewhere only shifts
    shifted = fit_ratings(table.members, table.record, "random", anchor_rating=1000, bootstrap=0)
    np.testing.assert_allclose(shifted.ratings - 1000, rt.ratings, atol=1e-9)
    other = fit_ratings(table.members, table.record, "p0", anchor_rating=700.0, bootstrap=0)
    np.testing.assert_allclose(other.ratings - other["random"], rt.ratings, atol=1e-6)


def test_newton_fit_is_the_maximum_likelihood_of_the_mm_iteration():
    table = simulate(3000, seed=2)
    ours = fit_bradley_terry(table.record, anchor=0)
    np.testing.assert_allclose(ours, mm_reference(table.record, 0), atol=1e-7)
    plain = fit_bradley_terry(table.record, anchor=0, prior_games=0.0)
    np.testing.assert_allclose(plain, mm_reference(table.record, 0, 0.0), atol=1e-7)


def test_draws_count_one_half():
    table = PayoffTable(["a", "b", "c"])
    for _ in range(50):
        table.update("a", "b", DRAW)  # all draws: equal strength, whatever the count
    for _ in range(30):
        table.update("b", "c", WIN)
        table.update("b", "c", LOSS)
    rt = fit_ratings(table.members, table.record, "a", bootstrap=0)
    np.testing.assert_allclose(rt.ratings, [0.0, 0.0, 0.0], atol=1e-9)
    # one win + one draw score 1.5 of 2: odds 3 (with the prior draw: 2 of 3, odds 2)
    t2 = PayoffTable(["a", "b"])
    t2.update("a", "b", WIN)
    t2.update("a", "b", DRAW)
    assert fit_bradley_terry(t2.record, 1, prior_games=0.0)[0] == pytest.approx(np.log(3.0))
    assert fit_bradley_terry(t2.record, 1)[0] == pytest.approx(np.log(2.0))


def test_unbeaten_member_is_finite_and_unconnected_member_is_nan():
    table = PayoffTable(["bot", "learner", "never", "island1", "island2"])
    for _ in range(40):
        table.update("learner", "bot", WIN)
    table.update("island1", "island2", WIN)
    rt = fit_ratings(table.members, table.record, "bot", bootstrap=20)
    assert np.isfinite(rt["learner"]) and rt["learner"] > 400
    assert rt["learner"] == pytest.approx(ELO_SCALE * np.log(40.5 / 0.5))
    for name in ("never", "island1", "island2"):
        assert np.isnan(rt[name])
    lines = rt.format().splitlines()
    assert lines[1].startswith("learner") and lines[-1].split()[0] in (
        "never",
        "island1",
        "island2",
    )
    with pytest.raises(RuntimeError, match="prior_games=0"):
        fit_bradley_terry(table.record, 0, prior_games=0.0)


def test_bootstrap_is_deterministic_given_seed_and_table_round_trips():
    table = simulate(500, seed=3)
    a = fit_ratings(table.members, table.record, "random", bootstrap=50, seed=7)
    b = fit_ratings(table.members, table.record, "random", bootstrap=50, seed=7)
    c = fit_ratings(table.members, table.record, "random", bootstrap=50, seed=8)
    assert a == b and a != c
    assert RatingTable.from_state_dict(json.loads(json.dumps(a.state_dict()))) == a
    assert set(a.scalars()) == {f"rating/{n}" for n in TRUE_ELO}
    assert a.scalars()["rating/random"] == 0.0
    text = a.format()
    assert text.splitlines()[1].startswith("p0 ") and "(anchor)" in text


def test_bad_records_are_refused_with_the_reason():
    table = simulate(50, seed=4)
    rec = table.record
    with pytest.raises(ValueError, match="anchor 'nobody'"):
        fit_ratings(table.members, rec, "nobody")
    bad = rec.copy()
    bad[0, 1, 0] += 1
    with pytest.raises(ValueError, match="not mirrored"):
        fit_ratings(table.members, bad, "random")
    with pytest.raises(ValueError, match=r"\[M, M, 3\]"):
        fit_ratings(table.members, rec[..., :2], "random")
    with pytest.raises(ValueError, match="4 names"):
        fit_ratings(table.members[:4], rec, "random")

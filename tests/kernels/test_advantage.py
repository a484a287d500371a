"""gristmill.kernels.advantage: Numba kernels against the NumPy reference, goldens, invariances.

The fast kernels do the reference's floating-point operations in the same order, so apart from
V-trace (whose exp differs by an ulp or two) they must agree *exactly*.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gristmill.kernels import advantage as adv
from gristmill.kernels.advantage import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
LAYOUTS = ("C", "F", "strided", "reversed")


# ---------------------------------------------------------------------------------- helpers
def _layout(a: np.ndarray, kind: str) -> np.ndarray:
    """The same values as `a` in another memory layout."""
    if kind == "C":
        return np.ascontiguousarray(a)
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros((2 * a.shape[0], 3 * a.shape[1]), a.dtype)
        view = big[::2, ::3]
        view[...] = a
        return view
    assert kind == "reversed"
    return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]


def _batch(seed, T, B, dtype, p_term=0.1, p_trunc=0.1, consistent=False):
    """Random rollout: float fields ~ N(0, 1)-ish, random terminations and truncations."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(T, B))
    next_values = rng.normal(size=(T, B))
    terminated = rng.random((T, B)) < p_term
    truncated = rng.random((T, B)) < p_trunc
    if consistent:  # next_values[t] = values[t+1] inside an episode
        inside = ~(terminated | truncated)[:-1]
        next_values[:-1][inside] = values[1:][inside]
    return dict(
        rewards=rng.normal(size=(T, B)).astype(dtype),
        values=values.astype(dtype),
        next_values=next_values.astype(dtype),
        terminated=terminated,
        truncated=truncated,
        log_rhos=rng.normal(0.0, 0.7, size=(T, B)).astype(dtype),
        mask=rng.random((T, B)) < 0.8,
    )


def _pick(batch, *names):
    return [batch[n] for n in names]


GAE_ARGS = ("rewards", "values", "next_values", "terminated", "truncated")
VT_ARGS = ("log_rhos", *GAE_ARGS)
RET_ARGS = ("rewards", "next_values", "terminated", "truncated")


def _close(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


shapes = st.tuples(st.integers(1, 24), st.integers(1, 9))
dtypes = st.sampled_from([np.float32, np.float64])
layouts = st.lists(st.sampled_from(LAYOUTS), min_size=7, max_size=7)
probs = st.sampled_from([0.0, 0.05, 0.3, 1.0])


# ------------------------------------------------------------------ reference vs fast kernels
@SETTINGS
@given(
    shape=shapes, dtype=dtypes, kinds=layouts, uniform=st.booleans(), seed=st.integers(0, 2**32),
    p_term=probs, p_trunc=probs, gamma=st.sampled_from([0.0, 0.5, 0.99, 1.0]),
    lam=st.sampled_from([0.0, 0.7, 0.95, 1.0]), parallel=st.sampled_from([None, False, 2]),
    masked=st.booleans(), time_axis=st.sampled_from([0, 1, -1]),
)
def test_fast_matches_reference(
    shape, dtype, kinds, uniform, seed, p_term, p_trunc, gamma, lam, parallel, masked, time_axis
):
    """Numba == NumPy reference (V-trace: to its exp's ulp) over layouts, episode ends, masks,
    both time axes (``[B, T]`` input is the transpose of ``[T, B]``)."""
    T, B = shape
    batch = _batch(seed, T, B, dtype, p_term, p_trunc)
    if time_axis != 0:
        batch = {k: a.T for k, a in batch.items()}
    if uniform:  # all C, all F, ... (the in-place paths); else a mix (the copying path)
        kinds = [kinds[0]] * len(kinds)
    batch = {k: _layout(a, kind) for (k, a), kind in zip(batch.items(), kinds)}
    mask = batch["mask"] if masked else None
    kw = dict(time_axis=time_axis)
    shape = batch["rewards"].shape

    a, r = adv.gae(*_pick(batch, *GAE_ARGS), gamma, lam, mask=mask, parallel=parallel, **kw)
    a_ref, r_ref = ref.gae(*_pick(batch, *GAE_ARGS), gamma, lam, mask=mask, **kw)
    assert a.dtype == r.dtype == dtype and a.shape == r.shape == a_ref.shape == shape
    np.testing.assert_array_equal(a, a_ref)
    np.testing.assert_array_equal(r, r_ref)

    rets = _pick(batch, *RET_ARGS)
    np.testing.assert_array_equal(
        adv.lambda_returns(*rets, gamma, lam, parallel=parallel, **kw),
        ref.lambda_returns(*rets, gamma, lam, **kw),
    )
    np.testing.assert_array_equal(
        adv.discounted_returns(*rets, gamma, parallel=parallel, **kw),
        ref.discounted_returns(*rets, gamma, **kw),
    )
    n = 1 + seed % (T + 1)
    np.testing.assert_array_equal(
        adv.n_step_returns(*rets, n, gamma, parallel=parallel, **kw),
        ref.n_step_returns(*rets, n, gamma, **kw),
    )

    clips = (1.0, 1.0, 1.0) if seed % 2 else (0.8, 1.5, np.inf)
    pg, vs = adv.vtrace(*_pick(batch, *VT_ARGS), gamma, lam, *clips, parallel=parallel, **kw)
    pg_ref, vs_ref = ref.vtrace(*_pick(batch, *VT_ARGS), gamma, lam, *clips, **kw)
    assert vs.dtype == pg.dtype == dtype and vs.shape == pg.shape == vs_ref.shape == shape
    np.testing.assert_allclose(vs, vs_ref, **_close(dtype))
    np.testing.assert_allclose(pg, pg_ref, **_close(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["C", "F"])
def test_threads_split_the_batch_into_column_ranges(dtype, kind):
    """Several threads over column ranges (the last one ragged) agree exactly with one."""
    T, B = 17, 5 * adv._COLUMN_ALIGN + 3
    batch = {k: _layout(a, kind) for k, a in _batch(7, T, B, dtype).items()}
    # one thread owns whole rows (ratios of 8 rows in one exp pass); threads own row slices
    one = adv.vtrace(*_pick(batch, *VT_ARGS), 0.97, 0.9, parallel=False)
    for parallel in (True, False, 3, 100):
        a, r = adv.gae(*_pick(batch, *GAE_ARGS), 0.97, 0.9, parallel=parallel)
        np.testing.assert_array_equal(a, ref.gae(*_pick(batch, *GAE_ARGS), 0.97, 0.9)[0])
        m = batch["mask"]
        a, r = adv.gae(*_pick(batch, *GAE_ARGS), 0.97, 0.9, mask=m, parallel=parallel)
        np.testing.assert_array_equal(a, ref.gae(*_pick(batch, *GAE_ARGS), 0.97, 0.9, m)[0])
        pg, vs = adv.vtrace(*_pick(batch, *VT_ARGS), 0.97, 0.9, parallel=parallel)
        np.testing.assert_array_equal(pg, one[0])
        np.testing.assert_array_equal(vs, one[1])
        pg_ref, vs_ref = ref.vtrace(*_pick(batch, *VT_ARGS), 0.97, 0.9)
        np.testing.assert_allclose(vs, vs_ref, **_close(dtype))
        np.testing.assert_allclose(pg, pg_ref, **_close(dtype))
        rets = _pick(batch, *RET_ARGS)
        np.testing.assert_array_equal(
            adv.lambda_returns(*rets, 0.97, 0.9, parallel=parallel),
            ref.lambda_returns(*rets, 0.97, 0.9),
        )
        np.testing.assert_array_equal(
            adv.n_step_returns(*rets, 5, 0.97, parallel=parallel),
            ref.n_step_returns(*rets, 5, 0.97),
        )


def test_layout_of_results_follows_the_inputs():
    batch = _batch(3, 6, 5, np.float32)
    a, _ = adv.gae(*_pick({k: np.asfortranarray(v) for k, v in batch.items()}, *GAE_ARGS))
    assert a.flags.f_contiguous and not a.flags.c_contiguous
    a, _ = adv.gae(*_pick(batch, *GAE_ARGS))
    assert a.flags.c_contiguous


# ------------------------------------------------------------------------------ golden values
# One column, T = 4, gamma = lam = 0.5 (binary fractions: exact in float32):
#   t=0 ordinary step (next_values[0] = values[1] = 1),
#   t=1 terminated (next_values[1] = 99 must be ignored),
#   t=2 truncated (bootstrap from next_values[2] = 2, but the trace stops),
#   t=3 last row (bootstrap from next_values[3] = 4).
REWARDS = [1.0, 2.0, 3.0, 4.0]
VALUES = [0.5, 1.0, 1.5, 2.0]
NEXT_VALUES = [1.0, 99.0, 2.0, 4.0]
TERMINATED = [False, True, False, False]
TRUNCATED = [False, False, True, False]


def _golden(dtype):
    return [
        np.array(x, dtype=dt)[:, None]
        for x, dt in zip(
            (REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED),
            (dtype, dtype, dtype, bool, bool),
        )
    ]


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gae_golden(impl, dtype):
    # delta = r + g*nv*(1-term) - v = [1 + .5 - .5, 2 - 1, 3 + 1 - 1.5, 4 + 2 - 2] = [1, 1, 2.5, 4]
    # A_3 = 4; A_2 = 2.5 (truncated: trace stops); A_1 = 1 (terminated);
    # A_0 = 1 + g*lam*A_1 = 1.25; returns = A + v.
    a, r = (adv if impl == "fast" else ref).gae(*_golden(dtype), gamma=0.5, lam=0.5)
    np.testing.assert_array_equal(a[:, 0], [1.25, 1.0, 2.5, 4.0])
    np.testing.assert_array_equal(r[:, 0], [1.75, 2.0, 4.0, 6.0])


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gae_golden_with_masked_steps(impl, dtype):
    # Steps 0 and 2 masked: their r and v count as 0 and the trace crosses them with factor 1.
    # t=3: A = 4; t=2 (truncated, masked): A = 0 + .5*nv_2 - 0 = 1 (trace stops);
    # t=1 (terminated): A = 2 - 1 = 1; t=0 (masked): A = 0 + .5*nv_0 - 0 + 1*A_1 = 1.5.
    # returns = A + mask*v = [1.5, 2, 1, 6]
    mask = np.array([False, True, False, True])[:, None]
    mod = adv if impl == "fast" else ref
    a, r = mod.gae(*_golden(dtype), gamma=0.5, lam=0.5, mask=mask)
    np.testing.assert_array_equal(a[:, 0], [1.5, 1.0, 1.0, 4.0])
    np.testing.assert_array_equal(r[:, 0], [1.5, 2.0, 1.0, 6.0])
    # all valid: the same as no mask
    a_all, _ = mod.gae(*_golden(dtype), gamma=0.5, lam=0.5, mask=np.ones((4, 1), bool))
    np.testing.assert_array_equal(a_all[:, 0], [1.25, 1.0, 2.5, 4.0])


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vtrace_golden(impl, dtype):
    # ratios [2, 0.5, 1, 0.25]; rho = c = min(1, ratio) = [1, .5, 1, .25]; gamma .5, lam 1.
    # rho*delta = [1, .5, 2.5, 1]; acc_3 = 1, acc_2 = 2.5, acc_1 = .5, acc_0 = 1 + .5*1*.5
    # vs = v + acc = [1.75, 1.5, 4, 3]
    # next_vs = [vs_1, (terminal), nv_2, nv_3] = [1.5, -, 2, 4]
    # pg = min(1, ratio)*(r + g*(1-term)*next_vs - v)
    #    = [1*(1 + .75 - .5), .5*(2 - 1), 1*(3 + 1 - 1.5), .25*(4 + 2 - 2)] = [1.25, .5, 2.5, 1]
    log_rhos = np.log(np.array([2.0, 0.5, 1.0, 0.25]))[:, None].astype(dtype)
    mod = adv if impl == "fast" else ref
    pg, vs = mod.vtrace(log_rhos, *_golden(dtype), gamma=0.5, lam=1.0)
    tol = dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vs[:, 0], [1.75, 1.5, 4.0, 3.0], **tol)
    np.testing.assert_allclose(pg[:, 0], [1.25, 0.5, 2.5, 1.0], **tol)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_returns_golden(impl):
    mod = adv if impl == "fast" else ref
    r, _, nv, term, trunc = _golden(np.float32)
    # G_3 = 4 + .5*4 = 6; G_2 = 3 + .5*2 = 4 (truncated: bootstrap); G_1 = 2 (terminated);
    # discounted: G_0 = 1 + .5*G_1 = 2;  lambda .5: G_0 = 1 + .5*(.5*nv_0 + .5*G_1) = 1.75
    np.testing.assert_array_equal(
        mod.discounted_returns(r, nv, term, trunc, 0.5)[:, 0], [2.0, 2.0, 4.0, 6.0]
    )
    np.testing.assert_array_equal(
        mod.lambda_returns(r, nv, term, trunc, 0.5, 0.5)[:, 0], [1.75, 2.0, 4.0, 6.0]
    )
    # A second column without episode ends: rewards [1, 2, 3, 4], next_values all 8.
    r2 = np.hstack([r, r])
    nv2 = np.hstack([nv, np.full((4, 1), 8.0, np.float32)])
    term2 = np.hstack([term, np.zeros((4, 1), bool)])
    trunc2 = np.hstack([trunc, np.zeros((4, 1), bool)])
    # n = 1: r + g*(1-term)*nv
    np.testing.assert_array_equal(
        mod.n_step_returns(r2, nv2, term2, trunc2, 1, 0.5),
        [[1.5, 5.0], [2.0, 6.0], [4.0, 7.0], [6.0, 8.0]],
    )
    # n = 2, col 0: G_0 = 1 + .5*2 (terminated at 1: no bootstrap) = 2, G_1 = 2, G_2 = 4, G_3 = 6
    # col 1: G_0 = 1 + .5*2 + .25*8 = 4, G_1 = 2 + 1.5 + 2 = 5.5, G_2 = 3 + 2 + 2 = 7,
    #        G_3 = 4 + .5*8 = 8 (last row: one step left)
    np.testing.assert_array_equal(
        mod.n_step_returns(r2, nv2, term2, trunc2, 2, 0.5),
        [[2.0, 4.0], [2.0, 5.5], [4.0, 7.0], [6.0, 8.0]],
    )


# --------------------------------------------------------------------------------- invariances
@SETTINGS
@given(
    T=st.integers(2, 30), B=st.integers(1, 6), dtype=dtypes, seed=st.integers(0, 2**32),
    data=st.data(),
)
def test_splitting_at_an_episode_boundary_changes_nothing(T, B, dtype, seed, data):
    """Results for two halves split after a done row equal the halves of the whole."""
    k = data.draw(st.integers(0, T - 2), label="split after row")
    batch = _batch(seed, T, B, dtype)
    ends = np.random.default_rng(seed + 1).random(B) < 0.5
    batch["terminated"][k] = ends
    batch["truncated"][k] = ~ends  # every column's episode ends after row k
    head = {n: a[: k + 1] for n, a in batch.items()}
    tail = {n: a[k + 1 :] for n, a in batch.items()}

    def check(fn, names, *args):
        whole = fn(*_pick(batch, *names), *args)
        parts = (fn(*_pick(head, *names), *args), fn(*_pick(tail, *names), *args))
        if not isinstance(whole, tuple):
            whole, parts = (whole,), tuple((p,) for p in parts)
        for i, w in enumerate(whole):
            np.testing.assert_array_equal(w, np.concatenate([parts[0][i], parts[1][i]]))

    check(adv.gae, GAE_ARGS, 0.99, 0.9)
    check(adv.vtrace, VT_ARGS, 0.99, 0.9, 1.0, 1.2, 0.9)
    check(adv.lambda_returns, RET_ARGS, 0.99, 0.9)
    check(adv.discounted_returns, RET_ARGS, 0.97)
    check(adv.n_step_returns, RET_ARGS, 4, 0.97)


@SETTINGS
@given(
    T=st.integers(1, 30), B=st.integers(1, 6), dtype=dtypes, seed=st.integers(0, 2**32),
    gamma=st.sampled_from([0.0, 0.9, 0.99, 1.0]), lam=st.sampled_from([0.0, 0.5, 0.95, 1.0]),
)
def test_vtrace_on_policy_reduces_to_gae(T, B, dtype, seed, gamma, lam):
    """ratio = 1: vs == GAE(lam) returns; at lam = 1 pg_advantages == GAE(1) advantages."""
    batch = _batch(seed, T, B, dtype, consistent=True)
    zero = np.zeros_like(batch["rewards"])
    pg, vs = adv.vtrace(zero, *_pick(batch, *GAE_ARGS), gamma, lam, rho_clip=1.0)
    a, returns = adv.gae(*_pick(batch, *GAE_ARGS), gamma, lam)
    np.testing.assert_allclose(vs, returns, **_close(dtype))
    a1, _ = adv.gae(*_pick(batch, *GAE_ARGS), gamma, 1.0)
    pg1, vs1 = adv.vtrace(zero, *_pick(batch, *GAE_ARGS), gamma, 1.0)
    np.testing.assert_allclose(pg1, a1, **_close(dtype))
    # With consistent values the TD(lambda) return is the GAE target as well.
    rets = _pick(batch, *RET_ARGS)
    np.testing.assert_allclose(adv.lambda_returns(*rets, gamma, lam), returns, **_close(dtype))


@SETTINGS
@given(T=st.integers(1, 30), B=st.integers(1, 6), dtype=dtypes, seed=st.integers(0, 2**32))
def test_return_estimators_reduce_to_each_other(T, B, dtype, seed):
    batch = _batch(seed, T, B, dtype)
    rets = _pick(batch, *RET_ARGS)
    mc = adv.discounted_returns(*rets, 0.9)
    # Same sums, different order (forward powers of gamma vs backward nesting): to rounding.
    np.testing.assert_allclose(adv.n_step_returns(*rets, T, 0.9), mc, **_close(dtype))
    np.testing.assert_allclose(adv.n_step_returns(*rets, T + 5, 0.9), mc, **_close(dtype))
    np.testing.assert_allclose(adv.lambda_returns(*rets, 0.9, 1.0), mc, **_close(dtype))
    r, nv, term, _ = rets
    td0 = r + np.where(term, 0, dtype(0.9) * nv)
    np.testing.assert_array_equal(adv.n_step_returns(*rets, 1, 0.9), td0)
    np.testing.assert_array_equal(adv.lambda_returns(*rets, 0.9, 0.0), td0)


def test_terminal_next_values_are_ignored_even_if_nan():
    batch = _batch(11, 12, 4, np.float32, p_term=0.3)
    clean = adv.gae(*_pick(batch, *GAE_ARGS))
    batch["next_values"] = batch["next_values"].copy()
    batch["next_values"][batch["terminated"]] = np.nan
    for fn, names in ((adv.gae, GAE_ARGS), (adv.vtrace, VT_ARGS)):
        for x in fn(*_pick(batch, *names)):
            assert np.isfinite(x).all()
    np.testing.assert_array_equal(adv.gae(*_pick(batch, *GAE_ARGS))[0], clean[0])
    for fn in (adv.discounted_returns, adv.lambda_returns):
        assert np.isfinite(fn(*_pick(batch, *RET_ARGS))).all()
    assert np.isfinite(adv.n_step_returns(*_pick(batch, *RET_ARGS), 3)).all()


@pytest.mark.parametrize("kind", ["C", "F"])
def test_nan_log_ratios_propagate_instead_of_being_clipped(kind):
    batch = {k: _layout(a, kind) for k, a in _batch(12, 6, 3, np.float32, 0.0, 0.0).items()}
    batch["log_rhos"] = batch["log_rhos"].copy(order=kind)
    batch["log_rhos"][5, 1] = np.nan  # last row: the trace carries it to every earlier row
    pg, vs = adv.vtrace(*_pick(batch, *VT_ARGS))
    assert np.isnan(vs[:, 1]).all() and np.isnan(pg[5, 1])
    assert np.isfinite(vs[:, [0, 2]]).all() and np.isfinite(pg[:, [0, 2]]).all()


def test_single_stream_and_numeric_flags():
    batch = _batch(5, 9, 1, np.float64)
    a2, r2 = adv.gae(*_pick(batch, *GAE_ARGS))
    flat = {k: v[:, 0] for k, v in batch.items()}
    flat["terminated"] = flat["terminated"].astype(np.int8)
    flat["truncated"] = flat["truncated"].astype(np.float32)
    a1, r1 = adv.gae(*_pick(flat, *GAE_ARGS))
    assert a1.shape == (9,)
    np.testing.assert_array_equal(a1, a2[:, 0])
    np.testing.assert_array_equal(r1, r2[:, 0])
    pg, vs = adv.vtrace(*_pick(flat, *VT_ARGS))
    assert vs.shape == pg.shape == (9,)


def test_empty_rollout():
    batch = _batch(0, 0, 3, np.float32)
    a, r = adv.gae(*_pick(batch, *GAE_ARGS))
    assert a.shape == r.shape == (0, 3)


def _apply_fast_exp(x):
    from gristmill.kernels import _advantage_numba as fast
    from numba import njit

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fast.exp(x[i])

    out = np.empty_like(x)
    apply(x, out)
    return out


def test_fast_exp_within_two_ulp_of_numpy():
    x = np.linspace(-86.9, 88.72, 400_001, dtype=np.float32)
    got = _apply_fast_exp(x)
    exact = np.exp(x.astype(np.float64))
    ulps = np.abs(got - exact) / np.spacing(exact.astype(np.float32))
    assert ulps.max() <= 2.0
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 89.0, -90.0, -1000.0], np.float32)
    np.testing.assert_array_equal(
        _apply_fast_exp(special), [np.nan, np.inf, 0.0, 1.0, np.inf, 0.0, 0.0]
    )


def test_fast_exp_float64_within_one_ulp_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-708.0, 709.78, 400_001), rng.normal(0.0, 2.0, 100_000)])
    got = _apply_fast_exp(x)
    want = np.exp(x)
    assert (np.abs(got - want) / np.spacing(want)).max() <= 1.0
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 710.0, -708.5, -1e4])
    np.testing.assert_array_equal(
        _apply_fast_exp(special), [np.nan, np.inf, 0.0, 1.0, np.inf, 0.0, 0.0]
    )


def test_fast_exp_float64_flushes_to_zero_and_overflows_only_at_the_range_ends():
    """Past the ends of its exact range the float64 exp gives 0 (where numpy's result is
    below ~3.2e-308, near the smallest normal double) and inf (where numpy's is inf), with
    nothing in between: the clamp that replaced the end selects changes no other result."""
    x = np.linspace(-760.0, 760.0, 1_000_001)
    got = _apply_fast_exp(x)
    with np.errstate(over="ignore", invalid="ignore"):  # numpy's own overflow, inf - inf
        want = np.exp(x)
        exact = np.abs(got - want) <= np.spacing(want)
    flushed = (got == 0.0) & (want < 3.2e-308)
    overflowed = np.isinf(got) & np.isinf(want)
    assert np.all(exact | flushed | overflowed)
    assert exact[(x > -708.0) & (x < 709.78)].all()


def test_time_axis_one_takes_batch_major_arrays_in_place():
    """[N, T] arrays with time_axis=1 give the transposes of the [T, N] results, C-ordered."""
    batch = _batch(6, 11, 7, np.float32)
    major = {k: np.ascontiguousarray(a.T) for k, a in batch.items()}  # [N, T], C order
    a, r = adv.gae(*_pick(major, *GAE_ARGS), mask=major["mask"], time_axis=1)
    a_t, r_t = adv.gae(*_pick(batch, *GAE_ARGS), mask=batch["mask"])
    assert a.shape == (7, 11) and a.flags.c_contiguous
    np.testing.assert_array_equal(a, a_t.T)
    np.testing.assert_array_equal(r, r_t.T)
    pg, vs = adv.vtrace(*_pick(major, *VT_ARGS), time_axis=-1)
    pg_t, vs_t = adv.vtrace(*_pick(batch, *VT_ARGS))
    np.testing.assert_array_equal(pg, pg_t.T)
    np.testing.assert_array_equal(vs, vs_t.T)
    o = np.empty((7, 11), np.float32)
    got = adv.lambda_returns(*_pick(major, *RET_ARGS), time_axis=1, out=o)
    assert got is o
    np.testing.assert_array_equal(o, adv.lambda_returns(*_pick(batch, *RET_ARGS)).T)


def test_results_start_away_from_the_inputs_within_a_page():
    """Inputs that all start at one page offset (what malloc often gives) get results placed
    half a page away, where their stores cannot falsely alias the inputs' loads."""
    batch = _batch(2, 64, 1024, np.float32)  # 256 KiB per array: large enough to place

    def at_offset(a, offset=16):
        buf = np.empty(a.nbytes + 2 * 4096, np.uint8)
        start = (offset - buf.ctypes.data) % 4096
        view = buf[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view

    same = {k: at_offset(a) for k, a in batch.items()}
    for results in (adv.gae(*_pick(same, *GAE_ARGS)), adv.vtrace(*_pick(same, *VT_ARGS))):
        assert not np.shares_memory(*results)  # placed side by side in one buffer
        assert (results[0].ctypes.data - results[1].ctypes.data) % 4096 != 0  # and apart
        for x in results:
            assert 1024 <= (x.ctypes.data - 16) % 4096 <= 3072
            np.testing.assert_array_equal(x, x.copy())  # an ordinary, readable array
    np.testing.assert_array_equal(
        adv.gae(*_pick(same, *GAE_ARGS))[0], ref.gae(*_pick(batch, *GAE_ARGS))[0]
    )


def test_page_targets_split_the_widest_gap_between_inputs_and_earlier_results():
    """Results start mid-way through the widest gap (mod 4 KiB) left by the inputs' start
    offsets, earlier results and each other, on a cache-line boundary."""
    from gristmill.kernels import _advantage_numba as fast

    buf = np.empty(3 * 4096, np.uint8)
    page = (-buf.ctypes.data) % 4096
    at = lambda offset: buf[page + offset :]  # noqa: E731
    none = np.zeros(0, np.int64)
    # inputs at 0 and 1024: the widest gap is 1024 -> 4096, then -1536 (wrapping) -> 0
    assert list(fast.page_targets(2, none, at(0), at(1024))) == [2560, 3328]
    assert list(fast.page_targets(1, np.array([2560]), at(0), at(1024))) == [3328]
    assert list(fast.page_targets(1, none, at(100))) == [(100 + 2048) & ~63]


def test_large_results_reuse_memory_only_once_nothing_refers_to_it():
    """Placed results come from kept buffers (no fresh mmap, page faults and zeroing per
    call): a buffer is reused once its results are gone, never while one (or a view of it)
    is alive."""
    a, b = _batch(3, 64, 1024, np.float64), _batch(4, 64, 1024, np.float64)
    first = adv.vtrace(*_pick(a, *VT_ARGS))
    kept = first[0][::2].copy(), first[1][5:].copy()
    view = first[1][5:]
    del first
    adv.vtrace(*_pick(b, *VT_ARGS))  # first[0]'s buffer is free, first[1]'s is not
    np.testing.assert_array_equal(view, kept[1])
    second = adv.vtrace(*_pick(b, *VT_ARGS))
    third = adv.vtrace(*_pick(a, *VT_ARGS))
    np.testing.assert_array_equal(third[0][::2], kept[0])
    want = adv.vtrace(*_pick(b, *VT_ARGS), out=(np.empty((64, 1024)), np.empty((64, 1024))))
    np.testing.assert_array_equal(second[1], want[1])
    assert not any(np.shares_memory(x, y) for x in second for y in (*third, view))
    del second, third
    again = adv.vtrace(*_pick(a, *VT_ARGS))  # reuses what the dropped results held
    assert not any(np.shares_memory(x, view) for x in again)
    # many sizes, some results kept: buffers beyond the cap are dropped, never reused live
    live = [adv.gae(*_pick(_batch(5, 64, n, np.float32), *GAE_ARGS)) for n in range(1024, 1424, 16)]
    for n, res in zip(range(1024, 1424, 16), live, strict=True):
        want = adv.gae(*_pick(_batch(5, 64, n, np.float32), *GAE_ARGS), out=(
            np.empty((64, n), np.float32), np.empty((64, n), np.float32)))
        np.testing.assert_array_equal(res[0], want[0])
    assert len(adv._buffers) <= adv._KEEP_BUFFERS


# ----------------------------------------------------------------------------------- out=
def test_out_buffers_are_filled_and_returned():
    batch = _batch(2, 10, 6, np.float32)
    want = ref.gae(*_pick(batch, *GAE_ARGS))
    o = (np.empty((10, 6), np.float32), np.empty((10, 6), np.float32, order="F"))
    got = adv.gae(*_pick(batch, *GAE_ARGS), out=o)
    assert got[0] is o[0] and got[1] is o[1]
    np.testing.assert_array_equal(o[0], want[0])
    np.testing.assert_array_equal(o[1], want[1])  # other layout: through a temporary
    only_returns = np.zeros((10, 6), np.float32)
    a, r = adv.gae(*_pick(batch, *GAE_ARGS), out=(None, only_returns))
    assert r is only_returns
    np.testing.assert_array_equal(only_returns, want[1])
    strided = np.zeros((20, 6), np.float32)[::2]
    ret = adv.lambda_returns(*_pick(batch, *RET_ARGS), out=strided)
    assert ret is strided
    np.testing.assert_array_equal(strided, ref.lambda_returns(*_pick(batch, *RET_ARGS)))
    vs_out = np.empty((10, 6), np.float32)
    _, vs = adv.vtrace(*_pick(batch, *VT_ARGS), out=(None, vs_out))
    assert vs is vs_out


def test_out_may_alias_the_inputs():
    batch = _batch(4, 12, 5, np.float64)
    want = ref.gae(*_pick(batch, *GAE_ARGS))
    rewards, values = batch["rewards"].copy(), batch["values"].copy()
    args = [rewards, values, *_pick(batch, "next_values", "terminated", "truncated")]
    adv.gae(*args, out=(rewards, values))  # advantages over rewards, returns over values
    np.testing.assert_array_equal(rewards, want[0])
    np.testing.assert_array_equal(values, want[1])


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ((np.empty((5, 3), np.float32), None), r"out\[0\] \(advantages\) has shape"),
        ((None, np.empty((4, 3), np.float64)), r"out\[1\] \(returns\) has dtype float64"),
        ((np.empty((4, 3), np.float32),), "tuple of 2"),
        (([[0.0] * 3] * 4, None), r"out\[0\] \(advantages\) must be a numpy array"),
    ],
)
def test_bad_out_buffers(out, message):
    batch = _batch(1, 4, 3, np.float32)
    with pytest.raises(ValueError, match=message):
        adv.gae(*_pick(batch, *GAE_ARGS), out=out)


def test_read_only_and_overlapping_out():
    batch = _batch(1, 4, 3, np.float32)
    ro = np.empty((4, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"out\[0\] \(advantages\) is read-only"):
        adv.gae(*_pick(batch, *GAE_ARGS), out=(ro, None))
    same = np.empty((4, 3), np.float32)
    with pytest.raises(ValueError, match="overlaps another out buffer"):
        adv.gae(*_pick(batch, *GAE_ARGS), out=(same, same))
    with pytest.raises(ValueError, match=r"out \(returns\) has shape"):
        adv.discounted_returns(*_pick(batch, *RET_ARGS), out=np.empty((3, 4), np.float32))


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", GAE_ARGS[1:])
def test_shape_errors_name_the_argument(name):
    batch = _batch(1, 5, 3, np.float32)
    batch[name] = batch[name][:4]
    with pytest.raises(ValueError, match=rf"^{name} has shape \(4, 3\), expected \(5, 3\)"):
        adv.gae(*_pick(batch, *GAE_ARGS))


@pytest.mark.parametrize("name", ["log_rhos", "values", "next_values"])
def test_mixed_float_dtypes_are_refused(name):
    batch = _batch(1, 5, 3, np.float32)
    batch[name] = batch[name].astype(np.float64)
    with pytest.raises(ValueError, match=rf"^{name} has dtype float64 but rewards has float32"):
        adv.vtrace(*_pick(batch, *VT_ARGS))


def test_other_input_errors():
    batch = _batch(1, 5, 3, np.float32)

    def call(**change):
        b = {**batch, **change}
        return adv.gae(*_pick(b, *GAE_ARGS))

    with pytest.raises(ValueError, match="^rewards must be a float32 or float64 array"):
        call(rewards=np.ones((5, 3), np.int64))
    with pytest.raises(ValueError, match="^values must be a float32 or float64 array"):
        call(values=np.ones((5, 3), np.float16))
    with pytest.raises(ValueError, match=r"^rewards must be \[T, B\]"):
        call(rewards=np.ones((5, 3, 2), np.float32))
    with pytest.raises(ValueError, match="^truncated must be bool or hold only 0 and 1"):
        call(truncated=np.full((5, 3), 2))
    with pytest.raises(ValueError, match="^terminated must be a bool array"):
        call(terminated=np.full((5, 3), "x"))
    with pytest.raises(ValueError, match=r"^terminated has shape \(3, 5\)"):
        call(terminated=np.zeros((3, 5), bool))
    args = _pick(batch, *GAE_ARGS)
    for kwargs, message in [
        (dict(gamma=1.5), r"^gamma must be in \[0.0, 1.0\]"),
        (dict(gamma=float("nan")), "^gamma must be in"),
        (dict(lam=-0.1), "^lam must be in"),
        (dict(gamma="0.9"), "^gamma must be a real number"),
    ]:
        with pytest.raises(ValueError, match=message):
            adv.gae(*args, **kwargs)
    vt = _pick(batch, *VT_ARGS)
    for name in ("rho_clip", "c_clip", "pg_rho_clip"):
        with pytest.raises(ValueError, match=rf"^{name} must be in \(0.0, inf\]"):
            adv.vtrace(*vt, **{name: 0.0})
    with pytest.raises(ValueError, match="^n must be an integer >= 1"):
        adv.n_step_returns(*_pick(batch, *RET_ARGS), 0)
    with pytest.raises(ValueError, match="^time_axis 2 is out of range for 2-D rewards"):
        adv.gae(*args, time_axis=2)
    with pytest.raises(ValueError, match="^time_axis 1 is out of range for 1-D rewards"):
        adv.gae(*[x[:, 0] for x in args], time_axis=1)
    with pytest.raises(ValueError, match=r"^mask has shape \(3, 5\)"):
        adv.gae(*args, mask=np.ones((3, 5), bool))
    r, v, nv, te, tr = (x.T for x in args)  # [B, T] = (3, 5)
    with pytest.raises(ValueError, match=r"^values has shape \(2, 5\), expected \(3, 5\) "
                       r"\(the shape of rewards, \[B, T\]\)"):
        adv.gae(r, v[:2], nv, te, tr, time_axis=1)
    for bad in (0, -2, 1.5, "yes"):
        with pytest.raises(ValueError, match="^parallel must be None, a bool or a thread count"):
            adv.gae(*args, parallel=bad)


def test_kernel_errors_in_threads_reach_the_caller(monkeypatch):
    from gristmill.kernels import _advantage_numba as fast

    def broken(*args):
        raise RuntimeError(f"columns {args[-3]}:{args[-2]}")

    monkeypatch.setattr(fast, "gae_c", broken)
    batch = _batch(1, 4, 40, np.float32)
    with pytest.raises(RuntimeError, match="columns"):
        adv.gae(*_pick(batch, *GAE_ARGS), parallel=3)


# ------------------------------------------------------------------ subprocess: import, JIT off
def _python(code: str, **env) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_runs_unchanged_with_numba_jit_disabled():
    out = _python(
        """
        import numpy as np
        from gristmill.kernels import advantage as adv, _advantage_numba as fast
        from gristmill.kernels.advantage import reference as ref
        assert not hasattr(fast.gae_c, "py_func"), "JIT is not disabled"
        rng = np.random.default_rng(0)
        for order in "CF":
            f = lambda: np.asarray(rng.normal(size=(7, 5)), np.float32, order=order)
            r, v, nv, lr = f(), f(), f(), f()
            te = np.asarray(rng.random((7, 5)) < 0.2, order=order)
            tr = np.asarray(rng.random((7, 5)) < 0.2, order=order)
            m = np.asarray(rng.random((7, 5)) < 0.7, order=order)
            for par in (False, True):
                np.testing.assert_array_equal(
                    adv.gae(r, v, nv, te, tr, parallel=par)[0], ref.gae(r, v, nv, te, tr)[0])
                np.testing.assert_array_equal(
                    adv.gae(r, v, nv, te, tr, mask=m, parallel=par)[1],
                    ref.gae(r, v, nv, te, tr, mask=m)[1])
                got = adv.vtrace(lr, r, v, nv, te, tr, lam=0.9, parallel=par)
                want = ref.vtrace(lr, r, v, nv, te, tr, lam=0.9)
                np.testing.assert_array_equal(got[0], want[0])  # numpy's exp both sides
                np.testing.assert_array_equal(got[1], want[1])
                np.testing.assert_array_equal(
                    adv.lambda_returns(r, nv, te, tr, parallel=par),
                    ref.lambda_returns(r, nv, te, tr))
                np.testing.assert_array_equal(
                    adv.n_step_returns(r, nv, te, tr, 3, parallel=par),
                    ref.n_step_returns(r, nv, te, tr, 3))
        print("ok")
        """,
        NUMBA_DISABLE_JIT="1",
    )
    assert out.strip() == "ok"


def test_import_is_light_and_the_warm_call_loads_numbas_cache():
    # Warm numba's on-disk cache in a process of its own (what a user's first run does).
    # (How long the import takes is the benchmarks' business: no timing asserts on a shared box.)
    _python(
        """
        import numpy as np
        from gristmill.kernels.advantage import gae
        x = np.zeros((4, 3), np.float32); f = np.zeros((4, 3), bool)
        gae(x, x, x, f, f)
        """
    )
    out = _python(
        """
        import sys
        import gristmill.kernels.advantage as adv
        heavy = sorted(m for m in ("numba", "torch", "gymnasium") if m in sys.modules)
        import numpy as np
        x = np.zeros((4, 3), np.float32); f = np.zeros((4, 3), bool)
        adv.gae(x, x, x, f, f)
        from gristmill.kernels import _advantage_numba as fast
        misses = sum(fast.gae_c.stats.cache_misses.values())
        leaked = sorted(m for m in ("torch", "gymnasium") if m in sys.modules)
        print(",".join(heavy) or "-", misses, ",".join(leaked) or "-")
        """
    )
    heavy, misses, leaked = out.split()
    assert heavy == "-", f"importing the module pulled in {heavy}"
    assert leaked == "-", f"calling gae pulled in {leaked}"
    assert int(misses) == 0, "the warm call recompiled instead of loading numba's cache"

"""kernels.pixels: moments and the channels-last affine against their NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from gristmill.kernels import pixels
from gristmill.kernels.pixels import (
    affine_to_hwc,
    affine_to_hwc_reference,
    pixel_moments,
    pixel_moments_reference,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


@st.composite
def _images(draw, max_rows=12):
    m = draw(st.integers(1, max_rows))
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 9))
    # Mostly extremes and repeats: the cases where float32 two-pass moments lose digits.
    elems = st.one_of(st.sampled_from([0, 1, 254, 255]), st.integers(0, 255))
    return draw(arrays(np.uint8, (m, c, h, w), elements=elems))


@settings(max_examples=200, deadline=None)
@given(_images())
def test_moments_match_reference(x):
    mean, var = pixel_moments(x)
    ref_mean, ref_var = pixel_moments_reference(x)
    assert mean.dtype == var.dtype == np.float64 and mean.shape == x.shape[1:]
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, ref_var, rtol=1e-9, atol=1e-9)
    assert (var >= 0).all()


def test_moments_switch_to_int64_sums(monkeypatch):
    # Above _INT32_ROWS rows the sums of squares would overflow int32.
    monkeypatch.setattr(pixels, "_INT32_ROWS", 3)
    x = np.full((7, 1, 2, 2), 255, np.uint8)
    x[0] = 0
    mean, var = pixel_moments(x)
    ref_mean, ref_var = pixel_moments_reference(x)
    np.testing.assert_allclose(mean, ref_mean)
    np.testing.assert_allclose(var, ref_var)


def test_moments_of_a_large_constant_batch_are_exact():
    x = np.full((9000, 1, 1, 3), 255, np.uint8)  # int32 sums of squares: 5.85e8, still exact
    mean, var = pixel_moments(x)
    assert (mean == 255).all() and (var == 0).all()


@settings(max_examples=200, deadline=None)
@given(_images(), st.floats(-6, 0), st.floats(0, 6), st.randoms())
def test_affine_matches_reference(x, lo, hi, rnd):
    rng = np.random.default_rng(rnd.randint(0, 2**32 - 1))
    a = rng.normal(0, 0.05, x.shape[1:]).astype(np.float32)
    b = rng.normal(0, 2, x.shape[1:]).astype(np.float32)
    out = affine_to_hwc(x, a, b, lo, hi)
    ref = affine_to_hwc_reference(x, a, b, lo, hi)
    assert out.shape == (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert out.min() >= np.float32(lo) and out.max() <= np.float32(hi)


def test_affine_reads_strided_input_and_fills_out():
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (4, 5, 3, 6, 7), dtype=np.uint8)
    x = full[:, :-1].reshape(-1, 3, 6, 7)[::2]  # a copy-free strided view is fine too
    a = rng.random((3, 6, 7), dtype=np.float32)
    b = rng.random((3, 6, 7), dtype=np.float32)
    out = np.full((len(x), 6, 7, 3), np.nan, np.float32)
    assert affine_to_hwc(x, a, b, -5, 5, out=out) is out
    np.testing.assert_allclose(out, affine_to_hwc_reference(x, a, b, -5, 5), rtol=1e-6)


def test_bad_inputs_name_the_argument():
    x = np.zeros((2, 3, 4, 5), np.uint8)
    a = np.ones((3, 4, 5), np.float32)
    with pytest.raises(ValueError, match="x must be a uint8"):
        pixel_moments(x.astype(np.float32))
    with pytest.raises(ValueError, match="at least one row"):
        pixel_moments(x[:0])
    with pytest.raises(ValueError, match=r"b must be float32 \(3, 4, 5\)"):
        affine_to_hwc(x, a, a[:, :2], -5, 5)
    with pytest.raises(ValueError, match=r"a must be float32"):
        affine_to_hwc(x, a.astype(np.float64), a, -5, 5)
    with pytest.raises(ValueError, match=r"x must be \[M, C, H, W\]"):
        affine_to_hwc(x[0], a, a, -5, 5)
    with pytest.raises(ValueError, match="out must be"):
        affine_to_hwc(x, a, a, -5, 5, out=np.empty((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="clip range"):
        affine_to_hwc(x, a, a, 5, -5)

"""kernels.stacked_linear: the per-slot small-row linear layer against its NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from gristmill.kernels.stacked_linear import stacked_linear, stacked_linear_reference
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=150, deadline=None)
@given(s=st.integers(1, 5), m=st.integers(1, 17), k=st.integers(1, 23), n=st.integers(1, 37),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_matches_reference_for_every_shape(s, m, k, n, dtype, seed):
    # k runs through every remainder of the four-row passes; n through partial vectors
    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal(shape).astype(dtype) for shape in ((s, m, k), (s, k, n), (s, n)))
    out = stacked_linear(x, w, b)
    ref = stacked_linear_reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    assert out.dtype == dtype and out.shape == (s, m, n)
    # reassociated sums: bounded by the sum of |terms| times a few ulps per term
    bound = np.einsum("smk,skn->smn", np.abs(x), np.abs(w)).astype(np.float64) + np.abs(b)[:, None]
    eps = np.finfo(dtype).eps
    assert (np.abs(out - ref) <= 4 * (k + 1) * eps * bound + 1e-30).all()


def test_writes_into_out_and_takes_strided_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 10)).astype(np.float32)
    w_big = rng.standard_normal((3, 10, 16)).astype(np.float32)
    w = w_big[:, :, ::2]  # not contiguous: copied, same numbers
    b = rng.standard_normal((3, 8)).astype(np.float32)
    out = np.full((3, 2, 8), np.nan, np.float32)
    assert stacked_linear(x, w, b, out=out) is out
    np.testing.assert_allclose(out, stacked_linear_reference(x, w, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args, error, match", [
    (((2, 3, 4), (2, 5, 6), (2, 6)), ValueError, r"needs w \[2, 4, N\]"),
    (((2, 3, 4), (2, 4, 6), (3, 6)), ValueError, r"b \[2, N\]"),
    (((3, 4), (2, 4, 6), (2, 6)), ValueError, "x must be a 3-D array"),
])
def test_bad_shapes_are_named(args, error, match):
    x, w, b = (np.zeros(shape, np.float32) for shape in args)
    with pytest.raises(error, match=match):
        stacked_linear(x, w, b)


def test_mixed_or_integer_dtypes_are_refused():
    x = np.zeros((1, 1, 2), np.float32)
    with pytest.raises(TypeError, match="w float64"):
        stacked_linear(x, np.zeros((1, 2, 3)), np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="int64"):
        stacked_linear(np.zeros((1, 1, 2), np.int64), np.zeros((1, 2, 3), np.int64),
                       np.zeros((1, 3), np.int64))
    with pytest.raises(ValueError, match="out must be"):
        stacked_linear(x, np.zeros((1, 2, 3), np.float32), np.zeros((1, 3), np.float32),
                       out=np.zeros((1, 1, 4), np.float32))

"""Running-normalisation passes over uint8 image batches (Numba), for CPU learners.

Sample Factory normalises Doom images per pixel by running statistics (mean and variance of
every ``(c, y, x)`` over all frames seen). For a learner batch of ~1000 frames of 3x72x128 the
torch route -- ``x.float()``, two-pass moments, ``addcmul`` + ``clamp``, then a copy to the
channels-last layout oneDNN's convolutions want -- costs ~0.2 s of one core per batch, as
much as a conv layer. These two kernels do it in two passes over the uint8 data:

- :func:`pixel_moments` -- per-element mean and unbiased variance over the batch, exact:
  integer sums, then one rounding to float64.
- :func:`affine_to_hwc` -- ``clip(x * a + b, lo, hi)`` per element, written as float32 in
  ``[M, H, W, C]`` order (an ``[M, C, H, W]`` channels-last tensor), so no later copy.

Shapes: ``x`` is ``[M, C, H, W]`` uint8 (any strides), per-pixel parameters are ``[C, H, W]``.
Each kernel has a NumPy reference (``*_reference``); the tests compare them on random inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["affine_to_hwc", "affine_to_hwc_reference", "pixel_moments", "pixel_moments_reference"]

# Sums of squares of M uint8 values fit int32 while M * 255**2 < 2**31.
_INT32_ROWS = (2**31 - 1) // (255 * 255)


@njit(cache=True, nogil=True, boundscheck=False)
def _sums(x, s, ss):  # pragma: no cover - compiled
    m, p = x.shape
    for i in range(m):
        row = x[i]
        for j in range(p):
            v = s.dtype.type(row[j])
            s[j] += v
            ss[j] += v * v


def pixel_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-element mean and unbiased variance of ``x[M, ...]`` (uint8) over dim 0.

    Returns float64 arrays shaped ``x.shape[1:]``; the variance is 0 when ``M == 1``. Exact up
    to the final float64 rounding (``var = (M * sum(x^2) - sum(x)^2) / (M (M - 1))`` in
    integers), unlike a float32 two-pass computation.
    """
    x = _check_uint8(x, "x")
    m = x.shape[0]
    if m == 0:
        raise ValueError("pixel_moments needs at least one row, got x.shape[0] == 0")
    flat = np.ascontiguousarray(x).reshape(m, -1)
    acc = np.int32 if m <= _INT32_ROWS else np.int64
    s = np.zeros(flat.shape[1], acc)
    ss = np.zeros(flat.shape[1], acc)
    _sums(flat, s, ss)
    return _finish(s.astype(np.int64), ss.astype(np.int64), m, x.shape[1:])


def _finish(s, ss, m, shape):
    mean = s / m
    if m == 1:
        var = np.zeros_like(mean)
    else:
        # m * ss - s^2 is an exact int64: m * ss < 2**63 for any batch that fits in memory.
        var = (m * ss - s * s) / (m * (m - 1.0))
    return mean.reshape(shape), var.reshape(shape)


def pixel_moments_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pixel_moments` in NumPy (float64 two-pass)."""
    x = _check_uint8(x, "x")
    xf = x.astype(np.float64)
    mean = xf.mean(0)
    var = xf.var(0, ddof=1) if x.shape[0] > 1 else np.zeros_like(mean)
    return mean, var


@njit(cache=True, nogil=True, boundscheck=False)
def _affine_hwc(x, a, b, lo, hi, out):  # pragma: no cover - compiled
    m, c, h, w = x.shape
    for i in range(m):
        for y in range(h):
            for k in range(c):
                src = x[i, k, y]
                ak = a[k, y]
                bk = b[k, y]
                dst = out[i, y]
                for j in range(w):
                    v = np.float32(src[j]) * ak[j] + bk[j]
                    dst[j, k] = min(max(v, lo), hi)


def affine_to_hwc(
    x: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    lo: float,
    hi: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``out[m, y, x, c] = clip(x[m, c, y, x] * a[c, y, x] + b[c, y, x], lo, hi)`` in float32.

    Args:
      x: uint8 ``[M, C, H, W]``.
      a, b: float32 ``[C, H, W]`` (scale and shift; Sample Factory's ``1/std`` and ``-mean/std``
        with the obs scaling folded in).
      lo, hi: the clip range (``-5, 5``).
      out: optional float32 ``[M, H, W, C]``, C-contiguous.

    Returns ``out`` (``[M, H, W, C]``); ``out.transpose(0, 3, 1, 2)`` is the channels-last view.
    """
    x = _check_uint8(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be [M, C, H, W], got shape {x.shape}")
    m, c, h, w = x.shape
    for name, p in (("a", a), ("b", b)):
        if not isinstance(p, np.ndarray) or p.dtype != np.float32 or p.shape != (c, h, w):
            raise ValueError(
                f"{name} must be float32 {(c, h, w)}, got "
                f"{getattr(p, 'dtype', type(p))} {getattr(p, 'shape', '')}"
            )
    if not lo <= hi:
        raise ValueError(f"clip range lo={lo} > hi={hi}")
    if out is None:
        out = np.empty((m, h, w, c), np.float32)
    elif out.dtype != np.float32 or out.shape != (m, h, w, c) or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous float32 {(m, h, w, c)}, got {out.dtype} {out.shape}"
        )
    _affine_hwc(x, a, b, np.float32(lo), np.float32(hi), out)
    return out


def affine_to_hwc_reference(x, a, b, lo, hi) -> np.ndarray:
    """:func:`affine_to_hwc` in NumPy."""
    y = x.astype(np.float32) * a + b
    return np.clip(y, np.float32(lo), np.float32(hi)).transpose(0, 2, 3, 1).copy()


def _check_uint8(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 numpy array, got {getattr(x, 'dtype', type(x))}")
    return x

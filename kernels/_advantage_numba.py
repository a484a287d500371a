"""Numba kernels behind :mod:`gristmill.kernels.advantage`.

Two code paths per estimator, both running the backward recursion over time:

- ``*_c`` for C-ordered ``[T, B]`` arrays: for each row ``t`` (last to first) a ``*_row``
  helper sweeps a contiguous slice of the batch. Keeping the sweep in its own small function
  lets LLVM vectorise it (inlined into the time loop it does not, and runs 2-3x slower).
- ``*_any`` for other layouts (the public API sends F-ordered inputs here): a ``*_cols`` helper
  walks a block of columns ``[b0, b1)`` with plain 2-D indexing, so the block's cache lines
  stay hot while ``t`` moves backwards.

Every driver takes a column range ``[start, stop)`` and releases the GIL (``nogil``): the
recursion never crosses columns, so the public API runs disjoint ranges on several threads
for large batches. (A numba ``prange`` version came first: on the 2-core dev box it was slower
than one thread, it doubled the compile time, and numba's OpenMP pool is not fork-safe, which
matters to samplers that fork.)

The arithmetic mirrors ``_advantage_reference`` operation for operation (same order, selects
instead of multiplying by ``1 - flag``), so the two agree bit for bit except where ``exp`` is
involved (V-trace importance ratios use the vectorisable ``exp`` below: within 2 ulp of
numpy's for float32, 1 ulp for float64). Arguments arrive validated from the public API: 2-D
arrays of one float dtype, boolean flags, scalars already rounded to that dtype; scratch
(V-trace's running trace) is allocated inside, per column range.
Everything compiles lazily, one signature at first use, and is reloaded from numba's on-disk
cache (``cache=True``) afterwards. Under ``NUMBA_DISABLE_JIT=1`` this is plain Python.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_JIT = dict(nogil=True, cache=True)


# ----------------------------------------------------------------------- vectorisable exp
# V-trace needs exp(log_rho) per element. numba calls libm's scalar exp, which costs more than
# the rest of the kernel put together (float64: 3x the whole kernel), so both dtypes get a
# Cephes-style exp that LLVM vectorises: exp(x) = 2^n · e^r, |r| <= ln2/2, e^r by a polynomial
# (float32: degree-7 minimax; float64: degree 11, see below), 2^n assembled from exponent bits.
# Two choices keep it short on AVX2 (issue 19, AMD EPYC: float64 exp pass 231 -> 185 µs at
# T 128 x B 1024, the whole float64 kernel 554 -> 411 µs):
# - n comes from adding 1.5·2^k (k = the mantissa width): the sum's low bits are round(x/ln2)
#   as an integer, shifted into the exponent field directly. floor() and a float->int64
#   conversion did the same, but AVX2 has no packed double->int64 conversion, so LLVM split
#   every vector into four scalar conversions.
# - the polynomial is not one Horner chain in r: with a dozen dependent multiply-adds per
#   element, out-of-order execution held too few elements in flight. Independent pairs
#   (c_i + c_i+1·r) are combined by Horner in r^2 instead (float64: depth 5, and two
#   multiplies fewer than Estrin's powers r^4, r^8, which matters now that the pass is bound
#   by its operation count).
# The polynomials are compiled with FMA contraction (their own functions, so the flag stays
# out of the kernels' arithmetic): that halves their cost and keeps them within 2 ulp
# (float32) and 1 ulp (float64) of numpy's exp. Ratios below e^-86.9 (float32) or ~e^-708
# (float64) become 0, above the float range inf; NaN is kept.
def _bits_to_float(width: int):
    @intrinsic
    def from_bits(typingctx, value):
        if not isinstance(value, types.Integer):
            return None
        float_type = ir.FloatType() if width == 32 else ir.DoubleType()

        def codegen(context, builder, sig, args):
            v = args[0]
            if value.bitwidth > width:
                v = builder.trunc(v, ir.IntType(width))
            elif value.bitwidth < width:
                v = builder.sext(v, ir.IntType(width))
            return builder.bitcast(v, float_type)

        return (types.float32 if width == 32 else types.float64)(value), codegen

    return from_bits


_f32_from_bits = _bits_to_float(32)
_f64_from_bits = _bits_to_float(64)


@intrinsic
def _float_bits(typingctx, value):
    """The bits of a float32 / float64 as an int32 / int64 (a bitcast, no conversion)."""
    if value not in (types.float32, types.float64):
        return None
    int_type = types.int32 if value == types.float32 else types.int64

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(int_type.bitwidth))

    return int_type(value), codegen

_F32 = np.float32
_EXP_HI, _EXP_LO = _F32(88.72283), _F32(-86.9)
_LOG2E, _LN2_HI, _LN2_LO = _F32(1.44269504088896341), _F32(0.693359375), _F32(-2.12194440e-4)
_P0, _P1, _P2 = _F32(1.9875691500e-4), _F32(1.3981999507e-3), _F32(8.3334519073e-3)
_P3, _P4, _P5 = _F32(4.1665795894e-2), _F32(1.6666665459e-1), _F32(5.0000001201e-1)
_ONE, _TWO, _INF, _ZERO = _F32(1.0), _F32(2.0), _F32(np.inf), _F32(0.0)
_F_SHIFT = _F32(12582912.0)  # 1.5 * 2^23


@njit(fastmath={"contract"}, **_JIT)
def _expf(x):
    xc = min(max(x, _EXP_LO), _EXP_HI)
    k = xc * _LOG2E + _F_SHIFT  # round(xc / ln2) in the low mantissa bits
    n = k - _F_SHIFT
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    r2 = r * r
    p = ((_P0 * r + _P1) * r2 + (_P2 * r + _P3)) * r2 + (_P4 * r + _P5)
    p = p * r2 + r + _ONE
    scale = _f32_from_bits((_float_bits(k) + np.int32(126)) << np.int32(23))  # 2^(n-1)
    res = p * scale * _TWO
    res = _INF if x > _EXP_HI else res
    res = _ZERO if x < _EXP_LO else res
    return res if x == x else x


# float64: e^r = 1 + r + r^2·q(r) on |r| <= ln2/2, q of degree 9 (so e^r of degree 11), its
# coefficients from Chebyshev interpolation of (e^r - 1 - r) / r^2 at 10 nodes in 50-digit
# arithmetic (mpmath), then rounded to double: at most 1.6e-17 relative error (0.14 ulp),
# against 0.005 ulp for the degree-13 Taylor polynomial it replaces, two multiply-adds shorter.
# x is clamped into [-708.4, 710] first: 710 still overflows to inf by the arithmetic, and
# at -708.4 n = -1022, where 2^(n-1) has a zero exponent field, so the result is 0 (below
# x ~ -708.05, where e^x ~ 3e-308 would need a subnormal 2^n)
_D_HI, _D_LO = 710.0, -708.4
_D_LOG2E, _D_LN2_HI, _D_LN2_LO = 1.4426950408889634, 6.93145751953125e-1, 1.42860682030941723e-6
_Q0, _Q1, _Q2, _Q3, _Q4 = (
    0.5000000000000001, 0.16666666666666669, 0.041666666666624164, 0.008333333333330065,
    0.0013888888917196719,
)
_Q5, _Q6, _Q7, _Q8, _Q9 = (
    0.00019841269863040545, 2.4801521322368692e-05, 2.7557268480310024e-06,
    2.7620075879983367e-07, 2.5100375832561234e-08,
)
_D_SHIFT = 6755399441055744.0  # 1.5 * 2^52


@njit(fastmath={"contract"}, **_JIT)
def _expd(x):
    # The float64 sweep is bound by the two FMA pipes (AMD Zen 3), so every operation counts:
    # a clamp that lets the arithmetic itself overflow to inf and underflow to 0 (two
    # min/max, no compare-and-select at the end; NaN passes both, as the comparisons are
    # false), and 2^n (1 + t) as one fma, s + t·s, with t = e^r - 1 (issue 19: the exp pass
    # 181 -> 132 µs at T 128 x B 1024).
    x = _D_HI if x > _D_HI else x
    x = _D_LO if x < _D_LO else x
    k = x * _D_LOG2E + _D_SHIFT  # round(x / ln2) in the low mantissa bits
    n = k - _D_SHIFT
    r = x - n * _D_LN2_HI
    r = r - n * _D_LN2_LO
    r2 = r * r
    # pairs, then Horner in r^2 (see above; 3 % faster than Estrin's scheme here)
    p0, p1, p2 = _Q1 * r + _Q0, _Q3 * r + _Q2, _Q5 * r + _Q4
    p3, p4 = _Q7 * r + _Q6, _Q9 * r + _Q8
    q = (((p4 * r2 + p3) * r2 + p2) * r2 + p1) * r2 + p0
    t = q * r2 + r
    s = _f64_from_bits((_float_bits(k) + np.int64(1022)) << np.int64(52))  # 2^(n-1)
    return (t * s + s) * 2.0


def exp(x):
    """exp for the kernels; as plain Python (NUMBA_DISABLE_JIT) it is numpy's, exactly."""
    return np.exp(x)


@overload(exp, inline="always")
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _expf(x)
    if x == types.float64:
        return lambda x: _expd(x)
    return None


# ------------------------------------------------------------------- wide vectors (AVX-512)
# LLVM's x86 tuning for AVX-512 cores prefers 256-bit vectors (512-bit ones used to lower the
# clock). The V-trace sweep is bound by its arithmetic (the exp: ~16 instructions per float64
# element at 4 lanes), not by memory: at T 16 x B 1024, all in L2, it costs about what it costs
# per element at T 128 from L3 (float64 ~3 ns), and a pass that only streams the same bytes
# takes ~1.9 ns. 512-bit vectors halve the instructions: float64 T 128 x B 1024 went from a
# median 513 to 367 µs per call, float32 from 265 to 206 (Xeon, issue 19). ``wide_vectors()``
# at the top of a function asks LLVM for them there (the "prefer-vector-width" function
# attribute); without AVX-512 it changes nothing.
def wide_vectors():
    """Ask for 512-bit vectors in the calling kernel; a no-op as plain Python."""


@intrinsic
def _wide_vectors(typingctx):
    def codegen(context, builder, sig, args):
        # llvmlite knows only flag attributes; LLVM reads this key="value" one as written
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


@overload(wide_vectors, inline="always")
def _wide_vectors_overload():
    return lambda: _wide_vectors()


@njit(**_JIT)
def address(a):
    """The address of ``a``'s first element (``a.ctypes.data``, in ~0.4 µs; numpy's
    ``ctypes`` takes ~1.4 µs)."""
    return a.ctypes.data


@njit(**_JIT)
def page_targets(count, placed, *arrays):
    """``count`` offsets within a 4 KiB page (multiples of 64), each in the middle of the widest
    gap between the arrays' start offsets, the offsets in ``placed`` (int64) and the targets
    before it: where results can start so that their stores never falsely alias the loads of
    the same rows of the arrays (the store buffer compares address bits 0-11)."""
    points = [np.int64(0) for _ in range(0)]  # typed int64 (uintp would unify to float)
    for a in arrays:
        points.append(np.int64(a.ctypes.data % 4096))
    for p in placed:
        points.append(p)
    points.sort()
    targets = [np.int64(0) for _ in range(0)]
    for _ in range(count):
        target = np.int64(0)
        if len(points) > 0:
            width, low, prev = np.int64(-1), np.int64(0), points[-1] - 4096  # the wrapping gap
            for p in points:
                if p - prev > width:
                    width, low, prev = p - prev, prev, p
                else:
                    prev = p
            target = ((low + width // 2) % 4096) & ~np.int64(63)  # a line boundary mid-gap
        i = 0
        while i < len(points) and points[i] < target:
            i += 1
        points.insert(i, target)
        targets.append(target)
    return targets


# --------------------------------------------------------------------------------------- GAE
# ``mask`` is None (every step valid: numba compiles that case without it) or a bool array;
# at a masked step the reward and value count as 0 and the trace carries A_{t+1} back
# undiscounted (factor 1 instead of γλ), as Sample Factory does for invalid samples.
@njit(**_JIT)
def _gae_row(r, v, nv, te, tr, mask, a_next, gamma, gl, zero, one, first, a, ret):
    # Row sweeps compute both sides of every choice and then select: branches around loads
    # keep LLVM from vectorising (measured 2-3x slower).
    for b in range(r.shape[0]):
        rb, vb, k = r[b], v[b], gl
        if mask is not None:
            ok = mask[b]
            rb, vb, k = (rb if ok else zero), (vb if ok else zero), (gl if ok else one)
        d_boot = rb + gamma * nv[b] - vb
        d = (rb - vb) if te[b] else d_boot
        s = d + k * a_next[b]
        d = d if (first | te[b] | tr[b]) else s
        a[b] = d
        ret[b] = d + vb


@njit(**_JIT)
def _gae_c_block(r, v, nv, term, trunc, mask, gamma, lam, adv, ret, b0, b1):
    T = r.shape[0]
    gl = gamma * lam
    zero, one = np.zeros(1, adv.dtype)[0], np.ones(1, adv.dtype)[0]
    for t in range(T - 1, -1, -1):
        # Row T-1 has no successor: first=True discards the carry, read from zeros.
        first = t == T - 1
        a_next = np.zeros(b1 - b0, dtype=adv.dtype) if first else adv[t + 1, b0:b1]
        m = None if mask is None else mask[t, b0:b1]
        _gae_row(
            r[t, b0:b1], v[t, b0:b1], nv[t, b0:b1], term[t, b0:b1], trunc[t, b0:b1], m,
            a_next, gamma, gl, zero, one, first, adv[t, b0:b1], ret[t, b0:b1],
        )


@njit(**_JIT)
def gae_c(r, v, nv, term, trunc, mask, gamma, lam, adv, ret, start, stop, block):
    for b0 in range(start, stop, block):
        _gae_c_block(r, v, nv, term, trunc, mask, gamma, lam, adv, ret, b0, min(stop, b0 + block))



@njit(**_JIT)
def _gae_cols(r, v, nv, term, trunc, mask, gamma, lam, adv, ret, b0, b1):
    T = r.shape[0]
    gl = gamma * lam
    zero, one = np.zeros(1, adv.dtype)[0], np.ones(1, adv.dtype)[0]
    for t in range(T - 1, -1, -1):
        first = t == T - 1
        for b in range(b0, b1):
            rb, vb, k = r[t, b], v[t, b], gl
            if mask is not None and not mask[t, b]:
                rb, vb, k = zero, zero, one
            if term[t, b]:
                d = rb - vb
            else:
                d = rb + gamma * nv[t, b] - vb
            if not (first or term[t, b] or trunc[t, b]):
                d = d + k * adv[t + 1, b]
            adv[t, b] = d
            ret[t, b] = d + vb


@njit(**_JIT)
def gae_any(r, v, nv, term, trunc, mask, gamma, lam, adv, ret, start, stop, block):
    for b0 in range(start, stop, block):
        _gae_cols(r, v, nv, term, trunc, mask, gamma, lam, adv, ret, b0, min(stop, b0 + block))



# ----------------------------------------------------------------------------------- V-trace
@njit(inline="always", **_JIT)
def _clip(x, hi):
    return hi if x > hi else x  # min(x, hi) that keeps NaN, like np.minimum


@njit(**_JIT)
def _exp_row(lr, out):
    wide_vectors()
    for b in range(lr.shape[0]):
        out[b] = exp(lr[b])


# Rows handled together: one exp pass for their ratios (when a thread owns whole rows they are
# contiguous: 8 rows of float64, 64 KiB, stay in L2 for the sweeps), then their sweeps, in one
# call (issue 19: float64 T 128 x B 1024, 332 -> ~290 µs against one row at a time).
_GROUP_ROWS = 8


@njit(inline="always", **_JIT)
def _vtrace_sweep(
    r, v, nv, te, tr, vs_next, gamma, lam, rho_clip, c_clip, pg_rho_clip, first, acc, pg, vs
):
    # One row; pg holds the row's importance ratios on entry (the exp pass wrote them there:
    # the sweep's stores then hit lines already in cache, and no scratch row competes for L1).
    # Selects, not branches, so that it vectorises. vs_next is read whether or not it is
    # used: a load behind the select became a masked load.
    for b in range(r.shape[0]):
        x = pg[b]
        rb, vb, nvb, vn = r[b], v[b], nv[b], vs_next[b]
        stop = first | te[b] | tr[b]
        d_boot = rb + gamma * nvb - vb
        d0 = (rb - vb) if te[b] else d_boot
        d = _clip(x, rho_clip) * d0
        s = d + gamma * (lam * _clip(x, c_clip)) * acc[b]
        d = d if stop else s
        acc[b] = d
        vs[b] = vb + d
        # where the trace stops, the pg target bootstraps as the TD error does (d0: terminal
        # or V(s_t+1)); within an episode, from vs_t+1. One select on stop, not two selects
        # (a second expansion of the terminal flags): 5 % faster, same arithmetic.
        q = d0 if stop else rb + gamma * vn - vb
        pg[b] = _clip(x, pg_rho_clip) * q


@njit(**_JIT)
def _vtrace_rows(
    lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, acc, pg, vs,
    t0, t1, b0, b1,
):
    """Rows t1 down to t0 (inclusive) of the columns [b0, b1)."""
    T, B = r.shape
    # The ratios first, in a pass of their own: the exp's long dependency chain then overlaps
    # across elements instead of stalling the recursion's (5-20 % faster).
    if b0 == 0 and b1 == B:
        n = (t1 + 1 - t0) * B
        _exp_row(lr[t0 : t1 + 1].reshape(n), pg[t0 : t1 + 1].reshape(n))
    else:
        for t in range(t1, t0 - 1, -1):
            _exp_row(lr[t, b0:b1], pg[t, b0:b1])
    wide_vectors()
    for t in range(t1, t0 - 1, -1):
        # Row T-1 bootstraps from nv: first=True selects it (acc starts at zero).
        first = t == T - 1
        vs_next = nv[t, b0:b1] if first else vs[t + 1, b0:b1]
        _vtrace_sweep(
            r[t, b0:b1], v[t, b0:b1], nv[t, b0:b1], term[t, b0:b1], trunc[t, b0:b1], vs_next,
            gamma, lam, rho_clip, c_clip, pg_rho_clip, first, acc, pg[t, b0:b1], vs[t, b0:b1],
        )


@njit(**_JIT)
def _vtrace_c_block(
    lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, pg, vs, b0, b1
):
    T = r.shape[0]
    acc = np.zeros(b1 - b0, pg.dtype)  # the trace's running sum, one per column
    for t1 in range(T - 1, -1, -_GROUP_ROWS):
        _vtrace_rows(
            lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, acc, pg, vs,
            max(t1 - _GROUP_ROWS + 1, 0), t1, b0, b1,
        )


@njit(**_JIT)
def vtrace_c(
    lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, pg, vs,
    start, stop, block,
):
    for b0 in range(start, stop, block):
        _vtrace_c_block(
            lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, pg, vs,
            b0, min(stop, b0 + block),
        )



@njit(**_JIT)
def _vtrace_cols(
    lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, pg, vs, b0, b1
):
    T = r.shape[0]
    acc = np.zeros(b1 - b0, pg.dtype)
    for t in range(T - 1, -1, -1):
        first = t == T - 1
        for b in range(b0, b1):
            ratio = exp(lr[t, b])
            if term[t, b]:
                d = r[t, b] - v[t, b]
            else:
                d = r[t, b] + gamma * nv[t, b] - v[t, b]
            d = _clip(ratio, rho_clip) * d
            stop = first or term[t, b] or trunc[t, b]
            if not stop:
                d = d + gamma * (lam * _clip(ratio, c_clip)) * acc[b - b0]
            acc[b - b0] = d
            vs[t, b] = v[t, b] + d
            if term[t, b]:
                q = r[t, b] - v[t, b]
            elif stop:
                q = r[t, b] + gamma * nv[t, b] - v[t, b]
            else:
                q = r[t, b] + gamma * vs[t + 1, b] - v[t, b]
            pg[t, b] = _clip(ratio, pg_rho_clip) * q


@njit(**_JIT)
def vtrace_any(
    lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, pg, vs,
    start, stop, block,
):
    for b0 in range(start, stop, block):
        _vtrace_cols(
            lr, r, v, nv, term, trunc, gamma, lam, rho_clip, c_clip, pg_rho_clip, pg, vs,
            b0, min(stop, b0 + block),
        )



# -------------------------------------------------------------------- discounted / λ-returns
# One kernel for both: oml = 1 - λ in the array dtype; mc=True is λ = 1 (bootstrapped Monte
# Carlo), a branch of its own so it does exactly the reference's arithmetic rather than
# (1 - 1)·nv + 1·G (which would also turn an infinite nv into NaN).
@njit(**_JIT)
def _lambda_row(r, nv, te, tr, g_next, gamma, lam, oml, first, mc, out):
    for b in range(r.shape[0]):
        rb, nvb, gb = r[b], nv[b], g_next[b]
        x = gb if mc else oml * nvb + lam * gb
        x = nvb if (first | tr[b]) else x
        g_boot = rb + gamma * x
        out[b] = rb if te[b] else g_boot


@njit(**_JIT)
def _lambda_c_block(r, nv, term, trunc, gamma, lam, oml, mc, out, b0, b1):
    T = r.shape[0]
    for t in range(T - 1, -1, -1):
        # Row T-1 bootstraps from nv: first=True selects it over the (stand-in) successor.
        first = t == T - 1
        g_next = nv[t, b0:b1] if first else out[t + 1, b0:b1]
        _lambda_row(
            r[t, b0:b1], nv[t, b0:b1], term[t, b0:b1], trunc[t, b0:b1], g_next,
            gamma, lam, oml, first, mc, out[t, b0:b1],
        )


@njit(**_JIT)
def lambda_c(r, nv, term, trunc, gamma, lam, oml, mc, out, start, stop, block):
    for b0 in range(start, stop, block):
        _lambda_c_block(r, nv, term, trunc, gamma, lam, oml, mc, out, b0, min(stop, b0 + block))



@njit(**_JIT)
def _lambda_cols(r, nv, term, trunc, gamma, lam, oml, mc, out, b0, b1):
    T = r.shape[0]
    for t in range(T - 1, -1, -1):
        first = t == T - 1
        for b in range(b0, b1):
            if term[t, b]:
                out[t, b] = r[t, b]
                continue
            if first or trunc[t, b]:
                x = nv[t, b]
            elif mc:
                x = out[t + 1, b]
            else:
                x = oml * nv[t, b] + lam * out[t + 1, b]
            out[t, b] = r[t, b] + gamma * x


@njit(**_JIT)
def lambda_any(r, nv, term, trunc, gamma, lam, oml, mc, out, start, stop, block):
    for b0 in range(start, stop, block):
        _lambda_cols(r, nv, term, trunc, gamma, lam, oml, mc, out, b0, min(stop, b0 + block))



# ---------------------------------------------------------------------------- n-step returns
# Each G_t looks up to n steps ahead, so there is no backward recursion to share; one generic
# kernel serves every layout.
@njit(**_JIT)
def _nstep_cols(r, nv, term, trunc, gamma, n, out, b0, b1):
    T = r.shape[0]
    for t in range(T):
        for b in range(b0, b1):
            acc = r[t, b]
            disc = gamma
            s = t
            k = 0
            while True:
                if term[s, b]:
                    break
                if trunc[s, b] or k == n - 1 or s == T - 1:
                    acc = acc + disc * nv[s, b]
                    break
                s += 1
                k += 1
                acc = acc + disc * r[s, b]
                disc = disc * gamma
            out[t, b] = acc


@njit(**_JIT)
def nstep_any(r, nv, term, trunc, gamma, n, out, start, stop, block):
    for b0 in range(start, stop, block):
        _nstep_cols(r, nv, term, trunc, gamma, n, out, b0, min(stop, b0 + block))

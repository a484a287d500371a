"""kernels.dispatch: claim/dispatch against their NumPy references on random batches."""

from __future__ import annotations

import numpy as np
from gristmill.kernels.dispatch import (
    BUSY,
    DUPLICATE,
    OK,
    OUT_OF_RANGE,
    claim,
    claim_reference,
    dispatch,
    dispatch_reference,
)
from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def _claims(draw):
    n = draw(st.integers(1, 40))
    busy = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    k = draw(st.integers(1, 2 * n))
    ids = np.array(draw(st.lists(st.integers(-3, n + 2), min_size=k, max_size=k)))
    dtype = draw(st.sampled_from([np.int32, np.int64]))
    return ids.astype(dtype), busy


@settings(max_examples=300, deadline=None)
@given(_claims())
def test_claim_matches_reference(case):
    ids, busy = case
    b1, b2 = busy.copy(), busy.copy()
    bad1, bad2 = np.zeros(1, np.int64), np.zeros(1, np.int64)
    c1 = claim(ids, b1, bad1)
    c2 = claim_reference(ids, b2, bad2)
    assert c1 == c2
    np.testing.assert_array_equal(b1, b2)  # on error: untouched; else: ids marked
    if c1 == OK:
        assert b1[ids].all() and (b1 | busy).sum() == busy.sum() + len(ids)
    else:
        np.testing.assert_array_equal(b1, busy)
        assert c1 in (OUT_OF_RANGE, DUPLICATE, BUSY)
        if c1 == OUT_OF_RANGE:
            assert bad1[0] < 0 or bad1[0] >= len(busy)


def test_claim_names_the_problem():
    busy = np.zeros(4, np.bool_)
    bad = np.zeros(1, np.int64)
    assert claim(np.array([0, 4]), busy, bad) == OUT_OF_RANGE and bad[0] == 4
    assert claim(np.array([1, 2, 1]), busy, bad) == DUPLICATE and bad[0] == 1
    assert not busy.any()
    assert claim(np.array([3]), busy, bad) == OK and busy[3]
    assert claim(np.array([0, 3]), busy, bad) == BUSY and bad[0] == 3
    assert busy.tolist() == [False, False, False, True]


@st.composite
def _dispatches(draw):
    workers = draw(st.integers(1, 5))
    n = draw(st.integers(1, 30))
    worker_of = np.arange(n) % workers
    ids = np.array(draw(st.permutations(list(range(n))))[: draw(st.integers(1, n))])
    cap = -(-n // workers) + 2
    head = np.zeros((workers, 8), np.int64)
    head[:, 0] = draw(st.lists(st.integers(0, 10**6), min_size=workers, max_size=workers))
    return ids.astype(draw(st.sampled_from([np.int32, np.int64]))), worker_of, cap, head


@settings(max_examples=300, deadline=None)
@given(_dispatches(), st.integers(0, 3), st.integers(-1, 5))
def test_dispatch_matches_reference(case, cmd, block):
    ids, worker_of, cap, head = case
    workers = head.shape[0]
    outs = []
    for fn in (dispatch, dispatch_reference):
        ring = np.full((workers, cap, 4), -7, np.int64)
        h = head.copy()
        counts = np.full(workers, 99, np.int64)
        fn(ids, worker_of, ring, h, cmd, block, counts)
        outs.append((ring, h, counts))
    (r1, h1, c1), (r2, h2, c2) = outs
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(c1, c2)
    assert c1.sum() == len(ids) and (h1[:, 0] - head[:, 0] == c1).all()
    # each worker's items are its envs in batch order, with their batch positions
    for w in range(workers):
        pos = [p for p, e in enumerate(ids.tolist()) if worker_of[e] == w]
        got = [r1[w, (head[w, 0] + j) % cap] for j in range(len(pos))]
        assert [int(g[3]) for g in got] == pos
        assert all(int(g[0]) == int(ids[p]) and g[1] == cmd and g[2] == block
                   for g, p in zip(got, pos, strict=True))

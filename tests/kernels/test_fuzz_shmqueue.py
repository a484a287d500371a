"""Fuzzing kernels.shmqueue.Queue's public entry points with malformed input: sizes of every
type and sign, messages of every kind (bytes, odd arrays, objects that cannot be pickled,
messages that can never fit), batch calls' caps. Each call works (the message comes back
equal, same type, dtype and shape) or raises an error naming what is wrong; never a hang, and
the queue stays usable and leaves no /dev/shm entry."""

from __future__ import annotations

import pickle
import queue

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from gristmill.kernels.shmqueue import Queue
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
SIZES = st.one_of(
    st.integers(-(2**63), 2**20),
    st.sampled_from([2**47, 2**62, 2**63, 2**64, 2**200]),  # beyond memory and int64
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.sampled_from([np.int64(64), np.uint8(200), 1e6, 256.0, "4096", b"64", [64]]),
)


@FUZZ
@given(max_size_bytes=SIZES, maxsize=SIZES)
def test_queue_sizes_work_or_are_refused_by_name(within, names_arg, shm_entries, max_size_bytes,
                                                 maxsize):
    before = shm_entries()
    with within(20):
        try:
            q = Queue(max_size_bytes, maxsize)
        except (ValueError, TypeError, OverflowError, OSError) as exc:
            names_arg(exc, "max_size_bytes", "maxsize")
        else:
            with q:
                # accepted: a whole number of bytes >= 16 and messages >= 0
                assert q.capacity >= 16 and q.maxsize >= 0
                q.put(b"x")
                assert q.get(timeout=5) == b"x"
    assert shm_entries() - before == set()


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("_Unpicklable cannot be pickled")


ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes(),
                    st.just(np.dtype([("a", "<i4"), ("b", ">f8")]))),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
)  # fmt: skip
MESSAGES = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(bytearray),
    ARRAYS,
    ARRAYS.map(lambda a: a[::2] if a.ndim else a),  # non-contiguous views
    ARRAYS.map(lambda a: a.T),
    st.recursive(st.none() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c,
                                                                     max_size=4),
                 max_leaves=10),
    st.just(_Unpicklable()),
    st.just(lambda: 0),
    st.integers(2000, 5000).map(lambda n: b"z" * n),  # bigger than the queue
    st.just(np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])),
)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes()
                and (not isinstance(a, np.ma.MaskedArray) or np.array_equal(a.mask, b.mask)))
    return type(a) is type(b) and a == b


@FUZZ
@given(msgs=st.lists(MESSAGES, min_size=1, max_size=6), many=st.booleans())
def test_any_message_comes_back_equal_or_is_refused(within, msgs, many):
    with within(20), Queue(1024) as q:
        for m in msgs:
            expect = m.copy(order="C") if type(m) is np.ndarray else m
            try:
                if many:
                    q.put_many([m], timeout=1)
                else:
                    q.put(m, timeout=1)
            except (ValueError, TypeError, pickle.PicklingError, AttributeError) as exc:
                event(f"refused: {type(exc).__name__}")
                # too big for the queue, or an object pickle refuses: said so
                assert str(exc)
                assert q.qsize() == 0  # nothing half-put
                continue
            except queue.Full:
                pytest.fail("a message that fits an empty queue was refused as Full")
            got = q.get_many(timeout=5)[0] if many else q.get(timeout=5)
            assert _same(expect, got), (m, got)
        assert q.qsize() == 0
        q.put(b"still works")
        assert q.get(timeout=5) == b"still works"


@FUZZ
@given(
    max_messages=st.one_of(st.integers(-3, 5), st.floats(), st.text(max_size=2), st.none()),
    max_bytes=st.one_of(st.integers(-3, 100), st.floats(), st.text(max_size=2), st.none()),
    timeout=st.one_of(st.floats(-1, 0.05), st.just(float("nan")), st.text(max_size=2)),
)
def test_get_many_caps_and_timeouts_work_or_are_refused_by_name(within, names_arg,
                                                                max_messages, max_bytes,
                                                                timeout):  # fmt: skip
    with within(20), Queue(4096) as q:
        q.put_many([b"a", b"bb", b"ccc"])
        try:
            got = q.get_many(timeout=timeout, max_messages=max_messages, max_bytes=max_bytes)
        except (ValueError, TypeError) as exc:
            names_arg(exc, "max_messages", "max_bytes", "timeout")
            assert q.qsize() == 3  # a refused call takes nothing
        except queue.Empty:
            pytest.fail("get_many raised Empty with 3 messages queued")
        else:
            assert 1 <= len(got) <= 3 and got == [b"a", b"bb", b"ccc"][: len(got)]
            assert q.qsize() == 3 - len(got)

"""Fuzzing GeneralsEngine's public entry points: constructor arguments of every type and sign,
map layouts of any characters and sizes, and action arrays of any shape, dtype and value.
Each works (a map parses to what it says and round-trips; an accepted action is in range) or
raises an error naming what is wrong, and a refused step leaves every board as it was."""

from __future__ import annotations

import numpy as np
import pytest
from gristmill.envs.generals import GeneralsEngine, parse_map
from gristmill.envs.generals.maps import InvalidMapError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
S = 6
LAYOUT = "A..\n.#.\n..B"
ODD = st.one_of(st.none(), st.text(max_size=2), st.floats(-3, 3), st.booleans(),
                st.integers(-3, 3))  # fmt: skip


@FUZZ
@given(
    num_boards=ODD, pad_to=st.one_of(ODD, st.integers(3, 8)), truncation=ODD, pool_size=ODD,
    seed=st.one_of(ODD, st.integers(-(2**70), 2**70)),
    maps=st.sampled_from(["uniform", "generalsio", "bogus", None, [], [LAYOUT], [LAYOUT, 3]]),
    priority=st.sampled_from(["priority", "p0_first", "", None]),
    reward=st.sampled_from(["winlose", "shaped", "dense"]),
    autoreset=st.sampled_from(["next_step", "same_step", "never"]),
    fresh_maps=st.sampled_from([True, False, "no", 0]),
)  # fmt: skip
def test_constructor_arguments_work_or_are_refused_by_name(within, names_arg, **kw):
    with within(120):
        try:
            eng = GeneralsEngine(**kw)
        except (ValueError, TypeError) as exc:
            names = [k for k in kw if k != "maps"] + ["map"]
            names_arg(exc, *names)
            return
        n = eng.num_boards
        assert n == kw["num_boards"] and n >= 1 and eng.pad_to >= 3
        eng.reset()
        eng.step(np.zeros((n, 2, 5), np.int32))
        assert (eng.state.army >= 0).all()


CELLS = st.sampled_from(list(".#ABx0123456789") + [" ", "\t", "?", "Ω", "a"])
LAYOUTS = st.lists(st.lists(CELLS, min_size=0, max_size=7).map("".join), min_size=1,
                   max_size=7).map("\n".join)  # fmt: skip


@FUZZ
@given(layout=st.one_of(LAYOUTS, st.just(LAYOUT), st.binary(max_size=5), st.integers()),
       pad_to=st.integers(1, 8))  # fmt: skip
def test_any_layout_parses_to_what_it_says_or_is_refused(within, layout, pad_to):
    with within(120):
        try:
            m = parse_map(layout, pad_to)
        except InvalidMapError as exc:
            event(f"refused: {type(exc).__name__}")
            assert str(exc)
            with pytest.raises(InvalidMapError):
                GeneralsEngine(1, maps=[layout], pad_to=pad_to)
            return
        rows = [r.strip() for r in layout.strip().split("\n")]
        assert m.dims == (len(rows), len(rows[0]))
        eng = GeneralsEngine(1, maps=[layout], pad_to=pad_to, seed=0)
        eng.reset()
        assert eng.board_layout(0) == "\n".join(rows)  # the board is the layout it was given
        eng.step(np.zeros((1, 2, 5), np.int32))


@pytest.fixture(scope="module")
def engine():
    return GeneralsEngine(2, maps=[LAYOUT], pad_to=S, seed=0)


ACTIONS = st.one_of(
    st.builds(lambda v, dt: np.full((2, 2, 5), v).astype(dt, casting="unsafe"),
              st.integers(-(2**40), 2**40) | st.integers(-1, S), st.sampled_from(
                  [np.int8, np.int32, np.int64, np.uint16, np.uint64, np.float32, bool]))
    .filter(lambda a: True),
    st.lists(st.integers(-2, S), min_size=0, max_size=30).map(np.array),
    st.lists(st.lists(st.integers(0, 3), max_size=5), max_size=3),  # ragged lists
    st.just(np.zeros((2, 2, 5), object)), st.just(np.zeros((2, 5, 2), np.int32)),
    st.just(np.zeros((2, 2, 5), np.int32)[:, :, ::-1]),  # a non-contiguous view
)  # fmt: skip
VALID_HI = np.array([1, S - 1, S - 1, 3, 1])


@FUZZ
@given(actions=ACTIONS)
def test_any_action_array_is_stepped_only_if_valid(engine, within, actions):
    before = [np.copy(x) for x in engine.state]
    with within(60):
        try:
            engine.step(actions)
        except ValueError as exc:
            event(f"refused: {type(exc).__name__}")
            assert "action" in str(exc), exc
            for b, x in zip(before, engine.state):
                np.testing.assert_array_equal(b, x)  # a refused step changes nothing
            return
    a = np.asarray(actions)
    assert a.shape == (2, 2, 5) and a.dtype.kind in "iu", f"accepted {a.dtype} {a.shape}"
    assert ((a >= 0) & (a <= VALID_HI)).all(), f"accepted out-of-range actions {a.tolist()}"

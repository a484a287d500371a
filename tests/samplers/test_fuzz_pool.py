"""Fuzzing the env pool's public entry points: ``samplers.make`` arguments and task kwargs, and
random sequences of ``send``/``recv``/``reset``/``async_reset`` with wrong action shapes,
dtypes and env ids, checked against a model of which envs are outstanding. Every call works
(and then its results are exactly the model's: only envs that were sent, each once) or raises
an error that says what is wrong and leaves the pool as it was; never a hang."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gristmill.samplers import make
from gristmill.samplers.errors import APIUsageError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

N, B = 4, 2  # the module pool: 4 CartPole envs, async batches of 2, 2 workers
FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    num_envs=st.integers(-2, 4),
    batch_size=st.one_of(st.none(), st.integers(-2, 5)),
    num_workers=st.one_of(st.none(), st.integers(-1, 5)),
    on_error=st.sampled_from(["raise", "restart", "ignore", ""]),
    env_type=st.sampled_from(["gymnasium", "gym", "dm", "Gymnasium"]),
    kwargs=st.dictionaries(st.sampled_from(["render_mode", "bogus_option", "sutton_barto_reward"]),
                           st.sampled_from([None, 1, "x"]), max_size=1),
)  # fmt: skip
def test_make_arguments_work_or_are_refused_by_name(within, names_arg, num_envs, batch_size,
                                                    num_workers, on_error, env_type, kwargs):
    with within(60), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pool = make("CartPole-v1", env_type, num_envs, batch_size, num_workers,
                        on_error=on_error, step_timeout=30, **kwargs)  # fmt: skip
        except (ValueError, TypeError) as exc:
            names_arg(exc, "num_envs", "batch_size", "num_workers", "on_error", "env_type",
                      *kwargs, *map(str, kwargs.values()))  # fmt: skip
            return
        with pool:
            assert pool.num_envs == num_envs and 1 <= pool.batch_size <= num_envs
            obs, info = pool.reset()
            assert obs.shape[1:] == (4,) and set(info["env_id"]) <= set(range(num_envs))


@pytest.mark.parametrize("kwargs", [
    {"num_envs": 2.5}, {"num_envs": "3"}, {"num_envs": None}, {"num_envs": 2, "batch_size": 1.5},
    {"num_envs": 2, "seed": "abc"}, {"num_envs": 2, "seed": -5},
    {"num_envs": 2, "max_restarts": -1}, {"num_envs": 2, "step_timeout": -1.0},
])  # fmt: skip
def test_make_refuses_non_integral_negative_or_mistyped_arguments_by_name(names_arg, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError)) as info:
            make("CartPole-v1", **kwargs).close()
    names_arg(info.value, *kwargs)


class _Pools:
    """The module's pool, made again when an example ended it (a worker error closes it)."""

    def __init__(self):
        self.pool = None

    def get(self):
        if self.pool is None or self.pool.closed:
            self.pool = make("CartPole-v1", num_envs=N, batch_size=B, num_workers=2, seed=0,
                             step_timeout=30)  # fmt: skip
            self.pool.async_reset()
        while True:  # drain: each example starts with nothing outstanding
            try:
                self.pool.recv()
            except APIUsageError:
                return self.pool


@pytest.fixture(scope="module")
def pools():
    holder = _Pools()
    yield holder
    if holder.pool is not None:
        holder.pool.close()


IDS = st.one_of(
    st.none(),
    st.lists(st.integers(-2, N + 1), min_size=0, max_size=5),
    st.just(np.array([0.0, 1.0])), st.just(np.array([[0, 1]])), st.just(np.array([True])),
    st.just("0"), st.just(np.int64(1)),
)  # fmt: skip
ACTIONS = st.sampled_from(["ok", "float", "short", "long", "2d", "bool", "text", "huge"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), IDS, ACTIONS),
        st.tuples(st.just("recv")),
        st.tuples(st.just("reset"), IDS),
        st.tuples(st.just("async_reset")),
    ),
    max_size=8,
)


def _ids(spec) -> list[int] | None:
    """The env ids ``spec`` means if it is a valid id list (else None)."""
    if spec is None:
        return list(range(N))
    a = np.asarray(spec)
    if a.ndim > 1 or a.dtype.kind not in "iu":
        return None
    ids = a.reshape(-1).tolist()
    if not ids or len(set(ids)) != len(ids) or min(ids) < 0 or max(ids) >= N:
        return None
    return ids


def _actions(kind: str, n: int):
    return {
        "ok": np.ones(n, np.int64), "float": np.ones(n, np.float32), "short": np.ones(n - 1, int),
        "long": np.ones(n + 1, int), "2d": np.ones((n, 1), int), "bool": np.ones(n, bool),
        "text": ["1"] * n, "huge": np.full(n, 2**40),
    }[kind]  # fmt: skip


@FUZZ
@given(ops=OPS)
def test_any_call_sequence_matches_the_outstanding_model(pools, within, ops):
    pool = pools.get()
    out: set[int] = set()  # envs with a result outstanding, as the model says

    def recv_checked():
        obs, rew, term, trunc, info = pool.recv()
        ids = np.asarray(info["env_id"]).tolist()
        assert len(ids) == min(B, len(out)) and len(set(ids)) == len(ids), ids
        assert set(ids) <= out, f"results for envs {set(ids) - out} that were not sent"
        assert obs.shape == (len(ids), 4) and np.isfinite(obs).all() and np.isfinite(rew).all()
        out.difference_update(ids)

    with within(60):
        for op in ops:
            kind = op[0]
            if kind == "send":
                ids = _ids(op[1])
                n = len(ids) if ids is not None else max(1, np.asarray(op[1]).size)
                acts = _actions(op[2], n)
                valid = ids is not None and not out & set(ids) and op[2] in ("ok", "huge")
                try:
                    pool.send(acts, op[1])
                except (ValueError, TypeError, APIUsageError) as exc:
                    event(f"send refused: {type(exc).__name__}")
                    assert not valid, f"a valid send was refused: {exc!r}"
                    assert str(exc)
                    continue
                # a huge Discrete action is the env's to judge; CartPole asserts inside the
                # worker, which the pool reports on the next recv
                assert valid, f"send({op[2]} actions, env_id={op[1]!r}) was accepted"
                out.update(ids)
                if op[2] == "huge":
                    with pytest.raises(Exception, match="(?i)action|worker"):
                        while out:
                            recv_checked()
                    return  # the pool raised a worker error: the module pool is done
            elif kind == "recv":
                if not out:
                    event("recv refused: APIUsageError")
                    with pytest.raises(APIUsageError):
                        pool.recv()
                else:
                    recv_checked()
            elif kind == "reset":
                ids = _ids(op[1])
                try:
                    obs, info = pool.reset(op[1])
                except (ValueError, TypeError, APIUsageError) as exc:
                    event(f"reset refused: {type(exc).__name__}")
                    assert ids is None, f"a valid reset was refused: {exc!r}"
                    continue
                assert ids is not None, f"reset(env_id={op[1]!r}) was accepted"
                got = np.asarray(info["env_id"]).tolist()
                assert set(got) <= set(ids) and len(got) == min(B, len(ids))
                out = set(ids) - set(got)
            else:
                if out:
                    with pytest.raises(APIUsageError):
                        pool.async_reset()
                else:
                    pool.async_reset()
                    out = set(range(N))
        while out:
            recv_checked()
        with pytest.raises(APIUsageError):
            pool.recv()

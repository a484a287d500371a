"""PBT: Sample Factory 2.1.1's rules, replayed exactly on stored cases, and their properties."""

import copy
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from gristmill.learners.league import (
    HYPERPARAMS_TO_TUNE,
    PBT,
    PBTConfig,
    pbt_scalars,
    tuned_hyperparameters,
)
from hypothesis import given, settings
from hypothesis import strategies as st

REF_DIR = Path(__file__).resolve().parents[1] / "sf_reference"
sys.path.insert(0, str(REF_DIR))
from sf_pbt_cases import CASES, DOOM, HP_DEFAULTS, synthetic_stats  # noqa: E402

REFERENCE = json.loads((REF_DIR / "sf_pbt_reference.json").read_text())
PBT_FIELDS = {f.name for f in dataclasses.fields(PBTConfig)}


def jsonable(x):
    return json.loads(json.dumps(x))


def make(case, result, num_policies):
    cfg = PBTConfig(num_policies=num_policies, **{k: v for k, v in case["cfg"].items()})
    defaults = {k: HP_DEFAULTS[k] for k in result["tuned"]}
    return PBT(
        cfg,
        defaults,
        result["shaping"],
        case.get("categories"),
        rng=np.random.default_rng(case["seed"]),
    )


def test_reference_was_made_by_sample_factory_2_1_1():
    assert REFERENCE["sample_factory"] == "2.1.1"
    assert len(REFERENCE["results"]) == len(CASES)
    assert any(c.get("shaping") == DOOM for c in CASES)


@pytest.mark.parametrize(
    "index", [i for i, c in enumerate(CASES) if c["kind"] == "perturb"], ids=lambda i: f"case{i}"
)
def test_perturbation_replays_sample_factory_exactly(index):
    case, result = CASES[index], REFERENCE["results"][index]
    pbt = make(case, result, 2)
    hp, shaping = dict(pbt.defaults), copy.deepcopy(result["shaping"])
    kinds = set()
    for step, expected in enumerate(result["outputs"]):
        hp, m1 = pbt.perturb_hyperparameters(hp)
        shaping, m2 = pbt.perturb_reward_shaping(shaping)
        kinds |= {m.kind for m in m1 + m2}
        got = jsonable({"hyperparameters": hp, "reward_shaping": shaping})
        assert got == expected, f"case {index} diverges from Sample Factory at chain step {step}"
    assert "perturb" in kinds


def test_reference_cases_cover_resets_flips_and_gamma():
    kinds, names = set(), set()
    for index, case in enumerate(CASES):
        if case["kind"] != "perturb":
            continue
        result = REFERENCE["results"][index]
        pbt = make(case, result, 2)
        hp, shaping = dict(pbt.defaults), copy.deepcopy(result["shaping"])
        for _ in result["outputs"]:
            hp, m1 = pbt.perturb_hyperparameters(hp)
            shaping, m2 = pbt.perturb_reward_shaping(shaping)
            kinds |= {m.kind for m in m1 + m2}
            names |= {m.path[0] for m in m1 + m2}
    assert kinds == {"perturb", "flip", "default"}
    assert {"gamma", "adam_beta1", "vtrace_rho", "delta", "selected_weapon"} <= names


@pytest.mark.parametrize(
    "index", [i for i, c in enumerate(CASES) if c["kind"] == "run"], ids=lambda i: f"case{i}"
)
def test_runs_replay_sample_factory_exactly(index, tmp_path):
    case, result = CASES[index], REFERENCE["results"][index]
    n = case["policies"]
    pbt = make(case, result, n)
    pbt.log_path = str(tmp_path / "pbt.jsonl")
    hps, shapings = pbt.initial()
    assert jsonable({"hyperparameters": hps, "reward_shaping": shapings}) == result["init"]
    replaced = 0
    stats = synthetic_stats(case["seed"], n, pbt.cfg.pbt_period_env_steps, case["iterations"])
    for step, ((reported, objectives), expected) in enumerate(zip(stats, result["steps"])):
        before = jsonable({"hyperparameters": hps, "reward_shaping": shapings})
        decisions = pbt.step(reported, objectives, hps, shapings)
        for d in decisions:
            hps[d.policy], shapings[d.policy] = d.hyperparameters, d.reward_shaping
        loads = sorted([d.policy, d.donor] for d in decisions if d.donor is not None)
        assert loads == sorted(expected["loads"]), f"replacements differ at step {step}"
        assert pbt.last_update == expected["last_update"], f"clocks differ at step {step}"
        now = jsonable({"hyperparameters": hps, "reward_shaping": shapings})
        changed = {
            str(p): {k: now[k][p] for k in now}
            for p in range(n)
            if any(now[k][p] != before[k][p] for k in now)
        }
        assert changed == expected["changed"], f"values differ at step {step}"
        replaced += len(loads)
    assert jsonable({"hyperparameters": hps, "reward_shaping": shapings}) == result["final"]
    assert replaced > 0, "the case exercises no replacement"
    events = [json.loads(line) for line in Path(pbt.log_path).read_text().splitlines()]
    assert sum(e["event"] == "init" for e in events) == n
    assert sum(e["event"] == "update" and e["donor"] is not None for e in events) == replaced


# ---------------------------------------------------------------------- properties
DEFAULTS = {
    "learning_rate": 1e-4,
    "exploration_loss_coeff": 0.003,
    "value_loss_coeff": 0.5,
    "max_grad_norm": 4.0,
    "ppo_clip_ratio": 0.1,
    "ppo_clip_value": 0.2,
    "gamma": 0.99,
}
SHAPING = {
    "delta": {"FRAG": (1.0, -1.5), "DAMAGE": (0.01, -0.01)},
    "selected_weapon": {"S2": 0.001},
}


def _pbt(seed, n=4, **kw):
    cfg = PBTConfig(num_policies=n, pbt_start_mutation=0, pbt_period_env_steps=10, **kw)
    return PBT(cfg, DEFAULTS, SHAPING, ("delta", "selected_weapon"), np.random.default_rng(seed))


def _leaves(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))
        elif isinstance(v, tuple | list):
            for i, x in enumerate(v):
                yield prefix + (k, i), x
        else:
            yield prefix + (k,), v


objective_lists = st.lists(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=5), min_size=4, max_size=4
)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(objective_lists, min_size=1, max_size=4))
def test_update_rules_hold_for_any_statistics(seed, rounds):
    pbt = _pbt(seed)
    hps, shapings = pbt.initial()
    assert hps[0] == DEFAULTS and shapings[0] == SHAPING  # policy 0 starts at the defaults
    for r, objectives in enumerate(rounds):
        steps = [100 * (r + 1)] * 4
        decisions = pbt.step(steps, objectives, hps, shapings)
        means = [float(np.mean(o)) for o in objectives]
        for d in decisions:
            assert d.policy not in d.best  # best policies are left alone
            if d.donor is not None:
                # only a worst policy copies, from a best one, past both thresholds
                assert d.policy in d.worst and d.donor in d.best
                gap = means[d.donor] - means[d.policy]
                assert abs(gap) > pbt.cfg.pbt_replace_reward_gap_absolute
                assert abs(gap / (means[d.donor] + 1e-8)) > pbt.cfg.pbt_replace_reward_gap
                assert d.version_jump == pbt.cfg.max_policy_lag + 1
            else:
                assert d.version_jump == 0
            if d.policy == 0:  # never mutated, only replaced
                assert d.mutations == []
                source = d.donor if d.donor is not None else 0
                assert d.hyperparameters == hps[source] and d.reward_shaping == shapings[source]
            for m in d.mutations:
                _check_mutation(m, pbt)
            hps[d.policy], shapings[d.policy] = d.hyperparameters, d.reward_shaping
        assert pbt.last_update == steps  # every policy was due


def _check_mutation(m, pbt):
    name = m.path[0] if len(m.path) == 1 else None
    if m.kind == "default":
        default = DEFAULTS[name] if name else _default_leaf(m.path)
        assert m.after == default and m.before != default
    elif name == "gamma":
        assert 0.0 < m.after < 1.0
        ratio = (1.0 - m.after) / (1.0 - m.before)
        assert 1 / 1.2 - 1e-9 <= ratio <= 1.2 + 1e-9 and not 1 / 1.01 < ratio < 1.01
    else:
        assert m.kind == "perturb"
        if m.before != 0.0:
            ratio = m.after / m.before
            lo, hi = pbt.cfg.pbt_perturb_min, pbt.cfg.pbt_perturb_max
            assert (1 / hi - 1e-12 <= ratio <= 1 / lo + 1e-12) or (
                lo - 1e-12 <= ratio <= hi + 1e-12
            )


def _default_leaf(path):
    node = SHAPING
    for key in path:
        node = node[key]
    return node


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.5, 0.999999))
def test_gamma_stays_in_open_unit_interval(seed, gamma):
    cfg = PBTConfig(num_policies=2, pbt_mutation_rate=1.0)
    pbt = PBT(cfg, {"gamma": 0.99}, rng=np.random.default_rng(seed))
    hp = {"gamma": gamma}
    for _ in range(50):
        hp, _ = pbt.perturb_hyperparameters(hp)
        assert 0.0 < hp["gamma"] < 1.0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_mutation_rate_and_default_resets_are_per_value(seed):
    cfg = PBTConfig(num_policies=2)
    pbt = PBT(cfg, {f"x{i}": 1.0 for i in range(200)}, rng=np.random.default_rng(seed))
    hp, mutations = pbt.perturb_hyperparameters({f"x{i}": 2.0 for i in range(200)})
    # each of 200 values mutates with p = 0.15 (binomial: 30 +- 5); a reset is 1 % of those
    assert 5 <= len(mutations) <= 60
    assert all(v == 2.0 for k, v in hp.items() if k not in {m.path[0] for m in mutations})


def test_bools_flip_and_unknown_types_are_refused():
    cfg = PBTConfig(num_policies=2, pbt_mutation_rate=1.0)
    pbt = PBT(cfg, {"flag": False, "name": "a"}, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="cannot perturb name"):
        pbt.perturb_hyperparameters({"flag": False, "name": "a"})
    pbt = PBT(cfg, {"flag": False}, rng=np.random.default_rng(0))
    hp, (m,) = pbt.perturb_hyperparameters({"flag": False})
    assert hp == {"flag": True} and m.kind == "flip"


def test_nothing_happens_before_start_or_within_a_period_or_without_data():
    cfg = PBTConfig(num_policies=3, pbt_start_mutation=1000, pbt_period_env_steps=100)
    pbt = PBT(cfg, DEFAULTS, rng=np.random.default_rng(0))
    hps, shapings = pbt.initial()
    objectives = [[1.0], [0.5], [0.0]]
    assert pbt.step([999, 999, 999], objectives, hps, shapings) == []
    assert pbt.last_update == [0, 0, 0]
    # due, but policy 2 has no episode yet: the clocks restart anyway (Sample Factory)
    assert pbt.step([1000, 1000, 1000], [[1.0], [0.5], []], hps, shapings) == []
    assert pbt.last_update == [1000, 1000, 1000]
    assert pbt.step([1100, 1100, None], objectives, hps, shapings) == []  # not > period
    decisions = pbt.step([1101, 1101, None], objectives, hps, shapings)
    assert [d.policy for d in decisions] == [1]  # 0 is best, 2 did not report
    assert pbt.last_update == [1101, 1101, 1000]


def test_worst_policy_copies_best_and_jumps_version():
    cfg = PBTConfig(num_policies=5, pbt_start_mutation=0, pbt_period_env_steps=0, max_policy_lag=7)
    pbt = PBT(cfg, DEFAULTS, rng=np.random.default_rng(0))
    hps, shapings = pbt.initial()
    # ranking 1, 3 (best: ceil(0.3 * 5) = 2), 2 (middle), 4, 0 (worst)
    decisions = pbt.step([1] * 5, [[-1.0], [5.0], [0.2], [1.0], [0.1]], hps, shapings)
    by_policy = {d.policy: d for d in decisions}
    assert set(by_policy) == {0, 2, 4}
    assert by_policy[0].donor in (1, 3) and by_policy[0].version_jump == 8
    assert by_policy[0].hyperparameters == hps[by_policy[0].donor]  # copied unmutated
    assert by_policy[4].donor in (1, 3) and by_policy[4].version_jump == 8
    assert by_policy[2].donor is None and by_policy[2].version_jump == 0  # middle: mutate only
    assert by_policy[0].best == [1, 3] and by_policy[0].worst == [4, 0]


def test_small_gap_keeps_own_weights():
    cfg = PBTConfig(num_policies=2, pbt_start_mutation=0, pbt_period_env_steps=0)
    pbt = PBT(cfg, DEFAULTS, rng=np.random.default_rng(0))
    hps, shapings = pbt.initial()
    # relative gap 0.05 / 1.0 < 0.1: no copy
    (d,) = pbt.step([1, 1], [[1.0], [0.95]], hps, shapings)
    assert d.policy == 1 and d.donor is None
    # absolute gap below 1e-6 even though the relative gap is huge
    (d,) = pbt.step([2, 2], [[1e-7], [0.0]], hps, shapings)
    assert d.policy == 1 and d.donor is None


def test_state_round_trip_continues_identically():
    def run(pbt, hps, shapings, rounds):
        out = []
        for r in rounds:
            ds = pbt.step([r * 10] * 4, [[r % 3], [1.0], [-(r % 2)], [0.5]], hps, shapings)
            for d in ds:
                hps[d.policy], shapings[d.policy] = d.hyperparameters, d.reward_shaping
            out.append([d.to_json() for d in ds])
        return out

    a = _pbt(5)
    hps, shapings = a.initial()
    run(a, hps, shapings, range(1, 4))
    state = json.loads(json.dumps(a.state_dict()))
    b = _pbt(99)
    b.load_state_dict(state)
    hb, sb = copy.deepcopy(hps), copy.deepcopy(shapings)
    assert run(a, hps, shapings, range(4, 9)) == run(b, hb, sb, range(4, 9))


def test_config_and_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="pbt_replace_fraction"):
        PBTConfig(num_policies=2, pbt_replace_fraction=0.8)
    with pytest.raises(ValueError, match="batch_size"):
        PBT(PBTConfig(num_policies=2), {"batch_size": 1024})
    pbt = _pbt(0)
    hps, shapings = pbt.initial()
    with pytest.raises(ValueError, match="objectives has 3 entries for 4 policies"):
        pbt.step([1] * 4, [[1.0]] * 3, hps, shapings)
    with pytest.raises(ValueError, match="lack tuned values"):
        pbt.step([1] * 4, [[1.0]] * 4, [{}] * 4, shapings)
    other = PBT(PBTConfig(num_policies=3), DEFAULTS)
    with pytest.raises(ValueError, match="for 4 policies"):
        other.load_state_dict(pbt.state_dict())


def test_tuned_names_are_sample_factorys():
    assert set(HYPERPARAMS_TO_TUNE) == {
        "learning_rate",
        "exploration_loss_coeff",
        "value_loss_coeff",
        "max_grad_norm",
        "ppo_clip_ratio",
        "ppo_clip_value",
    }
    cfg = PBTConfig(num_policies=2, pbt_optimize_gamma=True)
    assert tuned_hyperparameters(cfg)[-1] == "gamma"
    assert math.ceil(0.3 * 8) == 3  # Sample Factory's paper setup: 8 policies, 3 replaced


def test_score_is_the_mean_of_the_last_stats_avg_episodes():
    cfg = PBTConfig(num_policies=2, pbt_start_mutation=0, pbt_period_env_steps=0, stats_avg=3)
    pbt = PBT(cfg, DEFAULTS, rng=np.random.default_rng(0))
    hps, shapings = pbt.initial()
    # policy 1's old episodes are bad, its last three good: it ranks first
    (d,) = pbt.step([1, 1], [[1.0, 1.0, 1.0], [-9.0, -9.0, 2.0, 2.0, 2.0]], hps, shapings)
    assert d.policy == 0 and d.objectives == [1.0, 2.0] and d.donor == 1


def test_scalars_use_sample_factorys_names():
    scalars = pbt_scalars({"learning_rate": 1e-4, "flag": True}, SHAPING)
    assert scalars == {
        "zz_pbt/cfg_learning_rate": 1e-4,
        "zz_pbt/cfg_flag": 1.0,
        "zz_pbt/rew_FRAG_0": 1.0,
        "zz_pbt/rew_FRAG_1": -1.5,
        "zz_pbt/rew_DAMAGE_0": 0.01,
        "zz_pbt/rew_DAMAGE_1": -0.01,
        "zz_pbt/rew_S2": 0.001,
    }


def test_untuned_hyperparameters_are_carried_along():
    cfg = PBTConfig(num_policies=2, pbt_start_mutation=0, pbt_period_env_steps=0)
    pbt = PBT(cfg, {"learning_rate": 1e-4}, rng=np.random.default_rng(0))
    hps = [{"learning_rate": 1e-4, "adam_eps": 1e-6}, {"learning_rate": 2e-4, "adam_eps": 1e-8}]
    (d,) = pbt.step([1, 1], [[1.0], [0.0]], hps, [None, None])
    assert d.policy == 1 and d.donor == 0
    assert d.hyperparameters["adam_eps"] == 1e-6  # the donor's, unchanged
    assert set(d.hyperparameters) == {"learning_rate", "adam_eps"}

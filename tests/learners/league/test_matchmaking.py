"""Match-making: PFSP weightings hand-computed, Sample Factory's agent->policy mapping."""

import json

import numpy as np
import pytest
from gristmill.learners.league import (
    DRAW,
    LOSS,
    PFSP,
    WIN,
    AgentPolicyMapping,
    PayoffTable,
    pfsp_weights,
)


def test_pfsp_weightings_hand_computed():
    x = [0.0, 0.25, 0.5, 0.9]
    hard = np.array([1.0, 0.5625, 0.25, 0.01])  # (1 - x)^2
    np.testing.assert_allclose(pfsp_weights(x, "hard"), hard / hard.sum(), rtol=1e-15)
    cube = np.array([1.0, 0.421875, 0.125, 0.001])  # (1 - x)^3
    np.testing.assert_allclose(pfsp_weights(x, "hard", 3.0), cube / cube.sum(), rtol=1e-15)
    var = np.array([0.0, 0.1875, 0.25, 0.09])  # x (1 - x)
    np.testing.assert_allclose(pfsp_weights(x, "variance"), var / var.sum(), rtol=1e-15)
    lin = np.array([1.0, 0.75, 0.5, 0.1])
    np.testing.assert_allclose(pfsp_weights(x, "linear"), lin / lin.sum(), rtol=1e-15)
    cap = np.array([0.5, 0.5, 0.5, 0.1])
    np.testing.assert_allclose(pfsp_weights(x, "linear_capped"), cap / cap.sum(), rtol=1e-15)


def test_pfsp_falls_back_to_uniform_when_every_weight_vanishes():
    np.testing.assert_array_equal(pfsp_weights([1.0, 1.0, 1.0], "hard"), [1 / 3] * 3)
    np.testing.assert_array_equal(pfsp_weights([0.0, 1.0], "variance"), [0.5, 0.5])


def test_pfsp_prefers_opponents_the_learner_loses_to():
    payoff = PayoffTable(["learner", "weak", "even", "strong"])
    for _ in range(20):
        payoff.update("learner", "weak", WIN)
        payoff.update("learner", "strong", LOSS)
        payoff.update("learner", "even", WIN)
        payoff.update("learner", "even", LOSS)
    opponents = ["weak", "even", "strong"]
    pfsp = PFSP("hard", rng=np.random.default_rng(0))
    p = pfsp.probabilities(payoff, "learner", opponents)
    assert p[0] == 0.0 and p[2] > p[1] > 0
    draws = [pfsp.sample(payoff, "learner", opponents) for _ in range(2000)]
    freq = np.array([draws.count(o) for o in opponents]) / len(draws)
    np.testing.assert_allclose(freq, p, atol=0.04)
    # variance favours the even opponent
    pv = PFSP("variance").probabilities(payoff, "learner", opponents)
    assert pv.argmax() == 1


def test_pfsp_state_round_trip_repeats_the_draws():
    payoff = PayoffTable(["a", "b", "c"])
    payoff.update("a", "b", DRAW)
    pfsp = PFSP("linear_capped", rng=np.random.default_rng(3))
    pfsp.sample(payoff, "a", ["b", "c"])
    state = json.loads(json.dumps(pfsp.state_dict()))
    first = [pfsp.sample(payoff, "a", ["b", "c"]) for _ in range(50)]
    other = PFSP(rng=np.random.default_rng(99))
    other.load_state_dict(state)
    assert other.weighting == "linear_capped"
    assert [other.sample(payoff, "a", ["b", "c"]) for _ in range(50)] == first


def test_pfsp_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown PFSP weighting 'squared"):
        PFSP("squared")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pfsp_weights([1.5])
    with pytest.raises(ValueError, match="no opponents"):
        PFSP().sample(PayoffTable(["a"]), "a", [])


def test_fixed_mapping_is_env_index_modulo_n():
    m = AgentPolicyMapping(4, 2, "fixed", num_envs=8)
    assert [m.policy_for_agent(a, e, g) for g in range(8) for e in [0] for a in (0, 1)] == [
        g % 4 for g in range(8) for _ in (0, 1)
    ]
    with pytest.raises(ValueError, match="divisible"):
        AgentPolicyMapping(3, 2, "fixed", num_envs=8)


def _episodes(m, env, episodes):
    return [[m.policy_for_agent(a, env) for a in range(m.num_agents)] for _ in range(episodes)]


def test_mixed_mapping_redraws_early_then_every_ten_episodes():
    m = AgentPolicyMapping(8, 2, "mix", rng=np.random.default_rng(0))
    eps = _episodes(m, env=0, episodes=60)
    # episode e makes requests 2e and 2e + 1: redraws at requests 0, 2, 4 (early) and then
    # at 20, 40, ... (2 agents x 10 episodes)
    for e in range(3, 10):
        assert eps[e] == eps[2]
    for block in range(10, 60, 10):
        assert all(eps[e] == eps[block] for e in range(block, block + 10))
    assert len({tuple(e) for e in eps[10:]}) > 1
    # agents of one env are independent: over many envs they often differ
    differ = sum(len(set(_episodes(m, env, 1)[0])) > 1 for env in range(1, 200))
    assert differ > 100
    s = AgentPolicyMapping(8, 2, "same", rng=np.random.default_rng(0))
    assert all(len(set(ep)) == 1 for env in range(50) for ep in _episodes(s, env, 3))


def test_every_episode_redraw_and_state_round_trip():
    m = AgentPolicyMapping(5, 3, "mix", resample_every=1, rng=np.random.default_rng(1))
    _episodes(m, 0, 4)
    state = json.loads(json.dumps(m.state_dict()))
    after = _episodes(m, 0, 20) + _episodes(m, 7, 5)
    assert len({tuple(e) for e in after}) > 10  # a new draw each episode
    other = AgentPolicyMapping(5, 3, "mix", resample_every=1, rng=np.random.default_rng(2))
    other.load_state_dict(state)
    assert _episodes(other, 0, 20) + _episodes(other, 7, 5) == after
    with pytest.raises(ValueError, match="does not fit"):
        AgentPolicyMapping(2, 3, "mix").load_state_dict(state)


def test_mapping_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown mapping mode 'random'"):
        AgentPolicyMapping(2, 2, "random")
    with pytest.raises(ValueError, match="agent_idx 2"):
        AgentPolicyMapping(2, 2).policy_for_agent(2, 0)

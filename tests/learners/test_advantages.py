"""Sample Factory's GAE and V-trace (learners.advantages over the kernels) against SF's own torch
loops, and value_bootstrap as the kernels' truncated flag against SF's reward folding."""

import pytest
import torch
from gristmill.learners import advantages as A


def sf_gae_reference(rewards, dones, values, valids, gamma, lam):
    """Sample Factory 2.x ``gae_advantages`` (with validity masks) + returns, [N, T] layout."""
    r, d, v, m = rewards.T, dones.T.float(), values.T, valids.T.float()
    deltas = (r - v[:-1]) * m[:-1] + (1 - d) * (gamma * v[1:] * m[1:])
    adv = torch.zeros_like(r)
    cum = torch.zeros_like(r[0])
    for i in reversed(range(len(r))):
        discount = gamma * lam * m[i] + (1 - m[i])  # invalid steps are not discounted
        cum = deltas[i] + discount * cum * (1 - d[i])
        adv[i] = cum
    return adv.T, adv.T + m.T[:, :-1] * values[:, :-1]


def sf_vtrace_reference(ratio, rewards, dones, values, gamma, rho, c):
    """Sample Factory ``learner.py`` V-trace loop for one minibatch of whole trajectories."""
    n, t = rewards.shape
    rf, df, vf = rewards.reshape(-1), dones.reshape(-1).float(), values.reshape(-1)
    ratio = ratio.reshape(-1)
    rho_t, c_t = torch.clamp(ratio, max=rho), torch.clamp(ratio, max=c)
    vs, adv = torch.zeros(n * t), torch.zeros(n * t)
    next_values = (vf[t - 1 :: t] - rf[t - 1 :: t]) / gamma
    next_vs = next_values
    for i in reversed(range(t)):
        rw, nd = rf[i::t], 1.0 - df[i::t]
        cv = vf[i::t]
        delta = rho_t[i::t] * (rw + nd * gamma * next_values - cv)
        adv[i::t] = rho_t[i::t] * (rw + nd * gamma * next_vs - cv)
        next_vs = cv + delta + nd * gamma * c_t[i::t] * (next_vs - next_values)
        vs[i::t] = next_vs
        next_values = cv
    return vs.view(n, t), adv.view(n, t)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    n, t = 5, 16
    rewards = torch.randn(n, t, generator=g)
    dones = torch.rand(n, t, generator=g) < 0.15
    values = torch.randn(n, t + 1, generator=g)
    valids = torch.rand(n, t + 1, generator=g) > 0.2
    ratio = torch.exp(torch.randn(n, t, generator=g) * 0.3).clamp(0.05, 20)
    return rewards, dones, values, valids, ratio


def test_gae_with_invalid_steps_matches_sample_factory(batch):
    rewards, dones, values, valids, _ = batch
    adv, ret = A.sf_gae(rewards, dones, values, valids, 0.99, 0.95)
    ref_adv, ref_ret = sf_gae_reference(rewards, dones, values, valids, 0.99, 0.95)
    assert torch.allclose(adv, ref_adv, atol=1e-5) and torch.allclose(ret, ref_ret, atol=1e-5)


def test_gae_all_valid_batch_matches_sample_factory(batch):
    rewards, dones, values, valids, _ = batch
    valids = torch.ones_like(valids)
    adv, ret = A.sf_gae(rewards, dones, values, valids, 0.99, 0.95)
    ref_adv, ref_ret = sf_gae_reference(rewards, dones, values, valids, 0.99, 0.95)
    assert torch.allclose(adv, ref_adv, atol=1e-5) and torch.allclose(ret, ref_ret, atol=1e-5)


def test_gae_does_not_discount_invalid_steps():
    # Step 1 of 3 is invalid: A_0 = δ_0 + γλ·A_1 and A_1 = δ_1 + 1·A_2 (no discount there).
    rewards = torch.tensor([[1.0, 5.0, 2.0]])
    dones = torch.zeros(1, 3, dtype=torch.bool)
    values = torch.tensor([[0.5, 7.0, 0.25, 1.0]])
    valids = torch.tensor([[True, False, True, True]])
    g, lam = 0.9, 0.5
    adv, _ = A.sf_gae(rewards, dones, values, valids, g, lam)
    a2 = 2.0 + g * 1.0 - 0.25
    a1 = (0.0 - 0.0) + g * 0.25 + a2  # the invalid step's reward and value are masked
    a0 = (1.0 - 0.5) + g * 0.0 + g * lam * a1
    assert adv[0].tolist() == pytest.approx([a0, a1, a2])


def test_vtrace_matches_sample_factory(batch):
    rewards, dones, values, _, ratio = batch
    adv, vs = A.sf_vtrace(ratio, rewards, dones, values[:, :-1], 0.99, 1.0, 1.0)
    ref_vs, ref_adv = sf_vtrace_reference(ratio, rewards, dones, values[:, :-1], 0.99, 1.0, 1.0)
    assert torch.allclose(vs, ref_vs, atol=1e-4) and torch.allclose(adv, ref_adv, atol=1e-4)


def _timeouts(batch):
    """The batch with a third of its episode ends marked as time-outs, and SF's folding of the
    bootstrap into the rewards at those steps (``rewards += γ·V(s_t)``, learner.py)."""
    rewards, dones, values, valids, ratio = batch
    g = torch.Generator().manual_seed(5)
    time_outs = dones & (torch.rand(dones.shape, generator=g) < 0.35)
    assert time_outs.any() and (dones & ~time_outs).any()
    folded = rewards + 0.99 * values[:, :-1] * time_outs.float() * dones.float()
    return time_outs, folded


def test_value_bootstrap_as_truncation_equals_sample_factory_reward_folding(batch):
    """GAE with the kernels' truncated flag gives bit for bit what SF gets by folding γ·V(s_t)
    into the reward of a timed-out step (valid and invalid steps, float32)."""
    rewards, dones, values, valids, _ = batch
    time_outs, folded = _timeouts(batch)
    got = A.sf_gae(rewards, dones, values, valids, 0.99, 0.95, time_outs)
    want = A.sf_gae(folded, dones, values, valids, 0.99, 0.95)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    ref = sf_gae_reference(folded, dones, values, valids, 0.99, 0.95)
    assert torch.allclose(got[0], ref[0], atol=1e-5) and torch.allclose(got[1], ref[1], atol=1e-5)
    assert not torch.equal(got[0], A.sf_gae(rewards, dones, values, valids, 0.99, 0.95)[0])


def test_vtrace_value_bootstrap_as_truncation_equals_sample_factory_reward_folding(batch):
    rewards, dones, values, _, ratio = batch
    time_outs, folded = _timeouts(batch)
    v = values[:, :-1] + 0.25  # the minibatch's current values differ from the batch's
    got = A.sf_vtrace(ratio, rewards, dones, v, 0.99, 1.0, 1.0, time_outs, values[:, :-1])
    want = A.sf_vtrace(ratio, folded, dones, v, 0.99, 1.0, 1.0)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    ref_vs, ref_adv = sf_vtrace_reference(ratio, folded, dones, v, 0.99, 1.0, 1.0)
    assert torch.allclose(got[1], ref_vs, atol=1e-4) and torch.allclose(got[0], ref_adv, atol=1e-4)


def test_gae_hand_computed_episode_end():
    # One trajectory, 2 steps, the episode ends after step 0: A_0 = r_0 - V_0 exactly.
    rewards = torch.tensor([[1.0, 2.0]])
    dones = torch.tensor([[True, False]])
    values = torch.tensor([[0.5, 0.25, 4.0]])
    adv, ret = A.sf_gae(rewards, dones, values, torch.ones(1, 3, dtype=torch.bool), 0.9, 0.5)
    assert float(adv[0, 0]) == pytest.approx(0.5)
    assert float(adv[0, 1]) == pytest.approx(2.0 + 0.9 * 4.0 - 0.25)
    assert float(ret[0, 1]) == pytest.approx(2.0 + 0.9 * 4.0)

"""Loss terms against hand-computed values, their clipping, masking and gradients."""

import pytest
import torch
from gristmill.learners import ActionDistribution, ActionSpec
from gristmill.learners import losses as L
from hypothesis import given, settings
from hypothesis import strategies as st


def test_ratio_clamp():
    lp = torch.log(torch.tensor([0.01, 1.0, 100.0]))
    r = L.clamp_ratio(lp, torch.zeros(3))
    assert torch.allclose(r, torch.tensor([0.05, 1.0, 20.0]))


def test_asymmetric_policy_clip_hand_computed():
    ratio = torch.tensor([0.5, 1.0, 1.5, 0.8], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 2.0, -3.0])
    # eps 0.1: clip to [1/1.1, 1.1]; min(r·A, clip(r)·A) per sample:
    #   0.5·1 = 0.5 | -1 | min(3, 2.2) = 2.2 | min(-2.4, -3/1.1) = -2.7273
    expected = -(0.5 - 1.0 + 2.2 - 3 / 1.1) / 4
    loss = L.appo_policy_loss(ratio, adv, 0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # Gradient flows only through unclipped terms: -A/4 for samples 0, 1; 0 for 2 and 3.
    assert torch.allclose(ratio.grad, torch.tensor([-0.25, 0.25, 0.0, 0.0]))


def test_policy_loss_masks_invalid_samples():
    ratio = torch.tensor([0.5, 1.0, 1.5])
    adv = torch.tensor([1.0, -100.0, 2.0])
    valids = torch.tensor([True, False, True])
    assert float(L.appo_policy_loss(ratio, adv, 0.1, valids)) == pytest.approx(-(0.5 + 2.2) / 2)


def test_clipped_value_loss_hand_computed():
    values = torch.tensor([1.0, 0.0], requires_grad=True)
    old = torch.tensor([0.5, 0.0])
    targets = torch.tensor([2.0, 1.0])
    # sample 0: max((1-2)², (0.5+0.2-2)²) = 1.69; sample 1: max(1, 1) = 1
    loss = L.clipped_value_loss(values, old, targets, clip_value=0.2, coeff=0.5)
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1.0) / 2)
    loss.backward()
    # The clipped branch wins for sample 0, so its gradient is zero there.
    # d/dV of 0.5·mean((V-R)²) over 2 samples at V-R = -1 is -0.5.
    assert float(values.grad[0]) == 0.0 and float(values.grad[1]) == pytest.approx(-0.5)


def test_exploration_losses():
    spec = ActionSpec(discrete=(4,))
    uniform = ActionDistribution(spec, torch.zeros(3, 4))
    import math

    assert float(L.entropy_loss(uniform, 0.003)) == pytest.approx(-0.003 * math.log(4))
    assert float(L.symmetric_kl_loss(uniform, 0.001)) == pytest.approx(0.0, abs=1e-9)
    peaked = ActionDistribution(spec, torch.tensor([[50.0, -50.0, -50.0, -50.0]]))
    assert float(L.symmetric_kl_loss(peaked, 1.0)) == pytest.approx(30.0)  # clamped at 30


def test_standardize_uses_valid_samples_only():
    adv = torch.tensor([1.0, 3.0, 1000.0])
    out = L.standardize(adv, torch.tensor([True, True, False]))
    assert torch.allclose(out[:2], torch.tensor([-1.0, 1.0]) / (2**0.5), atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2), st.integers(0, 2**31 - 1),
       st.floats(0.0, 1.0))
def test_masked_statistics_equal_boolean_indexing_with_no_host_sync(n, t, extra, seed, p_valid):
    # the sync-free masked_mean / masked_std / standardize against the x[valids] reference,
    # including no and one valid sample, trailing dims, and non-finite invalid entries
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, *(3,) * extra, generator=g, dtype=torch.float64) * 10
    valids = torch.rand(n, t, generator=g) < p_valid
    x[~valids] = float("nan")  # an invalid sample must not leak into any statistic
    sel = x[valids]
    want_mean = sel.mean() if sel.numel() else torch.tensor(0.0, dtype=x.dtype)
    want_std = sel.std() if sel.numel() > 1 else torch.tensor(0.0, dtype=x.dtype)
    assert torch.allclose(L.masked_mean(x, valids), want_mean, atol=1e-9)
    assert torch.allclose(L.masked_std(x, valids), want_std, atol=1e-9)
    if extra == 0:
        out = L.standardize(x, valids)[valids]
        if sel.numel() >= 2:
            ref = (sel - sel.mean()) / torch.clamp_min(sel.std(), 1e-7)
        else:
            ref = sel - want_mean
        assert torch.allclose(out, ref, atol=1e-9)


def test_kl_penalty_zero_for_same_policy():
    spec = ActionSpec(discrete=(3, 2))
    logits = torch.randn(4, 5)
    d = ActionDistribution(spec, logits)
    kl, loss = L.kl_penalty_loss(d, ActionDistribution(spec, logits.clone()), 0.1)
    assert torch.allclose(kl, torch.zeros(4), atol=1e-6) and float(loss) == pytest.approx(
        0, abs=1e-7
    )


def test_cleanrl_loss_hand_computed():
    new = torch.log(torch.tensor([1.2, 0.8]))
    old = torch.zeros(2)
    adv = torch.tensor([1.0, -1.0])
    out = L.cleanrl_ppo_loss(
        new,
        old,
        adv,
        torch.tensor([0.5, 0.5]),
        torch.tensor([1.0, 2.0]),
        torch.tensor([1.0, 1.0]),
        torch.tensor([2.0, 2.0]),
        clip_coef=0.1,
        norm_adv=False,
    )
    # pg: max(-1.2, -1.1) = -1.1 ; max(0.8, 0.9) = 0.9 -> mean -0.1
    assert float(out["pg_loss"]) == pytest.approx(-0.1)
    # v: sample 0 max(1, 1) = 1; sample 1 max(0, (1.1-2)²=0.81) = 0.81 -> 0.5·mean = 0.4525
    assert float(out["v_loss"]) == pytest.approx(0.4525)
    assert float(out["loss"]) == pytest.approx(-0.1 - 0.01 * 0.5 + 0.5 * 0.4525)
    assert float(out["clipfrac"]) == 1.0


def test_loss_gradients_numerically():
    torch.manual_seed(0)
    spec = ActionSpec(discrete=(3, 2))
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0], [2, 1], [1, 0]], dtype=torch.float64)
    old_lp = torch.randn(6, dtype=torch.float64) * 0.1 - 1.5
    adv = torch.randn(6, dtype=torch.float64)

    def f(lg):
        d = ActionDistribution(spec, lg)
        ratio = L.clamp_ratio(d.log_prob(actions), old_lp)
        return (
            L.appo_policy_loss(ratio, adv, 0.1)
            + L.symmetric_kl_loss(d, 0.01)
            + L.entropy_loss(d, 0.003)
        )

    assert torch.autograd.gradcheck(f, (logits,))

"""Action distributions against torch.distributions and hand-computed values."""

import math

import pytest
import torch
from gristmill.learners import ActionDistribution, ActionSpec
from torch.distributions import Categorical, Normal, kl_divergence


def test_tuple_log_prob_entropy_kl_sum_over_subactions():
    torch.manual_seed(0)
    spec = ActionSpec(discrete=(3, 2))
    logits, other = torch.randn(5, 5), torch.randn(5, 5)
    d, o = ActionDistribution(spec, logits), ActionDistribution(spec, other)
    a = d.sample()
    assert a.shape == (5, 2) and a.dtype == torch.float32
    c1, c2 = Categorical(logits=logits[:, :3]), Categorical(logits=logits[:, 3:])
    q1, q2 = Categorical(logits=other[:, :3]), Categorical(logits=other[:, 3:])
    lp = c1.log_prob(a[:, 0].long()) + c2.log_prob(a[:, 1].long())
    assert torch.allclose(d.log_prob(a), lp, atol=1e-6)
    assert torch.allclose(d.entropy(), c1.entropy() + c2.entropy(), atol=1e-6)
    kl = kl_divergence(c1, q1) + kl_divergence(c2, q2)
    assert torch.allclose(d.kl(o), kl, atol=1e-6)


def test_gaussian_matches_normal():
    spec = ActionSpec(continuous=2)
    mean, log_std = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.1, -0.3]])
    d = ActionDistribution(spec, torch.cat([mean, log_std], 1))
    n = Normal(mean, log_std.exp())
    a = torch.tensor([[0.2, 0.3]])
    assert torch.allclose(d.log_prob(a), n.log_prob(a).sum(-1), atol=1e-6)
    assert torch.allclose(d.entropy(), n.entropy().sum(-1), atol=1e-6)


def test_symmetric_kl_with_uniform_prior():
    spec = ActionSpec(discrete=(4,))
    assert float(ActionDistribution(spec, torch.zeros(1, 4)).symmetric_kl_with_uniform_prior()) == (
        pytest.approx(0.0, abs=1e-7)
    )
    p = torch.tensor([0.7, 0.1, 0.1, 0.1])
    d = ActionDistribution(spec, p.log().unsqueeze(0))
    u = 0.25
    kl_pu = sum(float(pi) * math.log(float(pi) / u) for pi in p)
    kl_up = sum(u * math.log(u / float(pi)) for pi in p)
    assert float(d.symmetric_kl_with_uniform_prior()) == pytest.approx(0.5 * (kl_pu + kl_up))


def test_mixed_spec_and_errors():
    spec = ActionSpec(discrete=(3,), continuous=1)
    assert spec.num_logits == 5 and spec.action_dim == 2
    d = ActionDistribution(spec, torch.zeros(2, 5))
    assert d.deterministic().shape == (2, 2)
    with pytest.raises(ValueError, match="expected 5 logits"):
        ActionDistribution(spec, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="at least one"):
        ActionSpec()

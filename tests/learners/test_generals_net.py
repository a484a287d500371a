"""The Generals network: shapes, the action-index layout, and the masked distribution."""

import numpy as np
import pytest
import torch
from gristmill.envs.generals import GeneralsEngine
from gristmill.learners.generals_net import (
    GeneralsNet,
    GeneralsNetConfig,
    MaskedPolicy,
    action_index,
    index_to_action,
    legal_index_mask,
    macs_per_board,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def _tiny(S=8, unet=True, C=5):
    torch.manual_seed(0)
    return GeneralsNet(GeneralsNetConfig(C, pad_to=S, channels=8, blocks=1, unet=unet,
                                         stem_channels=4))


@pytest.mark.parametrize("S,unet", [(8, True), (7, True), (8, False)])
def test_forward_shapes_and_pass_is_the_only_legal_action_on_an_empty_mask(S, unet):
    net = _tiny(S, unet)
    x = torch.randn(3, 5, S, S)
    logits, value = net(x, torch.zeros(3, S, S, 4, dtype=torch.bool))
    assert logits.shape == (3, 1 + 8 * S * S) and value.shape == (3,)
    d = MaskedPolicy(logits)
    assert torch.all(d.sample() == 0) and torch.all(d.greedy() == 0)
    assert torch.allclose(d.log_prob(torch.zeros(3)), torch.zeros(3), atol=1e-6)
    assert torch.allclose(d.entropy(), torch.zeros(3), atol=1e-6)


def test_wrong_plane_shape_is_refused_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"\[B, 5, 8, 8\]"):
        _tiny()(torch.zeros(2, 4, 8, 8), torch.zeros(2, 8, 8, 4))


def test_action_index_round_trips_and_matches_the_mask_layout():
    S = 6
    rng = np.random.default_rng(0)
    acts = np.stack([np.zeros(50, int), rng.integers(0, S, 50), rng.integers(0, S, 50),
                     rng.integers(0, 4, 50), rng.integers(0, 2, 50)], 1)
    idx = action_index(acts, S)
    assert np.array_equal(index_to_action(idx, S), acts)
    assert action_index(np.array([1, 3, 2, 1, 1]), S) == 0  # pass ignores the rest
    mask = torch.zeros(50, S, S, 4, dtype=torch.bool)
    mask[np.arange(50), acts[:, 1], acts[:, 2], acts[:, 3]] = True
    legal = legal_index_mask(mask)
    assert legal[np.arange(50), idx].all()
    assert legal.sum(1).tolist() == [3] * 50  # pass + the move, all and half


def test_masked_policy_never_samples_an_illegal_move_in_real_games():
    """Property on real engine masks: every sampled index is pass or a masked-in move, and the
    engine executes every sampled move (status 1, never 2 = invalid)."""
    S = 24
    eng = GeneralsEngine(8, "generalsio", truncation=200, seed=1)
    eng.reset(seed=1)
    torch.manual_seed(0)
    for _ in range(60):
        m = torch.from_numpy(eng.masks.reshape(16, S, S, 4).copy())
        # logits that favour illegal moves: masked entries must still lose
        logits = torch.randn(16, 1 + 8 * S * S) * 30 + 50 * ~legal_index_mask(m)
        logits = logits.masked_fill(~legal_index_mask(m), -1e9)
        idx = MaskedPolicy(logits).sample().numpy()
        acts = index_to_action(idx, S).reshape(8, 2, 5)
        for b in range(8):
            for p in range(2):
                if not acts[b, p, 0]:
                    _, r, c, d, _ = acts[b, p]
                    assert eng.masks[b, p, r, c, d]
        eng.step(acts)
        moved = acts[:, :, 0] == 0
        assert not np.any(eng.status[moved] == 2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 1.0), st.floats(0.5, 3.0))
def test_masked_sampling_stays_legal_for_any_mask_and_temperature(seed, density, temperature):
    g = torch.Generator().manual_seed(seed)
    S = 5
    mask = torch.rand(4, S, S, 4, generator=g) < density
    net = _tiny(S)
    logits, _ = net(torch.randn(4, 5, S, S, generator=g) * 10, mask)
    d = MaskedPolicy(logits)
    legal = legal_index_mask(mask)
    for _ in range(5):
        idx = d.sample(temperature)
        assert legal.gather(1, idx[:, None]).all()
    assert torch.isfinite(d.entropy()).all() and (d.entropy() >= -1e-5).all()


def test_macs_grow_with_channels_and_the_default_is_cpu_sized():
    small = GeneralsNetConfig(36)
    big = GeneralsNetConfig(36, channels=64, blocks=4)
    assert macs_per_board(small) < 12e6 < macs_per_board(big)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_and_sampling_run_on_cuda():
    net = _tiny().cuda()
    mask = torch.rand(4, 8, 8, 4, device="cuda") < 0.3
    logits, v = net(torch.randn(4, 5, 8, 8, device="cuda"), mask)
    idx = MaskedPolicy(logits).sample()
    assert legal_index_mask(mask).gather(1, idx[:, None]).all() and v.is_cuda

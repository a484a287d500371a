"""PolicySet: a Doom population's inference copies, served one policy at a time
(``policy_fn``) or a whole batch in one pass (``policies_fn``), with real torch models."""

import numpy as np
import pytest
import torch
from gristmill.apps.doom.policies import PolicySet
from gristmill.learners import ActionSpec, ActorCritic, APPOConfig, APPOLearner, ModelConfig

OBS = {"obs": (3, 36, 64), "measurements": (5,)}
SPEC = ActionSpec((3, 2), 0)
CFG = ModelConfig(rnn_size=16, encoder_mlp_layers=(32,), vector_mlp_layers=(8,))


def model() -> ActorCritic:
    return ActorCritic(OBS, SPEC, CFG)


def policy_set(n: int = 3) -> PolicySet:
    torch.manual_seed(0)
    learners = [APPOLearner(model(), APPOConfig()) for _ in range(n)]
    for k, lr in enumerate(learners):
        lr.train_step = 10 * k
    return PolicySet(learners, torch.device("cpu"))


def groups(sizes: dict[int, int], seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [
        (
            k,
            {
                "obs": rng.integers(0, 256, (n, *OBS["obs"]), dtype=np.uint8),
                "measurements": rng.standard_normal((n, *OBS["measurements"]), np.float32),
            },
            rng.standard_normal((n, CFG.rnn_size), np.float32),
        )
        for k, n in sizes.items()
    ]


def assert_fused_matches_loop(policies: PolicySet, gs: list) -> list[dict]:
    fused = policies.policies_fn(gs)
    for (k, obs, state), out in zip(gs, fused):
        ref = policies.policy_fn(k, obs, state)
        assert out["version"] == ref["version"] == policies.versions[k]
        assert out["actions"].shape == ref["actions"].shape
        for key in ("action_logits", "values", "rnn_states"):
            np.testing.assert_allclose(out[key], ref[key], rtol=1e-4, atol=1e-5, err_msg=key)
        # sampled actions: each row's log-prob is its own policy's
        dist = policies.infer[k].distribution(torch.from_numpy(ref["action_logits"]))
        np.testing.assert_allclose(
            out["log_prob_actions"],
            dist.log_prob(torch.from_numpy(out["actions"])).numpy(),
            rtol=1e-4, atol=1e-5,
        )
    return fused


def test_policies_fn_equals_the_per_policy_loop_with_a_snapshot_and_after_publish():
    """Uneven groups (1, 3, 2 agents and a frozen snapshot's 2) in one pass give each policy's
    own outputs and version; after publish(k) of changed weights the pass acts with them."""
    policies = policy_set()
    snapshot = model().requires_grad_(False)
    assert policies.add_frozen(snapshot, version=99) == 3
    gs = groups({0: 1, 1: 3, 2: 2, 3: 2})
    before = assert_fused_matches_loop(policies, gs)
    lr = policies.learners[1]
    with torch.no_grad():
        for p in lr.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    lr.train_step = 11
    policies.publish(1)
    after = assert_fused_matches_loop(policies, gs)
    assert after[1]["version"] == 11
    assert not np.allclose(after[1]["action_logits"], before[1]["action_logits"], atol=1e-3)
    np.testing.assert_allclose(after[0]["action_logits"], before[0]["action_logits"], atol=1e-6)


def test_snapshots_and_loaded_weights_join_an_existing_stack():
    """A snapshot added (and an opponent's weights loaded, the Ray member's path) after the
    fused pass built its stack acts in that pass with its own weights."""
    policies = policy_set(2)
    assert_fused_matches_loop(policies, groups({0: 2, 1: 2}))
    assert policies.stack is not None and len(policies.stack) == 2
    pid = policies.add_frozen(model().requires_grad_(False), version=5)
    assert len(policies.stack) == 3
    assert_fused_matches_loop(policies, groups({0: 1, pid: 3}, seed=1))
    policies.load(pid, model().state_dict(), version=6)
    out = assert_fused_matches_loop(policies, groups({1: 2, pid: 2}, seed=2))
    assert out[1]["version"] == 6


def test_a_single_policy_batch_is_served_as_before():
    """One group: policies_fn is policy_fn (same draws), and no stack is built."""
    policies = policy_set(2)
    (g,) = groups({1: 4})
    torch.manual_seed(3)
    (out,) = policies.policies_fn([g])
    torch.manual_seed(3)
    ref = policies.policy_fn(*g)
    assert policies.stack is None
    for key in ("actions", "log_prob_actions", "action_logits", "values", "rnn_states"):
        np.testing.assert_array_equal(out[key], ref[key], err_msg=key)


def test_an_unknown_policy_id_is_named():
    policies = policy_set(2)
    with pytest.raises(ValueError, match=r"no policy \[7\]"):
        policies.policies_fn(groups({0: 1, 7: 1}))

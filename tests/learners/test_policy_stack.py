"""PolicyStack: several ActorCritics in one forward pass compute what each one's ``act`` does."""

import pytest
import torch
from gristmill.learners import ActionSpec, ActorCritic, ModelConfig, PolicyStack

OBS = {"obs": (3, 36, 64), "measurements": (5,)}  # Doom's keys, small
SPEC = ActionSpec((3, 2), 1)  # two discrete components and one continuous


def population(core: str, n: int = 5, seed: int = 0) -> list[ActorCritic]:
    torch.manual_seed(seed)
    cfg = ModelConfig(core=core, rnn_size=16, encoder_mlp_layers=(32,), vector_mlp_layers=(8,))
    models = [ActorCritic(OBS, SPEC, cfg).eval() for _ in range(n)]
    for m in models:  # distinct normalisation statistics too
        m.update_obs_stats(raw_obs(6))
    return models


def raw_obs(n: int) -> dict[str, torch.Tensor]:
    return {
        "obs": torch.randint(0, 256, (n, *OBS["obs"]), dtype=torch.uint8),
        "measurements": torch.randn(n, *OBS["measurements"]),
    }


def groups_of(models, sizes: dict[int, int]) -> list:
    return [(k, raw_obs(n), torch.randn(n, models[k].state_size)) for k, n in sizes.items()]


def assert_matches_each_act(stack: PolicyStack, models, groups) -> None:
    fused = stack.act(groups, deterministic=True)
    assert len(fused) == len(groups)
    for (k, obs, state), out in zip(groups, fused):
        ref = models[k].act(obs, state, deterministic=True)
        d = len(SPEC.discrete)  # discrete choices exactly; the continuous mean to rounding
        assert torch.equal(out["actions"][:, :d], ref["actions"][:, :d]), k
        for key in ("actions", "log_probs", "logits", "values", "state"):
            assert out[key].shape == ref[key].shape, (k, key)
            torch.testing.assert_close(out[key], ref[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("core", ["gru", "lstm", "none"])
def test_fused_act_equals_each_policys_act_for_uneven_groups(core):
    """Groups of 1, 3 and 2 agents of policies 0, 2, 3 (policy 1 absent: a padded group) and
    of a snapshot appended later: logits, values, log-probs and new states match each model's
    own act at float32 tolerance, and its deterministic discrete actions exactly."""
    models = population(core)
    stack = PolicyStack(models[:4])
    assert stack.append(models[4]) == 4  # e.g. a frozen league snapshot
    torch.manual_seed(1)
    assert_matches_each_act(stack, models, groups_of(models, {2: 3, 0: 1, 3: 2, 4: 2}))


@pytest.mark.parametrize("core", ["gru", "lstm"])
def test_rounds_past_the_kernels_rows_take_baddbmm_and_match_too(core, monkeypatch):
    """Up to _KERNEL_ROWS agents per policy the stacked layers run in the stacked_linear
    kernel, above it in torch.baddbmm: both paths give each model's own act."""
    from gristmill.learners import policy_stack

    calls = []
    real = policy_stack.stacked_linear
    monkeypatch.setattr(policy_stack, "stacked_linear",
                        lambda *a: calls.append(a[0].shape) or real(*a))
    models = population(core)
    stack = PolicyStack(models[:3])
    assert_matches_each_act(stack, models, groups_of(models, {0: 2, 1: 1, 2: 2}))
    assert calls and all(shape[1] == 2 for shape in calls)
    calls.clear()
    assert_matches_each_act(stack, models, groups_of(models, {0: 17, 2: 3}))
    assert not calls


def test_fused_act_on_far_apart_ids_gathers_their_weights():
    """Ids 0 and 4 (span over twice the groups): their weights are gathered, same result."""
    models = population("gru")
    stack = PolicyStack(models)
    assert_matches_each_act(stack, models, groups_of(models, {4: 2, 0: 3}))


def test_sampled_actions_carry_their_own_log_probs():
    """Sampled (not deterministic) actions: each row's log-prob is its own policy's."""
    models = population("gru")
    stack = PolicyStack(models)
    groups = groups_of(models, {1: 3, 3: 2})
    for (k, obs, state), out in zip(groups, stack.act(groups)):
        ref = models[k].act(obs, state)
        dist = models[k].distribution(ref["logits"])
        torch.testing.assert_close(out["log_probs"], dist.log_prob(out["actions"]))


def test_refresh_makes_changed_weights_act():
    """After a policy's model changes, the stack acts with the old weights until refresh."""
    models = population("gru")
    stack = PolicyStack(models)
    groups = groups_of(models, {0: 2, 1: 2, 2: 1})
    with torch.no_grad():
        for p in models[1].parameters():
            p.add_(0.1 * torch.randn_like(p))
    before = stack.act(groups, deterministic=True)
    ref = models[1].act(groups[1][1], groups[1][2], deterministic=True)
    assert not torch.allclose(before[1]["logits"], ref["logits"], atol=1e-3)
    stack.refresh(1)
    assert_matches_each_act(stack, models, groups)


def test_bad_groups_and_models_are_named():
    models = population("gru", n=2)
    stack = PolicyStack(models)
    with pytest.raises(ValueError, match="one group per policy"):
        stack.act(groups_of(models, {0: 1}) * 2)
    with pytest.raises(ValueError, match=r"no policy \[5\]"):
        stack.act([(5, raw_obs(1), torch.zeros(1, 16))])
    other = ActorCritic(OBS, SPEC, ModelConfig(core="gru", rnn_size=32))
    with pytest.raises(ValueError, match="architecture"):
        stack.append(other)
    assert len(stack) == 2


def test_a_stack_of_one_grows_by_appends():
    """A stack of one (one learner, no snapshot yet) matches act, and keeps matching as
    snapshots are appended past its capacity (1 -> 2 -> 4 -> 8 slots)."""
    models = population("lstm", n=5)
    stack = PolicyStack(models[:1])
    assert_matches_each_act(stack, models, groups_of(models, {0: 3}))
    for k in range(1, 5):
        assert stack.append(models[k]) == k
    assert len(stack) == 5
    assert_matches_each_act(stack, models, groups_of(models, {4: 1, 0: 2, 2: 2}))

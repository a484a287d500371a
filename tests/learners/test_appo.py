"""APPOLearner: policy-lag masking, foreign samples, LR scaling, learning, checkpoints."""

import copy

import pytest
import torch
from gristmill.learners import ActionSpec, ActorCritic, APPOConfig, APPOLearner, ModelConfig
from gristmill.learners.ppo import PPOConfig, PPOLearner


def small_model(core="gru", norm=True):
    cfg = ModelConfig(
        encoder="mlp",
        encoder_mlp_layers=(32,),
        core=core,
        rnn_size=16,
        normalize_input=norm,
        normalize_returns=norm,
    )
    return ActorCritic({"obs": (4,)}, ActionSpec(discrete=(2,)), cfg)


def bandit_batch(model, n, t, version=0, gen=None):
    """Contextual bandit rollouts: reward 1 when the action equals [obs_0 > 0]."""
    gen = gen or torch.Generator().manual_seed(0)
    obs = torch.randn(n, t + 1, 4, generator=gen)
    state = model.initial_state(n)
    states, acts, lps, logits, values = [], [], [], [], []
    for i in range(t + 1):
        states.append(state)
        out = model.act({"obs": obs[:, i]}, state)
        state = torch.zeros_like(out["state"])  # every step ends its episode: actors reset
        acts.append(out["actions"])
        lps.append(out["log_probs"])
        logits.append(out["logits"])
        values.append(out["values"])
    actions = torch.stack(acts[:t], 1)
    rewards = (actions[..., 0] == (obs[:, :t, 0] > 0).float()).float()
    return {
        "obs": {"obs": obs},
        "rnn_states": torch.stack(states, 1),
        "actions": actions,
        "log_prob_actions": torch.stack(lps[:t], 1),
        "action_logits": torch.stack(logits[:t], 1),
        "values": torch.stack(values, 1),
        "rewards": rewards,
        "dones": torch.ones(n, t, dtype=torch.bool),
        "time_outs": torch.zeros(n, t, dtype=torch.bool),
        "policy_version": torch.full((n, t), version),
        "policy_id": torch.zeros(n, t, dtype=torch.long),
    }


def test_train_counts_versions_and_steps():
    model = small_model()
    learner = APPOLearner(model, APPOConfig(batch_size=64, num_batches_per_epoch=2, num_epochs=2))
    stats = learner.train(bandit_batch(model, 16, 8))
    assert learner.train_step == 4 and learner.env_steps == 128
    assert stats["valids_fraction"] == 1.0 and stats["version_diff_max"] == 0.0
    for key in ("policy_loss", "value_loss", "exploration_loss", "entropy", "grad_norm", "lr"):
        assert key in stats


def test_stale_samples_are_masked_and_lr_scaled():
    model = small_model()
    learner = APPOLearner(model, APPOConfig(batch_size=64, max_policy_lag=50, learning_rate=1e-3))
    learner.train_step = 100
    batch = bandit_batch(model, 8, 8)
    batch["policy_version"][:4] = 20  # lag 80: too old
    batch["policy_version"][4:] = 90  # lag 10: fine
    stats = learner.train(batch)
    assert stats["valids_fraction"] == pytest.approx(0.5)
    assert stats["lr"] == pytest.approx(0.5e-3)
    assert stats["version_diff_max"] == 80.0 and stats["version_diff_min"] == 10.0


def test_all_stale_batch_is_skipped():
    model = small_model()
    learner = APPOLearner(model, APPOConfig(batch_size=64, max_policy_lag=5))
    learner.train_step = 10
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert learner.train(bandit_batch(model, 8, 8, version=0)) is None
    assert learner.train_step == 10
    # Weights untouched (the normalisers' statistics still merge the batch, as in Sample Factory).
    assert all(torch.equal(before[k], v) for k, v in model.named_parameters())


@pytest.mark.parametrize("with_vtrace", [False, True])
def test_invalid_samples_do_not_change_the_update(with_vtrace):
    torch.manual_seed(1)
    model = small_model(norm=False)
    cfg = APPOConfig(batch_size=64, with_vtrace=with_vtrace, learning_rate=1e-3)
    batch = bandit_batch(model, 8, 8)
    batch["policy_id"][2:4, 3:] = 1  # another policy acted here
    other = {k: (v.clone() if torch.is_tensor(v) else {"obs": v["obs"]}) for k, v in batch.items()}
    foreign = other["policy_id"] == 1
    other["rewards"][foreign] = 123.0
    other["actions"][foreign] = 1.0 - other["actions"][foreign]
    other["log_prob_actions"][foreign] = -7.0
    a, b = APPOLearner(copy.deepcopy(model), cfg), APPOLearner(copy.deepcopy(model), cfg)
    a.train(batch)
    b.train(other)
    for (k, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), k


@pytest.mark.parametrize("with_vtrace", [False, True])
def test_appo_learns_a_contextual_bandit(with_vtrace):
    torch.manual_seed(0)
    model = small_model(core="gru")
    cfg = APPOConfig(
        batch_size=128,
        learning_rate=3e-3,
        with_vtrace=with_vtrace,
        exploration_loss="symmetric_kl",
        exploration_loss_coeff=0.001,
        ppo_clip_value=0.2,
    )
    learner = APPOLearner(model, cfg)
    gen = torch.Generator().manual_seed(0)
    first = bandit_batch(model, 16, 8, gen=gen)["rewards"].mean()
    for _ in range(60):
        learner.train(bandit_batch(model, 16, 8, version=learner.train_step, gen=gen))
    last = bandit_batch(model, 64, 8, gen=gen)["rewards"].mean()
    assert first < 0.7 and last > 0.85


def test_checkpoint_roundtrip():
    model = small_model()
    learner = APPOLearner(model, APPOConfig(batch_size=64))
    learner.train(bandit_batch(model, 8, 8))
    state = learner.state_dict()
    fresh = APPOLearner(small_model(), APPOConfig(batch_size=64))
    fresh.load_state_dict(copy.deepcopy(state))
    assert fresh.train_step == learner.train_step == 1
    for k, v in learner.model.state_dict().items():
        assert torch.equal(v, fresh.model.state_dict()[k]), k


def test_bad_batches_are_named():
    model = small_model()
    learner = APPOLearner(model, APPOConfig(batch_size=64))
    batch = bandit_batch(model, 8, 8)
    batch["values"] = batch["values"][:, :-1]
    with pytest.raises(ValueError, match="'values'"):
        learner.train(batch)
    with pytest.raises(ValueError, match="multiple of the rollout"):
        APPOLearner(model, APPOConfig(batch_size=60)).train(bandit_batch(model, 8, 8))


def test_cleanrl_ppo_learns_the_bandit():
    torch.manual_seed(0)
    model = small_model(core="none", norm=False)
    learner = PPOLearner(model, PPOConfig(learning_rate=3e-3, anneal_lr=False))
    gen = torch.Generator().manual_seed(0)
    for i in range(30):
        b = bandit_batch(model, 16, 8, gen=gen)
        tm = {
            "obs": {"obs": b["obs"]["obs"][:, :-1].transpose(0, 1)},
            "actions": b["actions"].transpose(0, 1),
            "log_probs": b["log_prob_actions"].transpose(0, 1),
            "values": b["values"][:, :-1].transpose(0, 1),
            "rewards": b["rewards"].transpose(0, 1),
            "dones": b["dones"].transpose(0, 1),
            "next_values": b["values"][:, -1],
        }
        stats = learner.update(tm, progress=i / 30)
    assert learner.updates == 30 and "approx_kl" in stats
    assert bandit_batch(model, 64, 8, gen=gen)["rewards"].mean() > 0.85

"""Population: policies, snapshots and fixed members; exact save/resume; PBT replacement."""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from gristmill.learners import ActionSpec, ActorCritic, APPOConfig, APPOLearner, ModelConfig
from gristmill.learners.league import (
    PBT,
    PFSP,
    WIN,
    AgentPolicyMapping,
    PBTConfig,
    PBTDecision,
    Population,
    load_member_weights,
    storage,
)

HP = {"learning_rate": 1e-2, "exploration_loss_coeff": 0.003, "gamma": 0.99}
SHAPING = {"delta": {"FRAG": (1.0, -1.5)}}


def make_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def make_optimizer(model, hp):
    return torch.optim.Adam(model.parameters(), lr=hp["learning_rate"])


def make_population(directory, n=3, seed=0, **kw):
    torch.manual_seed(seed)
    hps = [dict(HP, learning_rate=HP["learning_rate"] * (k + 1)) for k in range(n)]
    return Population(directory, n, make_model, make_optimizer, hps, SHAPING, **kw)


def train(policy, steps=3, seed=0):
    g = torch.Generator().manual_seed(seed + policy.index)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=g)
        loss = policy.model(x).pow(2).mean()
        policy.optimizer.zero_grad()
        loss.backward()
        policy.optimizer.step()
        policy.version += 1
        policy.env_steps += 16


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert_same_tensors(a[k], b[k])
        elif torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def assert_same_optimizer(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert_same_tensors(sa["state"], sb["state"])


def build_run(directory):
    pop = make_population(directory)
    cfg = PBTConfig(num_policies=3, pbt_start_mutation=0, pbt_period_env_steps=0)
    pbt = PBT(cfg, {k: HP[k] for k in HP}, SHAPING, ("delta",), np.random.default_rng(1))
    mapping = AgentPolicyMapping(3, 2, "mix", rng=np.random.default_rng(2))
    pfsp = PFSP("hard", rng=np.random.default_rng(3))
    for name, c in (("pbt", pbt), ("mapping", mapping), ("pfsp", pfsp)):
        pop.register(name, c)
    return pop, pbt, mapping, pfsp


def play_some(pop, pbt, mapping, pfsp, rounds):
    for r in range(rounds):
        for p in pop.policies:
            train(p, seed=r)
        [mapping.policy_for_agent(a, 0) for a in range(2)]
        opp = pfsp.sample(pop.payoff, "p0", [m for m in pop.members if m != "p0"])
        pop.payoff.update("p0", opp, [WIN, 0.5, 0.0][r % 3])
        pop.payoff.update("p1", "p2", WIN)
        stats = [[float(k == r % 3)] for k in range(3)]
        for d in pbt.step(
            [p.env_steps for p in pop.policies],
            stats,
            [{k: p.hyperparameters[k] for k in HP} for p in pop.policies],
            [p.reward_shaping for p in pop.policies],
        ):
            pop.apply(d)


def test_save_resume_restores_everything_exactly_and_training_continues_identically(tmp_path):
    pop, pbt, mapping, pfsp = build_run(tmp_path)
    pop.add_fixed("random_bot")
    play_some(pop, pbt, mapping, pfsp, 2)
    snap = pop.add_snapshot(0)
    play_some(pop, pbt, mapping, pfsp, 2)
    pop.update_ratings("random_bot", bootstrap=20)
    pop.save()

    other, pbt2, mapping2, pfsp2 = build_run(tmp_path)  # fresh weights and generators
    other.load()
    for a, b in zip(pop.policies, other.policies):
        assert_same_tensors(a.model.state_dict(), b.model.state_dict())
        assert_same_optimizer(a.optimizer, b.optimizer)
        assert (a.version, a.env_steps) == (b.version, b.env_steps)
        assert a.hyperparameters == b.hyperparameters and a.reward_shaping == b.reward_shaping
        assert type(b.reward_shaping["delta"]["FRAG"]) is tuple  # types kept, not JSON lists
    assert other.payoff == pop.payoff
    assert other.ratings == pop.ratings and other.ratings is not None
    assert other.snapshots.keys() == {snap} and other.fixed == ["random_bot"]
    assert_same_tensors(other.snapshot_weights(snap), pop.snapshot_weights(snap))
    assert pbt2.state_dict() == pbt.state_dict()
    assert mapping2.state_dict() == mapping.state_dict()
    assert pfsp2.state_dict() == pfsp.state_dict()
    # the strongest check: both runs go on identically
    play_some(pop, pbt, mapping, pfsp, 3)
    play_some(other, pbt2, mapping2, pfsp2, 3)
    for a, b in zip(pop.policies, other.policies):
        assert_same_tensors(a.model.state_dict(), b.model.state_dict())
        assert a.hyperparameters == b.hyperparameters and a.version == b.version
    assert other.payoff == pop.payoff


def test_checkpoint_layout_keeps_n_and_leaves_no_temporary_files(tmp_path):
    pop = make_population(tmp_path, keep=2)
    for _ in range(4):
        for p in pop.policies:
            train(p, steps=1)
        pop.save()
    for k in range(3):
        files = sorted(os.listdir(tmp_path / "checkpoints" / f"p{k}"))
        assert files == ["checkpoint_000000003_48.pt", "checkpoint_000000004_64.pt"]
    manifest = json.loads((tmp_path / "population.json").read_text())
    assert manifest["policies"][1]["checkpoint"] == "checkpoints/p1/checkpoint_000000004_64.pt"
    leftovers = [f for _, _, fs in os.walk(tmp_path) for f in fs if ".tmp" in f]
    assert leftovers == []


def test_kill_between_checkpoints_and_manifest_resumes_the_last_complete_save(
    tmp_path, monkeypatch
):
    pop = make_population(tmp_path, keep=1)
    train(pop[0])
    pop.save()
    saved = {k: v.clone() for k, v in pop[0].model.state_dict().items()}
    version = pop[0].version
    train(pop[0])
    pop.payoff.update("p0", "p1", WIN)

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("gristmill.learners.league.population.atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        pop.save()
    monkeypatch.undo()
    other = make_population(tmp_path, seed=5, keep=1)
    other.load()  # the old manifest's files were not pruned: keep applies after the manifest
    assert_same_tensors(other[0].model.state_dict(), saved)
    assert other[0].version == version and other.payoff.games("p0", "p1") == 0.0


def test_pbt_replacement_copies_weights_and_optimizer_without_aliasing(tmp_path):
    pop = make_population(tmp_path)
    for p in pop.policies:
        train(p, steps=2 + p.index)
    env_steps = pop[2].env_steps
    decision = PBTDecision(
        policy=2,
        env_steps=env_steps,
        donor=0,
        version_jump=1001,
        hyperparameters=dict(HP, learning_rate=0.5),
        reward_shaping={"delta": {"FRAG": (2.0, -1.5)}},
    )
    before = pop[2].version
    pop.apply(decision)
    assert_same_tensors(pop[2].model.state_dict(), pop[0].model.state_dict())
    assert pop[2].version == before + 1001 and pop[2].env_steps == env_steps
    assert pop[2].optimizer.param_groups[0]["lr"] == 0.5
    assert pop[2].reward_shaping["delta"]["FRAG"] == (2.0, -1.5)
    donor = {k: v.clone() for k, v in pop[0].optimizer.state_dict()["state"][0].items()}
    train(pop[2], steps=1)  # must not touch the donor's weights or Adam moments
    assert_same_tensors(pop[0].optimizer.state_dict()["state"][0], donor)
    assert not torch.equal(pop[2].model[0].weight, pop[0].model[0].weight)


def test_snapshots_are_frozen_members(tmp_path):
    pop = make_population(tmp_path)
    train(pop[1], steps=2)
    name = pop.add_snapshot(1)
    assert name == "p1@2" and pop.kind(name) == "snapshot" and name in pop.payoff
    assert not pop.is_learning(name) and pop.is_learning("p1")
    frozen = {k: v.clone() for k, v in pop[1].model.state_dict().items()}
    train(pop[1], steps=2)  # the policy moves on, the snapshot does not
    model = pop.snapshot_model(name)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert_same_tensors(model.state_dict(), frozen)
    assert os.path.exists(tmp_path / "checkpoints" / "snapshots" / "p1@2.pt")
    with pytest.raises(ValueError, match="already a member"):
        pop.add_snapshot(1, name="p1@2")


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="hyperparameters: 2 entries for 3 policies"):
        Population(tmp_path, 3, make_model, make_optimizer, [HP, HP])
    pop = make_population(tmp_path)
    with pytest.raises(FileNotFoundError, match="no population checkpoint"):
        pop.load()
    with pytest.raises(KeyError, match="'p9' is not a learning policy"):
        pop["p9"]
    with pytest.raises(RuntimeError, match=r"policies \[1, 2\] were never saved"):
        pop.save(policies=[0])
    pop.save()
    with pytest.raises(ValueError, match="holds 3 policies; this population has 2"):
        make_population(tmp_path, n=2).load()
    pop.register("pbt", PBT(PBTConfig(num_policies=3), HP))
    with pytest.raises(ValueError, match=r"no state for components \['pbt'\]"):
        pop.load()
    os.remove(tmp_path / "checkpoints" / "p1" / os.listdir(tmp_path / "checkpoints" / "p1")[0])
    with pytest.raises(FileNotFoundError, match="checkpoints/p1/checkpoint_"):
        make_population(tmp_path).load()
    assert storage.read_json(str(tmp_path / "population.json"))["format"] == 1


def test_member_weights_load_without_the_population(tmp_path):
    pop = make_population(tmp_path)
    train(pop[2])
    snap = pop.add_snapshot(2)
    train(pop[2])
    pop.add_fixed("expander")
    pop[0].hyperparameters["adam_eps"] = np.float64(1e-6)  # numpy scalars are written too
    pop.save()
    assert_same_tensors(load_member_weights(tmp_path, "p2"), pop[2].model.state_dict())
    assert_same_tensors(load_member_weights(tmp_path, snap), pop.snapshot_weights(snap))
    with pytest.raises(KeyError, match="'expander' is a fixed member and has no weights"):
        load_member_weights(tmp_path, "expander")
    with pytest.raises(KeyError, match="'p7' is not a member"):
        load_member_weights(tmp_path, "p7")


def test_appo_learners_fit_and_a_replacement_masks_the_receivers_stale_samples(tmp_path):
    """How the Doom trainer wires it: one APPOLearner per policy over the population's model
    and optimizer; versions synced; a PBT copy makes the receiver's in-flight batch stale."""

    def model():
        cfg = ModelConfig(encoder="mlp", encoder_mlp_layers=(16,), core="none", rnn_size=16)
        return ActorCritic({"obs": (4,)}, ActionSpec(discrete=(2,)), cfg)

    def batch(policy, n=8, t=4):
        g = torch.Generator().manual_seed(policy.index)
        obs = torch.randn(n, t + 1, 4, generator=g)
        with torch.no_grad():
            out = [policy.model.act({"obs": obs[:, i]}, None) for i in range(t + 1)]
        actions = torch.stack([o["actions"] for o in out[:t]], 1)
        return {
            "obs": {"obs": obs},
            "rnn_states": torch.zeros(n, t + 1, 0),
            "actions": actions,
            "log_prob_actions": torch.stack([o["log_probs"] for o in out[:t]], 1),
            "action_logits": torch.stack([o["logits"] for o in out[:t]], 1),
            "values": torch.stack([o["values"] for o in out], 1),
            "rewards": (actions[..., 0] == (obs[:, :t, 0] > 0).float()).float(),
            "dones": torch.ones(n, t, dtype=torch.bool),
            "time_outs": torch.zeros(n, t, dtype=torch.bool),
            "policy_version": torch.full((n, t), policy.version),
            "policy_id": torch.full((n, t), policy.index),
        }

    base = APPOConfig(batch_size=32, max_policy_lag=3)
    tuned = ("learning_rate", "exploration_loss_coeff", "ppo_clip_ratio")
    pop = Population(
        tmp_path,
        2,
        model,
        lambda m, hp: torch.optim.Adam(m.parameters(), lr=hp["learning_rate"], eps=1e-6),
        {k: getattr(base, k) for k in tuned},
    )
    learners = []
    for p in pop.policies:
        learner = APPOLearner(p.model, dataclasses.replace(base, policy_id=p.index))
        learner.optimizer = p.optimizer  # the population owns (and saves) it
        learners.append(learner)
    for p, learner in zip(pop.policies, learners):
        stats = learner.train(batch(p))
        assert stats is not None and stats["valids_fraction"] == 1.0
        p.version, p.env_steps = learner.train_step, learner.env_steps
    in_flight = batch(pop[1])  # produced by policy 1's current weights
    pop.apply(
        PBTDecision(
            policy=1,
            env_steps=pop[1].env_steps,
            donor=0,
            version_jump=base.max_policy_lag + 1,
            hyperparameters={k: getattr(base, k) * 2 for k in tuned},
            reward_shaping=None,
        )
    )
    learners[1].train_step = pop[1].version
    learners[1].cfg = dataclasses.replace(learners[1].cfg, **pop[1].hyperparameters)
    assert learners[1].train(in_flight) is None  # every in-flight sample is masked
    stats = learners[1].train(batch(pop[1]))
    assert stats["valids_fraction"] == 1.0 and stats["lr"] == 2 * base.learning_rate


class _Counter:
    def __init__(self, n=0):
        self.n = n

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def test_a_manifest_without_an_optional_components_state_resumes_and_a_required_one_refuses(
        tmp_path):
    pop = make_population(tmp_path)
    pop.save()  # written before either component existed
    late, counter = make_population(tmp_path), _Counter(7)
    late.register("added_later", counter, required=False)
    late.load()
    assert counter.n == 7  # left as it was
    counter.n = 9
    late.save()
    again, restored = make_population(tmp_path), _Counter()
    again.register("added_later", restored, required=False)
    again.load()
    assert restored.n == 9  # saved from then on
    strict = make_population(tmp_path)
    strict.register("new_required", _Counter())
    with pytest.raises(ValueError, match="no state for components \\['new_required'\\]"):
        strict.load()

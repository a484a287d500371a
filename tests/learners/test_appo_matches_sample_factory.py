"""APPO against Sample Factory 2.1.1's own learner, number for number.

``sf_reference/make_reference.py`` ran SF's ``Learner`` (Doom defaults plus each case's flags)
from the weights of ``sf_reference/sf_appo_cases.py`` on its batches and stored what came out. Here
gristmill's learner starts from the same weights, trains on the same batches, and must land on
the same statistics, normaliser state, parameter updates and model outputs.
"""

import json
import os
import sys

import numpy as np
import pytest
import torch
from gristmill.learners import ActionSpec, ActorCritic, APPOConfig, APPOLearner, ModelConfig

HERE = os.path.join(os.path.dirname(__file__), "sf_reference")
sys.path.insert(0, HERE)
from sf_appo_cases import (  # noqa: E402
    CASES,
    OBS_SHAPE,
    PROBES,
    RNN_SIZE,
    STEPS,
    initial_weight,
    make_batch,
    probe_obs,
)

with open(os.path.join(HERE, "sf_appo_reference.json")) as _f:
    REF = json.load(_f)

# gristmill parameter (prefix) -> Sample Factory parameter (prefix)
SF_NAMES = {
    "encoder.conv.0": "encoder.basic_encoder.enc.conv_head.0",
    "encoder.conv.2": "encoder.basic_encoder.enc.conv_head.2",
    "encoder.conv.4": "encoder.basic_encoder.enc.conv_head.4",
    "encoder.conv_mlp.0": "encoder.basic_encoder.enc.mlp_layers.0",
    "policy_head": "action_parameterization.distribution_linear",
    "value_head": "critic_linear",
}


def sf_name(name: str) -> str:
    prefix, leaf = name.rsplit(".", 1)
    if prefix == "core":  # nn.GRUCell here, a one-layer nn.GRU there
        return f"core.core.{leaf}_l0"
    return f"{SF_NAMES[prefix]}.{leaf}"


def build(case: str) -> APPOLearner:
    spec = CASES[case]
    flags = dict(spec["flags"])
    n, t = spec["shape"]
    model = ActorCritic(
        {"obs": OBS_SHAPE},
        ActionSpec(spec["heads"]),
        ModelConfig(
            encoder="convnet_simple",
            core="gru",
            rnn_size=RNN_SIZE,
            nonlinearity="elu",
            obs_scale=255.0,
            normalize_input=True,
            normalize_returns=flags.pop("normalize_returns", True),
        ),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(initial_weight(sf_name(name), tuple(p.shape))))
    cfg = dict(
        ppo_clip_value=0.2,  # Sample Factory's Doom overrides
        exploration_loss="symmetric_kl",
        exploration_loss_coeff=0.001,
        batch_size=n * t // flags.get("num_batches_per_epoch", 1),
    )
    cfg.update(flags)
    return APPOLearner(model, APPOConfig(**cfg), torch.device("cpu"))


def as_batch(raw: dict) -> dict:
    t = lambda k: torch.from_numpy(raw[k].copy())  # noqa: E731
    return {
        "obs": {"obs": t("obs")},
        "rnn_states": t("rnn_states"),
        "actions": t("actions"),
        "log_prob_actions": t("log_prob_actions"),
        "action_logits": t("action_logits"),
        "values": t("values"),
        "rewards": t("rewards"),
        "dones": t("dones").bool(),
        "time_outs": t("time_outs").bool(),
        "policy_version": t("policy_version").long(),
        "policy_id": t("policy_id").long(),
        "valids": torch.ones(raw["rewards"].shape, dtype=torch.bool),
    }


STAT_KEYS = ("loss", "policy_loss", "value_loss", "exploration_loss", "adv_std")


@pytest.mark.parametrize("case", sorted(CASES))
def test_appo_learner_matches_sample_factory(case):
    ref = REF["cases"][case]
    learner = build(case)
    w0 = {k: p.detach().clone() for k, p in learner.model.named_parameters()}
    raw = make_batch(case)
    for step in range(STEPS):
        stats = learner.train(as_batch(raw))
        want = ref["stats"][step]
        if want:  # SF records none in V-trace mode (see make_reference.py)
            got = {k: stats[k] for k in STAT_KEYS}
            np.testing.assert_allclose(
                [got[k] for k in STAT_KEYS],
                [want[k] for k in STAT_KEYS],
                rtol=2e-4,
                atol=1e-7,
                err_msg=f"step {step}",
            )
            # gristmill reports the norm before clipping, Sample Factory after it
            clip = learner.cfg.max_grad_norm
            assert min(stats["grad_norm"], clip) == pytest.approx(want["grad_norm"], rel=2e-4)
    assert learner.train_step == ref["train_steps"]

    for name, p in learner.model.named_parameters():
        upd = ref["updates"][sf_name(name)]
        d = (p.detach() - w0[name]).reshape(-1).double()
        scale = max(np.abs(upd["delta"]).max(), 1e-12)
        np.testing.assert_allclose(
            d[upd["index"]].numpy(), upd["delta"], rtol=0, atol=2e-3 * scale, err_msg=name
        )
        assert d.abs().sum().item() == pytest.approx(upd["abs_sum"], rel=1e-3), name

    norm = learner.model.obs_normalizer.norms["obs"]
    assert norm.count.item() == ref["obs_norm"]["count"]
    # SF sums float32 pixels, gristmill exact integers: equal to float32 precision
    assert norm.mean.sum().item() == pytest.approx(ref["obs_norm"]["mean_sum"], rel=1e-6)
    assert norm.var.sum().item() == pytest.approx(ref["obs_norm"]["var_sum"], rel=1e-6)
    if ref["returns_norm"] is not None:
        rn = learner.model.returns_normalizer
        got = [rn.mean.item(), rn.var.item(), rn.count.item()]
        want = [ref["returns_norm"][k] for k in ("running_mean", "running_var", "count")]
        np.testing.assert_allclose(got, want, rtol=1e-5)

    model = learner.model.eval()
    with torch.no_grad():
        nobs = model.normalize_obs({"obs": torch.from_numpy(probe_obs(case))})
        logits, values, _ = model(nobs, torch.zeros(PROBES, RNN_SIZE))
    np.testing.assert_allclose(values.numpy(), ref["probe_values"], atol=2e-5)
    np.testing.assert_allclose(logits.numpy(), ref["probe_logits"], atol=2e-5)

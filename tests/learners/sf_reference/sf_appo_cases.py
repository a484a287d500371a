"""Deterministic inputs for the Sample Factory APPO cross-check (NumPy only).

Imported both by ``make_reference.py`` (run in Sample Factory 2.1.1's own environment) and by
``tests/learners/test_appo_matches_sample_factory.py``, so both sides start from the same
weights and train on the same batch. Weights are keyed by Sample Factory's parameter names.
"""

from __future__ import annotations

import zlib

import numpy as np

OBS_SHAPE = (3, 72, 128)
RNN_SIZE = 512
# Each case: the env (its action heads), Sample Factory flags beyond the Doom defaults, and the
# batch shape: (trajectories, rollout).
CASES = {
    "defend_the_center_gae": {
        "env": "doom_defend_the_center",
        "heads": (3, 2),
        "flags": {},
        "shape": (4, 8),
        "invalid_fraction": 0.0,
    },
    "basic_vtrace_entropy_minibatches": {
        "env": "doom_basic",
        "heads": (4,),
        "flags": {
            "with_vtrace": True,
            "exploration_loss": "entropy",
            "exploration_loss_coeff": 0.003,
            "value_bootstrap": True,
            "normalize_returns": False,  # SF 2.1.1 V-trace has no normalised returns
            "num_epochs": 2,
            "num_batches_per_epoch": 2,
            "max_policy_lag": 6,  # step 2 masks some samples, step 3 all of them
        },
        "shape": (4, 8),
        "invalid_fraction": 0.15,
    },
    "basic_gae_foreign_and_stale": {
        "env": "doom_basic",
        "heads": (4,),
        "flags": {"max_policy_lag": 2},  # stale from step 2 on, plus other policies' samples
        "shape": (4, 8),
        "invalid_fraction": 0.15,
    },
}
STEPS = 3
PROBES = 6


def initial_weight(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 weights for Sample Factory parameter ``name``: N(0, 1/fan_in), biases N(0, 0.01)."""
    rng = np.random.default_rng([7, zlib.crc32(name.encode())])
    if len(shape) == 1:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def make_batch(case: str) -> dict[str, np.ndarray]:
    """One training batch in Sample Factory's layout ([N, T(+1), ...]); valids are all ones
    here: the learners derive validity from ``policy_id`` (foreign samples) themselves."""
    spec = CASES[case]
    n, t = spec["shape"]
    heads = spec["heads"]
    rng = np.random.default_rng([11, zlib.crc32(case.encode())])
    obs = rng.integers(0, 256, size=(n, t + 1, *OBS_SHAPE), dtype=np.uint8)
    logits = rng.standard_normal((n, t, sum(heads))).astype(np.float32)
    actions = np.stack([rng.integers(0, k, size=(n, t)) for k in heads], -1).astype(np.float32)
    logp = np.zeros((n, t), np.float64)
    lo = 0
    for h, k in enumerate(heads):
        z = logits[..., lo : lo + k].astype(np.float64)
        z = z - z.max(-1, keepdims=True)
        logsm = z - np.log(np.exp(z).sum(-1, keepdims=True))
        logp += np.take_along_axis(logsm, actions[..., h : h + 1].astype(np.int64), -1)[..., 0]
        lo += k
    dones = (rng.random((n, t)) < 0.15).astype(np.float32)
    rnn_states = (rng.standard_normal((n, t + 1, RNN_SIZE)) * 0.3).astype(np.float32)
    rnn_states[:, 1:][dones > 0] = 0.0  # the actors start every episode from zeros
    return {
        "obs": obs,
        "rnn_states": rnn_states,
        "actions": actions,
        "action_logits": logits,
        "log_prob_actions": logp.astype(np.float32),
        "values": (rng.standard_normal((n, t + 1)) * 0.5).astype(np.float32),
        "rewards": np.where(rng.random((n, t)) < 0.2, rng.choice([-1.0, 1.0], (n, t)), 0.0).astype(
            np.float32
        ),
        "dones": dones,
        "time_outs": (dones * (rng.random((n, t)) < 0.5)).astype(np.float32),
        # behaviour versions 0..2 behind the learner's first step (version 0)
        "policy_version": -rng.integers(0, 3, size=(n, t)).astype(np.float32),
        "policy_id": (rng.random((n, t)) < spec["invalid_fraction"]).astype(np.int32),
        "valids": np.ones((n, t + 1), dtype=bool),
    }


def probe_obs(case: str) -> np.ndarray:
    """``PROBES`` observations the trained models are evaluated on (zero recurrent state)."""
    rng = np.random.default_rng([13, zlib.crc32(case.encode())])
    return rng.integers(0, 256, size=(PROBES, *OBS_SHAPE), dtype=np.uint8)

"""Cases for the PBT cross-check with Sample Factory 2.1.1 (shared by the generator and the test).

``perturb`` cases chain ``_perturb_cfg`` and ``_perturb_reward``; ``run`` cases play
``on_init`` and then ``on_training_step`` on the synthetic statistics of :func:`synthetic_stats`.
Both sides draw from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import numpy as np

# The tuned hyperparameters' defaults (gamma/adam_beta1/vtrace/with_vtrace only where tuned).
HP_DEFAULTS = dict(
    learning_rate=1e-4,
    exploration_loss_coeff=0.001,
    value_loss_coeff=0.5,
    max_grad_norm=4.0,
    ppo_clip_ratio=0.1,
    ppo_clip_value=0.2,
    gamma=0.99,
    adam_beta1=0.9,
    vtrace_rho=1.0,
    with_vtrace=False,
)
DOOM = "doom_deathmatch_v1"  # Sample Factory's REWARD_SHAPING_DEATHMATCH_V1
CATEGORIES = ["delta", "selected_weapon"]
OWN_SHAPING = {"win": 1.0, "loss": [-1.0, 0.5], "flag": True}
FAST = dict(pbt_start_mutation=1_000_000, pbt_period_env_steps=1_000_000)

CASES = [
    dict(kind="perturb", seed=0, cfg={}, chain=150),
    dict(
        kind="perturb", seed=1, cfg=dict(pbt_mutation_rate=1.0, pbt_optimize_gamma=True), chain=150
    ),
    dict(
        kind="perturb",
        seed=2,
        cfg=dict(pbt_mutation_rate=0.5, pbt_perturb_min=1.01),
        chain=40,
        shaping=DOOM,
        categories=CATEGORIES,
    ),
    dict(kind="perturb", seed=3, cfg=dict(pbt_mutation_rate=0.6), chain=50, shaping=OWN_SHAPING),
    dict(
        kind="perturb",
        seed=4,
        cfg=dict(pbt_mutation_rate=0.7),
        chain=150,
        extra=["adam_beta1", "vtrace_rho", "with_vtrace"],
    ),
    dict(
        kind="run",
        seed=10,
        cfg=FAST,
        policies=4,
        iterations=40,
        shaping=DOOM,
        categories=CATEGORIES,
    ),
    dict(kind="run", seed=11, cfg=dict(FAST, pbt_optimize_gamma=True), policies=8, iterations=60),
    dict(
        kind="run",
        seed=12,
        cfg=dict(FAST, pbt_replace_reward_gap=0.5, pbt_replace_reward_gap_absolute=0.05),
        policies=2,
        iterations=60,
    ),
    dict(
        kind="run",
        seed=13,
        cfg=dict(FAST, pbt_replace_fraction=0.5, pbt_mutation_rate=0.5),
        policies=5,
        iterations=60,
    ),
]


def synthetic_stats(seed: int, num_policies: int, period: int, iterations: int):
    """Yield ``(env_steps, objectives)`` per iteration: env steps per policy (None when the
    policy did not report), and each policy's last <= 100 episode objectives.

    Each policy advances by 0..period/2 env steps and plays 0..3 episodes per iteration; 10 %
    of the values are exactly 0 (ties) and some means are negative.
    """
    rng = np.random.default_rng(seed + 1000)
    steps = np.zeros(num_policies, dtype=np.int64)
    history: list[list[float]] = [[] for _ in range(num_policies)]
    for _ in range(iterations):
        steps += rng.integers(0, period // 2 + 1, size=num_policies)
        for p in range(num_policies):
            for _ in range(int(rng.integers(0, 4))):
                value = float(np.round(rng.normal(0.2 * p - 0.3, 1.0), 3))
                if rng.random() < 0.1:
                    value = 0.0
                history[p] = (history[p] + [value])[-100:]
        reported = [int(steps[p]) if rng.random() > 0.05 else None for p in range(num_policies)]
        yield reported, [list(h) for h in history]

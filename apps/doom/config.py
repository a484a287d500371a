"""`gristmill-doom train` configuration: Sample Factory 2.1.1's Doom defaults, one dataclass.

Every field is a command-line flag (``--batch_size 1024``; booleans take ``true/false``; see
:mod:`gristmill.apps.config_cli`), with Sample Factory's names where they exist so its command
lines translate directly. :mod:`.model` maps it onto the model's and the learner's configs.
"""

from __future__ import annotations

from dataclasses import dataclass

from gristmill.apps.config_cli import RunConfig, check_ranges, option

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig(RunConfig):
    """Doom APPO run. Defaults: Sample Factory's ``doom_override_defaults`` + cfg defaults."""

    env: str = option("doom_basic", "Doom env id (gristmill.envs.doom.doom_env_ids())")
    train_for_env_steps: int = option(
        10_000_000, "stop after this many env frames (frameskip counted)"
    )
    train_for_seconds: float = option(0.0, "stop after this wall time (0: no limit)")
    seed: int = option(0, "seeds torch and the envs (env i resets with seed + i)")
    torch_threads: int = option(0, "learner intra-op threads (0: half the cores, at least 1)")
    inference_threads: int = option(1, "inference intra-op threads (small batches: 1 is fastest)")
    sampler_nice: int = option(
        5, "workers, games and inference run this much nicer than the learner"
    )
    # sampling
    num_workers: int = option(2, "rollout worker processes")
    num_envs_per_worker: int = option(8, "envs per worker (each a VizDoom game process)")
    worker_num_splits: int = option(2, "double buffering: step one split while the other infers")
    rollout: int = option(32, "steps per trajectory slot (T)")
    inference_wait_ms: float = option(0.0, "wait this long to batch more workers' requests")
    num_batches_to_accumulate: int = option(
        1, "back-pressure: finished batches the sampler may hold"
    )
    env_frameskip: int = option(4, "game tics per agent step, inside VizDoom")
    res_w: int = option(128, "observation width after the resize")
    res_h: int = option(72, "observation height after the resize")
    grayscale: bool = option(False, "one channel instead of RGB")
    timelimit: float = option(0.0, "multiplayer match minutes (0: the scenario's 4 minutes)")
    reward_shaping: str = option(
        "", "override delta coefficients of the env's shaping, 'VAR=up,down ...' (e.g. "
        "'DAMAGECOUNT=0.15,-0.15'); a fresh run's policies start from them, and PBT's "
        "resets go back to them"
    )
    reward_scale: float = option(1.0, "multiplies rewards before they are stored")
    reward_clip: float = option(1000.0, "clips scaled rewards to [-c, c]")
    # model
    encoder: str = option("convnet_simple", "convnet_simple (Sample Factory) | convnet_atari")
    use_rnn: bool = option(True, "recurrent core")
    rnn_type: str = option("gru", "gru | lstm")
    rnn_size: int = option(512, "core width")
    nonlinearity: str = option("elu", "elu | relu | tanh")
    normalize_input: bool = option(True, "running mean/std of observations")
    normalize_returns: bool = option(True, "value targets in running-normalised units")
    obs_scale: float = option(255.0, "images are divided by this first")
    # APPO
    batch_size: int = option(1024, "samples per minibatch (whole trajectories)")
    num_batches_per_epoch: int = option(1, "minibatches per training batch")
    num_epochs: int = option(1, "passes over each training batch")
    shuffle_minibatches: bool = option(False, "shuffle trajectories between minibatches")
    gamma: float = option(0.99, "discount")
    gae_lambda: float = option(0.95, "GAE lambda")
    with_vtrace: bool = option(False, "V-trace targets per minibatch (Sample Factory 1 / paper)")
    vtrace_rho: float = option(1.0, "V-trace rho-bar")
    vtrace_c: float = option(1.0, "V-trace c-bar")
    value_bootstrap: bool = option(False, "bootstrap V(s) on time-outs")
    ppo_clip_ratio: float = option(0.1, "epsilon: ratio clipped to [1/(1+eps), 1+eps]")
    ppo_clip_value: float = option(0.2, "PPO2 value clip (normalised units; Doom 0.2)")
    value_loss_coeff: float = option(0.5, "value loss weight")
    exploration_loss: str = option("symmetric_kl", "symmetric_kl | entropy")
    exploration_loss_coeff: float = option(0.001, "exploration loss weight")
    kl_loss_coeff: float = option(0.0, "KL(new || behaviour) penalty weight")
    learning_rate: float = option(1e-4, "Adam learning rate")
    adam_eps: float = option(1e-6, "Adam epsilon")
    max_grad_norm: float = option(4.0, "gradient norm clip (0: off)")
    max_policy_lag: int = option(1000, "samples older than this many versions are masked")
    # population (Sample Factory's names and defaults; see apps/doom/league.py)
    num_policies: int = option(1, "policies trained in one run (self-play and PBT need >= 2)")
    pbt_mix_policies_in_one_env: bool = option(
        True, "a random policy per agent (redrawn every 10 episodes); false: env index mod N"
    )
    snapshot_every_env_steps: int = option(
        0, "freeze each policy every this many of its frames as a league opponent (0: never)"
    )
    snapshot_opponent_prob: float = option(
        0.2, "multi-agent envs: chance that an agent's opponent is a snapshot (PFSP-drawn)"
    )
    max_snapshots: int = option(20, "snapshots drawn as opponents (the newest)")
    with_pbt: bool = option(False, "population-based training of the policies")
    pbt_period_env_steps: int = option(5_000_000, "frames between a policy's PBT updates")
    pbt_start_mutation: int = option(20_000_000, "frames before a policy's first PBT update")
    pbt_replace_fraction: float = option(0.3, "the best and worst fractions of the population")
    pbt_mutation_rate: float = option(0.15, "probability that a hyperparameter mutates")
    pbt_replace_reward_gap: float = option(0.1, "relative objective gap to copy a better policy")
    pbt_replace_reward_gap_absolute: float = option(1e-6, "absolute objective gap, as well")
    pbt_optimize_gamma: bool = option(False, "PBT also tunes the discount")
    pbt_target_objective: str = option("true_objective", "episode statistic PBT ranks by")
    pbt_perturb_min: float = option(1.1, "a mutation multiplies or divides by U[min, max]")
    pbt_perturb_max: float = option(1.5, "a mutation multiplies or divides by U[min, max]")
    # Ray (apps/doom/ray_population.py): each policy a Ray actor, the league on the driver
    ray: str = option(
        "", "run each policy as a Ray actor: auto (join this machine's cluster or start one), "
        "local (a private cluster for this run) or a cluster ADDRESS; empty: in one process"
    )
    ray_member_cpus: float = option(1.0, "Ray CPUs reserved by each policy's actor")
    ray_sync_every_sec: float = option(
        5.0, "with --ray: how often each policy's latest weights go to the others as opponents"
    )
    # bookkeeping
    save_every_sec: float = option(120.0, "checkpoint period")
    keep_checkpoints: int = option(2, "newest checkpoints kept")
    stats_every_sec: float = option(5.0, "console line and TensorBoard period")
    heartbeat_timeout: float = option(120.0, "a silent worker counts as hung after this")
    max_worker_restarts_per_min: int = option(30, "more worker failures in any 60 s stop the run")

    def validate(self) -> None:
        check_ranges(
            self,
            positive=("train_for_env_steps", "inference_threads", "num_workers",
                      "num_envs_per_worker", "worker_num_splits", "rollout", "env_frameskip",
                      "res_w", "res_h", "reward_clip", "rnn_size", "obs_scale", "batch_size",
                      "num_batches_per_epoch", "num_epochs", "ppo_clip_ratio", "learning_rate",
                      "adam_eps", "heartbeat_timeout", "vtrace_rho", "vtrace_c",
                      "pbt_perturb_min", "pbt_perturb_max"),
            non_negative=("save_every_sec", "stats_every_sec", "train_for_seconds",
                          "ray_member_cpus", "ray_sync_every_sec",
                          "torch_threads", "inference_wait_ms", "timelimit",
                          "max_grad_norm", "max_policy_lag", "keep_checkpoints",
                          "exploration_loss_coeff", "kl_loss_coeff", "value_loss_coeff",
                          "seed", "ppo_clip_value", "pbt_period_env_steps", "pbt_start_mutation",
                          "pbt_replace_reward_gap", "pbt_replace_reward_gap_absolute"),
            unit=("gamma", "gae_lambda", "pbt_replace_fraction", "pbt_mutation_rate"),
        )  # fmt: skip
        if self.batch_size % self.rollout:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of rollout {self.rollout}"
            )
        if self.num_envs_per_worker % self.worker_num_splits:
            raise ValueError("num_envs_per_worker must be divisible by worker_num_splits")
        if not 0 <= self.sampler_nice <= 19:
            raise ValueError(f"sampler_nice must be in 0..19, got {self.sampler_nice}")
        if self.max_worker_restarts_per_min < 1:
            raise ValueError(
                f"max_worker_restarts_per_min must be >= 1, got {self.max_worker_restarts_per_min}"
            )
        if self.num_policies < 1:
            raise ValueError(f"num_policies must be >= 1, got {self.num_policies}")
        if self.reward_shaping.strip():  # a named error before any process starts
            from gristmill.envs.doom import doom_spec
            from gristmill.envs.doom.shaping import default_scheme, override_scheme

            try:
                override_scheme(default_scheme(doom_spec(self.env).shaping), self.reward_shaping)
            except ValueError as e:  # named after the option (found by tests/apps/test_fuzz_cli)
                raise ValueError(f"reward_shaping: {e}") from e
        if self.snapshot_every_env_steps < 0 or self.max_snapshots < 1:
            raise ValueError("snapshot_every_env_steps must be >= 0 and max_snapshots >= 1")
        if not 0.0 <= self.snapshot_opponent_prob <= 1.0:
            raise ValueError(
                f"snapshot_opponent_prob must be in [0, 1], got {self.snapshot_opponent_prob}"
            )
        if self.with_pbt and self.num_policies < 2:
            raise ValueError("with_pbt needs num_policies >= 2")
        if self.num_batches_to_accumulate < 1:
            # fewer slots than one batch plus every agent's open trajectory: the learner would
            # wait for a batch the blocked workers can never finish
            raise ValueError(
                f"num_batches_to_accumulate must be >= 1, got {self.num_batches_to_accumulate}"
            )


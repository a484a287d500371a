"""`gristmill-atari train` configuration: CleanRL ``ppo_atari_envpool.py``'s defaults.

Every field is a command-line flag (see :mod:`gristmill.apps.config_cli`); the PPO fields carry
CleanRL's names, which :class:`~gristmill.learners.PPOConfig` shares (mapped by name in
:mod:`.trainer`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gristmill.apps.config_cli import RunConfig, check_ranges, option

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig(RunConfig):
    """CleanRL ppo_atari_envpool defaults."""

    env: str = option("Pong-v5", "Atari task id (EnvPool naming)")
    seed: int = option(1, "pool and torch seed")
    total_timesteps: int = option(10_000_000, "agent steps (x4 frames with frame skip 4)")
    num_envs: int = option(8, "parallel games")
    num_workers: int = option(0, "pool worker processes (0: one per core)")
    max_worker_restarts: int = option(
        100, "crashed pool workers replaced before the run stops (0: none)"
    )
    num_steps: int = option(128, "steps per env per rollout")
    learning_rate: float = option(2.5e-4, "Adam learning rate (annealed to 0)")
    anneal_lr: bool = option(True, "linear learning-rate decay")
    gamma: float = option(0.99, "discount")
    gae_lambda: float = option(0.95, "GAE lambda")
    num_minibatches: int = option(4, "minibatches per epoch")
    update_epochs: int = option(4, "epochs per rollout")
    norm_adv: bool = option(True, "standardise advantages per minibatch")
    clip_coef: float = option(0.1, "PPO clip")
    clip_vloss: bool = option(True, "PPO2 value clipping")
    ent_coef: float = option(0.01, "entropy bonus")
    vf_coef: float = option(0.5, "value loss weight")
    max_grad_norm: float = option(0.5, "gradient clip")
    target_kl: float = option(0.0, "early-stop epochs above this approx KL (0: off)")
    save_every_sec: float = option(300.0, "checkpoint period")
    stats_every_sec: float = option(10.0, "console/TensorBoard period")

    def validate(self) -> None:
        check_ranges(
            self,
            positive=("total_timesteps", "num_envs", "num_steps", "learning_rate",
                      "num_minibatches", "update_epochs", "clip_coef"),
            non_negative=("seed", "save_every_sec", "stats_every_sec", "num_workers",
                          "max_worker_restarts", "ent_coef", "vf_coef",
                          "max_grad_norm", "target_kl"),
            unit=("gamma", "gae_lambda"),
        )  # fmt: skip
        if self.num_envs * self.num_steps < self.num_minibatches:
            raise ValueError(f"num_minibatches {self.num_minibatches} is more than the "
                             f"{self.num_envs * self.num_steps} steps of a rollout")  # fmt: skip

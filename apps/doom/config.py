"""`gristmill-doom train` configuration: Sample Factory 2.1.1's Doom defaults, one dataclass.

Every field is a command-line flag (``--batch_size 1024``; booleans take ``true/false``), with
Sample Factory's names where they exist so its command lines translate directly.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from dataclasses import dataclass, fields

__all__ = ["TrainConfig", "add_arguments", "from_args"]


@dataclass
class TrainConfig:
    """Doom APPO run. Defaults: Sample Factory's ``doom_override_defaults`` + cfg defaults."""

    env: str = "doom_basic"  # Doom env id (gristmill.envs.doom.doom_env_ids())
    experiment: str = ""  # run name; default: the env id
    train_dir: str = "runs"  # experiments live in train_dir/experiment
    restart: bool = False  # ignore existing checkpoints of the experiment
    train_for_env_steps: int = 10_000_000  # stop after this many env frames (frameskip counted)
    train_for_seconds: float = 0.0  # stop after this wall time (0: no limit)
    seed: int = 0  # seeds torch and the envs (env i resets with seed + i)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = 0  # learner intra-op threads (0: half the cores, at least 1)
    inference_threads: int = 1  # inference intra-op threads (small batches: 1 is fastest)
    sampler_nice: int = 5  # workers, games and inference run this much nicer than the learner
    # sampling
    num_workers: int = 2  # rollout worker processes
    num_envs_per_worker: int = 8  # envs per worker (each a VizDoom game process)
    worker_num_splits: int = 2  # double buffering: step one split while the other infers
    rollout: int = 32  # steps per trajectory slot (T)
    inference_wait_ms: float = 0.0  # wait this long to batch more workers' requests
    num_batches_to_accumulate: int = 1  # back-pressure: finished batches the sampler may hold
    env_frameskip: int = 4  # game tics per agent step, inside VizDoom
    res_w: int = 128  # observation width after the resize
    res_h: int = 72  # observation height after the resize
    grayscale: bool = False  # one channel instead of RGB
    timelimit: float = 0.0  # multiplayer match minutes (0: the scenario's 4 minutes)
    reward_scale: float = 1.0  # multiplies rewards before they are stored
    reward_clip: float = 1000.0  # clips scaled rewards to [-c, c]
    # model
    encoder: str = "convnet_simple"  # convnet_simple (Sample Factory) | convnet_atari
    use_rnn: bool = True  # recurrent core
    rnn_type: str = "gru"  # gru | lstm
    rnn_size: int = 512  # core width
    nonlinearity: str = "elu"  # elu | relu | tanh
    normalize_input: bool = True  # running mean/std of observations
    normalize_returns: bool = True  # value targets in running-normalised units
    obs_scale: float = 255.0  # images are divided by this first
    # APPO
    batch_size: int = 1024  # samples per minibatch (whole trajectories)
    num_batches_per_epoch: int = 1  # minibatches per training batch
    num_epochs: int = 1  # passes over each training batch
    shuffle_minibatches: bool = False  # shuffle trajectories between minibatches
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    with_vtrace: bool = False  # V-trace targets per minibatch (Sample Factory 1 / paper)
    vtrace_rho: float = 1.0  # V-trace rho-bar
    vtrace_c: float = 1.0  # V-trace c-bar
    value_bootstrap: bool = False  # bootstrap V(s) on time-outs
    ppo_clip_ratio: float = 0.1  # epsilon: ratio clipped to [1/(1+eps), 1+eps]
    ppo_clip_value: float = 0.2  # PPO2 value clip (normalised units; Doom 0.2)
    value_loss_coeff: float = 0.5  # value loss weight
    exploration_loss: str = "symmetric_kl"  # symmetric_kl | entropy
    exploration_loss_coeff: float = 0.001  # exploration loss weight
    kl_loss_coeff: float = 0.0  # KL(new || behaviour) penalty weight
    learning_rate: float = 1e-4  # Adam learning rate
    adam_eps: float = 1e-6  # Adam epsilon
    max_grad_norm: float = 4.0  # gradient norm clip (0: off)
    max_policy_lag: int = 1000  # samples older than this many versions are masked
    # bookkeeping
    save_every_sec: float = 120.0  # checkpoint period
    keep_checkpoints: int = 2  # newest checkpoints kept
    stats_every_sec: float = 5.0  # console line and TensorBoard period
    heartbeat_timeout: float = 120.0  # a silent worker counts as hung after this
    max_worker_restarts_per_min: int = 30  # more worker failures in any 60 s stop the run

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.env

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def validate(self) -> None:
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
        if self.num_batches_to_accumulate < 1:
            # fewer slots than one batch plus every agent's open trajectory: the learner would
            # wait for a batch the blocked workers can never finish
            raise ValueError(
                f"num_batches_to_accumulate must be >= 1, got {self.num_batches_to_accumulate}"
            )


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "y", "on"):
        return True
    if low in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _field_help() -> dict[str, str]:
    """The ``# comment`` after each field, as its --help text."""
    source = inspect.getsource(TrainConfig)
    found = re.findall(r"^\s+(\w+): [^=]+=[^#\n]*#\s*(.+)$", source, flags=re.M)
    return dict(found)


def add_arguments(parser: argparse.ArgumentParser, defaults: dict | None = None) -> None:
    """Every field as ``--name``; ``defaults`` overrides some fields' defaults (a preset such as
    ``gristmill-doom quickstart``'s)."""
    helps = _field_help()
    defaults = defaults or {}
    for f in fields(TrainConfig):
        kind = {"bool": _bool, "int": int, "float": float, "str": str}[str(f.type)]
        text = helps.get(f.name, "")
        default = defaults.get(f.name, f.default)
        parser.add_argument(
            f"--{f.name}", type=kind, default=default, help=f"{text} (default: {default})"
        )


def from_args(ns: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig(**{f.name: getattr(ns, f.name) for f in fields(TrainConfig)})
    cfg.validate()
    return cfg

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
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = 0  # intra-op threads (0: one per core)
    # sampling
    num_workers: int = 2  # rollout worker processes
    num_envs_per_worker: int = 8  # envs per worker (each a VizDoom game process)
    worker_num_splits: int = 2  # double buffering: step one split while the other infers
    rollout: int = 32
    num_batches_to_accumulate: int = 2  # back-pressure: slots for this many pending batches
    env_frameskip: int = 4
    res_w: int = 128
    res_h: int = 72
    grayscale: bool = False
    timelimit: float = 0.0  # multiplayer match minutes (0: the scenario's 4 minutes)
    reward_scale: float = 1.0
    reward_clip: float = 1000.0
    # model
    encoder: str = "convnet_simple"
    use_rnn: bool = True
    rnn_type: str = "gru"
    rnn_size: int = 512
    nonlinearity: str = "elu"
    normalize_input: bool = True
    normalize_returns: bool = True
    obs_scale: float = 255.0
    # APPO
    batch_size: int = 1024
    num_batches_per_epoch: int = 1
    num_epochs: int = 1
    shuffle_minibatches: bool = False
    gamma: float = 0.99
    gae_lambda: float = 0.95
    with_vtrace: bool = False
    vtrace_rho: float = 1.0
    vtrace_c: float = 1.0
    value_bootstrap: bool = False
    ppo_clip_ratio: float = 0.1
    ppo_clip_value: float = 0.2
    value_loss_coeff: float = 0.5
    exploration_loss: str = "symmetric_kl"
    exploration_loss_coeff: float = 0.001
    kl_loss_coeff: float = 0.0
    learning_rate: float = 1e-4
    adam_eps: float = 1e-6
    max_grad_norm: float = 4.0
    max_policy_lag: int = 1000
    # bookkeeping
    save_every_sec: float = 120.0
    keep_checkpoints: int = 2
    stats_every_sec: float = 5.0
    heartbeat_timeout: float = 120.0

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    helps = _field_help()
    for f in fields(TrainConfig):
        kind = {"bool": _bool, "int": int, "float": float, "str": str}[str(f.type)]
        text = helps.get(f.name, "")
        parser.add_argument(
            f"--{f.name}", type=kind, default=f.default, help=f"{text} (default: {f.default})"
        )


def from_args(ns: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig(**{f.name: getattr(ns, f.name) for f in fields(TrainConfig)})
    cfg.validate()
    return cfg

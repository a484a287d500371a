"""The Doom run's model and learner settings, from its :class:`~.config.TrainConfig`.

Shared by the trainer, ``gristmill-doom eval`` and the benchmarks: a checkpoint's config
rebuilds the network it was trained with. Fields are mapped by name
(:func:`gristmill.apps.config_cli.shared_fields`); only what is named differently is spelled out.
"""

from __future__ import annotations

from gristmill.apps.config_cli import shared_fields
from gristmill.apps.doom.config import TrainConfig
from gristmill.learners import ActionSpec, ActorCritic, APPOConfig, ModelConfig
from gristmill.samplers.spaces import action_spec_of, obs_spec_of

__all__ = ["appo_config", "build_model", "model_config"]


def model_config(cfg: TrainConfig) -> ModelConfig:
    """Encoder, core (``--use_rnn false``: none), widths and input normalisation."""
    return shared_fields(ModelConfig, cfg, core=cfg.rnn_type if cfg.use_rnn else "none")


def build_model(cfg: TrainConfig, obs_space, action_space) -> ActorCritic:
    """The actor-critic for an env's Gymnasium spaces."""
    obs = {k: shape for k, (shape, _) in obs_spec_of(obs_space).items()}
    discrete, continuous = action_spec_of(action_space)
    return ActorCritic(obs, ActionSpec(discrete, continuous), model_config(cfg))


def appo_config(cfg: TrainConfig) -> APPOConfig:
    """Sample Factory's APPO hyper-parameters (the config uses its names)."""
    return shared_fields(APPOConfig, cfg)

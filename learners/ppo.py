"""Synchronous PPO equal to CleanRL's ``ppo_atari.py`` (Huang et al., "The 37 Implementation
Details of PPO", ICLR blog track 2022; Schulman et al. 2017, arXiv:1707.06347).

One :meth:`PPOLearner.update` per rollout of ``num_steps x num_envs``: GAE(γ, λ) from the
gristmill kernel (on the rollout's CPU tensors, before anything moves to the device), then
``update_epochs`` passes over ``num_minibatches`` shuffled minibatches with
:func:`~gristmill.learners.losses.cleanrl_ppo_loss`, gradient clipping at 0.5, optional
``target_kl`` early stop and linear learning-rate annealing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from gristmill.kernels import advantage as K
from gristmill.learners.losses import cleanrl_ppo_loss
from gristmill.learners.models import ActorCritic, ModelConfig

__all__ = ["PPOConfig", "PPOLearner", "cleanrl_atari_model_config"]


@dataclass
class PPOConfig:
    """CleanRL ppo_atari defaults."""

    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True
    clip_coef: float = 0.1
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    adam_eps: float = 1e-5


def cleanrl_atari_model_config() -> ModelConfig:
    """CleanRL's Atari agent: Nature CNN, ReLU, x/255, orthogonal √2 init, heads 0.01 / 1."""
    return ModelConfig(
        encoder="convnet_atari",
        encoder_mlp_layers=(512,),
        core="none",
        nonlinearity="relu",
        init_gain=float(np.sqrt(2)),
        encoder_init="orthogonal",
        policy_head_gain=0.01,
        value_head_gain=1.0,
        obs_scale=255.0,
        normalize_input=False,
        normalize_returns=False,
    )


class PPOLearner:
    """CleanRL PPO on a non-recurrent :class:`ActorCritic`.

    ``update(batch, progress)`` takes time-major tensors: ``obs`` ({k: [T, B, ...]}),
    ``actions`` [T, B, A], ``log_probs`` [T, B], ``values`` [T, B], ``rewards`` [T, B],
    ``dones`` [T, B] (episode ended after step t; CleanRL bootstraps neither termination nor
    truncation), ``next_values`` [B] (value of the observation after the last step).
    ``progress`` in [0, 1] drives learning-rate annealing.
    """

    def __init__(self, model: ActorCritic, cfg: PPOConfig, device: torch.device | str = "cpu"):
        if model.is_recurrent:
            raise ValueError("PPOLearner (CleanRL ppo_atari) needs a model without a core")
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps
        )
        self.updates = 0
        self.env_steps = 0

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "env_steps": self.env_steps,
            "cfg": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.env_steps = int(state["env_steps"])

    def update(self, batch: dict, progress: float = 0.0) -> dict:
        cfg, dev = self.cfg, self.device
        if cfg.anneal_lr:
            for g in self.optimizer.param_groups:
                g["lr"] = (1.0 - progress) * cfg.learning_rate
        host = {k: batch[k].detach().cpu() for k in ("rewards", "values", "dones", "next_values")}
        rewards, values = host["rewards"].float().numpy(), host["values"].float()
        t, b = rewards.shape
        next_values = torch.cat([values[1:], host["next_values"].float()[None]], 0)
        dones = host["dones"].bool().numpy()
        adv, returns = K.gae(
            rewards, values.numpy(), next_values.numpy(), dones, np.zeros_like(dones),
            cfg.gamma, cfg.gae_lambda,
        )
        adv, returns = torch.from_numpy(adv).to(dev), torch.from_numpy(returns).to(dev)
        values = values.to(dev)
        size = t * b
        flat = {
            "obs": {k: v.to(dev).reshape((size,) + v.shape[2:]) for k, v in batch["obs"].items()},
            "actions": batch["actions"].to(dev).reshape(size, -1).float(),
            "log_probs": batch["log_probs"].to(dev).reshape(size).float(),
            "values": values.reshape(size),
            "adv": adv.reshape(size).float(),
            "returns": returns.reshape(size).float(),
        }
        mb_size = size // cfg.num_minibatches
        if mb_size < 1:
            raise ValueError(f"{size} samples cannot make {cfg.num_minibatches} minibatches")
        model = self.model
        model.train()
        stats: dict = {}
        clipfracs = []
        for _epoch in range(cfg.update_epochs):
            perm = torch.randperm(size, device=dev)
            for start in range(0, size, mb_size):
                idx = perm[start : start + mb_size]
                nobs = model.normalize_obs({k: v[idx] for k, v in flat["obs"].items()})
                logits, new_values, _ = model(nobs, model.initial_state(len(idx), dev))
                dist = model.distribution(logits)
                out = cleanrl_ppo_loss(
                    dist.log_prob(flat["actions"][idx]),
                    flat["log_probs"][idx],
                    flat["adv"][idx],
                    dist.entropy(),
                    new_values,
                    flat["values"][idx],
                    flat["returns"][idx],
                    cfg.clip_coef,
                    cfg.clip_vloss,
                    cfg.ent_coef,
                    cfg.vf_coef,
                    cfg.norm_adv,
                )
                self.optimizer.zero_grad()
                out["loss"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                clipfracs.append(float(out["clipfrac"]))
                stats = out
            if cfg.target_kl is not None and float(stats["approx_kl"]) > cfg.target_kl:
                break
        self.updates += 1
        self.env_steps += size
        y_pred, y_true = flat["values"].cpu().numpy(), flat["returns"].cpu().numpy()
        var_y = np.var(y_true)
        result = {
            k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in stats.items()
        }
        result["clipfrac"] = float(np.mean(clipfracs))
        result["explained_variance"] = (
            float("nan") if var_y == 0 else float(1 - np.var(y_true - y_pred) / var_y)
        )
        result["lr"] = self.optimizer.param_groups[0]["lr"]
        return result

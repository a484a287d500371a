"""APPO learner: Sample Factory 2.1.1's ``Learner`` (batch preparation + PPO epochs), in-process.

The learner consumes batches of ``N`` trajectories of ``T`` steps laid out like Sample
Factory's shared buffers (trajectory-major, ``T + 1`` entries for obs/states/values):

==================  ==================  =====================================================
key                 shape               meaning
==================  ==================  =====================================================
obs                 {k: [N, T+1, ...]}  raw observations; the last is the bootstrap obs
rnn_states          [N, T+1, S]         recurrent state *before* each step
actions             [N, T, A]           float32 action rows (see ActionSpec)
log_prob_actions    [N, T]              behaviour log-probabilities
action_logits       [N, T, L]           behaviour logits (KL statistics/penalty)
values              [N, T+1]            behaviour values (model units); last column ignored
rewards             [N, T]              scaled, clipped rewards
dones               [N, T]              the episode ended after step t
time_outs           [N, T]              ... by truncation (used with value_bootstrap)
policy_version      [N, T]              learner version that produced each action
policy_id           [N, T]              (optional) policy that acted; others are masked
valids              [N, T]              (optional) actor-side validity (inactive agents)
==================  ==================  =====================================================

Each ``train`` call runs ``num_epochs`` passes of minibatches of ``batch_size`` samples (whole
trajectories). Samples older than ``max_policy_lag`` versions, or from another policy, are
masked in every loss, and the learning rate is scaled by the valid fraction. The version
(``train_step``) increases by one per optimizer step, as in Sample Factory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from gristmill.learners import losses as L
from gristmill.learners.advantages import sf_gae, sf_vtrace
from gristmill.learners.models import ActorCritic
from torch import Tensor

__all__ = ["APPOConfig", "APPOLearner"]


@dataclass
class APPOConfig:
    """Sample Factory 2.1.1 defaults (Doom apps override ``ppo_clip_value`` and exploration)."""

    gamma: float = 0.99
    gae_lambda: float = 0.95
    with_vtrace: bool = False
    vtrace_rho: float = 1.0
    vtrace_c: float = 1.0
    value_bootstrap: bool = False
    ppo_clip_ratio: float = 0.1
    ppo_clip_value: float = 1.0
    value_loss_coeff: float = 0.5
    exploration_loss: str = "entropy"  # or "symmetric_kl"
    exploration_loss_coeff: float = 0.003
    kl_loss_coeff: float = 0.0
    learning_rate: float = 1e-4
    adam_eps: float = 1e-6
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 4.0
    batch_size: int = 1024
    num_batches_per_epoch: int = 1
    num_epochs: int = 1
    shuffle_minibatches: bool = False
    max_policy_lag: int = 1000
    policy_id: int = 0

    def __post_init__(self):
        if self.exploration_loss not in ("entropy", "symmetric_kl"):
            raise ValueError(
                "exploration_loss must be 'entropy' or 'symmetric_kl', "
                f"got {self.exploration_loss!r}"
            )
        if self.ppo_clip_ratio <= 0:
            raise ValueError(f"ppo_clip_ratio must be > 0, got {self.ppo_clip_ratio}")


class APPOLearner:
    """Thin stateful shell: model + Adam + version counter around the loss functions.

    Args:
      model: an :class:`~gristmill.learners.models.ActorCritic` (moved to ``device``).
      cfg: :class:`APPOConfig`.
      device: where training runs (see :func:`~gristmill.learners.device.select_device`).
    """

    def __init__(self, model: ActorCritic, cfg: APPOConfig, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=cfg.learning_rate,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_eps,
        )
        self.train_step = 0
        self.env_steps = 0
        self._rng = np.random.default_rng()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_step": self.train_step,
            "env_steps": self.env_steps,
            "cfg": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_step = int(state["train_step"])
        self.env_steps = int(state["env_steps"])

    # ------------------------------------------------------------------ batch preparation
    @torch.no_grad()
    def prepare_batch(self, batch: dict) -> dict:
        """Sample Factory's ``_prepare_batch``: validity, obs normalisation (updating its
        statistics), bootstrap value, de-normalised GAE, return normalisation."""
        cfg, model, dev = self.cfg, self.model, self.device
        b = {k: (v if k == "obs" else v.to(dev)) for k, v in batch.items()}
        b["obs"] = {k: v.to(dev) for k, v in batch["obs"].items()}
        n, t = b["rewards"].shape
        self._check_shapes(b, n, t)

        valid = torch.ones(n, t, dtype=torch.bool, device=dev)
        if "valids" in b:
            valid &= b["valids"].bool()
        if "policy_id" in b:
            valid &= b["policy_id"] == cfg.policy_id
        lag = self.train_step - b["policy_version"].long()
        valid &= lag < cfg.max_policy_lag
        valids = torch.cat([valid, valid[:, -1:]], dim=1)  # step T copies step T-1

        model.train()
        model.update_obs_stats(
            {k: v.reshape((n * (t + 1),) + v.shape[2:]) for k, v in b["obs"].items()}
        )
        # Steps and the bootstrap obs are normalised apart, so the steps come out as one
        # [N * T] tensor that forward_sequence takes without another copy.
        steps = model.normalize_obs(
            {k: v[:, :-1].reshape((n * t,) + v.shape[2:]) for k, v in b["obs"].items()}
        )
        nobs = {k: v.reshape((n, t) + v.shape[1:]) for k, v in steps.items()}

        values = b["values"].float().clone()
        last_obs = model.normalize_obs({k: v[:, -1] for k, v in b["obs"].items()})
        _, next_values, _ = model(last_obs, b["rnn_states"][:, -1])
        values[:, -1] = next_values
        if model.returns_normalizer is not None:
            denorm = model.returns_normalizer.denormalize(values.reshape(-1)).reshape(n, t + 1)
        else:
            denorm = values

        rewards = b["rewards"].float()
        dones = b["dones"].float()
        # value_bootstrap: a done step that timed out bootstraps from its own value V(s_t), as
        # the kernels' `truncated` (Sample Factory adds γ·V(s_t) to that step's reward instead)
        time_outs = b["time_outs"].bool() & (dones > 0) if cfg.value_bootstrap else None

        out = {
            "nobs": nobs,
            "rnn_states": b["rnn_states"][:, :-1],
            "values": values[:, :-1],
            "valids": valids[:, :-1],
            "rewards": rewards,
            "dones": dones,
            "actions": b["actions"].float().clone(),
            "log_prob_actions": b["log_prob_actions"].float().clone(),
            "action_logits": b["action_logits"].float(),
            "policy_version": b["policy_version"].long(),
        }
        if time_outs is not None:
            out["truncated"], out["truncated_values"] = time_outs, denorm[:, :-1]
        if not cfg.with_vtrace:
            adv, returns = sf_gae(
                rewards, dones, denorm, valids, cfg.gamma, cfg.gae_lambda, time_outs
            )
            if model.returns_normalizer is not None:
                model.returns_normalizer.update(returns.reshape(-1))
                returns = model.returns_normalizer.normalize(returns.reshape(-1)).reshape(n, t)
            out["advantages"], out["returns"] = adv.float(), returns.float()
        invalid = ~out["valids"]
        # Garbage in invalid slots must not produce NaNs in log-probs.
        out["actions"][invalid] = 0.0
        out["log_prob_actions"][invalid] = -1.0
        return out

    @staticmethod
    def _check_shapes(b: dict, n: int, t: int) -> None:
        want = {
            "rnn_states": (n, t + 1),
            "actions": (n, t),
            "log_prob_actions": (n, t),
            "action_logits": (n, t),
            "values": (n, t + 1),
            "dones": (n, t),
            "policy_version": (n, t),
        }
        for key, lead in want.items():
            if key not in b:
                raise KeyError(f"APPO batch is missing {key!r}")
            if tuple(b[key].shape[:2]) != lead:
                raise ValueError(
                    f"APPO batch {key!r} has shape {tuple(b[key].shape)}, want {lead}+"
                )
        for key, v in b["obs"].items():
            if tuple(v.shape[:2]) != (n, t + 1):
                raise ValueError(
                    f"APPO batch obs[{key!r}] has shape {tuple(v.shape)}, want ({n}, {t + 1}, ...)"
                )

    # ------------------------------------------------------------------ training
    def _minibatches(self, n: int, t: int) -> list[np.ndarray]:
        cfg = self.cfg
        if cfg.batch_size % t:
            raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the rollout {t}")
        per_mb = cfg.batch_size // t
        if n % per_mb:
            raise ValueError(
                f"{n} trajectories of {t} steps do not split into minibatches of {cfg.batch_size}"
            )
        rows = self._rng.permutation(n) if cfg.shuffle_minibatches else np.arange(n)
        return [rows[i : i + per_mb] for i in range(0, n, per_mb)]

    def losses(self, mb: dict, num_invalid_total: int = 0) -> tuple[Tensor, dict]:
        """Sample Factory's ``_calculate_losses`` for one minibatch of whole trajectories."""
        cfg, model = self.cfg, self.model
        valids = mb["valids"]
        done_or_invalid = (mb["dones"] > 0) | ~valids
        resets = torch.zeros_like(done_or_invalid)
        resets[:, 1:] = done_or_invalid[:, :-1]
        logits, values = model.forward_sequence(mb["nobs"], mb["rnn_states"], resets)
        dist = model.distribution(logits)
        log_prob = dist.log_prob(mb["actions"])
        ratio = L.clamp_ratio(log_prob, mb["log_prob_actions"])

        with torch.no_grad():
            if cfg.with_vtrace:
                adv, targets = sf_vtrace(
                    ratio,
                    mb["rewards"],
                    mb["dones"],
                    values,
                    cfg.gamma,
                    cfg.vtrace_rho,
                    cfg.vtrace_c,
                    mb.get("truncated"),
                    mb.get("truncated_values"),
                )
            else:
                adv, targets = mb["advantages"], mb["returns"]
            adv_std = L.masked_std(adv, valids)
            adv = L.standardize(adv, valids)

        v = valids
        policy_loss = L.appo_policy_loss(ratio, adv, cfg.ppo_clip_ratio, v)
        if cfg.exploration_loss == "entropy":
            exploration = L.entropy_loss(dist, cfg.exploration_loss_coeff, v)
        else:
            exploration = L.symmetric_kl_loss(dist, cfg.exploration_loss_coeff, v)
        old_dist = model.distribution(mb["action_logits"])
        kl_old, kl_loss = L.kl_penalty_loss(dist, old_dist, cfg.kl_loss_coeff, v)
        value_loss = L.clipped_value_loss(
            values, mb["values"], targets, cfg.ppo_clip_value, cfg.value_loss_coeff, v
        )
        actor_loss = policy_loss + exploration + kl_loss
        loss = actor_loss + value_loss
        with torch.no_grad():
            high = 1.0 + cfg.ppo_clip_ratio
            stats = {
                "loss": loss.detach(),
                "actor_loss": actor_loss.detach(),
                "policy_loss": policy_loss.detach(),
                "value_loss": value_loss.detach(),
                "exploration_loss": exploration.detach(),
                "kl_loss": kl_loss.detach(),
                "kl_divergence": L.masked_mean(kl_old, v),
                "entropy": L.masked_mean(dist.entropy(), v),
                "value": L.masked_mean(values, v),
                "adv_std": adv_std,
                "fraction_clipped": L.masked_mean(((ratio < 1.0 / high) | (ratio > high))
                                                  .float(), v),
                "ratio_mean": L.masked_mean((ratio - 1).abs(), v),
            }
        return loss, stats

    def train(self, batch: dict) -> dict | None:
        """Prepare ``batch`` and run the PPO epochs; returns float statistics, or None when
        every sample is invalid (nothing to learn from, as in Sample Factory)."""
        cfg = self.cfg
        buf = self.prepare_batch(batch)
        n, t = buf["rewards"].shape
        size = n * t
        num_invalid = int(size - buf["valids"].sum().item())
        version_diff = (self.train_step - buf["policy_version"]).float()
        if num_invalid >= size:
            return None
        lr = cfg.learning_rate * (size - num_invalid) / size
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        self.model.train()
        prev_epoch_actor = 1e9
        stats: dict = {}
        sgd_steps = 0
        for _epoch in range(cfg.num_epochs):
            actor_losses = []
            for rows in self._minibatches(n, t):
                if len(rows) == n and not cfg.shuffle_minibatches:
                    mb = buf  # one minibatch: the whole buffer, no copy (as Sample Factory)
                else:
                    idx = torch.as_tensor(rows, device=self.device)
                    mb = {
                        k: ({kk: vv[idx] for kk, vv in v.items()} if k == "nobs" else v[idx])
                        for k, v in buf.items()
                    }
                loss, stats = self.losses(mb, num_invalid)
                actor_losses.append(float(stats["actor_loss"]))
                for p in self.model.parameters():
                    p.grad = None
                loss.backward()
                if cfg.max_grad_norm > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(
                        self.model.parameters(), cfg.max_grad_norm
                    )
                    stats["grad_norm"] = grad_norm.detach()
                self.optimizer.step()
                self.train_step += 1
                sgd_steps += 1
            epoch_actor = float(np.mean(actor_losses))
            if abs(prev_epoch_actor - epoch_actor) < 1e-6:
                break  # Sample Factory's early stop: the actor loss stopped moving
            prev_epoch_actor = epoch_actor

        self.env_steps += size
        tensors = {**stats, "version_diff_avg": version_diff.mean(),
                   "version_diff_min": version_diff.min(), "version_diff_max": version_diff.max()}
        # one device -> host copy for every statistic: on CUDA each float(tensor) is a stall
        flat = torch.stack([v.detach().to(self.device, torch.float32).reshape(())
                            for v in tensors.values()]).tolist()
        out = dict(zip(tensors, flat))
        out.update(
            lr=lr,
            valids_fraction=1.0 - num_invalid / size,
            sgd_steps=float(sgd_steps),
            train_step=float(self.train_step),
        )
        if not all(math.isfinite(v) for v in out.values()):
            bad = [k for k, v in out.items() if not math.isfinite(v)]
            raise FloatingPointError(f"APPO produced non-finite statistics: {bad}")
        return out

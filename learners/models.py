"""Actor-critic models: Sample Factory's encoders, a GRU/LSTM core, and policy/value heads.

Encoders (``ModelConfig.encoder``):

- ``"convnet_simple"``: Sample Factory's default for Doom — conv 8x8/4 x32, 4x4/2 x64,
  3x3/2 x128, then an MLP (512) — all with ELU.
- ``"convnet_atari"``: the Nature DQN CNN (Mnih et al. 2015) — 8x8/4 x32, 4x4/2 x64,
  3x3/1 x64, then 512 — as in Sample Factory's ``convnet_atari`` and CleanRL's ppo_atari.
- ``"mlp"``: fully connected layers for vector observations.

A dict observation adds an MLP (128, 128) over each vector key (Doom's ``measurements``) and
concatenates it to the image features (Sample Factory's ``VizdoomEncoder``). The core is a GRU
or LSTM cell (Sample Factory: 1 layer, 512 units) or nothing; the heads are one linear layer
each for action logits and the value.

Initialisation follows Sample Factory 2.1.1 (``ActorCritic.initialize_weights``, orthogonal,
gain 1): every linear/conv bias starts at zero; the heads and the measurement MLPs start
orthogonal; the recurrent cell keeps PyTorch's default init (the hook skips ``nn.GRU``). Its
conv encoder and vector-only MLP encoder are ``torch.jit.script`` modules, whose layers the hook
does not recognise (``type(layer)`` is ``RecursiveScriptModule``), so their weights keep
PyTorch's default (Kaiming-uniform, ~1/sqrt(3) of an orthogonal init's scale): that is
``encoder_init="torch_default"``. ``"orthogonal"`` makes them orthogonal too (CleanRL).

Observations arrive raw (uint8 images) and are scaled ``(x - obs_subtract_mean) / obs_scale``
then, optionally, normalised by running statistics (:mod:`.normalize`) that only the learner
updates. Values are predicted in return-normalised units when ``normalize_returns`` is set.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from gristmill.learners.distributions import ActionDistribution, ActionSpec
from gristmill.learners.normalize import RunningMeanStd, RunningMeanStdDict, affine_image
from torch import Tensor, nn

__all__ = ["ModelConfig", "ActorCritic", "ObsSpec"]

ObsSpec = dict[str, tuple[int, ...]]
"""Per-key observation shapes; images are ``(C, H, W)``, vectors ``(D,)``."""

_ACT = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}
_CONVS = {
    "convnet_simple": [(32, 8, 4), (64, 4, 2), (128, 3, 2)],
    "convnet_atari": [(32, 8, 4), (64, 4, 2), (64, 3, 1)],
}


@dataclass
class ModelConfig:
    """Model hyper-parameters; defaults are Sample Factory's for Doom."""

    encoder: str = "convnet_simple"
    encoder_mlp_layers: tuple[int, ...] = (512,)
    vector_mlp_layers: tuple[int, ...] = (128, 128)
    core: str = "gru"
    rnn_size: int = 512
    nonlinearity: str = "elu"
    init_gain: float = 1.0
    # Encoder (conv + its MLP, or a vector-only MLP) weights: "torch_default" (Sample Factory,
    # see the module docstring) or "orthogonal" (gain init_gain, as CleanRL).
    encoder_init: str = "torch_default"
    policy_head_gain: float | None = None  # None: init_gain (Sample Factory); CleanRL 0.01
    value_head_gain: float | None = None  # None: init_gain; CleanRL 1.0
    obs_scale: float = 255.0
    obs_subtract_mean: float = 0.0
    normalize_input: bool = True
    normalize_returns: bool = True

    def __post_init__(self):
        if self.encoder not in (*_CONVS, "mlp"):
            raise ValueError(f"unknown encoder {self.encoder!r}: use {[*_CONVS, 'mlp']}")
        if self.core not in ("gru", "lstm", "none"):
            raise ValueError(f"unknown core {self.core!r}: use 'gru', 'lstm' or 'none'")
        if self.nonlinearity not in _ACT:
            raise ValueError(f"unknown nonlinearity {self.nonlinearity!r}: use {list(_ACT)}")
        if self.encoder_init not in ("torch_default", "orthogonal"):
            raise ValueError(
                f"unknown encoder_init {self.encoder_init!r}: use 'torch_default' or 'orthogonal'"
            )


@functools.lru_cache(maxsize=16)
def _constant_planes(shape: tuple[int, ...], a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float32 planes of ``a`` and ``b`` for :func:`affine_image`, made once per
    shape and scaling rather than on every inference call."""
    planes = np.full(shape, a, np.float32), np.full(shape, b, np.float32)
    for p in planes:
        p.flags.writeable = False
    return planes


def _mlp(sizes: list[int], act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Image (conv) or vector (MLP) encoder, plus MLPs over extra vector keys."""

    def __init__(self, obs_spec: ObsSpec, cfg: ModelConfig):
        super().__init__()
        act = _ACT[cfg.nonlinearity]
        self.image_key = None
        for key, shape in obs_spec.items():
            if len(shape) == 3:
                if self.image_key is not None:
                    raise ValueError(f"one image observation supported, got {list(obs_spec)}")
                self.image_key = key
        self.vector_keys = [k for k, s in obs_spec.items() if len(s) == 1]
        unsupported = [k for k, s in obs_spec.items() if len(s) not in (1, 3)]
        if unsupported:
            raise ValueError(f"observations must be images (C,H,W) or vectors (D,): {unsupported}")
        size = 0
        if self.image_key is not None:
            if cfg.encoder == "mlp":
                raise ValueError("encoder 'mlp' cannot take the image observation")
            c, h, w = obs_spec[self.image_key]
            convs: list[nn.Module] = []
            for out_c, k, s in _CONVS[cfg.encoder]:
                convs += [nn.Conv2d(c, out_c, k, stride=s), act()]
                c = out_c
            self.conv = nn.Sequential(*convs, nn.Flatten())
            with torch.no_grad():
                flat = self.conv(torch.zeros(1, *obs_spec[self.image_key])).shape[1]
            self.conv_mlp = _mlp([flat, *cfg.encoder_mlp_layers], act)
            size += cfg.encoder_mlp_layers[-1] if cfg.encoder_mlp_layers else flat
            vector_layers = cfg.vector_mlp_layers
        else:
            # Vector-only observations: the encoder MLP (e.g. (64, 64) for MuJoCo).
            vector_layers = cfg.encoder_mlp_layers
        self.vector_mlps = nn.ModuleDict()
        for key in self.vector_keys:
            dim = obs_spec[key][0]
            self.vector_mlps[key] = _mlp([dim, *vector_layers], act)
            size += vector_layers[-1] if vector_layers else dim
        self.out_size = size

    def conv_features(self, obs: dict[str, Tensor]) -> Tensor:
        """The convolutions' flattened output ``[N, F]`` for the image key."""
        return self.conv(obs[self.image_key].contiguous(memory_format=torch.channels_last))

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        parts = []
        if self.image_key is not None:
            parts.append(self.conv_mlp(self.conv_features(obs)))
        for key in self.vector_keys:
            parts.append(self.vector_mlps[key](obs[key]))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


class ActorCritic(nn.Module):
    """Shared-trunk actor-critic: encoder -> (GRU|LSTM|none) core -> policy logits and value.

    Args:
      obs_spec: per-key shapes (``{"obs": (3, 72, 128)}``; add ``"measurements": (23,)``).
      action_spec: :class:`~gristmill.learners.distributions.ActionSpec`.
      cfg: :class:`ModelConfig`.

    Recurrent state is one float row per agent: ``[N, rnn_size]`` for a GRU, ``[N, 2 *
    rnn_size]`` (h, c) for an LSTM, ``[N, 1]`` (unused) without a core.
    """

    def __init__(self, obs_spec: ObsSpec, action_spec: ActionSpec, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.obs_spec = dict(obs_spec)
        self.action_spec = action_spec
        self.encoder = Encoder(obs_spec, cfg)
        size = self.encoder.out_size
        if cfg.core == "gru":
            self.core = nn.GRUCell(size, cfg.rnn_size)
            self.state_size, size = cfg.rnn_size, cfg.rnn_size
        elif cfg.core == "lstm":
            self.core = nn.LSTMCell(size, cfg.rnn_size)
            self.state_size, size = 2 * cfg.rnn_size, cfg.rnn_size
        else:
            self.core = None
            self.state_size = 1
        self.core_out_size = size
        self.policy_head = nn.Linear(size, action_spec.num_logits)
        self.value_head = nn.Linear(size, 1)
        keep_default = set()
        if cfg.encoder_init == "torch_default":
            enc = self.encoder
            scripted = [enc.conv, enc.conv_mlp] if enc.image_key is not None else [enc.vector_mlps]
            keep_default = {id(m) for part in scripted for m in part.modules()}
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                if id(m) not in keep_default:
                    nn.init.orthogonal_(m.weight, gain=cfg.init_gain)
                nn.init.zeros_(m.bias)
        if self.encoder.image_key is not None:
            # channels_last: oneDNN's fast layout (~25% faster conv training on CPU).
            self.encoder.conv.to(memory_format=torch.channels_last)
        if cfg.policy_head_gain is not None:
            nn.init.orthogonal_(self.policy_head.weight, gain=cfg.policy_head_gain)
        if cfg.value_head_gain is not None:
            nn.init.orthogonal_(self.value_head.weight, gain=cfg.value_head_gain)
        self.obs_normalizer = (
            RunningMeanStdDict({k: tuple(s) for k, s in obs_spec.items()})
            if cfg.normalize_input
            else None
        )
        self.returns_normalizer = RunningMeanStd((1,)) if cfg.normalize_returns else None

    @property
    def is_recurrent(self) -> bool:
        return self.core is not None

    def initial_state(self, n: int, device=None) -> Tensor:
        return torch.zeros(n, self.state_size, device=device)

    # ---------------------------------------------------------------- observations
    def scale_obs(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Images to float ``(x - subtract_mean) / obs_scale``; vectors to float."""
        out = {}
        for k, v in obs.items():
            v = v.float()
            if len(self.obs_spec[k]) == 3:
                if self.cfg.obs_subtract_mean:
                    v = v - self.cfg.obs_subtract_mean
                if self.cfg.obs_scale != 1.0:
                    v = v * (1.0 / self.cfg.obs_scale)
            out[k] = v
        return out

    def _obs_affine_args(self, key: str) -> tuple[float, float]:
        """``(subtract, scale)`` that turn raw ``obs[key]`` into model units."""
        if len(self.obs_spec[key]) == 3:
            return self.cfg.obs_subtract_mean, 1.0 / self.cfg.obs_scale
        return 0.0, 1.0

    @torch.no_grad()
    def update_obs_stats(self, obs: dict[str, Tensor]) -> None:
        """Merge a batch ``[N, *shape]`` of raw observations into the running statistics (the
        learner's job; no-op without input normalisation)."""
        norms = self.obs_normalizer.norms if self.obs_normalizer is not None else {}
        for k, v in obs.items():
            if k in norms:
                norms[k].update(v, *self._obs_affine_args(k))

    def normalize_obs(self, obs: dict[str, Tensor], update: bool = False) -> dict[str, Tensor]:
        """Scale, then normalise with the running statistics (merging ``obs`` first when
        ``update``). Tensors are ``[N, *shape]``; scaling and normalisation run as one pass.
        uint8 images on the CPU come back as channels-last float32 (see :mod:`.normalize`).
        """
        if update:
            self.update_obs_stats(obs)
        norms = self.obs_normalizer.norms if self.obs_normalizer is not None else {}
        out = {}
        for k, v in obs.items():
            sub, scale = self._obs_affine_args(k)
            if k in norms:
                out[k] = norms[k].affine(v, sub, scale)
            elif len(self.obs_spec[k]) == 3 and v.dtype == torch.uint8 and v.device.type == "cpu":
                a, b = _constant_planes(tuple(self.obs_spec[k]), scale, -sub * scale)
                out[k] = affine_image(v, a, b, -np.inf, np.inf)
            else:
                vf = v.float()
                out[k] = (vf - sub) * scale if (sub or scale != 1.0) else vf
        return out

    # ---------------------------------------------------------------- forward pieces
    def forward_head(self, nobs: dict[str, Tensor]) -> Tensor:
        return self.encoder(nobs)

    def core_step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One recurrent step: ``x[N, F]``, ``state[N, S]`` -> ``(out[N, H], state[N, S])``."""
        if self.core is None:
            return x, state
        if isinstance(self.core, nn.LSTMCell):
            h, c = state.chunk(2, dim=-1)
            h, c = self.core(x, (h.contiguous(), c.contiguous()))
            return h, torch.cat([h, c], dim=-1)
        h = self.core(x, state)
        return h, h

    def forward_tail(self, core_out: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits[N, L], values[N])``."""
        return self.policy_head(core_out), self.value_head(core_out).squeeze(-1)

    def forward(self, nobs: dict[str, Tensor], state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step for ``N`` agents: ``(logits[N, L], values[N], new_state[N, S])``."""
        core_out, new_state = self.core_step(self.forward_head(nobs), state)
        logits, values = self.forward_tail(core_out)
        return logits, values, new_state

    def forward_sequence(
        self, nobs: dict[str, Tensor], states: Tensor, resets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Re-run ``N`` trajectories of ``T`` steps for training.

        Args:
          nobs: normalised observations ``[N, T, *shape]``.
          states: recurrent states recorded by the actors ``[N, T, S]``; only ``states[:, 0]``
            is read, as in Sample Factory (recurrence = rollout).
          resets: bool ``[N, T]``; where set, step ``t`` starts from zeros instead of the state
            carried from ``t - 1``. Sample Factory resets after every done or invalid step (a
            new episode, or data of another policy or too stale), so neither state nor
            gradients flow across them; its ``build_rnn_inputs`` zeroes the state there.

        Returns ``(logits[N, T, L], values[N, T])``.
        """
        n, t = resets.shape
        flat = {k: v.reshape((n * t,) + v.shape[2:]) for k, v in nobs.items()}
        feats = self.forward_head(flat).reshape(n, t, -1)
        if self.core is None:
            core_out = feats
        else:
            outs = []
            h = states[:, 0]
            for i in range(t):
                if i > 0:
                    h = h.masked_fill(resets[:, i : i + 1], 0.0)
                out, h = self.core_step(feats[:, i], h)
                outs.append(out)
            core_out = torch.stack(outs, dim=1)
        logits, values = self.forward_tail(core_out.reshape(n * t, -1))
        return logits.reshape(n, t, -1), values.reshape(n, t)

    def distribution(self, logits: Tensor) -> ActionDistribution:
        return ActionDistribution(self.action_spec, logits)

    @torch.no_grad()
    def act(
        self, obs: dict[str, Tensor], state: Tensor, deterministic: bool = False
    ) -> dict[str, Tensor]:
        """Inference for ``N`` agents from raw observations.

        Returns ``actions[N, A]``, ``log_probs[N]``, ``logits[N, L]``, ``values[N]`` (in the
        model's value units) and ``state[N, S]``.
        """
        logits, values, new_state = self(self.normalize_obs(obs), state)
        dist = self.distribution(logits)
        actions = dist.deterministic() if deterministic else dist.sample()
        return {
            "actions": actions,
            "log_probs": dist.log_prob(actions),
            "logits": logits,
            "values": values,
            "state": new_state,
        }

"""Several policies of one architecture acting in one forward pass (population inference).

A self-play round serves a few agents of each of several policies. One
:meth:`ActorCritic.act <gristmill.learners.models.ActorCritic.act>` per policy pays every
layer's fixed cost and the action sampling once per policy, and its large layers run as
matrix-vector products at 1-3 rows. :class:`PolicyStack` keeps the large layers' weights
stacked and runs the policies together: each policy's convolutions on its own agents (small
weights: there is nothing to share), then the conv MLP, the vector MLPs, the recurrent cell and
the heads as batched matmuls over ``[policies, agents, features]``, each policy's agents
padded to the largest group, and one action sampling for all. On the CPU at a few agents per
policy those matmuls run in :func:`gristmill.kernels.stacked_linear.stacked_linear` (2x
``torch.baddbmm``'s speed at 2 rows), else in ``torch.baddbmm``. It walks the
model's own layers (their activations included), so it computes what each model's ``forward``
computes, up to float32 rounding; observation normalisation stays each model's own.

The weights must still be read once per policy (~12 MB each for Sample Factory's Doom model):
at a few agents per policy that memory traffic, not the arithmetic, bounds a round.
``torch.func.vmap`` over ``functional_call`` was no faster than a loop of ``act`` on the CPU
here (its linear rule multiplies by ``W^T`` views, ~2x slower from 4 rows up; ``nn.GRUCell``
has no batching rule and falls back to a loop over policies).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from gristmill.kernels.stacked_linear import stacked_linear
from gristmill.learners.models import ActorCritic
from torch import Tensor, nn

__all__ = ["PolicyStack"]

_ELEMENTWISE = (nn.ELU, nn.ReLU, nn.Tanh)  # the models' activations (models._ACT)
_STACKED = (nn.Linear, nn.GRUCell, nn.LSTMCell)
_KERNEL_ROWS = 16  # up to here the kernel beat baddbmm at every layer size measured

Group = tuple[int, dict[str, Tensor], Tensor]
"""``(policy_id, raw obs {key: [n, *shape]}, state [n, S])``: one policy's agents in a round."""


def _slot_layout(name: str, p: Tensor) -> Tensor:
    """A parameter as one policy's slot of its stack: weights transposed to ``[in, out]`` (a
    contiguous right-hand side keeps ``bmm`` at memory speed for every batch size; ``W^T``
    views slow it ~2x from 4 rows up), biases as they are."""
    return p.t() if name.startswith("weight") else p


class PolicyStack:
    """The stacked weights of ``models`` and their fused forward.

    Args:
      models: :class:`ActorCritic` instances of one architecture (conv or MLP encoder, GRU,
        LSTM or no core). The stack keeps references: :meth:`refresh` re-reads a model's
        weights after they change, :meth:`append` adds one. The caller serialises these with
        :meth:`act` (a forward must not read a half-copied stack).
    """

    def __init__(self, models: Sequence[ActorCritic]):
        if not models:
            raise ValueError("PolicyStack needs at least one model")
        self.template = models[0]
        if not isinstance(self.template, ActorCritic):
            raise ValueError(f"PolicyStack stacks ActorCritic models, got {type(self.template)}")
        enc = self.template.encoder
        mlps = [enc.conv_mlp] if enc.image_key is not None else []
        for layer in [m for seq in mlps + list(enc.vector_mlps.values()) for m in seq]:
            if not isinstance(layer, (nn.Linear, *_ELEMENTWISE)):
                raise ValueError(f"PolicyStack: unsupported encoder layer {layer}")
        # the conv stack runs per policy (its own module), every other layer stacked
        self._stacked = [
            name
            for name, m in self.template.named_modules()
            if isinstance(m, _STACKED) and not name.startswith("encoder.conv.")
        ]
        # [capacity, ...] per parameter; slots past len(self) are unused (appends double it)
        slots = [self._slots(model) for model in models]
        self.params = {key: torch.stack([sl[key] for sl in slots]) for key in slots[0]}
        self.models: list[ActorCritic] = list(models)

    def __len__(self) -> int:
        return len(self.models)

    def _slots(self, model: ActorCritic) -> dict[str, Tensor]:
        shapes = [t.shape for t in model.state_dict().values()]
        if model.cfg != self.template.cfg or shapes != [
            t.shape for t in self.template.state_dict().values()
        ]:
            raise ValueError("PolicyStack: every model must have the first one's architecture")
        mods = dict(model.named_modules())
        return {
            f"{mname}.{pname}": _slot_layout(pname, p.detach())
            for mname in self._stacked
            for pname, p in mods[mname].named_parameters(recurse=False)
        }

    @torch.no_grad()
    def append(self, model: ActorCritic) -> int:
        """Stack one more policy (e.g. a league snapshot); returns its index."""
        k = len(self.models)
        for key, p in self._slots(model).items():
            stack = self.params[key]
            if k == len(stack):  # full: double, so n appends copy O(n) slots, not O(n^2)
                grown = stack.new_empty((2 * k, *stack.shape[1:]))
                grown[:k] = stack
                self.params[key] = stack = grown
            stack[k].copy_(p)
        self.models.append(model)
        return k

    @torch.no_grad()
    def refresh(self, k: int) -> None:
        """Re-read policy ``k``'s weights into its slot (after its model changed)."""
        for key, p in self._slots(self.models[k]).items():
            self.params[key][k].copy_(p)

    # ---------------------------------------------------------------- forward
    @staticmethod
    def _affine(bias: Tensor, x: Tensor, weight: Tensor) -> Tensor:
        """``x[s, B, in] @ weight[s, in, out] + bias[s, out]``. On the CPU at up to
        ``_KERNEL_ROWS`` agents per policy (a round's usual 1-4) through
        :func:`gristmill.kernels.stacked_linear.stacked_linear`, which streams the weights
        at close to memory speed where ``baddbmm`` does not (4 policies x 2 agents through
        the 2,304 -> 512 layer: 1.1 against 2.3 ms); ``baddbmm`` otherwise."""
        if (x.device.type == "cpu" and x.shape[1] <= _KERNEL_ROWS
                and x.dtype == weight.dtype == bias.dtype
                and x.dtype in (torch.float32, torch.float64)
                and not (x.requires_grad or weight.requires_grad or bias.requires_grad)):
            return torch.from_numpy(stacked_linear(x.numpy(), weight.numpy(), bias.numpy()))
        return torch.baddbmm(bias.unsqueeze(1), x, weight)

    @classmethod
    def _linear(cls, x: Tensor, w: dict[str, Tensor], name: str) -> Tensor:
        """``x[s, B, in]`` through the ``s`` policies' linear layer ``name``."""
        return cls._affine(w[f"{name}.bias"], x, w[f"{name}.weight"])

    def _mlp(self, seq: nn.Sequential, name: str, x: Tensor, w: dict[str, Tensor]) -> Tensor:
        for i, layer in enumerate(seq):
            x = self._linear(x, w, f"{name}.{i}") if isinstance(layer, nn.Linear) else layer(x)
        return x

    def _core(self, x: Tensor, state: Tensor, w: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """One recurrent step on ``[s, B, ...]``: ``torch.nn.GRUCell`` / ``LSTMCell``'s
        equations and gate order (r, z, n / i, f, g, o)."""
        core = self.template.core
        if core is None:
            return x, state
        gi = self._affine(w["core.bias_ih"], x, w["core.weight_ih"])
        if isinstance(core, nn.GRUCell):
            gh = self._affine(w["core.bias_hh"], state, w["core.weight_hh"])
            i_r, i_z, i_n = gi.chunk(3, -1)
            h_r, h_z, h_n = gh.chunk(3, -1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = n + z * (state - n)  # (1 - z) * n + z * h
            return h, h
        h, c = state.chunk(2, dim=-1)
        gates = gi + self._affine(w["core.bias_hh"], h.contiguous(), w["core.weight_hh"])
        i, f, g, o = gates.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, torch.cat([h, c], dim=-1)

    def forward(
        self, feats: dict[str, Tensor], state: Tensor, index
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The stacked layers: ``feats`` holds the conv features ``[s, B, F]`` under the image
        key and the normalised vectors ``[s, B, D]``; ``state`` is ``[s, B, S]``; ``index``
        picks the ``s`` policies (a slice or an index tensor into the stack).
        Returns ``(logits[s, B, L], values[s, B], new_state[s, B, S])``."""
        w = {key: p[index] for key, p in self.params.items()}
        enc = self.template.encoder
        parts = []
        if enc.image_key is not None:
            parts.append(self._mlp(enc.conv_mlp, "encoder.conv_mlp", feats[enc.image_key], w))
        for key in enc.vector_keys:
            parts.append(self._mlp(enc.vector_mlps[key], f"encoder.vector_mlps.{key}",
                                   feats[key], w))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        out, new_state = self._core(x, state, w)
        logits = self._linear(out, w, "policy_head")
        values = self._linear(out, w, "value_head").squeeze(-1)
        return logits, values, new_state

    @torch.no_grad()
    def act(self, groups: Sequence[Group], deterministic: bool = False) -> list[dict[str, Tensor]]:
        """:meth:`ActorCritic.act` for every group in one pass; returns one dict per group (in
        order) with its keys: ``actions``, ``log_probs``, ``logits``, ``values``, ``state``.

        The policies run are the span ``min..max`` of the groups' ids (views of the stack; an
        id in between with no agents costs a padded group) unless that is over twice the
        groups, then just theirs (a gathered copy of their weights).
        """
        ids = [int(k) for k, _, _ in groups]
        if len(set(ids)) != len(ids) or not ids:
            raise ValueError(f"PolicyStack.act: one group per policy, got policy ids {ids}")
        bad = [k for k in ids if not 0 <= k < len(self.models)]
        if bad:
            raise ValueError(f"PolicyStack.act: no policy {bad} (stack of {len(self.models)})")
        lo, hi = min(ids), max(ids)
        if hi - lo + 1 <= 2 * len(ids):
            index, pos, s = slice(lo, hi + 1), [k - lo for k in ids], hi - lo + 1
        else:
            index = torch.tensor(ids, device=self.params["policy_head.bias"].device)
            pos, s = list(range(len(ids))), len(ids)
        sizes = [len(st) for _, _, st in groups]
        b = max(sizes)
        image_key = self.template.encoder.image_key
        feats: dict[str, Tensor] = {}
        state = groups[0][2].new_zeros((s, b, groups[0][2].shape[-1]))
        for (k, obs, st), p, n in zip(groups, pos, sizes):
            model = self.models[k]
            nobs = model.normalize_obs(obs)
            if image_key is not None:
                nobs[image_key] = model.encoder.conv_features(nobs)
            for key, v in nobs.items():
                if key not in feats:
                    feats[key] = v.new_zeros((s, b, *v.shape[1:]))
                feats[key][p, :n] = v
            state[p, :n] = st
        logits, values, new_state = self.forward(feats, state, index)
        flat = torch.cat([logits[p, :n] for p, n in zip(pos, sizes)])
        dist = self.template.distribution(flat)
        actions = dist.deterministic() if deterministic else dist.sample()
        log_probs = dist.log_prob(actions)
        out, start = [], 0
        for p, n in zip(pos, sizes):
            rows = slice(start, start + n)
            out.append(
                {
                    "actions": actions[rows],
                    "log_probs": log_probs[rows],
                    "logits": logits[p, :n],
                    "values": values[p, :n],
                    "state": new_state[p, :n],
                }
            )
            start += n
        return out

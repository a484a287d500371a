"""The policies of a Doom run on both sides: learners (training) and inference copies (acting).

Each of the run's N policies has an :class:`~gristmill.learners.APPOLearner` (model and
optimizer, trained on the learner thread) and an inference copy of its model (read by the
inference thread), with the version that copy holds. :meth:`PolicySet.publish` copies a
learner's weights to its inference copy. :meth:`PolicySet.policy_fn` and
:meth:`PolicySet.policies_fn` serve the inference server
(:mod:`gristmill.samplers.inference_server`): a batch of several policies runs as one forward
pass over their stacked weights (:class:`~gristmill.learners.policy_stack.PolicyStack`, built
at the first such batch, so a single-policy run never pays for it). One lock covers the copies
and the stack, so a forward pass never reads weights half-copied.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

import numpy as np
import torch
from gristmill.learners import APPOLearner, PolicyStack

__all__ = ["PolicySet"]


class PolicySet:
    """``learners[k]`` trains policy ``k``; ``policy_fn(k, ...)`` acts with its latest copy;
    ids past the learners are frozen snapshots (:meth:`add_frozen`)."""

    def __init__(self, learners: Sequence[APPOLearner], device: torch.device):
        self.learners = list(learners)
        self.device = device
        self.infer = [copy.deepcopy(lr.model).eval() for lr in self.learners]
        self.versions = [lr.train_step for lr in self.learners]
        self.stack: PolicyStack | None = None
        self.lock = threading.Lock()

    def __len__(self) -> int:
        """Learning policies (ids ``0..N-1``); frozen snapshots follow them."""
        return len(self.learners)

    def add_frozen(self, model, version: int) -> int:
        """A frozen policy (a league snapshot) that acts but never trains; returns its id."""
        with self.lock:
            self.infer.append(model.to(self.device).eval())
            self.versions.append(version)
            if self.stack is not None:
                self.stack.append(self.infer[-1])
            return len(self.infer) - 1

    def publish(self, k: int) -> None:
        """Policy ``k``'s trained weights (and version) become the ones that act."""
        lr = self.learners[k]
        self.load(k, lr.model.state_dict(), lr.train_step)

    def load(self, k: int, weights: dict, version: int) -> None:
        """Policy ``k`` acts with ``weights`` (a state dict) from now on, as ``version``."""
        with self.lock:
            self.infer[k].load_state_dict(weights)
            self.versions[k] = version
            if self.stack is not None:
                self.stack.refresh(k)

    def policy_fn(self, policy_id: int, obs, state: np.ndarray) -> dict:
        """The inference server's ``policy_fn`` (slot-array names in, NumPy out)."""
        obs, state = self._tensors(obs, state)
        with self.lock:
            out = self.infer[policy_id].act(obs, state)
            version = self.versions[policy_id]
        return self._numpy(out, version)

    def policies_fn(self, groups: list) -> list[dict]:
        """The inference server's ``policies_fn``: the groups ``[(policy_id, obs, state),
        ...]`` of a batch in one forward pass; a lone group goes to :meth:`policy_fn` (a
        single-policy run acts as it always has)."""
        if len(groups) == 1:
            return [self.policy_fn(*groups[0])]
        tensors = [(k, *self._tensors(obs, state)) for k, obs, state in groups]
        with self.lock:
            if self.stack is None:
                self.stack = PolicyStack(self.infer)
            outs = self.stack.act(tensors)
            versions = [self.versions[k] for k, _, _ in groups]
        return [self._numpy(out, v) for out, v in zip(outs, versions)]

    def _tensors(self, obs, state: np.ndarray) -> tuple[dict, torch.Tensor]:
        dev = self.device
        obs = {k: torch.from_numpy(v).to(dev) for k, v in obs.items()}
        return obs, torch.from_numpy(state).to(dev)

    @staticmethod
    def _numpy(out: dict, version: int) -> dict:
        """An ``act`` output as the server's slot-array names, in NumPy."""
        return {
            "actions": out["actions"].cpu().numpy(),
            "log_prob_actions": out["log_probs"].cpu().numpy(),
            "action_logits": out["logits"].cpu().numpy(),
            "values": out["values"].cpu().numpy(),
            "rnn_states": out["state"].cpu().numpy(),
            "version": version,
        }

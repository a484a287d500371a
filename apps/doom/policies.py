"""The policies of a Doom run on both sides: learners (training) and inference copies (acting).

Each of the run's N policies has an :class:`~gristmill.learners.APPOLearner` (model and
optimizer, trained on the learner thread) and an inference copy of its model (read by the
inference thread), with the version that copy holds. :meth:`PolicySet.publish` copies a
learner's weights to its inference copy; :meth:`PolicySet.policy_fn` is the inference server's
``policy_fn`` (:mod:`gristmill.samplers.inference_server`). One lock covers the copies, so a
forward pass never reads weights half-copied.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

import numpy as np
import torch
from gristmill.learners import APPOLearner

__all__ = ["PolicySet"]


class PolicySet:
    """``learners[k]`` trains policy ``k``; ``policy_fn(k, ...)`` acts with its latest copy;
    ids past the learners are frozen snapshots (:meth:`add_frozen`)."""

    def __init__(self, learners: Sequence[APPOLearner], device: torch.device):
        self.learners = list(learners)
        self.device = device
        self.infer = [copy.deepcopy(lr.model).eval() for lr in self.learners]
        self.versions = [lr.train_step for lr in self.learners]
        self.lock = threading.Lock()

    def __len__(self) -> int:
        """Learning policies (ids ``0..N-1``); frozen snapshots follow them."""
        return len(self.learners)

    def add_frozen(self, model, version: int) -> int:
        """A frozen policy (a league snapshot) that acts but never trains; returns its id."""
        with self.lock:
            self.infer.append(model.to(self.device).eval())
            self.versions.append(version)
            return len(self.infer) - 1

    def publish(self, k: int) -> None:
        """Policy ``k``'s trained weights (and version) become the ones that act."""
        lr = self.learners[k]
        with self.lock:
            self.infer[k].load_state_dict(lr.model.state_dict())
            self.versions[k] = lr.train_step

    def policy_fn(self, policy_id: int, obs, state: np.ndarray) -> dict:
        """The inference server's ``policy_fn`` (slot-array names in, NumPy out)."""
        dev = self.device
        obs = {k: torch.from_numpy(v).to(dev) for k, v in obs.items()}
        with self.lock:
            out = self.infer[policy_id].act(obs, torch.from_numpy(state).to(dev))
            version = self.versions[policy_id]
        return {
            "actions": out["actions"].cpu().numpy(),
            "log_prob_actions": out["log_probs"].cpu().numpy(),
            "action_logits": out["logits"].cpu().numpy(),
            "values": out["values"].cpu().numpy(),
            "rnn_states": out["state"].cpu().numpy(),
            "version": version,
        }

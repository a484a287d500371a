"""A population of learning policies plus frozen snapshots and fixed members, saved as one.

Members are named strings, the same names as in the :class:`~.payoff.PayoffTable`:

- **policies** ``p0 .. p<N-1>``: each has its own model, optimizer, hyperparameters, reward
  shaping, version counter (the learner's train step) and env-step count, and its checkpoints
  in ``<directory>/checkpoints/p<k>/checkpoint_<version:09d>_<env_steps>.pt``;
- **snapshots** (``p<k>@<version>`` by default): frozen copies of a policy's weights, league
  opponents whose experience is not trained on (Sample Factory has none; AlphaStar's
  ``Historical`` players), in ``<directory>/checkpoints/snapshots/<name>.pt``;
- **fixed** members: scripted bots and other outside players, known only by name.

The population is generic: it builds models and optimizers with the app's factories
(``make_model()`` and ``make_optimizer(model, hyperparameters)``), so Doom's ActorCritic + Adam
and the Generals network both fit. It does not train: the app trains ``policy.model`` with
``policy.optimizer``, keeps ``policy.version`` / ``policy.env_steps`` current and reads the
other hyperparameters from ``policy.hyperparameters``.

**Saving.** :meth:`Population.save` writes each policy's checkpoint (model, optimizer,
version, env steps, hyperparameters, shaping, the app's ``extra``) atomically, then the
manifest ``<directory>/population.json`` naming those files, with the snapshots, the payoff
table, the rating table and the state of every registered component (PBT, match-makers...),
and only then prunes each policy to its ``keep`` newest checkpoints. A run killed at any point
resumes (:meth:`Population.load`) from the last complete manifest, exactly.

Not thread-safe: an app whose learner and inference threads share a policy serialises
:meth:`Population.save`, :meth:`Population.copy_policy` and its own training steps itself.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from gristmill.learners.league.payoff import PayoffTable
from gristmill.learners.league.ratings import RatingTable, fit_ratings
from gristmill.learners.league.storage import (
    atomic_torch_save,
    atomic_write_json,
    checkpoint_name,
    prune_checkpoints,
    read_json,
    torch_load,
)
from torch import nn

__all__ = ["Policy", "Population", "Snapshot", "Stateful", "load_member_weights"]

MANIFEST = "population.json"
_FORMAT = 1


class Stateful(Protocol):
    """A component saved with the population: JSON-able state in, same state out."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class Policy:
    """One learning member. ``extra`` is the app's own per-policy state (torch-saveable)."""

    index: int
    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    hyperparameters: dict
    reward_shaping: dict | None = None
    version: int = 0
    env_steps: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class Snapshot:
    """A frozen member: the weights of ``parent`` at ``version`` (CPU tensors)."""

    name: str
    parent: str
    version: int
    env_steps: int
    path: str
    weights: dict[str, torch.Tensor] | None = None  # loaded on first use


class Population:
    """N learning policies, frozen snapshots and fixed members, saved and resumed as one.

    Args:
      directory: the experiment directory (checkpoints and ``population.json`` go here).
      num_policies: N.
      make_model: ``() -> nn.Module``; every member has this architecture.
      make_optimizer: ``(model, hyperparameters) -> Optimizer``.
      hyperparameters: one dict for every policy, or N dicts (e.g. from ``PBT.initial()``).
      reward_shaping: one shaping dict (or None) for every policy, or N of them.
      keep: checkpoints kept per policy (>= 1).
      device: where the policies' models live (snapshots stay on the CPU until used).
      payoff: the payoff table (default: a new one); the policies are added to it.
    """

    def __init__(
        self,
        directory: str,
        num_policies: int,
        make_model: Callable[[], nn.Module],
        make_optimizer: Callable[[nn.Module, Mapping], torch.optim.Optimizer],
        hyperparameters: Mapping | Sequence[Mapping],
        reward_shaping: Mapping | None | Sequence[Mapping | None] = None,
        keep: int = 2,
        device: str | torch.device = "cpu",
        payoff: PayoffTable | None = None,
    ):
        if num_policies < 1:
            raise ValueError(f"num_policies must be >= 1, got {num_policies}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = str(directory)
        self.num_policies = num_policies
        self.make_model = make_model
        self.make_optimizer = make_optimizer
        self.keep = keep
        self.device = torch.device(device)
        self.payoff = payoff if payoff is not None else PayoffTable()
        self.ratings: RatingTable | None = None
        self.snapshots: dict[str, Snapshot] = {}
        self.fixed: list[str] = []
        self._components: dict[str, Stateful] = {}
        self._optional: set[str] = set()
        self._checkpoints: list[str | None] = [None] * num_policies
        if hyperparameters is None:
            raise ValueError("hyperparameters are required (a dict, or one per policy)")
        hps = _per_policy(hyperparameters, num_policies, "hyperparameters")
        shapings = _per_policy(reward_shaping, num_policies, "reward_shaping")
        self.policies: list[Policy] = []
        for k in range(num_policies):
            model = make_model().to(self.device)
            hp = copy.deepcopy(dict(hps[k]))
            name = f"p{k}"
            self.policies.append(
                Policy(
                    index=k,
                    name=name,
                    model=model,
                    optimizer=make_optimizer(model, hp),
                    hyperparameters=hp,
                    reward_shaping=copy.deepcopy(dict(shapings[k])) if shapings[k] else None,
                )
            )
            if name not in self.payoff:
                self.payoff.add(name)

    # ------------------------------------------------------------------ members
    def __getitem__(self, name_or_index: str | int) -> Policy:
        if isinstance(name_or_index, int):
            return self.policies[name_or_index]
        for p in self.policies:
            if p.name == name_or_index:
                return p
        raise KeyError(f"{name_or_index!r} is not a learning policy of this population")

    def kind(self, name: str) -> str:
        """``"policy"``, ``"snapshot"`` or ``"fixed"``."""
        if any(p.name == name for p in self.policies):
            return "policy"
        if name in self.snapshots:
            return "snapshot"
        if name in self.fixed:
            return "fixed"
        raise KeyError(f"{name!r} is not a member of this population")

    @property
    def members(self) -> list[str]:
        """Every member name, in payoff-table order."""
        return self.payoff.members

    def is_learning(self, name: str) -> bool:
        """Whether experience of ``name`` is trained on (only the policies')."""
        return self.kind(name) == "policy"

    def add_fixed(self, name: str) -> None:
        """A member known only by name (a scripted bot); it joins the payoff table."""
        if name in self.payoff:
            raise ValueError(f"{name!r} is already a member")
        self.payoff.add(name)
        self.fixed.append(name)

    def add_snapshot(self, policy: int | str, name: str | None = None) -> str:
        """Freeze the current weights of ``policy`` as a new member; returns its name.

        The weights are written at once (atomically) to ``checkpoints/snapshots/<name>.pt``.
        """
        p = self[policy]
        name = name or f"{p.name}@{p.version}"
        if name in self.payoff:
            raise ValueError(f"{name!r} is already a member")
        if "/" in name or name.startswith("."):
            raise ValueError(f"snapshot name {name!r} must be a plain file name")
        weights = {k: v.detach().to("cpu", copy=True) for k, v in p.model.state_dict().items()}
        path = os.path.join("checkpoints", "snapshots", f"{name}.pt")
        record = {"parent": p.name, "version": p.version, "env_steps": p.env_steps}
        atomic_torch_save({"model": weights, **record}, os.path.join(self.directory, path))
        self.snapshots[name] = Snapshot(name=name, path=path, weights=weights, **record)
        self.payoff.add(name)
        return name

    def snapshot_weights(self, name: str) -> dict[str, torch.Tensor]:
        """The frozen weights of snapshot ``name`` (CPU tensors; read from disk once)."""
        if name not in self.snapshots:
            raise KeyError(f"{name!r} is not a snapshot of this population")
        snap = self.snapshots[name]
        if snap.weights is None:
            snap.weights = torch_load(os.path.join(self.directory, snap.path))["model"]
        return snap.weights

    def snapshot_model(self, name: str, device: str | torch.device | None = None) -> nn.Module:
        """A new model holding snapshot ``name``'s weights, in eval mode, without gradients."""
        model = self.make_model()
        model.load_state_dict(self.snapshot_weights(name))
        model.to(self.device if device is None else device).eval()
        model.requires_grad_(False)
        return model

    # ------------------------------------------------------------------ PBT
    def copy_policy(self, receiver: int, donor: int, version_jump: int) -> None:
        """Sample Factory's PBT replacement: ``receiver`` takes ``donor``'s weights and
        optimizer state; its version grows by ``version_jump`` (``max_policy_lag + 1``, so that
        samples in flight from its old weights are masked); its env-step count is kept."""
        if receiver == donor:
            raise ValueError(f"policy {receiver} cannot replace itself")
        r, d = self[receiver], self[donor]
        r.model.load_state_dict(d.model.state_dict())
        # deep copy: load_state_dict may alias the donor's state tensors
        r.optimizer.load_state_dict(copy.deepcopy(d.optimizer.state_dict()))
        r.version += int(version_jump)

    def set_hyperparameters(
        self, policy: int, hyperparameters: Mapping, reward_shaping: Mapping | None = None
    ) -> None:
        """Replace a policy's hyperparameters (and shaping); a ``learning_rate`` goes to its
        optimizer's parameter groups at once (as Sample Factory's learner does)."""
        p = self[policy]
        p.hyperparameters.update(copy.deepcopy(dict(hyperparameters)))
        if reward_shaping is not None:
            p.reward_shaping = copy.deepcopy(dict(reward_shaping))
        if "learning_rate" in hyperparameters:
            for group in p.optimizer.param_groups:
                group["lr"] = float(hyperparameters["learning_rate"])

    def apply(self, decision) -> None:
        """Apply a :class:`~.pbt.PBTDecision`: copy the donor (if any), then set values."""
        if decision.donor is not None:
            self.copy_policy(decision.policy, decision.donor, decision.version_jump)
        self.set_hyperparameters(decision.policy, decision.hyperparameters, decision.reward_shaping)

    # ------------------------------------------------------------------ ratings
    def update_ratings(self, anchor: str, **kwargs: Any) -> RatingTable:
        """Refit the rating table from the payoff table's match record (see
        :func:`~.ratings.fit_ratings` for ``kwargs``); kept and saved with the population."""
        self.ratings = fit_ratings(self.payoff.members, self.payoff.record, anchor, **kwargs)
        return self.ratings

    # ------------------------------------------------------------------ persistence
    def register(self, name: str, component: Stateful, required: bool = True) -> None:
        """Save ``component.state_dict()`` with the population and restore it on :meth:`load`.
        A manifest without the state of a ``required=False`` component (written before it
        existed) leaves it as it is; a required one is an error."""
        if name in self._components:
            raise ValueError(f"a component named {name!r} is already registered")
        self._components[name] = component
        if not required:
            self._optional.add(name)

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.directory, MANIFEST)

    def has_checkpoint(self) -> bool:
        return os.path.exists(self.manifest_path)

    def policy_dir(self, k: int) -> str:
        return os.path.join(self.directory, "checkpoints", f"p{k}")

    def save(self, policies: Sequence[int] | None = None) -> str:
        """Checkpoint ``policies`` (default: all), then the manifest; returns its path.

        Policies not saved now stay at their previous checkpoint in the manifest.
        """
        which = list(range(self.num_policies)) if policies is None else [int(k) for k in policies]
        unsaved = [k for k, c in enumerate(self._checkpoints) if c is None and k not in which]
        if unsaved:
            raise RuntimeError(f"policies {unsaved} were never saved; save them all first")
        for k in which:
            p = self[k]
            rel = os.path.join("checkpoints", f"p{k}", checkpoint_name(p.version, p.env_steps))
            atomic_torch_save(
                {
                    "model": p.model.state_dict(),
                    "optimizer": p.optimizer.state_dict(),
                    "version": p.version,
                    "env_steps": p.env_steps,
                    "hyperparameters": p.hyperparameters,
                    "reward_shaping": p.reward_shaping,
                    "extra": p.extra,
                },
                os.path.join(self.directory, rel),
            )
            self._checkpoints[k] = rel
        manifest = {
            "format": _FORMAT,
            "num_policies": self.num_policies,
            "policies": [
                {
                    "name": p.name,
                    "checkpoint": self._checkpoints[p.index],
                    "version": p.version,
                    "env_steps": p.env_steps,
                    "hyperparameters": p.hyperparameters,
                    "reward_shaping": p.reward_shaping,
                }
                for p in self.policies
            ],
            "snapshots": [
                {
                    "name": s.name,
                    "parent": s.parent,
                    "version": s.version,
                    "env_steps": s.env_steps,
                    "path": s.path,
                }
                for s in self.snapshots.values()
            ],
            "fixed": list(self.fixed),
            "payoff": self.payoff.state_dict(),
            "ratings": None if self.ratings is None else self.ratings.state_dict(),
            "components": {n: c.state_dict() for n, c in self._components.items()},
        }
        atomic_write_json(manifest, self.manifest_path)
        for k in which:
            self._prune(k)
        return self.manifest_path

    def _prune(self, k: int) -> None:
        current = os.path.join(self.directory, self._checkpoints[k])  # the manifest's: kept
        prune_checkpoints(self.policy_dir(k), self.keep, protect=current)

    def load(self) -> None:
        """Restore everything from the manifest: each policy's model, optimizer, version, env
        steps, hyperparameters, shaping and ``extra``; snapshots, fixed members, the payoff
        and rating tables and every registered component's state."""
        if not self.has_checkpoint():
            raise FileNotFoundError(f"no population checkpoint at {self.manifest_path}")
        m = read_json(self.manifest_path)
        if m.get("format") != _FORMAT:
            raise ValueError(f"{self.manifest_path} has format {m.get('format')}, not {_FORMAT}")
        if m["num_policies"] != self.num_policies:
            raise ValueError(
                f"{self.manifest_path} holds {m['num_policies']} policies; this population "
                f"has {self.num_policies}"
            )
        missing = [n for n in self._components
                   if n not in m["components"] and n not in self._optional]
        if missing:
            raise ValueError(f"{self.manifest_path} holds no state for components {missing}")
        states = [
            torch_load(os.path.join(self.directory, e["checkpoint"]), self.device)
            for e in m["policies"]
        ]
        for p, entry, state in zip(self.policies, m["policies"], states):
            p.model.load_state_dict(state["model"])
            p.optimizer.load_state_dict(state["optimizer"])
            p.version = int(state["version"])
            p.env_steps = int(state["env_steps"])
            p.hyperparameters = state["hyperparameters"]
            p.reward_shaping = state["reward_shaping"]
            p.extra = state["extra"]
            self._checkpoints[p.index] = entry["checkpoint"]
        self.snapshots = {
            s["name"]: Snapshot(
                name=s["name"],
                parent=s["parent"],
                version=int(s["version"]),
                env_steps=int(s["env_steps"]),
                path=s["path"],
            )
            for s in m["snapshots"]
        }
        for s in self.snapshots.values():
            if not os.path.exists(os.path.join(self.directory, s.path)):
                raise FileNotFoundError(f"snapshot {s.name}'s weights {s.path} are missing")
        self.fixed = list(m["fixed"])
        self.payoff.load_state_dict(m["payoff"])
        self.ratings = None if m["ratings"] is None else RatingTable.from_state_dict(m["ratings"])
        for name, component in self._components.items():
            if name in m["components"]:
                component.load_state_dict(m["components"][name])


def load_member_weights(
    directory: str, name: str, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """The weights of member ``name`` (a policy ``p<k>`` or a snapshot) of the population saved
    in ``directory``, as its last complete manifest names them -- for ``eval`` and ``match``
    without building the population."""
    path = os.path.join(str(directory), MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no population checkpoint at {path}")
    m = read_json(path)
    files = {e["name"]: e["checkpoint"] for e in m["policies"]}
    files.update({e["name"]: e["path"] for e in m["snapshots"]})
    if name not in files:
        what = "a fixed member and has no weights" if name in m["fixed"] else "not a member"
        raise KeyError(f"{name!r} is {what} of the population in {directory}; has {list(files)}")
    return torch_load(os.path.join(str(directory), files[name]), device)["model"]


def _per_policy(value, n: int, what: str) -> list:
    if value is None or isinstance(value, Mapping):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{what}: {len(values)} entries for {n} policies")
    for v in values:
        if v is not None and not isinstance(v, Mapping):
            raise ValueError(f"{what} entries must be dicts, got {type(v).__name__}")
    return values

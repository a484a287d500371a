"""Population-based training with Sample Factory 2.1.1's rules, as pure decisions.

Jaderberg et al., "Population Based Training of Neural Networks", arXiv 1711.09846, as
implemented by Sample Factory 2.1.1 (``sample_factory/pbt/population_based_training.py``);
the names and defaults of :class:`PBTConfig` are its ``--pbt_*`` options. The rules:

- **Start.** Policy 0 keeps the defaults; every other policy starts from a perturbed copy of
  the default hyperparameters, then of the default reward shaping (:meth:`PBT.initial`).
- **When.** Policy ``p`` is updated when its env steps are ``>= pbt_start_mutation`` and more
  than ``pbt_period_env_steps`` past its last update (each policy on its own clock; the clock
  restarts even when the update found no data).
- **Rank.** Policies are sorted by the mean ``pbt_target_objective`` of their last
  ``stats_avg`` (100) episodes, best first (ties: higher policy index first); nothing happens
  until every policy has at least one episode. ``n = ceil(pbt_replace_fraction * N)``; the
  first ``n`` are the best, the last ``n`` the worst.
- **Exploit.** A best policy is left alone. A worst policy draws a donor uniformly among the
  best and copies its weights (and optimizer state) when the gap passes *both* thresholds:
  ``|d| > pbt_replace_reward_gap_absolute`` and ``|d / (donor + 1e-8)| > pbt_replace_reward_gap``
  with ``d = donor - self`` (Sample Factory notes the relative gap "might not work correctly
  with negative rewards"). The receiver keeps its env-step count; its version jumps by
  ``max_policy_lag + 1`` so that samples in flight from its old weights are all masked.
- **Explore.** Every updated policy other than 0 takes a perturbed copy of the hyperparameters
  and reward shaping of its source (the donor, or itself). Policy 0 is never perturbed: it
  takes the donor's values unchanged (or keeps its own).
- **Perturb one value** (each leaf; tuple elements separately): with probability
  ``pbt_mutation_rate`` (0.15) it mutates; a value already different from its default is then
  reset to the default with probability 0.01 (so 0.15 % per leaf); otherwise floats are
  multiplied or divided (a fair coin) by ``U[pbt_perturb_min, pbt_perturb_max]`` = U[1.1, 1.5];
  ``gamma`` and ``adam_beta1`` perturb ``1 - x`` by U[1.01, 1.2] (kept >= 1e-8); ``vtrace_rho``
  and ``vtrace_c`` by 1.005; booleans flip.

The class draws every random number from the ``numpy.random.Generator`` it is given, in the
order Sample Factory draws from :mod:`random` (``random()`` for coins, ``lo + (hi - lo) *
random()`` for uniforms, ``integers(n)`` for a choice), so that fed the same draws it makes
Sample Factory's decisions exactly (checked by ``tests/learners/league/test_pbt.py`` against
the stored output of Sample Factory's own code). It holds no weights: :meth:`PBT.step` takes
per-policy statistics and returns :class:`PBTDecision` objects that the app applies (copy the
donor's weights, bump the version, set the hyperparameters and shaping), and it appends every
event to a JSON-lines log.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "HYPERPARAMS_TO_TUNE",
    "Mutation",
    "PBT",
    "PBTConfig",
    "PBTDecision",
    "REWARD_CATEGORIES_TO_TUNE",
    "pbt_scalars",
    "tuned_hyperparameters",
]

EPS = 1e-8  # Sample Factory's algo.utils.misc.EPS

# Sample Factory's set, in a fixed order (the order in which values draw their random numbers).
HYPERPARAMS_TO_TUNE = (
    "learning_rate",
    "exploration_loss_coeff",
    "value_loss_coeff",
    "max_grad_norm",
    "ppo_clip_ratio",
    "ppo_clip_value",
)
# Doom envs tune only these reward-shaping categories (Sample Factory: env names "doom_*").
REWARD_CATEGORIES_TO_TUNE = ("delta", "selected_weapon")

_EXP_DECAY = ("gamma", "adam_beta1")  # perturbed through 1 - x by U[1.01, 1.2]
_VTRACE = ("vtrace_rho", "vtrace_c")  # x/÷ 1.005


@dataclass(frozen=True)
class PBTConfig:
    """Sample Factory 2.1.1's PBT options (same names, same defaults)."""

    num_policies: int
    pbt_period_env_steps: int = 5_000_000
    pbt_start_mutation: int = 20_000_000
    pbt_replace_fraction: float = 0.3
    pbt_mutation_rate: float = 0.15
    pbt_replace_reward_gap: float = 0.1
    pbt_replace_reward_gap_absolute: float = 1e-6
    pbt_optimize_gamma: bool = False
    pbt_target_objective: str = "true_objective"
    pbt_perturb_min: float = 1.1
    pbt_perturb_max: float = 1.5
    max_policy_lag: int = 1000
    stats_avg: int = 100

    def __post_init__(self):
        if self.num_policies < 1:
            raise ValueError(f"num_policies must be >= 1, got {self.num_policies}")
        if not 0.0 < self.pbt_replace_fraction <= 0.5:
            # above 0.5 the best and worst sets overlap for every N
            raise ValueError(
                f"pbt_replace_fraction must be in (0, 0.5], got {self.pbt_replace_fraction}"
            )
        if not 0.0 <= self.pbt_mutation_rate <= 1.0:
            raise ValueError(f"pbt_mutation_rate must be in [0, 1], got {self.pbt_mutation_rate}")
        if not 1.0 <= self.pbt_perturb_min <= self.pbt_perturb_max:
            raise ValueError(
                "need 1 <= pbt_perturb_min <= pbt_perturb_max, got "
                f"{self.pbt_perturb_min}, {self.pbt_perturb_max}"
            )
        if self.pbt_period_env_steps < 0 or self.pbt_start_mutation < 0:
            raise ValueError("pbt_period_env_steps and pbt_start_mutation must be >= 0")
        if self.max_policy_lag < 0 or self.stats_avg < 1:
            raise ValueError("max_policy_lag must be >= 0 and stats_avg >= 1")


def tuned_hyperparameters(cfg: PBTConfig) -> tuple[str, ...]:
    """Names PBT tunes: Sample Factory's set, plus ``gamma`` with ``pbt_optimize_gamma``."""
    return HYPERPARAMS_TO_TUNE + (("gamma",) if cfg.pbt_optimize_gamma else ())


@dataclass
class Mutation:
    """One changed value: ``path`` is its keys (and tuple index) from the dict's root."""

    path: tuple
    before: Any
    after: Any
    kind: str  # "perturb", "flip" or "default"


@dataclass
class PBTDecision:
    """What the app applies to ``policy`` (in this order).

    1. If ``donor`` is not None: copy the donor's weights and optimizer state into ``policy``
       and add ``version_jump`` (= ``max_policy_lag + 1``) to its version; env steps are kept.
    2. Set its hyperparameters and reward shaping to the given dicts.
    """

    policy: int
    env_steps: int
    donor: int | None
    version_jump: int
    hyperparameters: dict
    reward_shaping: dict | None
    mutations: list[Mutation] = field(default_factory=list)
    objectives: list[float] = field(default_factory=list)
    best: list[int] = field(default_factory=list)
    worst: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        d = asdict(self)
        d["mutations"] = [_mutation_json(m) for m in self.mutations]
        return d


class PBT:
    """Sample Factory's PBT controller without the processes: statistics in, decisions out.

    Args:
      cfg: :class:`PBTConfig`.
      defaults: default value of every tuned hyperparameter (e.g. the app's config values for
        :func:`tuned_hyperparameters`); its key order is the order values are perturbed in.
      default_reward_shaping: the env's default shaping scheme (a nested dict whose leaves are
        floats, bools or tuples of them), or None when the env has none.
      reward_categories: top-level shaping keys to tune (Doom: :data:`REWARD_CATEGORIES_TO_TUNE`);
        None tunes the whole scheme.
      rng: the random generator (its state is part of :meth:`state_dict`).
      log_path: JSON-lines file that every event is appended to (None: no log).
    """

    def __init__(
        self,
        cfg: PBTConfig,
        defaults: Mapping[str, Any],
        default_reward_shaping: Mapping | None = None,
        reward_categories: Sequence[str] | None = None,
        rng: np.random.Generator | None = None,
        log_path: str | None = None,
    ):
        if "batch_size" in defaults:
            raise ValueError("PBT cannot tune batch_size (Sample Factory 2.1.1 disables it)")
        self.cfg = cfg
        self.defaults = dict(defaults)
        self.default_reward_shaping = copy.deepcopy(
            dict(default_reward_shaping) if default_reward_shaping is not None else None
        )
        self.reward_categories = tuple(reward_categories) if reward_categories else ()
        self.rng = rng if rng is not None else np.random.default_rng()
        self.log_path = log_path
        self.last_update = [0] * cfg.num_policies

    # ------------------------------------------------------------------ start
    def initial(self) -> tuple[list[dict], list[dict | None]]:
        """Starting hyperparameters and shaping per policy: 0 the defaults, others perturbed.

        Sample Factory draws every policy's hyperparameters first, then every shaping.
        """
        n = self.cfg.num_policies
        hps, mutations = [], [[] for _ in range(n)]
        for p in range(n):
            hp = dict(self.defaults)
            if p > 0:
                hp = self._perturb(hp, self.defaults, mutations[p])
            hps.append(hp)
        shapings = []
        for p in range(n):
            shaping = copy.deepcopy(self.default_reward_shaping)
            if p > 0:
                shaping = self._perturb_reward(shaping, mutations[p])
            shapings.append(shaping)
        for p in range(n):
            self._log(
                {
                    "event": "init",
                    "policy": p,
                    "hyperparameters": hps[p],
                    "reward_shaping": shapings[p],
                    "mutations": [_mutation_json(m) for m in mutations[p]],
                }
            )
        return hps, shapings

    # ------------------------------------------------------------------ periodic update
    def step(
        self,
        env_steps: Sequence[int | None],
        objectives: Sequence[Sequence[float]],
        hyperparameters: Sequence[Mapping],
        reward_shaping: Sequence[Mapping | None],
    ) -> list[PBTDecision]:
        """Sample Factory's ``on_training_step``: update every policy that is due.

        Args:
          env_steps: ``[N]`` env steps per policy (None: the policy has not reported yet).
          objectives: ``[N]`` sequences of the target objective of each policy's episodes,
            newest last; the mean of the last ``stats_avg`` is the policy's score.
          hyperparameters: ``[N]`` current hyperparameters of each policy; those named in
            ``defaults`` are tuned (in ``defaults`` order), any others are carried along.
          reward_shaping: ``[N]`` current shaping of each policy (None entries if no shaping).

        Returns:
          decisions in policy order. A later policy's update sees the values decided for an
          earlier one in the same call (as in Sample Factory). Best policies get no decision.
        """
        n = self.cfg.num_policies
        for name, seq in (
            ("env_steps", env_steps),
            ("objectives", objectives),
            ("hyperparameters", hyperparameters),
            ("reward_shaping", reward_shaping),
        ):
            if len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries for {n} policies")
        hps = [dict(h) for h in hyperparameters]
        for p, hp in enumerate(hps):
            missing = [k for k in self.defaults if k not in hp]
            if missing:
                raise ValueError(f"policy {p}'s hyperparameters lack tuned values {missing}")
        shapings = [copy.deepcopy(s) for s in reward_shaping]
        decisions: list[PBTDecision] = []
        if n <= 1:
            return decisions
        for p in range(n):
            steps = env_steps[p]
            if steps is None or steps < self.cfg.pbt_start_mutation:
                continue
            if steps - self.last_update[p] > self.cfg.pbt_period_env_steps:
                decision = self._update_policy(p, int(steps), objectives, hps, shapings)
                if decision is not None:
                    hps[p] = decision.hyperparameters
                    shapings[p] = decision.reward_shaping
                    decisions.append(decision)
                    self._log({"event": "update", **decision.to_json()})
                self.last_update[p] = int(steps)
        return decisions

    def _update_policy(self, p, steps, objectives, hps, shapings) -> PBTDecision | None:
        cfg = self.cfg
        if any(len(o) <= 0 for o in objectives):
            return None  # not enough data yet
        means = [float(np.mean(list(o)[-cfg.stats_avg :])) for o in objectives]
        ranked = [q for _, q in sorted(zip(means, range(cfg.num_policies)), reverse=True)]
        k = math.ceil(cfg.pbt_replace_fraction * cfg.num_policies)
        best, worst = ranked[:k], ranked[-k:]
        if p in best:
            return None
        source = p
        if p in worst:
            candidate = best[int(self.rng.integers(len(best)))]
            delta = means[candidate] - means[p]
            relative = abs(delta / (means[candidate] + EPS))
            if (
                abs(delta) > cfg.pbt_replace_reward_gap_absolute
                and relative > cfg.pbt_replace_reward_gap
            ):
                source = candidate
        mutations: list[Mutation] = []
        if p == 0:  # the reference policy: never perturbed, only replaced
            hp, shaping = dict(hps[source]), copy.deepcopy(shapings[source])
        else:
            tuned = {k: hps[source][k] for k in self.defaults}  # other keys pass through
            hp = {**hps[source], **self._perturb(tuned, self.defaults, mutations)}
            shaping = self._perturb_reward(shapings[source], mutations)
        donor = source if source != p else None
        return PBTDecision(
            policy=p,
            env_steps=steps,
            donor=donor,
            version_jump=cfg.max_policy_lag + 1 if donor is not None else 0,
            hyperparameters=hp,
            reward_shaping=shaping,
            mutations=mutations,
            objectives=means,
            best=best,
            worst=worst,
        )

    # ------------------------------------------------------------------ perturbation
    def perturb_hyperparameters(self, hyperparameters: Mapping) -> tuple[dict, list[Mutation]]:
        """Sample Factory's ``_perturb_cfg``: a perturbed copy and what changed."""
        out: list[Mutation] = []
        return self._perturb(hyperparameters, self.defaults, out), out

    def perturb_reward_shaping(self, shaping: Mapping | None) -> tuple[dict | None, list[Mutation]]:
        """Sample Factory's ``_perturb_reward`` (only ``reward_categories`` when given)."""
        out: list[Mutation] = []
        return self._perturb_reward(shaping, out), out

    def _perturb_param(self, value, name: str, default, path: tuple, out: list[Mutation]):
        if self.rng.random() > self.cfg.pbt_mutation_rate:
            return value
        if value != default and self.rng.random() < 0.01:
            out.append(Mutation(path, value, default, "default"))
            return default
        kind = "perturb"
        if name in _EXP_DECAY:
            amount = self._uniform(1.01, 1.2)
            new = max(EPS, 1.0 - self._perturb_float(1.0 - value, amount))
        elif name in _VTRACE:
            new = self._perturb_float(value, 1.005)
        elif type(value) is bool:
            new, kind = not value, "flip"
        elif isinstance(value, int | float | np.integer | np.floating):
            amount = self._uniform(self.cfg.pbt_perturb_min, self.cfg.pbt_perturb_max)
            new = self._perturb_float(float(value), amount)
        else:
            raise TypeError(f"PBT cannot perturb {'/'.join(map(str, path))} = {value!r}")
        out.append(Mutation(path, value, new, kind))
        return new

    def _perturb_float(self, x: float, amount: float) -> float:
        return x / amount if self.rng.random() < 0.5 else x * amount

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.rng.random()  # random.uniform's formula

    def _perturb(self, params: Mapping, defaults: Mapping, out: list, prefix: tuple = ()) -> dict:
        """A perturbed deep copy of a (nested) dict; leaves visited in key order."""
        result = {}
        for key, value in params.items():
            if key not in defaults:
                raise KeyError(f"{'/'.join(map(str, prefix + (key,)))} has no default value")
            default = defaults[key]
            if isinstance(value, Mapping):
                result[key] = self._perturb(value, default, out, prefix + (key,))
            elif isinstance(value, tuple | list):
                result[key] = tuple(
                    self._perturb_param(v, f"{key}_{i}", default[i], prefix + (key, i), out)
                    for i, v in enumerate(value)
                )
            else:
                result[key] = self._perturb_param(value, key, default, prefix + (key,), out)
        return result

    def _perturb_reward(self, shaping: Mapping | None, out: list) -> dict | None:
        if shaping is None:
            return None
        shaping = copy.deepcopy(dict(shaping))
        if self.reward_categories:
            for category in self.reward_categories:
                if category in shaping:
                    shaping[category] = self._perturb(
                        shaping[category],
                        self.default_reward_shaping[category],
                        out,
                        (category,),
                    )
            return shaping
        return self._perturb(shaping, self.default_reward_shaping, out)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        """JSON-able: the per-policy update clocks and the generator's state."""
        return {"last_update": list(self.last_update), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        last = [int(x) for x in state["last_update"]]
        if len(last) != self.cfg.num_policies:
            raise ValueError(
                f"PBT state is for {len(last)} policies, this run has {self.cfg.num_policies}"
            )
        self.last_update = last
        self.rng.bit_generator.state = state["rng"]

    def _log(self, record: dict) -> None:
        if self.log_path is None:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")


def pbt_scalars(hyperparameters: Mapping, reward_shaping: Mapping | None) -> dict[str, float]:
    """A policy's PBT values as TensorBoard scalars, named as Sample Factory names them:
    ``zz_pbt/cfg_<key>`` and ``zz_pbt/rew_<leaf key>[_<tuple index>]`` (bools as 0/1)."""
    out: dict[str, float] = {}

    def walk(d: Mapping, prefix: str) -> None:
        for key, value in d.items():
            if isinstance(value, Mapping):
                walk(value, prefix)
            elif isinstance(value, tuple | list):
                for i, v in enumerate(value):
                    out[f"zz_pbt/{prefix}_{key}_{i}"] = float(v)
            elif isinstance(value, bool | int | float | np.integer | np.floating):
                out[f"zz_pbt/{prefix}_{key}"] = float(value)

    walk(hyperparameters, "cfg")
    if reward_shaping is not None:
        walk(reward_shaping, "rew")
    return out


def _mutation_json(m: Mutation) -> dict:
    return {"path": list(m.path), "before": m.before, "after": m.after, "kind": m.kind}


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"PBT log cannot write {type(x).__name__} {x!r}")

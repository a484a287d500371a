"""The policies of a Doom run as a population (Sample Factory's multi-policy training + PBT).

:class:`DoomLeague` builds ``--num_policies`` learners over a
:class:`~gristmill.learners.league.Population` (each policy its own model, optimizer,
hyperparameters, version and checkpoints under ``checkpoints/p<k>/``; one manifest makes a
save atomic across policies), and runs the league's side of the sampling protocol:

- **match-making**: which policy drives each agent of each env, per episode, with Sample
  Factory's modes (:class:`~gristmill.learners.league.AgentPolicyMapping`): ``fixed``
  (``env % N``) or, with ``--pbt_mix_policies_in_one_env`` (its default), a random policy per
  agent, redrawn every 10 episodes of an env. The choice goes into the channels'
  ``next_policy`` and takes effect at the agent's next episode;
- **results**: per-policy episode statistics (reward, length, ``true_objective``, last 100),
  and for multi-agent envs the outcome of every match between two different policies
  (``true_objective`` compared: the higher wins, equal is a draw) into the payoff table;
- **snapshots** (``--snapshot_every_env_steps``): every so many of its frames a policy is
  frozen as a league member (Sample Factory has none; AlphaStar's past players) that acts with
  policy id ``N + i`` but never trains; in two-player envs an agent's opponent is, with
  ``--snapshot_opponent_prob``, a snapshot drawn by PFSP (AlphaStar's hard weighting) from the
  payoff table, so a policy keeps playing the past selves it struggles with;
- **PBT** (``--with_pbt``): Sample Factory 2.1.1's rules (:class:`~gristmill.learners.league.PBT`)
  every ``--pbt_period_env_steps`` after ``--pbt_start_mutation``; a replaced policy takes the
  donor's weights and optimizer and its version jumps by ``max_policy_lag + 1`` (its samples in
  flight are masked as too stale); every event goes to ``pbt.jsonl``.

- **reward shaping per policy**: as in Sample Factory, each policy has its own copy of the
  env's shaping coefficients (:func:`~gristmill.envs.doom.shaping.default_scheme`), perturbed
  at the start and mutated by PBT with the same rules as the hyperparameters (the categories
  ``delta`` and ``selected_weapon``), copied with the weights on exploit, saved with the
  policy. :meth:`DoomLeague.write_params` puts them in the rollout channels' per-policy table,
  and each worker hands an agent's env its policy's row when that policy takes effect
  (:mod:`gristmill.samplers.rollout`), so every player shapes with its own policy's values.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque

import numpy as np
import torch
from gristmill.envs.doom import doom_spec
from gristmill.envs.doom.shaping import default_scheme, override_scheme, scheme_vector
from gristmill.learners import APPOLearner
from gristmill.learners.league import (
    DRAW,
    LOSS,
    PBT,
    PFSP,
    REWARD_CATEGORIES_TO_TUNE,
    WIN,
    AgentPolicyMapping,
    PBTConfig,
    Population,
    pbt_scalars,
    tuned_hyperparameters,
)
from gristmill.learners.league.population import MANIFEST

__all__ = ["DoomLeague", "pbt_config"]

_EPISODE_KEYS = ("reward", "length", "true_objective")


def pbt_config(cfg) -> PBTConfig:
    """The run's ``--pbt_*`` options (Sample Factory's names) as a :class:`PBTConfig`."""
    names = {f.name for f in dataclasses.fields(PBTConfig)}
    values = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
    return PBTConfig(**values)


class DoomLeague:
    """N learning policies with their match-making, results and PBT.

    Args:
      cfg: the run's :class:`~.config.TrainConfig`.
      exp_dir: the experiment directory.
      make_model: ``() -> ActorCritic``.
      base: the learners' :class:`~gristmill.learners.APPOConfig` (policy 0's values).
      device: where the models train.
      num_envs, agents_per_env: the sampling system's envs and agents per env.
    """

    def __init__(self, cfg, exp_dir, make_model, base, device, num_envs: int, agents_per_env: int):
        n = cfg.num_policies
        self.cfg, self.base, self.n = cfg, base, n
        self.agents_per_env = agents_per_env
        rng = np.random.default_rng(cfg.seed)
        pcfg = pbt_config(cfg)
        defaults = {k: getattr(base, k) for k in tuned_hyperparameters(pcfg)}
        # the env's shaping coefficients (None: nothing to shape with), one copy per policy
        self.default_shaping = override_scheme(
            default_scheme(doom_spec(cfg.env).shaping), cfg.reward_shaping
        )
        self.pbt = PBT(
            pcfg,
            defaults,
            self.default_shaping,
            REWARD_CATEGORIES_TO_TUNE,  # Sample Factory's categories for its "doom_" envs
            rng=rng,
            log_path=os.path.join(exp_dir, "pbt.jsonl"),
        )
        # a resumed run takes its values from its checkpoint: only a fresh one draws (and logs)
        # perturbed starting values
        fresh = cfg.restart or not os.path.exists(os.path.join(exp_dir, MANIFEST))
        if cfg.with_pbt and fresh:
            hps, shapings = self.pbt.initial()
        else:
            hps, shapings = [dict(defaults)] * n, self.default_shaping

        def make_optimizer(model, hp):
            return torch.optim.Adam(
                model.parameters(),
                lr=hp["learning_rate"],
                betas=(base.adam_beta1, base.adam_beta2),
                eps=base.adam_eps,
            )

        self.population = Population(
            exp_dir,
            n,
            make_model,
            make_optimizer,
            hps,
            reward_shaping=shapings,
            keep=cfg.keep_checkpoints,
            device=device,
        )
        self.learners = []
        for p in self.population.policies:
            lr = APPOLearner(p.model, self._learner_cfg(p), device)
            lr.optimizer = p.optimizer  # the population owns (and saves) it
            self.learners.append(lr)
        mode = "mix" if cfg.pbt_mix_policies_in_one_env else "fixed"
        self.mapping = AgentPolicyMapping(
            n, agents_per_env, mode, num_envs=num_envs if mode == "fixed" else None, rng=rng
        )
        self.pfsp = PFSP("hard", rng=rng)
        self.rng = rng
        self.frozen: list[str] = []  # snapshot names; snapshot i acts as policy id n + i
        self.last_snapshot = [0] * n  # frames of each policy at its last snapshot
        self.population.register("pbt", self.pbt)
        self.population.register("mapping", self.mapping)
        self.population.register("pfsp", self.pfsp)
        self.population.register("snapshots", _SnapshotClock(self))
        # optional: manifests from before it was saved still resume
        self.population.register("episodes", _EpisodeWindow(self), required=False)
        self.episodes = [{k: deque(maxlen=100) for k in _EPISODE_KEYS} for _ in range(n)]
        self.objectives = [deque(maxlen=pcfg.stats_avg) for _ in range(n)]
        self.num_episodes = [0] * n
        self.matches = 0
        self._open: dict[int, list[dict]] = {}  # env -> its agents' reports of one episode
        self.events: list = []

    def _learner_cfg(self, p):
        hp = {k: v for k, v in p.hyperparameters.items() if hasattr(self.base, k)}
        return dataclasses.replace(self.base, policy_id=p.index, **hp)

    # ------------------------------------------------------------------ match-making
    def assign_initial(self, arrays) -> None:
        """Every agent's first policy and every policy's shaping, before the workers start."""
        self.write_params(arrays)
        for env in range(len(arrays["agent_policy"]) // self.agents_per_env):
            for j in range(self.agents_per_env):
                k = self.mapping.policy_for_agent(j, env, env)
                arrays["agent_policy"][env * self.agents_per_env + j] = k
                arrays["next_policy"][env * self.agents_per_env + j] = k

    @property
    def param_width(self) -> int:
        """Values per row of the per-policy env parameter table (0: the env has no shaping
        coefficients)."""
        return 0 if self.default_shaping is None else len(scheme_vector(self.default_shaping))

    def write_params(self, arrays, policies=None) -> None:
        """Put the shaping coefficients of ``policies`` (default: all) in the channels'
        ``policy_params`` table: their agents' envs take them at their next episode."""
        if not self.param_width:
            return
        for k in range(self.n) if policies is None else policies:
            arrays["policy_params"][k] = scheme_vector(self.population[k].reward_shaping)

    def member(self, policy_id: int) -> str:
        """The league name of a policy id: ``p<k>`` or a snapshot's name."""
        return f"p{policy_id}" if policy_id < self.n else self.frozen[policy_id - self.n]

    def on_episode(self, report: dict, arrays) -> None:
        """An agent's episode ended: record it, choose its next policy, score a match."""
        k, env, j = int(report.get("policy_id", 0)), int(report["env"]), int(report["agent"])
        if k < self.n:  # a frozen snapshot's episodes teach nothing about the learners
            self.num_episodes[k] += 1
            for key in _EPISODE_KEYS:
                if key in report:
                    self.episodes[k][key].append(report[key])
            self.objectives[k].append(report.get("true_objective", report["reward"]))
        agent = env * self.agents_per_env + j
        nxt = self.mapping.policy_for_agent(j, env, env)
        if j > 0 and self.frozen and self.rng.random() < self.cfg.snapshot_opponent_prob:
            learner = int(arrays["next_policy"][env * self.agents_per_env])
            if learner < self.n:  # agent 0 plays a learner next: give it a past self
                pool = self.frozen[-self.cfg.max_snapshots :]
                name = self.pfsp.sample(self.population.payoff, f"p{learner}", pool)
                nxt = self.n + self.frozen.index(name)
        arrays["next_policy"][agent] = nxt
        if self.agents_per_env == 2:
            reports = self._open.setdefault(env, [])
            reports.append(report)
            if len(reports) == 2:
                del self._open[env]
                self._score(*reports)

    def _score(self, a: dict, b: dict) -> None:
        pa, pb = int(a.get("policy_id", 0)), int(b.get("policy_id", 0))
        if pa == pb:
            return  # a policy against itself says nothing about the league
        oa = a.get("true_objective", a["reward"])
        ob = b.get("true_objective", b["reward"])
        result = WIN if oa > ob else LOSS if oa < ob else DRAW
        self.population.payoff.update(self.member(pa), self.member(pb), result)
        self.matches += 1

    # ------------------------------------------------------------------ training
    def trained(self, k: int) -> None:
        """Keep policy ``k``'s version and env steps (what the population saves) current."""
        p, lr = self.population[k], self.learners[k]
        p.version, p.env_steps = lr.train_step, lr.env_steps

    def env_steps(self) -> list[int]:
        return [lr.env_steps for lr in self.learners]

    def maybe_pbt(self, lock, arrays=None) -> list[int]:
        """Run PBT if due; returns the policies whose weights changed (to publish). The new
        shaping coefficients of every updated policy go into ``arrays`` (the channels)."""
        if not self.cfg.with_pbt or self.n < 2:
            return []
        pols = self.population.policies
        decisions = self.pbt.step(
            [lr.env_steps * self.cfg.env_frameskip for lr in self.learners],
            [list(o) for o in self.objectives],
            [p.hyperparameters for p in pols],
            [p.reward_shaping for p in pols],
        )
        changed = []
        with lock:  # never in the middle of a training step
            for d in decisions:
                self.population.apply(d)
                p, lr = pols[d.policy], self.learners[d.policy]
                lr.train_step = p.version  # a replacement jumped it past max_policy_lag
                lr.cfg = self._learner_cfg(p)
                self.events.append(d)
                if d.donor is not None:
                    changed.append(d.policy)
        if arrays is not None:
            self.write_params(arrays, [d.policy for d in decisions])
        return changed

    # ------------------------------------------------------------------ snapshots
    def attach(self, policies) -> None:
        """Give ``policies`` an acting copy of every snapshot the population holds (resume)."""
        self.frozen = []
        for name, snap in self.population.snapshots.items():
            policies.add_frozen(self.population.snapshot_model(name), snap.version)
            self.frozen.append(name)

    def maybe_snapshot(self, lock, policies) -> list[str]:
        """Freeze every policy that is due (``--snapshot_every_env_steps``); returns names."""
        every, made = self.cfg.snapshot_every_env_steps, []
        if every <= 0:
            return made
        for k, lr in enumerate(self.learners):
            frames = lr.env_steps * self.cfg.env_frameskip
            if frames - self.last_snapshot[k] < every:
                continue
            with lock:  # between two training steps
                self.trained(k)
                name = self.population.add_snapshot(k)
            policies.add_frozen(self.population.snapshot_model(name), lr.train_step)
            self.frozen.append(name)
            self.last_snapshot[k] = frames
            made.append(name)
        return made

    # ------------------------------------------------------------------ saving
    def update_ratings(self):
        """Refit the rating table of record (Bradley-Terry, anchored on p0) from the matches;
        None before the first match between two policies."""
        if not self.matches:
            return None
        return self.population.update_ratings(anchor="p0", bootstrap=100)

    def save(self, extra: dict) -> str:
        for p in self.population.policies:
            self.trained(p.index)
            p.extra = extra
        self.update_ratings()
        return self.population.save()

    def resume(self) -> bool:
        if not self.population.has_checkpoint():
            return False
        self.population.load()
        for p, lr in zip(self.population.policies, self.learners):
            if p.reward_shaping is None and self.default_shaping is not None:
                p.reward_shaping = dict(self.default_shaping)  # saved before shaping was kept
            lr.train_step, lr.env_steps = p.version, p.env_steps
            lr.cfg = self._learner_cfg(p)
        return True

    def scalars(self, k: int) -> dict[str, float]:
        """Policy ``k``'s episode means and hyperparameters, for TensorBoard."""
        out = {
            f"episode/{key}": float(np.mean(v)) for key, v in self.episodes[k].items() if v
        }
        p = self.population[k]
        for key, value in pbt_scalars(p.hyperparameters, p.reward_shaping).items():
            out[f"pbt/{key}"] = value
        return out


class _EpisodeWindow:
    """The league's per-policy episode statistics (the last 100 episodes, the last
    ``stats_avg`` objectives PBT ranks on, episode counts) and its match count, saved with the
    population so that a resumed run ranks, shows and rates on the same window."""

    def __init__(self, league: DoomLeague):
        self.league = league

    def state_dict(self) -> dict:
        lg = self.league
        return {
            "episodes": [{k: list(v) for k, v in e.items()} for e in lg.episodes],
            "objectives": [list(o) for o in lg.objectives],
            "num_episodes": list(lg.num_episodes),
            "matches": lg.matches,
        }

    def load_state_dict(self, state: dict) -> None:
        lg = self.league
        for mine, saved in zip(lg.episodes, state["episodes"]):
            for k, v in mine.items():
                v.clear()
                v.extend(saved.get(k, []))
        for mine, saved in zip(lg.objectives, state["objectives"]):
            mine.clear()
            mine.extend(saved)
        lg.num_episodes = [int(x) for x in state["num_episodes"]]
        lg.matches = int(state["matches"])


class _SnapshotClock:
    """The league's snapshot clock, saved with the population (snapshots themselves are the
    population's)."""

    def __init__(self, league: DoomLeague):
        self.league = league

    def state_dict(self) -> dict:
        return {"last_snapshot": list(self.league.last_snapshot)}

    def load_state_dict(self, state: dict) -> None:
        self.league.last_snapshot = [int(x) for x in state["last_snapshot"]]

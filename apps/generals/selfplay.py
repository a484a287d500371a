"""PPO self-play in a league on the batched engine, inside the training process.

Every tick: one engine call steps all ``boards``; one forward pass chooses the learner's moves
on every board; the other seat of each board is a league member -- a scripted bot (batched by
the bot's Numba kernel) or a frozen snapshot (one forward pass per snapshot over its boards).
Each board's learner seat is redrawn at random for every game (a learner that only ever plays
one seat learns half a game), and its opponent is drawn by PFSP (``learners.league.PFSP``,
AlphaStar's ``(1 - x)^2`` by default) from the payoff table (``learners.league.PayoffTable``,
decayed per pair); every finished game updates the table. The bots stay as fixed anchors;
a snapshot of the learner joins the league whenever its mean win rate against the current
league reaches ``snapshot_threshold`` (after at least ``snapshot_min_gap`` updates), and in any
case ``snapshot_max_gap`` updates after the last one (AlphaStar's timeout: a league whose bots
the learner cannot yet beat would otherwise never grow; at ~7 s per update on 2 cores the
default 40 gives ~25 snapshots in 2 hours).

PPO after Straka & Schmid (arXiv 2507.06825): gamma = 1, lambda = 0.95, clip 0.15 (policy and
value, CleanRL's loss), small entropy bonus; GAE from ``gristmill.kernels.advantage``. With
``start_kl_coef > 0`` the loss adds AlphaStar's penalty towards the supervised policy,
``coef * KL(pi_start || pi)`` on every minibatch, where ``pi_start`` is the policy self-play
started from (the BC clone): 40 minutes of plain PPO from a strong clone flattened it (entropy
0.94 -> 1.3) and lost games it used to win. Rewards
are the engine's (``"shaped"``: win/lose + the paper's potential difference; ``"winlose"``).
A game cut at ``truncation`` is a draw and terminal (the tick is in the observation), and its
potential drops to 0 there as at a capture, so a shaped game returns exactly its outcome:
+1, -1, or ``draw_reward`` for a draw (0 by default; below 0 it prices the draws that a
clone which finds the enemy general late plays out against bots it could beat).

Main exploiter (AlphaStar's, optional): with ``exploiter_boards > 0`` that share of the boards
trains a second policy ``p1`` against the current main agent only; once it wins
``exploiter_threshold`` of its games since its last reset (or ``exploiter_max_gap`` updates have
passed) it joins the league as ``exploit_<k>`` and is reset to the weights self-play started
from (the BC policy), so the main agent meets, via PFSP, fresh specialists in its weaknesses.

Before the first update the boards are played into evenly spread game ticks (``_spread``):
games that run to the truncation all last exactly ``truncation`` ticks, so boards that start
together would stay in step and every rollout would hold one stretch of game time.

The loop times its parts (forward, update, engine, features, bots, GAE, the rest) so that a
profile of where the CPU goes comes with every run.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from gristmill.envs.generals import BOTS, AgentFeatures, Bot, GeneralsEngine
from gristmill.kernels.advantage import gae
from gristmill.learners.generals_net import GeneralsNet, MaskedPolicy, index_to_action
from gristmill.learners.league import DRAW, LOSS, PFSP, PFSP_WEIGHTINGS, WIN, Population
from gristmill.learners.losses import cleanrl_ppo_loss

from .agent import Policy, ReversalBan

__all__ = ["SelfPlay", "SelfPlayConfig"]

LEARNER = "p0"  # the main agent
EXPLOITER = "p1"  # the main exploiter, when there is one


@dataclass
class SelfPlayConfig:
    boards: int = 64
    rollout: int = 32
    epochs: int = 2
    minibatch: int = 512
    lr: float = 2e-4
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.15
    vf_coef: float = 0.5
    ent_coef: float = 0.001
    grad_clip: float = 0.5
    reward: str = "shaped"
    truncation: int = 500
    draw_reward: float = 0.0
    maps: str = "generalsio"
    bots: tuple[str, ...] = BOTS
    pfsp: str = "hard"
    start_kl_coef: float = 0.0
    snapshot_threshold: float = 0.6
    snapshot_min_gap: int = 10
    snapshot_max_gap: int = 40
    snapshot_greedy: bool = False
    exploiter_boards: float = 0.0
    exploiter_threshold: float = 0.7
    exploiter_max_gap: int = 80
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.reward not in ("shaped", "winlose"):
            raise ValueError(f"reward must be 'shaped' or 'winlose', got {self.reward!r}")
        for b in self.bots:
            if b not in BOTS:
                raise ValueError(f"unknown bot {b!r}; choose from {BOTS}")
        if self.pfsp not in PFSP_WEIGHTINGS:
            raise ValueError(f"unknown pfsp weighting {self.pfsp!r}; choose from "
                             f"{PFSP_WEIGHTINGS}")
        if not -1 <= self.draw_reward <= 1:
            raise ValueError(f"draw_reward must be in [-1, 1] (a loss is -1, a win 1), got "
                             f"{self.draw_reward}")
        if self.start_kl_coef < 0:
            raise ValueError(f"start_kl_coef must be >= 0, got {self.start_kl_coef}")
        if self.boards < 1 or self.rollout < 1 or self.minibatch < 1:
            raise ValueError("boards, rollout and minibatch must be >= 1")
        if not 0 <= self.exploiter_boards < 1:
            raise ValueError(f"exploiter_boards is a share of the boards in [0, 1), got "
                             f"{self.exploiter_boards}")
        if self.exploiter_boards and round(self.exploiter_boards * self.boards) in (0, self.boards):
            raise ValueError(f"exploiter_boards={self.exploiter_boards} of {self.boards} boards "
                             "leaves the main agent or the exploiter no board")


class _LoopState:
    """Counters and the seat/shuffle RNG, saved with the population (JSON)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.updates = self.agent_steps = self.games = self.last_snapshot = 0
        self.last_exploiter = self.exploiter_games = 0  # since the exploiter's last reset
        self.exploiter_score = self.seconds = 0.0

    def state_dict(self) -> dict:
        return {"updates": self.updates, "agent_steps": self.agent_steps, "games": self.games,
                "last_snapshot": self.last_snapshot, "seconds": self.seconds,
                "last_exploiter": self.last_exploiter, "exploiter_games": self.exploiter_games,
                "exploiter_score": self.exploiter_score, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, st: dict) -> None:
        self.updates, self.agent_steps, self.games = st["updates"], st["agent_steps"], st["games"]
        self.last_snapshot, self.seconds = st["last_snapshot"], st["seconds"]
        self.last_exploiter = st.get("last_exploiter", 0)
        self.exploiter_games = st.get("exploiter_games", 0)
        self.exploiter_score = st.get("exploiter_score", 0.0)
        self.rng.bit_generator.state = st["rng"]


class SelfPlay:
    """The self-play phase. ``run(budget)`` trains until ``budget`` agent steps (learner moves)
    or ``minutes`` or ``should_stop()``. The league is a ``learners.league.Population`` in
    ``run_dir`` (``population.json``, ``checkpoints/p0/``, ``checkpoints/snapshots/``): the
    learning policy ``p0`` (and the exploiter ``p1`` with ``exploiter_boards``), the bots as
    fixed members, snapshots ``snap_<k>`` (and ``exploit_<k>``); it resumes from there when
    present. The exploiter restarts from the weights of ``policy`` as passed here (the BC
    policy, also on resume)."""

    def __init__(self, policy: Policy, cfg: SelfPlayConfig, run_dir: str | Path, writer=None,
                 log: Callable[[str], None] = print):
        self.policy, self.cfg, self.run_dir = policy, cfg, Path(run_dir)
        self.writer, self.log = writer, log
        n, S = cfg.boards, policy.pad_to
        self.engine = GeneralsEngine(n, cfg.maps, pad_to=S, truncation=cfg.truncation,
                                     reward=cfg.reward, autoreset="same_step", seed=cfg.seed)
        self.features = AgentFeatures(n, S, policy.history)
        self.reversals = ReversalBan(n)  # the nets' seats never step straight back (agent.py)
        self.bots = {b: Bot(b, n, seed=cfg.seed + 7 + k) for k, b in enumerate(cfg.bots)}
        net_cfg = policy.net.cfg
        k = round(cfg.exploiter_boards * n)
        # learner seats: boards [0, n - k) train the main agent p0, [n - k, n) the exploiter p1
        self.slices = [slice(0, n - k)] + ([slice(n - k, n)] if k else [])
        self._reset_weights = {name: w.detach().clone() for name, w in
                               policy.net.state_dict().items()}
        self._start_net = None  # the frozen start policy of the KL penalty
        if cfg.start_kl_coef > 0:
            self._start_net = GeneralsNet(net_cfg).to(policy.device)
            self._start_net.load_state_dict(self._reset_weights)
            self._start_net.eval().requires_grad_(False)
        self.pop = Population(
            str(self.run_dir), len(self.slices), make_model=lambda: GeneralsNet(net_cfg),
            make_optimizer=lambda m, hp: torch.optim.Adam(m.parameters(),
                                                          lr=hp["learning_rate"], eps=1e-5),
            hyperparameters={"learning_rate": cfg.lr}, device=policy.device)
        self.learner = self.pop[0]
        self.learner.extra["config"] = asdict(cfg)
        for member in self.pop.policies:
            member.model.load_state_dict(self._reset_weights)
        policy.net = self.learner.model  # the population's learner is the policy that trains
        self.opt = self.learner.optimizer
        self.learners = [policy] + [Policy(m.model, policy.history, policy.device)
                                    for m in self.pop.policies[1:]]
        self.home = np.full(n, LEARNER, object)  # the learning policy of each board
        self.home[n - k:] = EXPLOITER
        for b in cfg.bots:
            self.pop.add_fixed(b)
        self.pfsp = PFSP(cfg.pfsp, rng=np.random.default_rng(cfg.seed))
        self.state = _LoopState(np.random.default_rng(cfg.seed + 1))
        self.pop.register("pfsp", self.pfsp)
        self.pop.register("selfplay", self.state)
        self._opponent_nets: dict[str, Policy] = {}
        self.timers: dict[str, float] = defaultdict(float)
        self._started = self._seen = False
        self._rollout_planes = self._rollout_masks = None
        if self.pop.has_checkpoint():
            self.pop.load()
            self.log(f"selfplay: resumed at update {self.updates} ({self.agent_steps:,} agent "
                     f"steps, {len(self.snapshots)} snapshots) from {self.pop.manifest_path}")

    # counters live in the population's saved state
    updates = property(lambda self: self.state.updates)
    agent_steps = property(lambda self: self.state.agent_steps)
    games = property(lambda self: self.state.games)
    rng = property(lambda self: self.state.rng)
    payoff = property(lambda self: self.pop.payoff)
    snapshots = property(lambda self: self.pop.snapshots)

    # -- league ------------------------------------------------------------------------------
    def members(self) -> list[str]:
        """The league the main agent draws from: bots and snapshots (not the learners)."""
        return [m for m in self.pop.members if self.pop.kind(m) != "policy"]

    def _draw(self, boards) -> None:
        for b in boards:
            self.seat[b] = self.rng.integers(2)
            self.opponent[b] = LEARNER if self.home[b] == EXPLOITER else \
                self.pfsp.sample(self.payoff, LEARNER, self.members())

    def _sync_learner(self) -> None:
        for m in self.pop.policies:
            m.version, m.env_steps = self.updates, self.agent_steps

    def _snapshot_name(self, prefix: str) -> str:
        return f"{prefix}_{sum(s.startswith(prefix + '_') for s in self.snapshots):03d}"

    def add_snapshot(self) -> str:
        """Freeze the learner as a league member ``snap_<k>`` (the population writes it)."""
        self._sync_learner()
        name = self.pop.add_snapshot(0, self._snapshot_name("snap"))
        self.state.last_snapshot = self.updates
        self.log(f"league: {name} joins at update {self.updates} "
                 f"({self.agent_steps:,} agent steps)")
        return name

    def add_exploiter_snapshot(self) -> str:
        """Freeze the exploiter as ``exploit_<k>`` and reset it to the starting weights."""
        self._sync_learner()
        st = self.state
        name = self.pop.add_snapshot(1, self._snapshot_name("exploit"))
        self.log(f"league: {name} joins at update {self.updates} (it scored "
                 f"{st.exploiter_score / max(st.exploiter_games, 1):.2f} in "
                 f"{st.exploiter_games} games vs {LEARNER}); the exploiter restarts")
        p1 = self.pop[1]
        p1.model.load_state_dict(self._reset_weights)
        p1.optimizer.state.clear()  # Adam's moments belong to the weights just dropped
        st.last_exploiter, st.exploiter_games, st.exploiter_score = self.updates, 0, 0.0
        return name

    def _opponent(self, name: str) -> Policy:
        if name == LEARNER:  # the exploiter's opponent: the main agent as it is now
            return self.policy
        if name not in self._opponent_nets:
            self._opponent_nets[name] = Policy(self.pop.snapshot_model(name),
                                               self.policy.history, self.policy.device)
        return self._opponent_nets[name]

    def league_win_rate(self) -> float:
        return float(np.mean(self.payoff.win_rates(LEARNER, self.members())))

    def ratings(self, bootstrap: int = 100):
        anchor = "random" if "random" in self.pop.members else self.members()[0]
        return self.pop.update_ratings(anchor, bootstrap=bootstrap)

    # -- persistence --------------------------------------------------------------------------
    def save(self) -> Path:
        """The population (learner, optimizer, snapshots, payoff, PFSP, loop state), atomically."""
        self._sync_learner()
        return Path(self.pop.save())

    # -- the loop -----------------------------------------------------------------------------
    def _timed(self, key: str, t0: float) -> float:
        t = time.perf_counter()
        self.timers[key] += t - t0
        return t

    def _opponents_act(self, actions: np.ndarray) -> None:
        n, eng = self.cfg.boards, self.engine
        opp_seat = 1 - self.seat
        t = time.perf_counter()
        for name in set(self.opponent.tolist()):
            boards = np.flatnonzero(self.opponent == name)
            if name in self.bots:
                tmp = np.zeros((n, 2, 5), np.int32)
                self.bots[name].act(eng.obs, eng.masks, eng.scalars, (True, True), tmp)
                actions[boards, opp_seat[boards]] = tmp[boards, opp_seat[boards]]
                t = self._timed("bots", t)
            else:
                seats = opp_seat[boards]
                planes = self.features.planes(boards, seats)
                masks = self.reversals.ban(boards, seats, eng.masks[boards, seats],
                                           eng.scalars[boards, seats, 4])
                t = self._timed("features", t)
                idx, _, _ = self._opponent(name).choose(planes, masks, self.cfg.snapshot_greedy)
                actions[boards, seats] = index_to_action(idx, self.policy.pad_to)
                self.reversals.record(boards, seats, actions[boards, seats])
                t = self._timed("forward_opponents", t)

    def _observe(self) -> None:
        """Update the memory with the engine's current tick, once: a second update of the same
        tick would zero the newest army deltas and age fogged cells twice."""
        if not self._seen:
            self.features.update(self.engine.obs, self.engine.scalars)
            self._seen = True

    def _tick(self, planes: np.ndarray, masks: np.ndarray) -> tuple:
        """One engine tick: memory update, the learner's move on every board from ``planes`` /
        ``masks`` (filled here), the opponents' moves, the step, and the ended games (payoff,
        new seat and opponent). Returns (index, log-prob, value, learner reward, ended)."""
        eng, pol, n = self.engine, self.policy, self.cfg.boards
        boards = np.arange(n)
        t0 = time.perf_counter()
        self._observe()
        self.features.planes(boards, self.seat, planes)
        masks[:] = eng.masks[boards, self.seat]
        self.reversals.ban(boards, self.seat, masks, eng.scalars[boards, self.seat, 4])
        t0 = self._timed("features", t0)
        idx = np.empty(n, np.int64)
        logp, value = np.empty(n, np.float32), np.empty(n, np.float32)
        for learner, sl in zip(self.learners, self.slices):
            idx[sl], logp[sl], value[sl] = learner.choose(planes[sl], masks[sl])
        self._timed("forward", t0)
        self._actions[boards, self.seat] = index_to_action(idx, pol.pad_to)
        self.reversals.record(boards, self.seat, self._actions[boards, self.seat])
        self._opponents_act(self._actions)
        t0 = time.perf_counter()
        eng.step(self._actions, check=False)
        self._seen = False
        t0 = self._timed("engine", t0)
        reward = eng.rewards[boards, self.seat].copy()
        ended = np.flatnonzero(eng.terminated | eng.truncated)
        for b in ended:
            w = int(eng.episode_winner[b])
            res = DRAW if w < 0 else (WIN if w == self.seat[b] else LOSS)
            if w < 0:
                reward[b] += self.cfg.draw_reward
            self.payoff.update(self.home[b], self.opponent[b], res)
            if self.home[b] == EXPLOITER:
                self.state.exploiter_games += 1
                self.state.exploiter_score += res
            else:
                self._results.append((self.opponent[b], res))
        self.state.games += len(ended)
        self._draw(ended)
        self._timed("bookkeeping", t0)
        return idx, logp, value, reward, ended

    def _spread(self) -> None:
        """Spread the boards over game time before training starts.

        All boards start at tick 0 together, and games that run to the truncation all last
        ``truncation`` ticks, so without this every rollout would hold one stretch of game time
        on every board (ticks 0-31 on all 64 boards, then 32-63, ...) and PPO would chase the
        current phase. The learner and its opponents play ``truncation`` ticks (no training);
        board ``b`` restarts on a fresh map at a random tick of them, so training begins with
        the boards at evenly spread ticks. Games cut by the restart are not scored.
        """
        cfg, eng, n = self.cfg, self.engine, self.cfg.boards
        span = cfg.truncation or 500
        restart = self.rng.integers(0, span, n)
        C, S = self.policy.net.cfg.in_channels, self.policy.pad_to
        planes = np.empty((n, C, S, S), np.float32)
        masks = np.empty((n, S, S, 4), np.uint8)
        for t in range(span):
            self._tick(planes, masks)
            for b in np.flatnonzero(restart == t):
                eng.load(int(b), eng.generator.generate_arrays(S) if eng.generator else
                         eng.board_map(int(b)))
                self._draw([b])

    def _rollout(self) -> dict:
        cfg, eng, pol = self.cfg, self.engine, self.policy
        n, T, S, C = cfg.boards, cfg.rollout, pol.pad_to, pol.net.cfg.in_channels
        # the [T + 1, n, C, S, S] planes (~200 MB at the defaults) are kept between rollouts:
        # freshly mapped pages cost their first write, which tripled the feature time
        if self._rollout_planes is None:
            self._rollout_planes = np.empty((T + 1, n, C, S, S), np.float32)
            self._rollout_masks = np.empty((T + 1, n, S, S, 4), np.uint8)
        planes, masks = self._rollout_planes, self._rollout_masks
        idx = np.empty((T, n), np.int64)
        logp = np.empty((T, n), np.float32)
        values = np.empty((T + 1, n), np.float32)
        rewards = np.empty((T, n), np.float32)
        done = np.zeros((T, n), bool)
        self._results = results = []
        for t in range(T):
            idx[t], logp[t], values[t], rewards[t], ended = self._tick(planes[t], masks[t])
            done[t, ended] = True
        t0 = time.perf_counter()  # the bootstrap value of the state after the rollout
        self._observe()
        self.features.planes(np.arange(n), self.seat, planes[T])
        t0 = self._timed("features", t0)
        m = eng.masks[np.arange(n), self.seat]
        for learner, sl in zip(self.learners, self.slices):
            values[T, sl] = learner.choose(planes[T, sl], m[sl])[2]
        t0 = self._timed("forward", t0)
        adv, ret = gae(rewards, values[:T], values[1:], done, np.zeros_like(done), cfg.gamma,
                       cfg.lam)
        self._timed("gae", t0)
        self.state.agent_steps += T * n
        return {"planes": planes[:T], "masks": masks[:T], "idx": idx, "logp": logp,
                "values": values[:T], "rewards": rewards, "adv": adv, "ret": ret,
                "results": results}

    def _update(self, batch: dict, k: int = 0) -> dict:
        """PPO epochs for learner ``k`` on its boards' columns of the rollout ``[T, n, ...]``."""
        cfg, dev, sl = self.cfg, self.policy.device, self.slices[k]
        pol, opt = self.learners[k], self.pop[k].optimizer
        tens = {}
        for key in ("planes", "masks", "idx", "logp", "values", "adv", "ret"):
            a = batch[key][:, sl]
            tens[key] = torch.from_numpy(np.ascontiguousarray(a).reshape(-1, *a.shape[2:]))
            tens[key] = tens[key].to(dev)
        N = len(tens["idx"])
        stats: dict[str, list[float]] = defaultdict(list)
        for _ in range(cfg.epochs):
            perm = torch.from_numpy(self.rng.permutation(N))
            for s in range(0, N, cfg.minibatch):
                mb = perm[s:s + cfg.minibatch]
                logits, value = pol.net(tens["planes"][mb], tens["masks"][mb])
                d = MaskedPolicy(logits)
                out = cleanrl_ppo_loss(d.log_prob(tens["idx"][mb]), tens["logp"][mb],
                                       tens["adv"][mb], d.entropy(), value, tens["values"][mb],
                                       tens["ret"][mb], clip_coef=cfg.clip, clip_vloss=True,
                                       ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef)
                loss = out["loss"]
                if self._start_net is not None:
                    with torch.no_grad():
                        start = MaskedPolicy(self._start_net(tens["planes"][mb],
                                                             tens["masks"][mb])[0]).log_p
                    # KL(pi_start || pi); masked moves have p_start = 0 exactly
                    kl = (start.exp() * (start - d.log_p)).sum(-1).mean()
                    loss = loss + cfg.start_kl_coef * kl
                    stats["start_kl"].append(kl.item())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(pol.net.parameters(), cfg.grad_clip)
                opt.step()
                for k, v in out.items():
                    stats[k].append(v.item())
        return {k: float(np.mean(v)) for k, v in stats.items()}

    def _start(self) -> None:
        n = self.cfg.boards
        self.seat = np.zeros(n, np.int64)
        self.opponent = np.empty(n, object)
        self._actions = np.zeros((n, 2, 5), np.int32)
        self._results: list[tuple[str, float]] = []
        self.engine.reset(seed=self.cfg.seed + self.updates)
        self._seen = False
        self._draw(np.arange(n))
        self._spread()
        self._started = True

    def run(self, agent_steps: int, minutes: float | None = None,
            should_stop: Callable[[], bool] = lambda: False, save_every: int = 10,
            rate_every: int = 25) -> dict:
        cfg = self.cfg
        start, start_steps, last = time.perf_counter(), self.agent_steps, {}
        if not self._started:  # a later run() continues the same games
            self._start()
        while self.agent_steps < agent_steps and not should_stop():
            if minutes is not None and time.perf_counter() - start > 60 * minutes:
                break
            t0 = time.perf_counter()
            batch = self._rollout()
            t1 = time.perf_counter()
            stats = self._update(batch)
            if len(self.slices) > 1:
                stats.update({f"exploiter_{k}": v for k, v in self._update(batch, 1).items()})
            self.timers["update"] += time.perf_counter() - t1
            self.state.updates += 1
            self.state.seconds += time.perf_counter() - t0
            wr = self.league_win_rate()
            gap = self.updates - self.state.last_snapshot
            if (wr >= cfg.snapshot_threshold and gap >= cfg.snapshot_min_gap) or \
                    gap >= cfg.snapshot_max_gap:
                self.add_snapshot()
            if len(self.slices) > 1:
                st = self.state
                x = st.exploiter_score / max(st.exploiter_games, 1)
                gap = self.updates - st.last_exploiter
                if (x >= cfg.exploiter_threshold and gap >= cfg.snapshot_min_gap) or \
                        gap >= cfg.exploiter_max_gap:
                    self.add_exploiter_snapshot()
            sps = (self.agent_steps - start_steps) / (time.perf_counter() - start)
            last = {**stats, "league_win_rate": wr, "agent_steps_per_s": sps,
                    "ticks_per_s": sps, "games": self.games, "snapshots": len(self.snapshots)}
            self._log(last, batch["results"], rate_every)
            if self.updates % save_every == 0:
                self.save()
        self.save()
        return last

    def profile(self) -> dict[str, float]:
        """Share of the loop's time per part (forward = learner inference, forward_opponents =
        snapshots' inference, update = PPO forward + backward + Adam)."""
        total = sum(self.timers.values()) or 1.0
        return {k: v / total for k, v in sorted(self.timers.items(), key=lambda kv: -kv[1])}

    def _log(self, stats: dict, results: list, rate_every: int) -> None:
        w = self.writer
        members = self.members()
        rates = dict(zip(members, self.payoff.win_rates(LEARNER, members)))
        probs = dict(zip(members, self.pfsp.probabilities(self.payoff, LEARNER, members)))
        if w is not None:
            for k, v in stats.items():
                w.add_scalar(f"selfplay/{k}", v, self.agent_steps)
            for m in members:
                w.add_scalar(f"win_rate/{m}", rates[m], self.agent_steps)
                w.add_scalar(f"pfsp/{m}", probs[m], self.agent_steps)
            for k, v in self.profile().items():
                w.add_scalar(f"profile/{k}", v, self.agent_steps)
        if self.updates % rate_every == 0:
            table = self.ratings(bootstrap=0)
            if w is not None:
                for name, r in zip(table.names, table.ratings):
                    if math.isfinite(r):
                        w.add_scalar(f"rating/{name}", r, self.agent_steps)
        bots = " ".join(f"{m}={rates[m]:.2f}" for m in self.cfg.bots)
        self.log(f"upd {self.updates} steps {self.agent_steps:,} games {self.games} "
                 f"{stats['agent_steps_per_s']:.0f} steps/s | {bots} league="
                 f"{stats['league_win_rate']:.2f} snaps={len(self.snapshots)} | "
                 f"pg={stats['pg_loss']:.3f} v={stats['v_loss']:.3f} "
                 f"ent={stats['entropy']:.2f} kl={stats['approx_kl']:.4f}")

"""One member of a Doom population on Ray: a single-policy trainer inside a Ray actor.

With ``gristmill-doom train --ray`` each of the ``--num_policies`` policies is a
:class:`DoomMember` actor (:mod:`.ray_population` starts them on whatever node has room). A
member is the whole in-process trainer (:class:`~.trainer.DoomTrainer`: rollout workers,
inference, learner) with one learning policy, named by its place in the population
(``p<k>``), plus the league's frozen-opponent machinery: the controller sends it the other
members' latest weights (``set_opponent``), each becomes a frozen slot ``p<j>@live`` that acts
but is not trained, and in two-player envs the member's agent 1 plays one of them (drawn by
PFSP from the member's payoff table) with probability ``max(--snapshot_opponent_prob,
1 - 1/N)`` -- the chance that a mixed in-process population gives an agent another policy.

What it trains goes back to the controller by polling (:meth:`DoomMember.status`): env frames,
version, the ``true_objective`` of each finished episode (PBT ranks on them) and every scored
match in the population's names. PBT arrives as calls: :meth:`DoomMember.exploit` loads a
donor's weights and optimizer state and jumps the version by ``max_policy_lag + 1`` (samples in
flight are then masked as too stale, as in-process), :meth:`DoomMember.explore` sets new
hyperparameters. Both take effect between two training steps (the trainer's housekeeping
tick), and an exploit is saved at once, so a member that dies restarts (Ray re-runs the
constructor) from its last checkpoint without losing it.

Files: the member trains in ``<experiment>/members/p<k>/`` (its ``population.json``, config,
TensorBoard), and ``<experiment>/checkpoints/p<k>`` links to its checkpoint folder, so
``eval --policy k`` and ``match RUN:k`` read a Ray run like an in-process one.

The actor is a plain class that the controller wraps (``ray.remote``).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import queue
import signal
import threading
import time
import traceback
import warnings

import numpy as np
import torch
from gristmill.apps.console import RunConsole
from gristmill.apps.doom.config import TrainConfig
from gristmill.apps.doom.games import GAMES_LEDGER
from gristmill.apps.doom.model import build_model
from gristmill.apps.doom.trainer import DoomTrainer
from gristmill.envs.doom import game_instances, unlink_game_shm
from gristmill.kernels import procfs
from gristmill.kernels.shm_cli import clean
from gristmill.learners.league import PayoffTable

__all__ = [
    "DoomMember",
    "MemberTrainer",
    "member_config",
    "member_dir",
    "reap_games_of_dead_members",
    "weights_checksum",
]

LIVE = "@live"  # suffix of a frozen slot holding another member's latest weights
MEMBER_TAG = "GRISTMILL_RAY_MEMBER"  # environment of a member's processes: "<dir>#<pid>"


def member_dir(exp_dir: str, k: int) -> str:
    """Where member ``k`` of the experiment in ``exp_dir`` trains."""
    return os.path.join(exp_dir, "members", f"p{k}")


def member_config(
    cfg: TrainConfig, k: int, hyperparameters: dict | None = None, restart: bool | None = None
) -> TrainConfig:
    """Member ``k``'s own config: one policy, no PBT (the controller runs it), its directory,
    its seed, its starting ``hyperparameters`` (TrainConfig fields: PBT's tuned values), and
    opponents from the population as often as a mixed population would."""
    n = cfg.num_policies
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    hps = {key: v for key, v in (hyperparameters or {}).items() if key in fields}
    return dataclasses.replace(
        cfg,
        **hps,
        restart=cfg.restart if restart is None else restart,
        num_policies=1,
        with_pbt=False,
        ray="",
        train_dir=os.path.join(cfg.train_dir, cfg.experiment_name, "members"),
        experiment=f"p{k}",
        seed=cfg.seed + 1000 * k,
        snapshot_opponent_prob=max(cfg.snapshot_opponent_prob, 1.0 - 1.0 / n),
    )


def reap_games_of_dead_members(prefix: str, timeout: float = 10.0) -> list[str]:
    """End the VizDoom games left by member processes that died without cleaning up (their
    node was killed: the rollout workers died at once and nothing ended their games), and
    remove the games' /dev/shm entries; returns what was removed.

    Every member process sets ``GRISTMILL_RAY_MEMBER=<member dir>#<pid>`` before it starts
    training, and its workers' games inherit it; a game whose tag starts with ``prefix`` and
    names a dead pid is one of those.
    """
    removed = _forget_dead_ledgers(prefix)
    stale: dict[int, str] = {}
    for pid, iid in game_instances().items():
        tag = procfs.environ(pid).get(MEMBER_TAG.encode(), b"").decode()
        owner = tag.rpartition("#")[2]
        if tag.startswith(prefix) and owner.isdigit() and not procfs.alive(int(owner)):
            stale[pid] = iid
    for pid in stale:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(procfs.alive(p) for p in stale) and time.monotonic() < deadline:
        time.sleep(0.05)  # not our children: their parent (init) reaps them
    return removed + unlink_game_shm(stale.values())


def _forget_dead_ledgers(prefix: str) -> list[str]:
    """Remove the /dev/shm entries of the games in the ledgers (``<member dir>/games.<pid>``,
    :data:`~.games.GAMES_LEDGER`) of dead member processes whose tag ``<member dir>#<pid>``
    starts with ``prefix``: games that died with their node leave entries that no running
    process names any more. Games still running are left alone; each ledger is removed."""
    base = prefix[:-1] if prefix.endswith("#") else prefix
    removed: list[str] = []
    paths = glob.glob(os.path.join(glob.escape(base), "games.*"))
    paths += glob.glob(os.path.join(glob.escape(base), "*", "games.*"))
    for path in paths:
        owner = path.rpartition(".")[2]
        tag = f"{os.path.dirname(path)}#{owner}"
        if not owner.isdigit() or not tag.startswith(prefix) or procfs.alive(int(owner)):
            continue
        with open(path) as f:
            removed += unlink_game_shm(line.strip() for line in f if line.strip())
        os.remove(path)
    return removed


def weights_checksum(model_state: dict) -> float:
    """A cheap fingerprint of a model's weights (sum of every parameter, float64), to check
    that a transfer delivered what was sent."""
    return float(sum(float(np.asarray(v, dtype=np.float64).sum()) for v in model_state.values()))


def _to_numpy(state: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in state.items()}


def _to_torch(state: dict) -> dict[str, torch.Tensor]:
    # the object store hands out read-only arrays: copy (load_state_dict copies anyway)
    return {k: torch.tensor(np.asarray(v)) for k, v in state.items()}


class _ReportingPayoff(PayoffTable):
    """The member's payoff table, which also hands every result to ``on_result``."""

    def __init__(self, table: PayoffTable, on_result):
        super().__init__(decay=table.decay, prior=table.prior)
        self.load_state_dict(table.state_dict())
        self.on_result = on_result

    def update(self, home: str, away: str, result: float) -> None:
        super().update(home, away, result)
        self.on_result(home, away, result)


class MemberTrainer(DoomTrainer):
    """A single-policy :class:`DoomTrainer` that takes the controller's commands between two
    training steps and keeps what the controller polls.

    Args:
      cfg: the member's config (:func:`member_config`).
      name: its name in the population (``p<k>``); locally its policy is ``p0``.
    """

    def __init__(self, cfg: TrainConfig, name: str, console: RunConsole | None = None):
        super().__init__(cfg, console)
        self.name = name
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()  # (what, args) for the main loop
        self.outbox_lock = threading.Lock()
        self.results: list[tuple[str, str, float]] = []  # matches, in the population's names
        self.transfers: list[dict] = []  # weights received by exploit
        self.seen_episodes = 0
        self.opponents: dict[str, int] = {}  # "p<j>@live" -> its policy id here
        pop = self.league.population
        pop.payoff = _ReportingPayoff(pop.payoff, self._on_result)
        # members on one machine: their duel matches search free ports from apart (two hosts
        # that pick the same port at the same moment break both matches)
        k = int(name[1:])
        self.env_fn = dataclasses.replace(self.env_fn, first_port=40300 + 1000 * (k % 25))

    # ------------------------------------------------------------------ names
    def global_name(self, local: str) -> str:
        """A local league name in the population's names: ``p0`` (and its snapshots
        ``p0@v``) is this member; ``p<j>@live`` is member ``p<j>``."""
        if local.endswith(LIVE):
            return local[: -len(LIVE)]
        if local == "p0" or local.startswith("p0@"):
            return self.name + local[2:]
        return local

    def _on_result(self, home: str, away: str, result: float) -> None:
        with self.outbox_lock:
            self.results.append((self.global_name(home), self.global_name(away), result))

    # ------------------------------------------------------------------ commands
    def _housekeeping(self) -> None:
        super()._housekeeping()
        while True:
            try:
                what, args = self.inbox.get_nowait()
            except queue.Empty:
                break
            getattr(self, f"_do_{what}")(*args)

    def _do_opponent(self, name: str, version: int, model_state: dict) -> None:
        local = name + LIVE
        weights = _to_torch(model_state)
        if local in self.opponents:
            self.policies.load(self.opponents[local], weights, version)
            return
        model = build_model(self.cfg, self.obs_space, self.action_space)
        model.load_state_dict(weights)
        model.requires_grad_(False)
        pid = self.policies.add_frozen(model, version)
        self.league.frozen.append(local)  # acts as policy id n + its index, as a snapshot
        if local not in self.league.population.payoff:  # a resumed member knows it already
            self.league.population.payoff.add(local)
        self.opponents[local] = pid

    def _do_exploit(self, donor: str, state: dict, jump: int, hyperparameters: dict) -> None:
        lr, p = self.learner, self.league.population[0]
        with self.learner_loop.lock:  # between two training steps
            before = lr.train_step
            lr.model.load_state_dict(_to_torch(state["model"]))
            p.optimizer.load_state_dict(state["optimizer"])
            lr.train_step += int(jump)  # its samples in flight are now too stale: masked
            self._set_hyperparameters(hyperparameters)
            # read before the learner's next step changes them (as it may at once)
            received = weights_checksum(_to_numpy(lr.model.state_dict()))
            version = lr.train_step
            self.policies.publish(0)
        self.transfers.append(
            {
                "donor": donor,
                "donor_version": int(state["version"]),
                "checksum": weights_checksum(state["model"]),
                "received": received,
                "version_before": before,
                "version": version,
            }
        )
        self.save()  # a restart must not undo the copy

    def _do_explore(self, hyperparameters: dict) -> None:
        with self.learner_loop.lock:
            self._set_hyperparameters(hyperparameters)

    def _set_hyperparameters(self, hyperparameters: dict) -> None:
        k = 0
        self.league.population.set_hyperparameters(k, hyperparameters)
        self.league.trained(k)
        self.learner.cfg = self.league._learner_cfg(self.league.population[k])

    def _resume(self) -> None:
        super()._resume()
        # the episodes restored with the league were reported before; the controller kept them
        self.seen_episodes = self.league.num_episodes[0]

    # ------------------------------------------------------------------ polled state
    def take_new(self) -> dict:
        """What happened since the last call: new episodes' objectives and scored matches."""
        lg = self.league
        new = lg.num_episodes[0] - self.seen_episodes
        self.seen_episodes = lg.num_episodes[0]
        objectives = list(lg.objectives[0])[-new:] if new > 0 else []
        with self.outbox_lock:
            results, self.results = self.results, []
            transfers, self.transfers = self.transfers, []
        return {"objectives": objectives, "results": results, "transfers": transfers}


class DoomMember:
    """The Ray actor of member ``k`` (the controller wraps it with ``ray.remote``; its calls
    run on a few threads, so ``status`` answers while the trainer runs on its own thread).

    The constructor starts training at once, resuming from the member's checkpoint if there is
    one: that is also what happens when Ray restarts a member whose node died.
    """

    def __init__(self, cfg: TrainConfig, k: int, hyperparameters: dict | None = None):
        import ray  # noqa: PLC0415 - only ever built by Ray

        self.k, self.name = k, f"p{k}"
        # Ray re-runs this constructor when it restarts the actor: then resume, --restart or not
        with warnings.catch_warnings():  # Ray 2.60 warns about its own use of actor_id here
            warnings.simplefilter("ignore", DeprecationWarning)
            again = ray.get_runtime_context().was_current_actor_reconstructed
        self.cfg = member_config(cfg, k, hyperparameters, restart=False if again else None)
        self.dir = os.path.join(self.cfg.train_dir, self.cfg.experiment_name)
        os.makedirs(self.dir, exist_ok=True)
        self.started = time.time()
        self.node = ray.get_runtime_context().get_node_id()
        self.cleaned = self._clean_after_predecessors(self.node)
        console = RunConsole(self.cfg.train_for_env_steps, self.cfg.train_for_seconds,
                             quiet=True)  # fmt: skip  # errors only: the driver shows status
        self.trainer = MemberTrainer(self.cfg, self.name, console)
        self.summary: dict | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"member-{self.name}", daemon=True)
        self.thread.start()

    def _clean_after_predecessors(self, node: str) -> list[str]:
        """End the games and remove the shared memory of earlier processes of this member that
        died without cleaning up (a killed node on this machine), tag this process's games
        (:func:`reap_games_of_dead_members`), then append this process to
        ``member.log`` (JSON lines: pid, Ray node, host, start time); returns what was
        removed."""
        path = os.path.join(self.dir, "member.log")
        try:
            with open(path) as f:
                old = {json.loads(line)["pid"] for line in f if line.strip()}
        except FileNotFoundError:
            old = set()
        removed = reap_games_of_dead_members(os.path.abspath(self.dir) + "#")
        os.environ[MEMBER_TAG] = f"{os.path.abspath(self.dir)}#{os.getpid()}"
        os.environ[GAMES_LEDGER] = os.path.join(os.path.abspath(self.dir), f"games.{os.getpid()}")
        removed += [e.name for e in clean(pids=old)]
        record = {"pid": os.getpid(), "node": node, "host": os.uname().nodename,
                  "started": self.started}  # fmt: skip
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return removed

    def _run(self) -> None:
        try:
            self.summary = self.trainer.run()
        except BaseException:  # noqa: BLE001 - reported to the controller by status()
            self.error = traceback.format_exc()

    # ------------------------------------------------------------------ calls
    def status(self) -> dict:
        t = self.trainer
        lr = t.learner
        with t.stats_lock:
            stats = dict(t.train_stats.get(0, {}))
        ep = t.league.episodes[0]
        return {
            "name": self.name,
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "node": self.node,
            "started": self.started,
            "resumed_frames": t.frames_at_start,
            "cleaned": self.cleaned,
            "version": lr.train_step,
            "env_frames": t.env_frames,
            "episodes": t.league.num_episodes[0],
            "reward_mean_100": float(np.mean(ep["reward"])) if ep["reward"] else None,
            "true_objective_mean_100": (
                float(np.mean(ep["true_objective"])) if ep["true_objective"] else None
            ),
            "masked_batches": t.masked_batches[0],
            "lag": stats.get("version_diff_avg"),
            "hyperparameters": dict(t.league.population[0].hyperparameters),
            "agents_per_env": t.league.agents_per_env,  # 1: no opponents to send it
            "running": self.thread.is_alive(),
            "done": not self.thread.is_alive(),
            "error": self.error,
            "summary": self.summary,
            **t.take_new(),
        }

    def weights(self, optimizer: bool = False) -> dict:
        """The learner's weights now (NumPy arrays: zero-copy readers on the same node), its
        version and env steps; with ``optimizer`` also its optimizer state (for PBT)."""
        t = self.trainer
        lock = t.learner_loop.lock if t.learner_loop else threading.Lock()
        with lock:  # between two training steps
            out = {
                "name": self.name,
                "version": t.learner.train_step,
                "env_steps": t.learner.env_steps,
                "model": _to_numpy(t.learner.model.state_dict()),
            }
            if optimizer:
                out["optimizer"] = _cpu(t.league.population[0].optimizer.state_dict())
        return out

    def set_opponent(self, state: dict) -> None:
        """Another member's latest weights (:meth:`weights`) become (or refresh) its frozen
        opponent slot here."""
        self.trainer.inbox.put(("opponent", (state["name"], state["version"], state["model"])))

    def exploit(self, state: dict, jump: int, hyperparameters: dict) -> None:
        """PBT: take a donor's weights and optimizer (:meth:`weights` with ``optimizer``),
        jump the version by ``jump`` and set ``hyperparameters``."""
        self.trainer.inbox.put(("exploit", (state["name"], state, jump, hyperparameters)))

    def explore(self, hyperparameters: dict) -> None:
        """PBT: new hyperparameters (the policy's own weights kept)."""
        self.trainer.inbox.put(("explore", (hyperparameters,)))

    def save(self) -> str | None:
        """Checkpoint now (None before the first training step)."""
        t = self.trainer
        return t.save() if t.env_frames > 0 and self.thread.is_alive() else None

    def stop(self, timeout: float = 120.0) -> dict:
        """Stop training (the trainer saves and stops its workers and games); the status."""
        self.trainer.request_stop("stopped by the controller")
        self.thread.join(timeout)
        return self.status()


def _cpu(state):
    """A torch state dict (nested) with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: _cpu(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_cpu(v) for v in state)
    return state

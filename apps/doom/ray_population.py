"""``gristmill-doom train --ray``: a Doom population whose members are Ray actors.

When a population outgrows one machine, each of the ``--num_policies`` policies runs as a
:class:`~.ray_member.DoomMember` actor -- its own rollout workers, games, inference and
learner: a single-policy :class:`~.trainer.DoomTrainer` -- on whatever node has room (Ray's
``SPREAD`` placement, ``--ray_member_cpus`` each). The driver is the league's controller
(:class:`RayPopulation`); it uses Ray core only (actors and object refs; RLlib pins an older
gymnasium, ../shared/notes/league.md § 3):

- **stats**: every second it polls each member (episodes' ``true_objective``, frames, version,
  losses) and takes the matches the member scored into the population's payoff table
  (AlphaStar's, decayed) and, at each save, the Bradley-Terry rating table;
- **weights**: every ``--ray_sync_every_sec`` each member whose version moved is asked for its
  weights; the answer is an object in Ray's object store whose ref the driver owns (a
  versioned weights ref: one copy per version on each node, however many members read it,
  and it outlives the member that made it), and that ref goes to every other member, which
  loads it into its frozen opponent slot -- so members keep playing each other in
  ``doom_duel``;
- **PBT** (``--with_pbt``): Sample Factory 2.1.1's rules (:class:`~gristmill.learners.league.PBT`)
  on the polled objectives; exploit = the donor's weights and optimizer state (a ref) go to
  the receiver with the version jump ``max_policy_lag + 1``; explore = new hyperparameters
  pushed to the actor; every event in ``pbt.jsonl``, every weight copy in the summary with the
  checksums sent and received;
- **faults**: a member is restarted by Ray (``max_restarts``) when its process or node dies;
  its constructor resumes from its last checkpoint, and the controller, seeing a new process,
  pushes it its current hyperparameters and opponents. The payoff table, ratings and PBT state
  live on the driver and in ``<experiment>/ray_league.json`` (saved atomically every
  ``--save_every_sec`` and at the end), so a resumed run continues them.

``--ray auto`` joins the cluster this machine belongs to (``RAY_ADDRESS`` or ``ray start``) or
starts one for the run; ``--ray local`` always starts a private one; ``--ray HOST:PORT`` joins
that cluster. Ray >= 2.59 turns token authentication on by default (:func:`connect`): every
node and the driver must hold the same token (README, "Populations on several machines").
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import deque

import numpy as np
from gristmill.apps.console import RunConsole
from gristmill.apps.curves import tensorboard_writer
from gristmill.apps.doom.config import TrainConfig
from gristmill.apps.doom.league import pbt_config
from gristmill.apps.doom.model import appo_config
from gristmill.apps.doom.ray_member import DoomMember, member_dir, reap_games_of_dead_members
from gristmill.apps.stop_signal import StopSignal
from gristmill.kernels.shm_cli import clean, list_entries
from gristmill.learners.league import (
    PBT,
    PayoffTable,
    RatingTable,
    atomic_write_json,
    fit_ratings,
    pbt_scalars,
    tuned_hyperparameters,
)

__all__ = ["MEMBER_RESTARTS", "RayPopulation", "connect"]

MEMBER_RESTARTS = 20  # Ray restarts of one member's actor before the run gives up on it
STATE = "ray_league.json"
_FORMAT = 1


def _token_help(where: str) -> str:
    return (
        f"the Ray cluster at {where} refused this driver's token: copy the head's token "
        "(`ray get-auth-token` on the head node, default ~/.ray/auth_token) to "
        "~/.ray/auth_token here, or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH"
    )


def _answers(address: str) -> bool:
    """Whether a TCP server listens at ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return True
    except (OSError, ValueError):
        return False


def _token_location(exp_dir: str) -> str:
    """Where a cluster started by this run finds its token; Ray (>= 2.59) writes
    ``~/.ray/auth_token`` when none exists, which fails on a read-only home: then a private
    token is generated in the experiment directory (mode 0600) and named by
    ``RAY_AUTH_TOKEN_PATH``."""
    env = os.environ
    if env.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return "disabled (RAY_AUTH_MODE=disabled)"
    if env.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if env.get("RAY_AUTH_TOKEN_PATH"):
        return env["RAY_AUTH_TOKEN_PATH"]
    home = os.path.join(os.path.expanduser("~"), ".ray")
    token = os.path.join(home, "auth_token")
    if os.path.exists(token):
        return token
    try:
        os.makedirs(home, exist_ok=True)
        if os.access(home, os.W_OK):
            return token  # Ray writes it there
    except OSError:
        pass
    path = os.path.join(exp_dir, "ray_auth_token")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex())
    env["RAY_AUTH_TOKEN_PATH"] = path
    return path


def connect(address: str, num_cpus: int, exp_dir: str) -> dict:
    """Join or start the Ray cluster named by ``--ray``; returns what happened (whether this
    run started the cluster, its address, the token's place, the seconds it took).

    Raises RuntimeError naming the address when there is no cluster there or it refuses the
    token.
    """
    import ray  # noqa: PLC0415 - optional dependency (the ray extra)
    from ray.exceptions import AuthenticationError  # noqa: PLC0415

    t0 = time.time()
    start_kw = {"num_cpus": num_cpus, "include_dashboard": False, "log_to_driver": True}
    started = False
    try:
        if address == "local":
            token = _token_location(exp_dir)
            ray.init(address="local", **start_kw)
            started = True
        elif address == "auto":
            try:
                ray.init(address="auto")
                token = "the cluster's"
            except ConnectionError:  # no cluster on this machine: one for this run
                token = _token_location(exp_dir)
                ray.init(address="local", **start_kw)
                started = True
        else:
            ray.init(address=address)
            token = "the cluster's"
    except AuthenticationError as e:
        raise RuntimeError(_token_help(address)) from e
    except ConnectionError as e:
        # Ray reports a refused token as a failed connection ("a previous Ray instance that
        # has since crashed"): if something answers at the address, say what is likely wrong.
        if address not in ("auto", "local") and _answers(address):
            raise RuntimeError(f"{_token_help(address)} ({e})") from e
        raise RuntimeError(f"--ray {address}: no Ray cluster reachable there ({e})") from e
    return {
        "started_cluster": started,
        "address": ray.get_runtime_context().gcs_address,
        "token": token,
        "startup_s": time.time() - t0,
        "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
    }


class RayPopulation:
    """The driver of a ``--ray`` run: starts the members, runs the league, returns a summary
    like :class:`~.trainer.DoomTrainer`'s (``run()``). See the module docstring."""

    def __init__(self, cfg: TrainConfig, console: RunConsole | None = None):
        self.cfg = cfg
        self.console = console or RunConsole(cfg.train_for_env_steps, cfg.train_for_seconds)
        self.exp_dir = os.path.join(cfg.train_dir, cfg.experiment_name)
        self.ckpt_dir = os.path.join(self.exp_dir, "checkpoints", "p0")  # a link, see members
        n = self.n = cfg.num_policies
        pcfg = pbt_config(cfg)
        base = appo_config(cfg)
        self.defaults = {k: getattr(base, k) for k in tuned_hyperparameters(pcfg)}
        self.pbt = PBT(
            pcfg,
            self.defaults,
            rng=np.random.default_rng(cfg.seed),
            log_path=os.path.join(self.exp_dir, "pbt.jsonl"),
        )
        self.names = [f"p{k}" for k in range(n)]
        self.payoff = PayoffTable(self.names)
        self.ratings: RatingTable | None = None
        self.hps: list[dict] = [dict(self.defaults) for _ in range(n)]
        self.objectives = [deque(maxlen=pcfg.stats_avg) for _ in range(n)]
        self.matches = 0
        self.events: list = []  # PBT decisions applied this run
        self.transfers: list[dict] = []  # weight copies the receivers confirmed
        self.status: list[dict | None] = [None] * n
        self.pids: list[int | None] = [None] * n
        self.seen_pids: set[int] = set()
        self.restarts = [0] * n
        self.unreachable_since: list[float | None] = [None] * n
        self.synced_version: list[int | None] = [None] * n
        self.last_sync = 0.0
        self.members: list = []
        self.ray_info: dict = {}
        self.writer = None

    # ------------------------------------------------------------------ persistence
    @property
    def state_path(self) -> str:
        return os.path.join(self.exp_dir, STATE)

    def save(self) -> str:
        """The controller's state, atomically: payoff, ratings, PBT, objectives, each member's
        hyperparameters and last polled progress (the members checkpoint themselves)."""
        if self.matches:
            self.ratings = fit_ratings(self.payoff.members, self.payoff.record, "p0",
                                       bootstrap=100)  # fmt: skip
        members = []
        for k in range(self.n):
            st = self.status[k] or {}
            members.append({
                "name": self.names[k],
                "version": st.get("version"),
                "env_frames": st.get("env_frames"),
                "hyperparameters": self.hps[k],
                "restarts": self.restarts[k],
            })  # fmt: skip
        state = {
            "format": _FORMAT,
            "num_policies": self.n,
            "members": members,
            "payoff": self.payoff.state_dict(),
            "ratings": None if self.ratings is None else self.ratings.state_dict(),
            "pbt": self.pbt.state_dict(),
            "objectives": [list(o) for o in self.objectives],
            "matches": self.matches,
        }
        atomic_write_json(state, self.state_path)
        return self.state_path

    def _resume(self) -> bool:
        if self.cfg.restart or not os.path.exists(self.state_path):
            return False
        with open(self.state_path) as f:
            state = json.load(f)
        if state.get("format") != _FORMAT or state.get("num_policies") != self.n:
            raise ValueError(
                f"{self.state_path} holds a Ray population of {state.get('num_policies')} "
                f"policies (format {state.get('format')}); this run has {self.n} "
                "(--restart true starts over)"
            )
        self.payoff.load_state_dict(state["payoff"])
        self.ratings = (
            None if state["ratings"] is None else RatingTable.from_state_dict(state["ratings"])
        )
        self.pbt.load_state_dict(state["pbt"])
        for o, saved in zip(self.objectives, state["objectives"]):
            o.extend(saved)
        self.hps = [m["hyperparameters"] for m in state["members"]]
        self.restarts = [int(m["restarts"]) for m in state["members"]]
        self.matches = int(state["matches"])
        return True

    def _check_experiment(self) -> None:
        manifest = os.path.join(self.exp_dir, "population.json")
        if not self.cfg.restart and os.path.exists(manifest):
            raise ValueError(
                f"{self.exp_dir} holds an in-process run ({manifest}); a --ray run of the same "
                "experiment cannot resume it: pick another --experiment or --restart true"
            )
        os.makedirs(os.path.join(self.exp_dir, "checkpoints"), exist_ok=True)
        for k in range(self.n):
            # eval --policy k / match RUN:k read checkpoints/p<k>: the member's folder
            link = os.path.join(self.exp_dir, "checkpoints", f"p{k}")
            target = os.path.relpath(os.path.join(member_dir(self.exp_dir, k), "checkpoints",
                                                  "p0"), os.path.dirname(link))  # fmt: skip
            if not os.path.lexists(link):
                os.symlink(target, link)

    # ------------------------------------------------------------------ members
    def _start_members(self) -> None:
        import ray  # noqa: PLC0415

        actor = ray.remote(DoomMember).options(
            num_cpus=self.cfg.ray_member_cpus,
            max_restarts=MEMBER_RESTARTS,
            max_concurrency=4,  # status/weights answer while the trainer runs
            scheduling_strategy="SPREAD",
            # idle OpenMP threads sleep (as gristmill-doom's own main sets it)
            runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
        )
        self.members = [actor.remote(self.cfg, k, self.hps[k]) for k in range(self.n)]

    def _poll(self, now: float) -> None:
        import ray  # noqa: PLC0415
        from ray.exceptions import GetTimeoutError, RayActorError  # noqa: PLC0415

        refs = [m.status.remote() for m in self.members]
        for k, ref in enumerate(refs):
            try:
                st = ray.get(ref, timeout=60)
            except (RayActorError, GetTimeoutError) as e:
                if self.unreachable_since[k] is None:
                    self.unreachable_since[k] = now
                    self.console.print(
                        f"[red]member {self.names[k]} is unreachable ({type(e).__name__}); "
                        "Ray restarts it from its last checkpoint[/red]"
                    )
                elif now - self.unreachable_since[k] > 600:
                    raise RuntimeError(
                        f"member {self.names[k]} unreachable for 10 minutes: {e}"
                    ) from e
                continue
            self.unreachable_since[k] = None
            self._take(k, st)

    def _take(self, k: int, st: dict) -> None:
        if st["error"]:
            raise RuntimeError(f"member {self.names[k]} failed:\n{st['error']}")
        if self.pids[k] is not None and st["pid"] != self.pids[k]:
            self.restarts[k] += 1
            self.console.print(
                f"member {self.names[k]} restarted on {st['host']} (pid {st['pid']}): resumed "
                f"at {st['resumed_frames']:,} frames, version {st['version']}"
            )
            # its checkpoint may predate the controller's latest word
            self.members[k].explore.remote(self.hps[k])
            self.synced_version = [None] * self.n  # every member sends it its weights again
        self.pids[k] = st["pid"]
        self.seen_pids.add(st["pid"])
        self.status[k] = st
        self.objectives[k].extend(st["objectives"])
        for home, away, result in st["results"]:
            for name in (home, away):
                if name not in self.payoff:
                    self.payoff.add(name)
            self.payoff.update(home, away, result)
            self.matches += 1
        for t in st["transfers"]:
            self.transfers.append({"receiver": self.names[k], **t})

    def _sync_weights(self) -> None:
        """Each member whose version moved sends its weights (a ref the driver owns) to the
        others' opponent slots (multi-agent scenarios only)."""
        for k, st in enumerate(self.status):
            if st is None or st["version"] == self.synced_version[k] or st["version"] == 0:
                continue
            if st["agents_per_env"] < 2:  # single-player scenarios have no opponents
                continue
            ref = self.members[k].weights.remote()
            for j, m in enumerate(self.members):
                if j != k:
                    m.set_opponent.remote(ref)
            self.synced_version[k] = st["version"]

    def _pbt(self) -> None:
        if not self.cfg.with_pbt or self.n < 2:
            return
        frames = [None if st is None else st["env_frames"] for st in self.status]
        decisions = self.pbt.step(
            frames, [list(o) for o in self.objectives], self.hps, [None] * self.n
        )
        for d in decisions:
            self.hps[d.policy] = d.hyperparameters
            receiver = self.members[d.policy]
            if d.donor is not None:
                ref = self.members[d.donor].weights.remote(optimizer=True)
                receiver.exploit.remote(ref, d.version_jump, d.hyperparameters)
                what = f"copies {self.names[d.donor]}'s weights"
            else:
                receiver.explore.remote(d.hyperparameters)
                what = "explores"
            self.events.append(d)
            self.console.print(f"PBT: policy {d.policy} {what}; {len(d.mutations)} values mutated")

    # ------------------------------------------------------------------ log
    def _frames(self) -> int:
        return sum(st["env_frames"] for st in self.status if st is not None)

    def _policy_summary(self, k: int) -> dict:
        st = self.status[k] or {}
        return {
            "policy": k,
            "version": st.get("version", 0),
            "env_frames": st.get("env_frames", 0),
            "episodes": st.get("episodes", 0),
            "masked_batches": st.get("masked_batches", 0),
            "reward_mean_100": st.get("reward_mean_100"),
            "true_objective_mean_100": st.get("true_objective_mean_100"),
            "hyperparameters": self.hps[k],
            "host": st.get("host"),
            "node": st.get("node"),
            "pid": st.get("pid"),
            "resumed_frames": st.get("resumed_frames", 0),
            "restarts": self.restarts[k],
        }

    def _log(self, now: float, t0: float, last: dict) -> None:
        frames = self._frames()
        dt = max(1e-6, now - last["time"])
        fps = (frames - last["frames"]) / dt
        last.update(time=now, frames=frames)
        nan = float("nan")
        # every member trains train_for_env_steps: the slowest one ends the run
        slowest = min((st["env_frames"] if st is not None else 0) for st in self.status)
        for k in range(self.n):
            p = self._policy_summary(k)
            lag = (self.status[k] or {}).get("lag")
            self.console.status(
                now - t0, frames, fps,
                nan if p["reward_mean_100"] is None else p["reward_mean_100"],
                budget_frames=slowest,
                policy=k,
                host=p["host"] or "-",
                true_obj=nan if p["true_objective_mean_100"] is None
                else p["true_objective_mean_100"],
                lag=f"{nan if lag is None else lag:.1f}",
                version=p["version"],
            )  # fmt: skip
        w = self.writer
        w.add_scalar("perf/fps", fps, frames)
        rewards = [p["reward_mean_100"] for p in map(self._policy_summary, range(self.n))]
        if any(r is not None for r in rewards):  # the population's mean: the learning curve
            w.add_scalar("episode/reward", float(np.mean([r for r in rewards if r is not None])),
                         frames)  # fmt: skip
        for k in range(self.n):
            p = self._policy_summary(k)
            for key in ("reward_mean_100", "true_objective_mean_100"):
                if p[key] is not None:
                    w.add_scalar(f"p{k}/episode/{key[:-9]}", p[key], frames)
            w.add_scalar(f"p{k}/version", p["version"], frames)
            for key, value in pbt_scalars(self.hps[k], None).items():
                w.add_scalar(f"p{k}/pbt/{key}", value, frames)
        w.add_scalar("league/matches", self.matches, frames)
        w.add_scalar("league/pbt_events", len(self.events), frames)
        w.add_scalar("ray/member_restarts", sum(self.restarts), frames)
        if self.ratings is not None:
            for key, value in self.ratings.scalars().items():
                w.add_scalar(f"league/{key}", value, frames)
        w.flush()

    # ------------------------------------------------------------------ run
    def run(self) -> dict:

        cfg = self.cfg
        os.makedirs(self.exp_dir, exist_ok=True)
        self._check_experiment()
        with open(os.path.join(self.exp_dir, "config.json"), "w") as f:
            f.write(cfg.to_json())
        resumed = self._resume()
        if not resumed and cfg.with_pbt and self.n > 1:
            self.hps = self.pbt.initial()[0]
        cpus = max(os.cpu_count() or 1, int(np.ceil(self.n * cfg.ray_member_cpus)))
        self.ray_info = connect(cfg.ray, cpus, self.exp_dir)
        started = self.ray_info["started_cluster"]
        self.console.print(
            f"Ray: {'started' if started else 'joined'} {self.ray_info['address']} "
            f"({self.ray_info['nodes']} nodes, {self.ray_info['startup_s']:.1f} s; token: "
            f"{self.ray_info['token']})"
            + (f"; resumed the league from {self.state_path}" if resumed else "")
        )
        self.writer = tensorboard_writer(self.exp_dir)
        stop = StopSignal().install()
        t0 = time.time()
        reason, frames0, final = "done", None, []
        try:
            self._start_members()
            self.console.print(
                f"training {cfg.env}: {self.n} policies as Ray actors, each {cfg.num_workers} "
                f"workers x {cfg.num_envs_per_worker} envs, dir {self.exp_dir}"
            )
            last = {"time": t0, "frames": 0}
            last_save = t0
            while True:
                time.sleep(1.0)
                now = time.time()
                if stop.requested:
                    reason = f"interrupted ({stop.name})"
                    break
                self._poll(now)
                if frames0 is None and all(st is not None for st in self.status):
                    frames0 = sum(st["resumed_frames"] for st in self.status)
                    self.ray_info["members_ready_s"] = now - t0  # actors up, trainers built
                    last["frames"] = self._frames()
                if now - self.last_sync >= cfg.ray_sync_every_sec or None in self.synced_version:
                    self._sync_weights()
                    self.last_sync = now
                self._pbt()
                if now - last["time"] >= cfg.stats_every_sec:
                    self._log(now, t0, last)
                if now - last_save >= cfg.save_every_sec:
                    self.save()
                    last_save = now
                if all(st is not None and st["done"] for st in self.status):
                    reason = self._members_reason()
                    break
        except KeyboardInterrupt:
            reason = "interrupted (KeyboardInterrupt)"
        finally:
            try:
                final = self._stop_members()
                self.save()
            finally:
                self.writer.close()
                stop.restore()
                self._shutdown(started)
        return self._summary(reason, time.time() - t0, frames0 or 0, final)

    def _members_reason(self) -> str:
        reasons = {(st.get("summary") or {}).get("reason", "done") for st in self.status}
        return "time limit" if "time limit" in reasons else "done"

    def _stop_members(self) -> list[dict | None]:
        """Stop every member (each saves and stops its workers and games); their last status."""
        import ray  # noqa: PLC0415
        from ray.exceptions import GetTimeoutError, RayActorError  # noqa: PLC0415

        refs = [m.stop.remote() for m in self.members]
        final: list[dict | None] = []
        for k, ref in enumerate(refs):
            try:
                st = ray.get(ref, timeout=180)
                self._take(k, {**st, "error": None})
                final.append(st)
            except (RayActorError, GetTimeoutError) as e:
                self.console.print(f"[red]member {self.names[k]} did not stop: {e}[/red]")
                final.append(None)
        return final

    def _shutdown(self, started: bool) -> None:
        """Kill the members' actors, leave (or end) the cluster, and end the games and remove
        the shared memory of member processes that died without cleaning up (a killed node on
        this machine)."""
        import ray  # noqa: PLC0415

        for m in self.members:
            try:
                ray.kill(m, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        ray.shutdown()  # ends the cluster if this run started it, else only leaves it
        deadline = time.time() + 30
        while time.time() < deadline and any(
            e.alive for e in list_entries() if e.pid in self.seen_pids
        ):
            time.sleep(0.2)
        reap_games_of_dead_members(os.path.abspath(os.path.join(self.exp_dir, "members")))
        clean(pids=self.seen_pids)

    def _summary(self, reason: str, elapsed: float, frames0: int, final: list) -> dict:
        policies = [self._policy_summary(k) for k in range(self.n)]

        def mean(key):
            values = [p[key] for p in policies if p[key] is not None]
            return float(np.mean(values)) if values else None

        frames = self._frames()
        member_summaries = [(st or {}).get("summary") or {} for st in final]
        summary = {
            "reason": reason,
            "env_frames": frames,
            "seconds": elapsed,
            "fps": (frames - frames0) / max(elapsed, 1e-6),
            "version": policies[0]["version"],
            "episodes": sum(p["episodes"] for p in policies),
            "reward_mean_100": mean("reward_mean_100"),
            "true_objective_mean_100": mean("true_objective_mean_100"),
            "worker_restarts": sum(s.get("worker_restarts", 0) for s in member_summaries),
            "policies": policies,
            "league": {
                "matches": self.matches,
                "pbt_events": [d.to_json() for d in self.events],
                "weight_transfers": self.transfers,
                "payoff": self.payoff.state_dict(),
                "ratings": None if self.ratings is None else self.ratings.state_dict(),
            },
            "ray": {**self.ray_info, "member_restarts": self.restarts},
            "members": member_summaries,
        }
        if self.ratings is not None:
            self.console.print("ratings (Bradley-Terry, p0 = 0):\n" + self.ratings.format())
        self.console.print(f"finished ({reason}): {json.dumps(summary, default=str)[:2000]}")
        return summary

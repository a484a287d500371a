"""The Doom APPO trainer: rollout worker processes + in-process inference and learner.

Layout (chosen by measurement on a 2-core box, see BENCHMARKS.md "Doom trainer"):

- ``num_workers`` rollout processes (:mod:`gristmill.samplers.rollout_worker`) each step
  ``num_envs_per_worker`` VizDoom games in two splits, writing observations into
  shared-memory trajectory slots;
- an inference thread serves batched inference for every pending split (one forward pass for
  all of them) and writes actions back into the slots;
- a learner thread takes completed slots, trains with :class:`~gristmill.learners.APPOLearner`
  (Sample Factory's APPO) and publishes weights to the inference copy with a new version;
- the main thread watches the workers, collects episode reports, logs and checkpoints.

With ``--num_policies N`` the run trains a population (Sample Factory's multi-policy training,
self-play and PBT): inference runs the policies of a batch in one pass over their stacked
weights, each trajectory trains the policy that acted, and the league (:mod:`.league`) assigns
policies to agents, scores matches and runs PBT.

The parts, one job each: :class:`~gristmill.samplers.inference_server.InferenceServer`
(inference), :class:`.learner_loop.LearnerLoop` (training), :class:`.supervisor.WorkerSupervisor`
(worker processes and their games), :class:`.policies.PolicySet` (learners and their inference
copies), :class:`.league.DoomLeague` (population, match-making, PBT, checkpoints); this module
wires them and keeps the run's log.

torch runs its kernels without the GIL, so inference and learning overlap with each other and
with the game processes; nothing is pickled per step. Every frame ends up waiting on the
learner, so the sampler side (workers, games, inference thread) runs ``--sampler_nice`` below
it: when the cores are short, the learner keeps its core and the sampler takes what is left.
On a GPU box the same pieces run with the models on CUDA (``--device cuda``).
"""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import torch
from gristmill.apps.checkpoints import latest_checkpoint
from gristmill.apps.console import RunConsole
from gristmill.apps.curves import tensorboard_writer
from gristmill.apps.doom.config import TrainConfig
from gristmill.apps.doom.env_factory import DoomEnvFactory
from gristmill.apps.doom.league import DoomLeague
from gristmill.apps.doom.learner_loop import LearnerLoop
from gristmill.apps.doom.model import appo_config, build_model
from gristmill.apps.doom.policies import PolicySet
from gristmill.apps.doom.supervisor import WorkerSupervisor
from gristmill.apps.stop_signal import StopSignal
from gristmill.learners import retain_freed_memory, select_device
from gristmill.samplers.inference_server import InferenceServer
from gristmill.samplers.rollout import RolloutChannels, RolloutLayout
from gristmill.samplers.spaces import obs_spec_of
from gristmill.samplers.supervision import become_subreaper, lower_thread_priority

__all__ = ["DoomTrainer", "learner_threads"]


def learner_threads(cfg: TrainConfig) -> int:
    """The learner's intra-op threads: ``cfg.torch_threads``, or with 0 half the cores (at
    least one). On 2 cores one thread wins: a second one saves ~15 % of a step's wall time but
    costs ~45 % more CPU, which the games and inference need (BENCHMARKS.md, "Doom trainer")."""
    return cfg.torch_threads or max(1, (os.cpu_count() or 1) // 2)


class DoomTrainer:
    """One training run; ``run()`` returns a summary dict. See the module docstring."""

    def __init__(self, cfg: TrainConfig, console: RunConsole | None = None):
        self.cfg = cfg
        self.console = console or RunConsole(cfg.train_for_env_steps, cfg.train_for_seconds)
        self.exp_dir = os.path.join(cfg.train_dir, cfg.experiment_name)
        # policy 0's checkpoints (every policy k has checkpoints/p<k>/, see DoomLeague)
        self.ckpt_dir = os.path.join(self.exp_dir, "checkpoints", "p0")
        torch.manual_seed(cfg.seed)

        self.env_fn = DoomEnvFactory(
            cfg.env,
            cfg.res_w,
            cfg.res_h,
            cfg.grayscale,
            cfg.env_frameskip,
            timelimit=cfg.timelimit if cfg.timelimit > 0 else None,
        )
        probe = self.env_fn(0)  # games start on reset only: this launches nothing
        try:
            self.obs_space, self.action_space = probe.observation_space, probe.action_space
            agents = int(getattr(probe, "num_agents", 1))
            env_params = tuple(getattr(probe, "agent_param_names", ()))
        finally:
            probe.close()
        self.device = select_device(cfg.device)
        num_envs = cfg.num_workers * cfg.num_envs_per_worker
        self.league = DoomLeague(
            cfg,
            self.exp_dir,
            lambda: build_model(cfg, self.obs_space, self.action_space),
            appo_config(cfg),
            self.device,
            num_envs,
            agents,
        )
        if len(env_params) != self.league.param_width:
            raise ValueError(
                f"{cfg.env} takes {len(env_params)} per-policy parameters, the league has "
                f"{self.league.param_width}"
            )
        self.policies = PolicySet(self.league.learners, self.device)
        model = self.league.learners[0].model

        self.trajs_per_batch = cfg.batch_size // cfg.rollout
        # One slot in progress per agent, plus this many batches of finished trajectories for
        # each policy: the sampler runs at most that far ahead of the learner. With one batch,
        # trained samples are ~1 version old, as in Sample Factory (each extra batch adds a
        # version of lag); fewer than a batch per policy could leave every policy short of one.
        spare = cfg.num_batches_to_accumulate * self.trajs_per_batch * cfg.num_policies
        self.layout = RolloutLayout(
            num_workers=cfg.num_workers,
            envs_per_worker=cfg.num_envs_per_worker,
            num_splits=cfg.worker_num_splits,
            rollout=cfg.rollout,
            num_slots=num_envs * agents + spare,
            obs=obs_spec_of(self.obs_space),
            action_dim=model.action_spec.action_dim,
            num_logits=model.action_spec.num_logits,
            state_size=model.state_size,
            agents_per_env=agents,
            # each policy's reward-shaping coefficients, read by the workers (DoomLeague)
            param_rows=cfg.num_policies if env_params else 0,
            param_width=len(env_params),
        )
        # One split of every worker: what a full inference round can batch together.
        self.min_inference_batch = self.layout.num_agents // self.layout.num_splits
        self.channels: RolloutChannels | None = None
        self.supervisor: WorkerSupervisor | None = None
        self.server: InferenceServer | None = None
        self.learner_loop: LearnerLoop | None = None
        self.writer = None

        self.stop_event = threading.Event()
        self.stop_reason: str | None = None  # request_stop(): ends the run at the next tick
        self.thread_errors: dict[str, BaseException] = {}  # thread name -> what stopped it
        # a worker restart frees the dead worker's slots: never while a request is served
        self.sampler_lock = threading.Lock()
        self.stats_lock = threading.Lock()
        self.train_stats: dict[int, dict] = {}
        self.masked_batches = [0] * cfg.num_policies
        self.books: dict = {}  # where every served step went (SlotLedger.books), at the end
        self.last_save = time.time()
        self.frames_at_start = 0

    # ------------------------------------------------------------------ frames and budget
    @property
    def learner(self):
        """Policy 0's learner (the only one of a single-policy run)."""
        return self.league.learners[0]

    @property
    def env_frames(self) -> int:
        """Frames trained on, over every policy."""
        return sum(self.league.env_steps()) * self.cfg.env_frameskip

    @property
    def slowest_frames(self) -> int:
        """Frames trained on by the policy with the fewest: what ``train_for_env_steps``
        counts."""
        return min(self.league.env_steps()) * self.cfg.env_frameskip

    def budget_spent(self) -> bool:
        """Sample Factory's ``train_for_env_steps``: every policy trained that many frames."""
        return self.slowest_frames >= self.cfg.train_for_env_steps

    # ------------------------------------------------------------------ persistence
    def _resume(self) -> None:
        if self.cfg.restart or not self.league.resume():
            return
        self.league.attach(self.policies)
        for k in range(len(self.policies)):
            self.policies.publish(k)
        self.frames_at_start = self.env_frames
        versions = [lr.train_step for lr in self.league.learners]
        manifest = self.league.population.manifest_path
        self.console.print(
            f"resumed from {latest_checkpoint(self.ckpt_dir)} ({manifest}): "
            f"versions {versions}, {self.env_frames:,} frames"
        )

    def save(self) -> str:
        model = self.learner.model
        extra = {
            "config": json.loads(self.cfg.to_json()),
            "obs_spec": {k: list(s) for k, s in model.obs_spec.items()},
            "action_spec": [list(model.action_spec.discrete), model.action_spec.continuous],
        }
        lock = self.learner_loop.lock if self.learner_loop else threading.Lock()
        with lock:  # between two training steps
            path = self.league.save(extra)
        self.last_save = time.time()
        return path

    def request_stop(self, reason: str = "stopped") -> None:
        """End the run from another thread (as a first Ctrl-C does: saved, workers stopped);
        ``reason`` becomes the summary's."""
        self.stop_reason = reason
        self.stop_event.set()

    # ------------------------------------------------------------------ threads
    def _on_trained(self, k: int, stats: dict | None) -> None:
        self.league.trained(k)
        # batches with samples masked (too stale, e.g. in flight when PBT replaced the policy,
        # another policy's steps, or env crashes); None: every sample of the batch was
        if stats is None or stats.get("valids_fraction", 1.0) < 1.0:
            self.masked_batches[k] += 1
        if stats is not None:
            with self.stats_lock:
                self.train_stats[k] = stats

    def _inference_loop(self) -> None:
        lower_thread_priority(self.cfg.sampler_nice)
        torch.set_num_threads(max(1, self.cfg.inference_threads))
        while not self.stop_event.is_set():
            self.server.serve(0.02)

    def _thread(self, name: str, loop) -> threading.Thread:
        """A daemon thread running ``loop``; what it raises stops the run, and the main thread
        re-raises it as ``RuntimeError("<name> failed")``."""

        def body() -> None:
            try:
                loop()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.thread_errors[name] = exc
                self.stop_event.set()

        return threading.Thread(target=body, name=name, daemon=True)

    # ------------------------------------------------------------------ housekeeping
    def _episodes(self, reports: list[dict]) -> None:
        for r in reports:
            self.league.on_episode(r, self.channels.arrays)

    def _housekeeping(self) -> None:
        self._episodes(self.supervisor.drain_reports())
        self._episodes(self.supervisor.check())
        for k in self.league.maybe_pbt(self.learner_loop.lock, self.channels.arrays):
            self.policies.publish(k)
        for name in self.league.maybe_snapshot(self.learner_loop.lock, self.policies):
            self.console.print(f"snapshot {name} joins the league")
        for d in self.league.events[len(self._announced) :]:
            who = f"policy {d.policy}"
            what = f"copied policy {d.donor}'s weights" if d.donor is not None else "explored"
            self.console.print(f"PBT: {who} {what}; {len(d.mutations)} values mutated")
            self._announced.append(d)
        if time.time() - self.last_save > self.cfg.save_every_sec:
            self.save()

    def sampler_counters(self) -> dict[str, int]:
        """Slot circulation and dropped work so far: slots reclaimed from dead workers,
        trajectories and steps the learner refused, requests and answers dropped, by reason."""
        sup = self.supervisor
        out = {"worker_restarts": sup.pool.restarts, "stale_answers": sup.stale_answers}
        out.update(sup.ledger.counters)
        out.update(self.server.counters)
        return dict(sorted(out.items()))

    def _policy_summary(self, k: int) -> dict:
        lg, lr = self.league, self.league.learners[k]
        ep = {key: (float(np.mean(v)) if v else None) for key, v in lg.episodes[k].items()}
        return {
            "policy": k,
            "version": lr.train_step,
            "env_frames": lr.env_steps * self.cfg.env_frameskip,
            "episodes": lg.num_episodes[k],
            "masked_batches": self.masked_batches[k],
            "reward_mean_100": ep["reward"],
            "true_objective_mean_100": ep["true_objective"],
            "hyperparameters": lg.population[k].hyperparameters,
        }

    @staticmethod
    def _mean_of(summaries: list[dict], key: str) -> float | None:
        """Mean of a per-policy summary figure over the policies that have one."""
        values = [p[key] for p in summaries if p[key] is not None]
        return float(np.mean(values)) if values else None

    def _log(self, now: float, t0: float, last: dict) -> None:
        cfg = self.cfg
        dt = max(1e-6, now - last["time"])
        fps = (self.env_frames - last["frames"]) / dt
        served = self.server.served_steps
        sample_fps = (served - last["sampled"]) * cfg.env_frameskip / dt
        last.update(time=now, frames=self.env_frames, sampled=served)
        with self.stats_lock:
            stats = {k: dict(v) for k, v in self.train_stats.items()}
        n = len(self.policies)
        summaries = [self._policy_summary(k) for k in range(n)]
        for k, ps in enumerate(summaries):
            nan = float("nan")
            lag = stats.get(k, {}).get("version_diff_avg", nan)
            extra = {"policy": k} if n > 1 else {}
            self.console.status(
                now - t0,
                self.env_frames,
                fps,
                nan if ps["reward_mean_100"] is None else ps["reward_mean_100"],
                budget_frames=self.slowest_frames,
                **extra,
                sampling=f"{sample_fps:,.0f}",
                true_obj=nan if ps["true_objective_mean_100"] is None
                else ps["true_objective_mean_100"],
                lag=f"{lag:.1f}",
                version=ps["version"],
            )
        if self.writer is None:
            return
        w, step = self.writer, self.env_frames
        w.add_scalar("perf/fps", fps, step)
        w.add_scalar("perf/sample_fps", sample_fps, step)
        for k in range(n):
            # one policy: the plain names; a population: per policy under p<k>/
            prefix = f"p{k}/" if n > 1 else ""
            for key, value in self.league.scalars(k).items():
                if n > 1 or key.startswith("episode/"):
                    w.add_scalar(prefix + key, value, step)
            for key, value in stats.get(k, {}).items():
                group = "policy_lag" if key.startswith("version_diff") else "train"
                w.add_scalar(f"{prefix}{group}/{key}", value, step)
        if n > 1:
            reward = self._mean_of(summaries, "reward_mean_100")
            if reward is not None:
                w.add_scalar("episode/reward", reward, step)
            w.add_scalar("league/matches", self.league.matches, step)
            ratings = self.league.population.ratings
            for key, value in (ratings.scalars() if ratings is not None else {}).items():
                w.add_scalar(f"league/{key}", value, step)
            w.add_scalar("league/pbt_events", len(self.league.events), step)
        for key, value in self.sampler_counters().items():
            w.add_scalar(f"sampler/{key}", value, step)
        w.flush()

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        cfg = self.cfg
        os.makedirs(self.exp_dir, exist_ok=True)
        with open(os.path.join(self.exp_dir, "config.json"), "w") as f:
            f.write(cfg.to_json())
        self._resume()
        self.writer = tensorboard_writer(self.exp_dir)
        retain_freed_memory()  # the learner's 100 MB activations: no page faults per step
        become_subreaper()
        # Ctrl-C/SIGTERM: stop at the next housekeeping tick and save; a second one interrupts.
        stop = StopSignal(on_stop=self.stop_event.set).install()
        self.channels = RolloutChannels(self.layout)
        self.league.assign_initial(self.channels.arrays)
        self.supervisor = WorkerSupervisor(
            self.env_fn, self.channels, cfg, self.console, self.sampler_lock
        )
        self.server = InferenceServer(
            self.channels,
            self.supervisor.pool.generation,
            self.policies.policy_fn,
            wait_s=cfg.inference_wait_ms / 1000.0,
            min_batch=self.min_inference_batch,
            lock=self.sampler_lock,
            policies_fn=self.policies.policies_fn,  # a population: one pass per batch
        )
        self.learner_loop = LearnerLoop(
            self.channels,
            self.supervisor.ledger,
            self.policies,
            self.trajs_per_batch,
            self.stop_event,
            threads=learner_threads(cfg),
            on_trained=self._on_trained,
            # Budget spent: the learner stops itself, not at the main thread's next look,
            # which small batches could overshoot by many versions.
            done=self.budget_spent,
        )
        self._announced: list = []
        learner_thread = self._thread("learner", self.learner_loop.run)
        inference_thread = self._thread("inference", self._inference_loop)
        t0 = time.time()
        reason = "done"
        try:
            self.supervisor.start()
            learner_thread.start()
            inference_thread.start()
            last = {"time": t0, "frames": self.env_frames, "sampled": 0}
            last_house = t0
            pop = f", {cfg.num_policies} policies" if cfg.num_policies > 1 else ""
            self.console.print(
                f"training {cfg.env}: {cfg.num_workers} workers x {cfg.num_envs_per_worker} envs"
                f"{pop}, batch {cfg.batch_size}, device {self.device}, dir {self.exp_dir}"
            )
            while True:
                self.stop_event.wait(max(0.0, last_house + 0.5 - time.time()))
                now = last_house = time.time()
                if stop.requested:
                    reason = f"interrupted ({stop.name})"
                    break
                if self.stop_reason is not None:
                    reason = self.stop_reason
                    break
                for name, exc in self.thread_errors.items():
                    raise RuntimeError(f"{name} failed") from exc
                self._housekeeping()
                if now - last["time"] >= cfg.stats_every_sec:
                    self._log(now, t0, last)
                if self.budget_spent():
                    break
                if cfg.train_for_seconds and now - t0 >= cfg.train_for_seconds:
                    reason = "time limit"
                    break
        except KeyboardInterrupt:  # a second signal
            reason = "interrupted (KeyboardInterrupt)"
        finally:
            self.stop_event.set()
            if inference_thread.is_alive():
                inference_thread.join(timeout=30)
            if learner_thread.is_alive():
                learner_thread.join(timeout=120)
            try:
                try:
                    self._episodes(self.supervisor.stop())
                    self.books = self.supervisor.ledger.books(
                        self.server.served_steps, self.learner_loop.pending_slots()
                    )
                finally:
                    if "learner" not in self.thread_errors and self.env_frames > 0:
                        path = self.save()
                        self.console.print(f"saved {path}")
            finally:
                self.channels.close()
                self.writer.close()
                stop.restore()
        elapsed = time.time() - t0
        policies = [self._policy_summary(k) for k in range(len(self.policies))]
        summary = {
            "reason": reason,
            "env_frames": self.env_frames,
            "seconds": elapsed,
            "fps": (self.env_frames - self.frames_at_start) / max(elapsed, 1e-6),
            "version": self.learner.train_step,
            "episodes": sum(self.league.num_episodes),
            "reward_mean_100": self._mean_of(policies, "reward_mean_100"),
            "true_objective_mean_100": self._mean_of(policies, "true_objective_mean_100"),
            "worker_restarts": self.supervisor.pool.restarts,
            "sampler": self.sampler_counters(),
            "steps": self.books,
        }
        if len(policies) > 1:
            ratings = self.league.population.ratings
            if ratings is not None:
                self.console.print("ratings (Bradley-Terry, p0 = 0):\n" + ratings.format())
            summary["policies"] = policies
            summary["league"] = {
                "matches": self.league.matches,
                "snapshots": list(self.league.frozen),
                "pbt_events": [d.to_json() for d in self.league.events],
                "payoff": self.league.population.payoff.state_dict(),
                "ratings": None if ratings is None else ratings.state_dict(),
            }
        if self.books and not self.books["balanced"]:
            self.console.print(f"[red]sampled steps do not add up: {self.books}[/red]")
        self.console.print(f"finished ({reason}): {summary}")
        return summary

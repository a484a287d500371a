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

torch runs its kernels without the GIL, so inference and learning overlap with each other and
with the game processes; nothing is pickled per step. Every frame ends up waiting on the
learner, so the sampler side (workers, games, inference thread) runs ``--sampler_nice`` below
it: when the cores are short, the learner keeps its core and the sampler takes what is left.
On a GPU box the same pieces run with the models on CUDA (``--device cuda``).
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections import deque
from queue import Empty

import numpy as np
import torch
from gristmill.apps.checkpoints import resume_checkpoint, save_checkpoint
from gristmill.apps.console import RunConsole
from gristmill.apps.curves import tensorboard_writer
from gristmill.apps.doom.config import TrainConfig
from gristmill.apps.doom.env_factory import DoomEnvFactory
from gristmill.apps.doom.games import WorkerGames, report_worker_games
from gristmill.apps.doom.model import appo_config, build_model
from gristmill.apps.stop_signal import StopSignal
from gristmill.learners import APPOLearner, retain_freed_memory, select_device
from gristmill.samplers.inference_server import InferenceServer
from gristmill.samplers.rollout import RolloutChannels, RolloutLayout
from gristmill.samplers.rollout_worker import (
    RolloutWorkerPool,
    become_subreaper,
    lower_thread_priority,
)
from gristmill.samplers.spaces import obs_spec_of

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
        self.ckpt_dir = os.path.join(self.exp_dir, "checkpoints")
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
        finally:
            probe.close()
        self.device = select_device(cfg.device)
        model = build_model(cfg, self.obs_space, self.action_space)
        self.learner = APPOLearner(model, appo_config(cfg), self.device)
        self.infer_model = copy.deepcopy(self.learner.model).eval()
        self.infer_version = 0
        self.weights_lock = threading.Lock()

        self.trajs_per_batch = cfg.batch_size // cfg.rollout
        num_agents = cfg.num_workers * cfg.num_envs_per_worker * agents
        # One slot in progress per agent, plus this many batches of finished trajectories: the
        # sampler runs at most that far ahead of the learner. With one batch, trained samples
        # are ~1 version old, as in Sample Factory (each extra batch adds a version of lag).
        slots = num_agents + cfg.num_batches_to_accumulate * self.trajs_per_batch
        self.layout = RolloutLayout(
            num_workers=cfg.num_workers,
            envs_per_worker=cfg.num_envs_per_worker,
            num_splits=cfg.worker_num_splits,
            rollout=cfg.rollout,
            num_slots=slots,
            obs=obs_spec_of(self.obs_space),
            action_dim=model.action_spec.action_dim,
            num_logits=model.action_spec.num_logits,
            state_size=model.state_size,
            agents_per_env=agents,
        )
        # One split of every worker: what a full inference round can batch together.
        self.min_inference_batch = self.layout.num_agents // self.layout.num_splits
        self.channels: RolloutChannels | None = None
        self.pool: RolloutWorkerPool | None = None
        self.games = WorkerGames()  # each worker's VizDoom games, to clean up after it
        self.writer = None

        self.stop_event = threading.Event()
        self.thread_errors: dict[str, BaseException] = {}  # thread name -> what stopped it
        # pool.restart() frees a dead worker's slots: never while a request of it is served
        self.sampler_lock = threading.Lock()
        self.stats_lock = threading.Lock()
        self.train_stats: dict = {}
        self.episodes = {k: deque(maxlen=100) for k in ("reward", "length", "true_objective")}
        self.num_episodes = 0
        self.server: InferenceServer | None = None
        self.stale_answers = 0  # answers workers ignored (see samplers.rollout_protocol)
        self.books: dict = {}  # where every served step went (SlotLedger.books), at the end
        self.learner_pending: list[int] = []  # accepted slots waiting for a full batch
        self.restart_times: deque = deque(maxlen=max(64, cfg.max_worker_restarts_per_min + 1))
        self.last_save = time.time()
        self.frames_at_start = 0

    # ------------------------------------------------------------------ persistence
    @property
    def env_frames(self) -> int:
        return self.learner.env_steps * self.cfg.env_frameskip

    def _resume(self) -> None:
        found = resume_checkpoint(self.ckpt_dir, self.cfg.restart, self.device)
        if found is None:
            return
        path, state = found
        self.learner.load_state_dict(state["learner"])
        self._publish_weights()
        self.frames_at_start = self.env_frames
        self.console.print(
            f"resumed from {path}: version {self.learner.train_step}, {self.env_frames:,} frames"
        )

    def save(self) -> str:
        state = {
            "learner": self.learner.state_dict(),
            "config": json.loads(self.cfg.to_json()),
            "obs_spec": {k: list(s) for k, s in self.learner.model.obs_spec.items()},
            "action_spec": [
                list(self.learner.model.action_spec.discrete),
                self.learner.model.action_spec.continuous,
            ],
        }
        path = save_checkpoint(
            self.ckpt_dir,
            state,
            self.learner.train_step,
            self.env_frames,
            keep=self.cfg.keep_checkpoints,
        )
        self.last_save = time.time()
        return path

    # ------------------------------------------------------------------ learner thread
    def _gather(self, slots: list[int]) -> dict:
        a = self.channels.arrays
        idx = np.asarray(slots, dtype=np.int64)
        t = lambda key: torch.from_numpy(a[key][idx])  # noqa: E731 - fancy index = copy
        return {
            "obs": {k: t(f"obs_{k}") for k in self.layout.obs},
            "rnn_states": t("rnn_states"),
            "actions": t("actions"),
            "log_prob_actions": t("log_probs"),
            "action_logits": t("logits"),
            "values": t("values"),
            "rewards": t("rewards"),
            "dones": t("dones").bool(),
            "time_outs": t("time_outs").bool(),
            "policy_version": t("policy_version"),
            "policy_id": t("policy_id").long(),
            "valids": t("valids").bool(),
        }

    def _publish_weights(self) -> None:
        with self.weights_lock:
            self.infer_model.load_state_dict(self.learner.model.state_dict())
            self.infer_version = self.learner.train_step

    def _learner_loop(self) -> None:
        ch = self.channels
        pending = self.learner_pending
        # OpenMP thread counts are per calling thread: the learner sets its own, the inference
        # thread (small batches) one, so neither waits on the other's barriers.
        torch.set_num_threads(learner_threads(self.cfg))
        while not self.stop_event.is_set():
            try:
                got = ch.trajectories.get_many(
                    timeout=0.1, max_messages=self.trajs_per_batch - len(pending)
                )
            except Empty:
                continue
            pending += self.pool.ledger.accept(got)
            if len(pending) < self.trajs_per_batch:
                continue
            batch = self._gather(pending)
            self.pool.ledger.consume(pending)
            pending.clear()
            stats = self.learner.train(batch)
            self._publish_weights()
            if stats is not None:
                with self.stats_lock:
                    self.train_stats = stats
            if self.env_frames >= self.cfg.train_for_env_steps:
                # Budget spent: stop here, not at the main thread's next look, which small
                # batches could overshoot by many versions.
                self.stop_event.set()
                break
            if time.time() - self.last_save > self.cfg.save_every_sec:
                self.save()

    # ------------------------------------------------------------------ inference
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

    def _policy_fn(self, policy_id: int, obs, state) -> dict:
        """The inference server's ``policy_fn``: the inference copy of the model."""
        dev = self.device
        obs = {k: torch.from_numpy(v).to(dev) for k, v in obs.items()}
        with self.weights_lock:
            out = self.infer_model.act(obs, torch.from_numpy(state).to(dev))
            version = self.infer_version
        res = {k: out[k].cpu().numpy() for k in ("actions", "log_probs", "logits", "values")}
        res.update(state=out["state"].cpu().numpy(), version=version)
        return res

    # ------------------------------------------------------------------ housekeeping
    def _drain_reports(self) -> None:
        reports = []
        for _ in range(64):  # each get is capped in bytes; a bound keeps the main loop going
            try:
                reports += self.channels.reports.get_many_nowait()
            except Empty:
                break
        for r in reports:
            kind = r.get("kind")
            if kind == "env_started":
                self.games.record(r)
            elif kind == "episode":
                self.num_episodes += 1
                for key in self.episodes:
                    if key in r:
                        self.episodes[key].append(r[key])
            elif kind == "env_error":
                self.console.print(
                    f"[red]env {r['env']} (worker {r['worker']}) crashed: {r['error']}; "
                    "re-created it[/red]"
                )
            elif kind == "stale_answer":
                self.stale_answers += 1
            elif kind == "worker_error":
                self.console.print(f"[red]worker {r['worker']} failed: {r['error']}[/red]")

    def _check_workers(self) -> None:
        cfg = self.cfg
        for w, p in enumerate(self.pool.procs):
            if p is not None and p.pid is not None:
                self.games.scan(w, p.pid)  # games still starting, not reported yet
        bad = self.pool.check()
        if bad:
            self._drain_reports()  # game ids the dead workers reported just before dying
        for w, reason in bad:
            envs = self.pool.env_indices(w)
            self.console.print(
                f"[red]rollout worker {w} (envs {envs[0]}-{envs[-1]} of {self.cfg.env}) "
                f"{reason}; restarting it[/red]"
            )
            # A crash loop stops the run; faults spread over a long run do not.
            now = time.time()
            self.restart_times.append(now)
            recent = [t for t in self.restart_times if now - t < 60.0]
            if len(recent) > cfg.max_worker_restarts_per_min:
                raise RuntimeError(
                    f"rollout workers failed {len(recent)} times in the last minute "
                    f"(--max_worker_restarts_per_min {cfg.max_worker_restarts_per_min}); stopping"
                )
            # restart() kills a hung worker first; its games then re-parent to us, and the new
            # worker's games are its own children, so the cleanup touches only the old ones.
            with self.sampler_lock:
                self.pool.restart(w)
            self.games.cleanup(w)

    def sampler_counters(self) -> dict[str, int]:
        """Slot circulation and dropped work so far: slots reclaimed from dead workers,
        trajectories and steps the learner refused, requests and answers dropped, by reason."""
        out = {"worker_restarts": self.pool.restarts, "stale_answers": self.stale_answers}
        out.update(self.pool.ledger.counters)
        out.update(self.server.counters)
        return dict(sorted(out.items()))

    def _log(self, now: float, t0: float, last: dict) -> None:
        cfg = self.cfg
        dt = max(1e-6, now - last["time"])
        fps = (self.env_frames - last["frames"]) / dt
        served = self.server.served_steps
        sample_fps = (served - last["sampled"]) * cfg.env_frameskip / dt
        last.update(time=now, frames=self.env_frames, sampled=served)
        with self.stats_lock:
            stats = dict(self.train_stats)
        ep = {k: (float(np.mean(v)) if v else float("nan")) for k, v in self.episodes.items()}
        lag = stats.get("version_diff_avg", float("nan"))
        self.console.status(
            now - t0,
            self.env_frames,
            fps,
            ep["reward"],
            sampling=f"{sample_fps:,.0f}",
            true_obj=ep["true_objective"],
            lag=f"{lag:.1f}",
            version=self.learner.train_step,
        )
        if self.writer is not None:
            step = self.env_frames
            w = self.writer
            w.add_scalar("perf/fps", fps, step)
            w.add_scalar("perf/sample_fps", sample_fps, step)
            for key in ("reward", "length", "true_objective"):
                if self.episodes[key]:
                    w.add_scalar(f"episode/{key}", ep[key], step)
            for key, value in stats.items():
                group = "policy_lag" if key.startswith("version_diff") else "train"
                w.add_scalar(f"{group}/{key}", value, step)
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
        self.pool = RolloutWorkerPool(
            self.env_fn,
            self.channels,
            seed=cfg.seed,
            reward_scale=cfg.reward_scale,
            reward_clip=cfg.reward_clip,
            heartbeat_timeout=cfg.heartbeat_timeout,
            env_report=report_worker_games,
            niceness=cfg.sampler_nice,
        )
        self.server = InferenceServer(
            self.channels,
            self.pool.generation,
            self._policy_fn,
            wait_s=cfg.inference_wait_ms / 1000.0,
            min_batch=self.min_inference_batch,
            lock=self.sampler_lock,
        )
        learner_thread = self._thread("learner", self._learner_loop)
        inference_thread = self._thread("inference", self._inference_loop)
        t0 = time.time()
        reason = "done"
        try:
            self.pool.start()
            learner_thread.start()
            inference_thread.start()
            last = {"time": t0, "frames": self.env_frames, "sampled": 0}
            last_house = t0
            self.console.print(
                f"training {cfg.env}: {cfg.num_workers} workers x {cfg.num_envs_per_worker} envs, "
                f"batch {cfg.batch_size}, device {self.device}, dir {self.exp_dir}"
            )
            while True:
                self.stop_event.wait(max(0.0, last_house + 0.5 - time.time()))
                now = last_house = time.time()
                if stop.requested:
                    reason = f"interrupted ({stop.name})"
                    break
                self._drain_reports()
                for name, exc in self.thread_errors.items():
                    raise RuntimeError(f"{name} failed") from exc
                self._check_workers()
                if now - last["time"] >= cfg.stats_every_sec:
                    self._log(now, t0, last)
                if self.env_frames >= cfg.train_for_env_steps:
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
                    self.pool.stop()
                    if self.server is not None:
                        self.books = self.pool.ledger.books(
                            self.server.served_steps, self.learner_pending
                        )
                finally:
                    # Games of workers that had to be killed re-parent to us: end them all,
                    # and remove VizDoom's /dev/shm entries of every game that is gone.
                    self._drain_reports()
                    self.games.cleanup()
                if "learner" not in self.thread_errors and self.learner.train_step > 0:
                    path = self.save()
                    self.console.print(f"saved {path}")
            finally:
                self.channels.close()
                self.writer.close()
                stop.restore()
        elapsed = time.time() - t0
        ep = {k: (float(np.mean(v)) if v else None) for k, v in self.episodes.items()}
        summary = {
            "reason": reason,
            "env_frames": self.env_frames,
            "seconds": elapsed,
            "fps": (self.env_frames - self.frames_at_start) / max(elapsed, 1e-6),
            "version": self.learner.train_step,
            "episodes": self.num_episodes,
            "reward_mean_100": ep["reward"],
            "true_objective_mean_100": ep["true_objective"],
            "worker_restarts": self.pool.restarts if self.pool else 0,
            "sampler": self.sampler_counters() if self.server else {},
            "steps": self.books,
        }
        if self.books and not self.books["balanced"]:
            self.console.print(f"[red]sampled steps do not add up: {self.books}[/red]")
        self.console.print(f"finished ({reason}): {summary}")
        return summary

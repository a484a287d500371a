"""Chaos: gristmill's apps and engines under faults that keep coming, with the books checked.

Each scenario runs a real workload while a seeded chaos loop injects faults, then reports run
length, faults injected and survived, what was lost, and throughput against the same run
without faults. Scenarios run one by one::

    python bench/chaos.py doom-kills --seeds 3              # issue 20's learning check

``doom-kills``: ``gristmill-doom train`` on doom_basic (2 workers x 4 envs, 450k frames) with a
rollout worker SIGKILLed every 8-15 s from 25 s on, against the same run without kills, over
several seeds; the mean reward of the last 100 episodes must stay within the seed spread of
the runs without kills. Results: ``bench/results/chaos_doom_kills.json`` and a Markdown table.
Run benchmarks one at a time: ``flock /tmp/gristmill-bench.lock python bench/chaos.py ...``.

Issue 18's scenarios (each ``--minutes`` long under fire, plus ``--baseline_minutes`` without
faults for the throughput ratio; every one ends with the books checked and a residue check)::

    python bench/chaos.py doom-fire --minutes 10     # trainer under worker/game kills, SIGSTOPs
    python bench/chaos.py pool-fire --minutes 5      # env pool (Pong-v5, CartPole-v1) under kills
    python bench/chaos.py queue-fire --minutes 10    # shmqueue producers/consumers SIGKILLed
    python bench/chaos.py driver-kills --kills 50    # the trainer itself SIGKILLed and resumed

``doom-fire``: ``gristmill-doom train`` (doom_basic, 2 workers x 4 envs, a small
``--heartbeat_timeout``) with, every 5-20 s, one of: SIGKILL a rollout worker, SIGKILL a VizDoom
game, SIGSTOP a worker (the supervisor must find it silent and replace it). The run must reach
its frame budget (the clean run's frames/s x ``--budget_minutes``, ``--minutes`` by default;
under fire it takes longer) and its final summary's step books (``SlotLedger.books``) must
balance. ``--num_policies 2`` runs a population (``chaos_doom_fire_population.json``).

``pool-fire``: ``make(task, num_envs=16, batch_size=8, num_workers=2, on_error="restart")``
stepped with random actions (EnvPool's async loop) while a pool worker is SIGKILLed every
2-8 s. Every ``recv`` is checked (no env twice in a batch, only envs that were sent, shapes and
dtypes, finite rewards, ``elapsed_step`` = previous + 1, or 0 after an episode end, or 0
with reward 0 and ``truncated`` for an env a killed worker still owes: once per kill); the dead
worker's envs must all come back (a result with ``elapsed_step`` 0) within
60 s; ``recv`` runs under ``step_timeout`` (a hang fails). Books per env, counted by the
client: results returned = steps requested (resets included) - still outstanding.

``queue-fire``: a ``kernels.shmqueue.Queue`` with producers (``put`` and ``put_many`` of bytes,
arrays and pickled tuples carrying ``(producer, seq)`` and a checksummed payload; one producer
pauses inside the lock on every put) and consumers (``get`` and ``get_many``); every 0.2-1 s a
random one is SIGKILLed and replaced (a new producer id). Each process marks its phase in
shared memory, so each kill is classified (inside put, put_many, get, get_many, holding a
batch, between calls). Books: every message a producer's ``put`` returned from is received
exactly once, uncorrupted, in per-producer order within each consumer -- except (a) an
interrupted put: all of its messages or none (never part of a ``put_many``), and (b) messages
a killed consumer was holding: it had dequeued them (``get`` returned) but not logged them; a
kill there counts exactly the batch it held, and a kill inside ``get`` may lose at most the
batch being taken (it is taken under the lock and decoded after it: a kill between the
two loses it, as in any queue without acknowledgements).

``driver-kills``: the trainer SIGKILLed ``--kills`` times in a row at random moments (about a
third of them the moment a checkpoint's temporary file appears), each time resumed in the same
experiment: the newest checkpoint must load, the resumed run must say it resumed from that one
at its frame count, checkpoint frames never go backwards, no temporary checkpoint files pile
up; the last run trains to its budget and its books must balance.

After every scenario: no process that the scenario started (tagged through the environment,
so re-parented orphans count) is alive, no new ``/dev/shm`` entry that no other live process
holds, no new file descriptor in the harness. Results: ``bench/results/chaos_<scenario>.json``;
the exit status is 1, with the failures printed, if anything did not hold.
"""

from __future__ import annotations

import argparse
import gc
import json
import mmap
import os
import random
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

# bench/queue.py would shadow the stdlib's queue (which kernels.shmqueue imports) for a script
# run from this folder
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import numpy as np  # noqa: E402
from gristmill.kernels import procfs  # noqa: E402
from gristmill.kernels.shmqueue import Empty, Full  # noqa: E402

RESULTS = Path(__file__).parent / "results"


class Chaos(threading.Thread):
    """Every ``U[lo, hi]`` seconds from ``start`` on, ``fault(rng)`` (seeded); stops on
    ``stop()``. ``log`` holds ``(seconds since start, what was done)``."""

    def __init__(self, fault, seed: int, start: float, every: tuple[float, float]):
        super().__init__(daemon=True)
        self.fault, self.rng = fault, random.Random(seed)
        self.start_after, self.every = start, every
        self.halt = threading.Event()
        self.log: list[tuple[float, str]] = []
        self.t0 = time.time()

    def run(self) -> None:
        if self.halt.wait(self.start_after):
            return
        while not self.halt.is_set():
            what = self.fault(self.rng)
            if what:
                self.log.append((round(time.time() - self.t0, 1), what))
            if self.halt.wait(self.rng.uniform(*self.every)):
                return

    def stop(self) -> None:
        self.halt.set()
        self.join()


def rollout_workers(trainer_pid: int) -> list[int]:
    """The trainer's live rollout worker processes (its python children; games are theirs)."""
    return [
        c
        for c in procfs.children(trainer_pid)
        if procfs.alive(c) and (s := procfs.stat(c)) is not None and s.comm != "vizdoom"
    ]


def kill_a_worker(trainer_pid: int):
    def fault(rng: random.Random) -> str | None:
        workers = rollout_workers(trainer_pid)
        if not workers:
            return None
        pid = rng.choice(workers)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return f"SIGKILL rollout worker {pid}"

    return fault


def doom_run(seed: int, frames: int, faults: bool, every, start: float, train_dir: str) -> dict:
    cmd = doom_cmd(train_dir, f"s{seed}_{'kills' if faults else 'clean'}", seed, frames,
                   ["--quiet", "--restart", "true"])
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chaos = Chaos(kill_a_worker(proc.pid), seed, start, every) if faults else None
    if chaos:
        chaos.start()
    out, err = proc.communicate()
    if chaos:
        chaos.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"run failed ({proc.returncode}): {err[-2000:]}")
    summary = json.loads(lines[-1])
    return {
        "seed": seed,
        "faults": faults,
        "kills": len(chaos.log) if chaos else 0,
        "kill_log": chaos.log if chaos else [],
        "wall_s": round(time.time() - t0, 1),
        "summary": summary,
    }


def _mean_std(xs):
    m = sum(xs) / len(xs)
    sd = (sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1)) ** 0.5
    return m, sd


def doom_kills(args) -> dict:
    runs = []
    with tempfile.TemporaryDirectory(prefix="gristmill_chaos_") as train_dir:
        for seed in range(args.seeds):
            for faults in (False, True):
                r = doom_run(seed, args.frames, faults, args.every, args.start, train_dir)
                s = r["summary"]
                print(
                    f"seed {seed} {'kills' if faults else 'clean'}: reward "
                    f"{s.get('reward_mean_100')} fps {s.get('fps'):.0f} kills {r['kills']} "
                    f"restarts {s.get('worker_restarts')} wall {r['wall_s']} s",
                    flush=True,
                )
                runs.append(r)
    clean = [r["summary"]["reward_mean_100"] for r in runs if not r["faults"]]
    kills = [r["summary"]["reward_mean_100"] for r in runs if r["faults"]]
    (cm, cs), (km, ks) = _mean_std(clean), _mean_std(kills)
    fps_c = _mean_std([r["summary"]["fps"] for r in runs if not r["faults"]])[0]
    fps_k = _mean_std([r["summary"]["fps"] for r in runs if r["faults"]])[0]
    result = {
        "scenario": "doom-kills",
        "frames": args.frames,
        "every_s": list(args.every),
        "start_s": args.start,
        "runs": runs,
        "reward_clean": {"mean": cm, "std": cs, "min": min(clean), "max": max(clean)},
        "reward_kills": {"mean": km, "std": ks, "min": min(kills), "max": max(kills)},
        "fps_ratio_under_fire": fps_k / fps_c,
        "within_seed_spread": min(clean) - cs <= km,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chaos_doom_kills.json").write_text(json.dumps(result, indent=1))
    print("\n| seed | reward, no kills | reward, kills | kills | fps ratio |")
    print("|---:|---:|---:|---:|---:|")
    for seed in range(args.seeds):
        c = next(r for r in runs if r["seed"] == seed and not r["faults"])
        k = next(r for r in runs if r["seed"] == seed and r["faults"])
        print(
            f"| {seed} | {c['summary']['reward_mean_100']:.3f} | "
            f"{k['summary']['reward_mean_100']:.3f} | {k['kills']} | "
            f"{k['summary']['fps'] / c['summary']['fps']:.2f} |"
        )
    print(f"| mean | {cm:.3f} ± {cs:.3f} | {km:.3f} ± {ks:.3f} | | {fps_k / fps_c:.2f} |")
    return result


# ---------------------------------------------------------------------------- common parts
TAG = "GRISTMILL_CHAOS_RUN"


class Residue:
    """What a scenario must leave as it found it: no process it started (all carry ``TAG`` in
    their environment, so orphans re-parented away still count), no new ``/dev/shm`` entry
    (segments, semaphores, VizDoom's) that no other live process holds, no new file
    descriptor in this process. A thread notes every tagged pid it sees, so a
    ``gristmill_<pid>_*`` entry of one of ours that died counts as ours, and every VizDoom
    game's instance id, so a ``ViZDoom*<id>`` entry counts as ours only if one of our games
    made it (other runs on a shared box leave theirs)."""

    def __init__(self):
        self.tag = uuid.uuid4().hex
        os.environ[TAG] = self.tag
        self.shm = set(os.listdir("/dev/shm"))
        gc.collect()
        self.fds = procfs.fd_targets(os.getpid())
        self.ours: set[int] = set()
        self.games: set[str] = set()  # our VizDoom games' instance ids (in their shm names)
        self.halt = threading.Event()
        self.watch = threading.Thread(target=self._watch, daemon=True)
        self.watch.start()

    def tagged(self) -> list[int]:
        me, tag = os.getpid(), self.tag.encode()
        return [
            p for p in procfs.pids()
            if p != me and procfs.environ(p).get(TAG.encode()) == tag and procfs.alive(p)
        ]  # fmt: skip

    def _watch(self) -> None:
        while not self.halt.wait(0.5):
            for p in set(self.tagged()) - self.ours:
                self.ours.add(p)
                cmd = procfs.cmdline(p)
                if b"+viz_instance_id" in cmd:
                    self.games.add(cmd[cmd.index(b"+viz_instance_id") + 1].decode())

    def check(self, wait: float = 20.0) -> dict:
        deadline = time.time() + wait
        while (left := self.tagged()) and time.time() < deadline:
            time.sleep(0.2)
        self.halt.set()
        self.watch.join()
        leaked = []
        for name in unheld_new_shm(self.shm, exclude=left):
            m = re.search(r"gristmill_(\d+)_", name)
            if m and int(m.group(1)) not in self.ours | set(left):
                continue  # another run's gristmill segment
            if name.startswith("ViZDoom") and not any(name.endswith(g) for g in self.games):
                continue  # another run's VizDoom game (the box is shared)
            leaked.append(name)
        gc.collect()
        new_fds = {
            fd: t for fd, t in procfs.fd_targets(os.getpid()).items() if self.fds.get(fd) != t
        }
        os.environ.pop(TAG, None)
        return {
            "processes_left": [
                b" ".join(procfs.cmdline(p)).decode(errors="replace")[:160] for p in left
            ],
            "shm_leaked": leaked,
            "fds_leaked": new_fds,
        }

    def failures(self, found: dict) -> list[str]:
        out = []
        if found["processes_left"]:
            out.append(f"processes left: {found['processes_left']}")
        if found["shm_leaked"]:
            out.append(f"/dev/shm entries left: {found['shm_leaked']}")
        if found["fds_leaked"]:
            out.append(f"file descriptors leaked in the harness: {found['fds_leaked']}")
        return out


def unheld_new_shm(before: set[str], exclude=()) -> list[str]:
    """``/dev/shm`` entries not in ``before`` that no live process (but those in ``exclude``)
    has open or mapped: left behind."""
    new = sorted(set(os.listdir("/dev/shm")) - before)
    if not new:
        return []
    held: set[str] = set()
    for pid in procfs.pids():
        if pid in exclude:
            continue
        held.update(t for t in procfs.fd_targets(pid).values() if t.startswith("/dev/shm/"))
        held.update(m for m in procfs.mapped_paths(pid) if m.startswith("/dev/shm/"))
    return [n for n in new if f"/dev/shm/{n}" not in held]


def fault_stats(log) -> dict:
    """Faults injected and survived by kind, and time to recover, from a :class:`Chaos` log
    of dicts (``kind``, ``ok``, ``recover_s``)."""
    faults = [f for _, f in log if isinstance(f, dict)]
    rec = [f["recover_s"] for f in faults if f.get("recover_s") is not None]
    kinds = sorted({f["kind"] for f in faults})
    return {
        "injected": {k: sum(f["kind"] == k for f in faults) for k in kinds},
        "survived": {k: sum(f["kind"] == k and bool(f.get("ok")) for f in faults) for k in kinds},
        "recover_s": {
            "n": len(rec),
            "median": round(statistics.median(rec), 2) if rec else None,
            "max": round(max(rec), 2) if rec else None,
        },
    }


def _wait_until(cond, timeout: float, every: float = 0.1) -> float | None:
    """Seconds until ``cond()`` held, or None after ``timeout``."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return time.time() - t0
        time.sleep(every)
    return None


def _brief(x):
    """``x`` without its long lists (fault logs, cycles), for the console."""
    if isinstance(x, dict):
        return {k: _brief(v) for k, v in x.items() if k not in ("log", "cycles")}
    if isinstance(x, list):
        return [_brief(v) for v in x]
    return x


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


COMMIT = _commit()  # at the start: the code that ran


def finish(name: str, result: dict, failures: list[str], stem: str | None = None) -> dict:
    """Write ``chaos_<stem or name>.json`` (with the commit and the box's load averages at
    the end: 1, 5, 15 min); print the failures loudly (the exit status follows)."""
    result["failures"] = failures
    result["passed"] = not failures
    result["commit"] = COMMIT
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"chaos_{(stem or name).replace('-', '_')}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(_brief(result), default=str), flush=True)
    if failures:
        print(f"\n!!! {name} FAILED ({len(failures)}):", file=sys.stderr)
        for f in failures[:50]:
            print(f"!!!   {f}", file=sys.stderr)
    else:
        print(f"{name}: every check held; {path}", flush=True)
    return result


# ---------------------------------------------------------------------------- Doom
def doom_cmd(train_dir: str, experiment: str, seed: int, frames: int, extra=(),
             env: str = "doom_basic") -> list[str]:  # fmt: skip
    return [
        sys.executable, "-m", "gristmill.apps.doom", "train", "--env", env,
        "--num_workers", "2", "--num_envs_per_worker", "4", "--seed", str(seed),
        "--train_for_env_steps", str(frames), "--train_dir", train_dir,
        "--experiment", experiment, *extra,
    ]  # fmt: skip


def games_of(worker: int) -> list[int]:
    """A rollout worker's live VizDoom game processes."""
    return [
        c for c in procfs.children(worker)
        if (s := procfs.stat(c)) is not None and s.comm == "vizdoom" and s.state != "Z"
    ]  # fmt: skip


def summary_books(summary: dict) -> dict | None:
    """The run's step books (``SlotLedger.books``: served, trained, dropped, lost_with_worker,
    in_flight, balanced): the summary's ``steps``."""
    sampler = summary.get("sampler") or {}
    for d in (summary.get("steps"), summary.get("books"), sampler.get("books")):
        if isinstance(d, dict) and "served" in d:
            return d
    flat = {k.split("/", 1)[1]: v for k, v in sampler.items() if k.startswith("books/")}
    return flat or None


def books_failures(summary: dict) -> tuple[dict | None, list[str]]:
    books = summary_books(summary)
    if books is None:
        return None, ["no step books in the run's summary (SlotLedger.books not in it)"]
    parts = sum(v for k, v in books.items() if k not in ("served", "balanced"))
    books = {**books, "unaccounted": books["served"] - parts}
    if books["unaccounted"] != 0 or not books.get("balanced", True):
        return books, [f"step books do not balance: {books}"]
    return books, []


def doom_train(cmd: list[str], timeout: float, fault_fn=None, seed: int = 0, every=(5, 20),
               start: float = 20.0) -> tuple[dict | None, list, str]:
    """Run the trainer (optionally under a :class:`Chaos` of ``fault_fn(trainer_pid)``);
    returns (final JSON summary or None, chaos log, stderr tail)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chaos = Chaos(fault_fn(proc.pid), seed, start, every) if fault_fn else None
    if chaos:
        chaos.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n[chaos] killed after {timeout:.0f} s"
    if chaos:
        chaos.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    summary = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    return summary, chaos.log if chaos else [], err[-3000:]


def doom_faults(trainer_pid: int, heartbeat: float, envs_per_worker: int = 4, workers: int = 2):
    """One random fault per call: SIGKILL a rollout worker, SIGKILL a VizDoom game, or SIGSTOP
    a worker (the supervisor must find it silent after ``heartbeat`` s and replace it); waits
    until every worker is back with all its games (``recover_s``)."""

    def healthy(gone: int) -> bool:
        ws = rollout_workers(trainer_pid)
        return (
            len(ws) == workers and gone not in ws
            and all(len(games_of(w)) == envs_per_worker for w in ws)
        )  # fmt: skip

    def fault(rng: random.Random):
        ws = rollout_workers(trainer_pid)
        if len(ws) < workers:
            return None
        kind = rng.choice(("kill_worker", "kill_game", "stop_worker"))
        if kind == "kill_game":
            games = [g for w in ws for g in games_of(w)]
            if not games:
                return None
            victim = rng.choice(games)
        else:
            victim = rng.choice(ws)
        done = lambda: not procfs.alive(victim) and healthy(victim)  # noqa: E731
        t0 = time.time()
        try:
            os.kill(victim, signal.SIGSTOP if kind == "stop_worker" else signal.SIGKILL)
        except ProcessLookupError:
            return None
        limit = 3 * heartbeat + 90 if kind == "stop_worker" else 90
        rec = _wait_until(lambda: done() or not procfs.alive(trainer_pid), limit)
        if not procfs.alive(trainer_pid):  # the run reached its budget first: not a verdict
            return {"kind": kind, "pid": victim, "t": round(t0, 2), "ok": None,
                    "recover_s": None, "note": "the run ended before it could recover"}  # fmt: skip
        if rec is None and kind == "stop_worker" and procfs.alive(victim):
            os.kill(victim, signal.SIGCONT)
        return {"kind": kind, "pid": victim, "t": round(t0, 2), "ok": rec is not None,
                "recover_s": None if rec is None else round(rec, 2)}  # fmt: skip

    return fault


def doom_fire(args) -> dict:
    residue = Residue()
    failures: list[str] = []
    extra = ["--heartbeat_timeout", str(args.heartbeat_timeout), "--quiet", "--restart", "true",
             "--num_policies", str(args.num_policies)]  # fmt: skip
    stem = "doom-fire" + ("-population" if args.num_policies > 1 else "")
    with tempfile.TemporaryDirectory(prefix="gristmill_chaos_") as train_dir:
        clean, _, err = doom_train(
            doom_cmd(train_dir, "clean", args.seed, 10**12,
                     extra + ["--train_for_seconds", str(args.baseline_minutes * 60)], args.env),
            timeout=args.baseline_minutes * 60 + 300,
        )  # fmt: skip
        if clean is None:
            failures.append(f"the run without faults failed: {err}")
            return finish("doom-fire", {"scenario": "doom-fire"}, failures, stem=stem)
        frames = int(clean["fps"] * (args.budget_minutes or args.minutes) * 60)
        t0 = time.time()
        fire, log, err = doom_train(
            doom_cmd(train_dir, "fire", args.seed, frames, extra, args.env),
            timeout=args.minutes * 60 * 4 + 300,
            fault_fn=lambda pid: doom_faults(pid, args.heartbeat_timeout),
            seed=args.seed, every=args.every, start=args.start,
        )  # fmt: skip
        wall = time.time() - t0
    stats = fault_stats(log)
    for _, f in log:
        if f["ok"] is False:
            failures.append(f"not recovered from {f}")
    result = {"scenario": "doom-fire", "env": args.env, "num_policies": args.num_policies,
              "frames_budget": frames, "wall_s": round(wall, 1),
              "heartbeat_timeout": args.heartbeat_timeout, "clean": clean, "faults": stats,
              "log": log}  # fmt: skip
    if fire is None:
        failures.append(f"the run under fire failed: {err}")
    else:
        result["fire"] = fire
        if fire.get("reason") != "done" or fire["env_frames"] < frames:
            failures.append(f"did not train to its budget: {fire.get('reason')}, "
                            f"{fire['env_frames']} of {frames} frames")  # fmt: skip
        books, bad = books_failures(fire)
        result["books"] = books
        failures += bad
        result["fps_ratio_under_fire"] = round(fire["fps"] / clean["fps"], 3)
    result["residue"] = residue.check()
    failures += residue.failures(result["residue"])
    return finish("doom-fire", result, failures, stem=stem)


_RESUMED = re.compile(r"resumed from (\S+?):? .*?([\d,]+) frames")
_CKPT = re.compile(r"checkpoint_(\d{9})_(\d+)\.pt$")


class _Lines(threading.Thread):
    """Reads a child's stdout; ``seen[pattern]`` = seconds from start to the first line
    matching each pattern; ``lines`` keeps them all."""

    def __init__(self, stream, patterns):
        super().__init__(daemon=True)
        self.stream, self.patterns, self.t0 = stream, patterns, time.time()
        self.seen: dict[str, tuple[float, re.Match]] = {}
        self.lines: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))
            for p in self.patterns:
                if p not in self.seen and (m := re.search(p, line)):
                    self.seen[p] = (time.time() - self.t0, m)


def driver_kills(args) -> dict:
    try:
        from gristmill.apps.checkpoints import load_checkpoint
    except ImportError:  # a commit from before the apps shared their checkpoint module
        from gristmill.apps.doom.checkpoints import load_checkpoint

    def latest_checkpoint(directory: str) -> str | None:
        """The newest checkpoint file below ``directory`` (one policy's or a population's)."""
        found = [str(p) for p in Path(directory).rglob("checkpoint_*.pt") if _CKPT.search(p.name)]
        return max(found, key=lambda p: int(_CKPT.search(p).group(1)), default=None)

    residue = Residue()
    failures: list[str] = []
    rng = random.Random(args.seed)
    cycles = []
    train_dir = tempfile.mkdtemp(prefix="gristmill_chaos_")
    ckpt_dir = os.path.join(train_dir, "driver", "checkpoints")
    extra = ["--save_every_sec", str(args.save_every), "--heartbeat_timeout", "60"]
    last_frames, last_resumed, t_start = -1, 0, time.time()
    name_unit = 4  # frames per unit of a checkpoint name (learned from the resumes)
    for i in range(args.kills + 1):
        # the last cycle trains to its budget; so does an earlier one once time is short
        final = i == args.kills or bool(
            args.max_minutes and time.time() - t_start > args.max_minutes * 60)
        cyc: dict = {"i": i}
        newest = latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None
        if newest is not None:
            frames = int(_CKPT.search(newest).group(2))
            try:
                cyc["loads"] = isinstance(load_checkpoint(newest), dict)
                why = "it holds no dict"
            except Exception as exc:  # noqa: BLE001 - the check is that nothing is raised
                cyc["loads"], why = False, repr(exc)
            if not cyc["loads"]:
                failures.append(f"cycle {i}: newest checkpoint {newest} does not load: {why}")
            if frames < last_frames:
                failures.append(f"cycle {i}: checkpoint frames went back {last_frames} -> {frames}")
            cyc["checkpoint_frames"] = last_frames = frames
        temps = list(Path(ckpt_dir).rglob("*.tmp*")) if os.path.isdir(ckpt_dir) else []
        cyc["temp_files"] = len(temps)
        if os.path.exists(os.path.join(train_dir, "driver", "summary.json")):
            failures.append(f"cycle {i}: a killed run left a summary.json claiming its frames")
        # --train_for_env_steps counts frames; a checkpoint's name may count agent steps
        budget = (max(last_frames, 0) * name_unit + args.final_frames) if final else 10**12
        cmd = doom_cmd(train_dir, "driver", args.seed, budget, extra)
        t0 = time.time()
        shm_before = set(os.listdir("/dev/shm"))
        # notices (the resume line) go to stderr, the JSON summary to stdout: read both
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reader = _Lines(proc.stdout, (_RESUMED.pattern, r"^training doom_basic"))
        reader.start()
        # this driver's own temporary files (".tmp<pid>"): a killed one's may still lie there
        ours = lambda pid=proc.pid: any(Path(ckpt_dir).rglob(f"*.tmp{pid}"))  # noqa: E731
        if final:
            try:
                proc.wait(timeout=900)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                failures.append("the final run did not finish in 900 s")
        else:
            if rng.random() < args.during_save:
                cyc["aim"] = "checkpoint write"
                _wait_until(ours, 120, every=0.005)
            else:
                cyc["aim"] = "random"
                time.sleep(rng.uniform(*args.every))
            writing = ours()
            if proc.poll() is not None:
                failures.append(f"cycle {i}: the driver exited by itself ({proc.returncode}) "
                                f"before the kill: {reader.lines[-15:]}")  # fmt: skip
            proc.kill()
            proc.wait()
            cyc["killed_at_s"] = round(time.time() - t0, 2)
            cyc["during_checkpoint_write"] = writing
            # its workers (parent-death signal) and their games must go on their own
            cyc["orphans_gone_s"] = _wait_until(lambda: not residue.tagged(), 30)
            if cyc["orphans_gone_s"] is None:
                failures.append(f"cycle {i}: processes of the killed driver still alive after "
                                f"30 s: {residue.tagged()}")  # fmt: skip
            # A SIGKILLed owner cannot unlink its segments: what gristmill-shm clean is for.
            # Remove exactly the dead driver's (its pid is in their names) and count them.
            own = [n for n in os.listdir("/dev/shm") if f"gristmill_{proc.pid}_" in n]
            for n in own:
                os.unlink(os.path.join("/dev/shm", n))
            cyc["shm_left_by_killed_driver"] = len(own)
            left = unheld_new_shm(shm_before)
            if left:
                failures.append(f"cycle {i}: the killed driver's run left {left} in /dev/shm")
        reader.join(timeout=10)
        proc.stdout.close()
        if newest is not None:
            got = reader.seen.get(_RESUMED.pattern)
            if got is None:
                if not final and r"^training doom_basic" not in reader.seen:
                    cyc["resumed"] = "killed before it said"
                else:
                    failures.append(f"cycle {i}: did not say it resumed from {newest}")
            else:
                m = got[1]
                r = cyc["resumed_frames"] = int(m.group(2).replace(",", ""))
                # the file name counts frames (single-policy runs) or agent steps (populations,
                # frameskip 4); a population resumes from its manifest, which may still name
                # the checkpoint before the newest file (killed between the two writes)
                exact = r in (last_frames, 4 * last_frames)
                cyc["resumed_newest"] = exact
                if exact and last_frames > 0:
                    name_unit = r // last_frames  # frames per unit of the checkpoint's name
                if r > 4 * last_frames or (not exact and r > last_frames) or r < last_resumed:
                    failures.append(f"cycle {i}: resumed at {r} frames ({m.group(0)}); newest "
                                    f"checkpoint {newest}, previous resume {last_resumed}")
                last_resumed = max(last_resumed, r)
        if (tr := reader.seen.get(r"^training doom_basic")) is not None:
            cyc["recover_s"] = round(tr[0], 2)
        if final:
            lines = [ln for ln in reader.lines if ln.startswith("{")]
            summary = json.loads(lines[-1]) if lines and proc.returncode == 0 else None
            cyc["summary"] = summary
            if summary is None:
                failures.append(f"the final run failed ({proc.returncode})")
            else:
                if summary["env_frames"] < budget or summary.get("reason") != "done":
                    failures.append(f"final run: {summary.get('reason')} at "
                                    f"{summary['env_frames']} of {budget} frames")  # fmt: skip
                books, bad = books_failures(summary)
                cyc["books"] = books
                failures += bad
                if not books or not books.get("served"):
                    failures.append(f"the final run sampled nothing (budget {budget} frames)")
        cycles.append(cyc)
        print(f"cycle {i}: {json.dumps({k: v for k, v in cyc.items() if k != 'summary'})}",
              flush=True)  # fmt: skip
        if final:
            break
    import shutil

    temps_max = max(c["temp_files"] for c in cycles)
    if temps_max > 1:
        failures.append(f"temporary checkpoint files pile up: {temps_max} at once")
    shutil.rmtree(train_dir, ignore_errors=True)
    killed = [c for c in cycles if "killed_at_s" in c]
    rec = [c["recover_s"] for c in cycles if c.get("recover_s") is not None]
    result = {
        "scenario": "driver-kills",
        "wall_s": round(time.time() - t_start, 1),
        "kills": len(killed),
        "kills_during_checkpoint_write": sum(c["during_checkpoint_write"] for c in killed),
        "resumes_checked": sum("resumed_frames" in c for c in cycles),
        "resumed_from_newest_file": sum(bool(c.get("resumed_newest")) for c in cycles),
        "checkpoint_frames_final": last_frames,
        "temp_files_max": temps_max,
        "shm_left_by_killed_drivers": sum(c.get("shm_left_by_killed_driver", 0) for c in cycles),
        "recover_s": {"median": statistics.median(rec) if rec else None,
                      "max": max(rec) if rec else None},  # fmt: skip
        "books": cycles[-1].get("books"),
        "cycles": cycles,
    }
    result["residue"] = residue.check()
    failures += residue.failures(result["residue"])
    return finish("driver-kills", result, failures)


# ---------------------------------------------------------------------------- env pool
def pool_run(task: str, seconds: float, seed: int, every, start: float, faults: bool) -> dict:
    """EnvPool's async loop on ``task`` for ``seconds``, every result checked; with ``faults``
    a random pool worker is SIGKILLed every ``U(every)`` s. Returns the checks' figures."""
    from gristmill.samplers import make
    from gristmill.samplers._worker import split_envs

    num_envs, batch, workers = 16, 8, 2
    pool = make(task, num_envs=num_envs, batch_size=batch, num_workers=workers, seed=seed,
                on_error="restart", max_restarts=10**6, step_timeout=120.0)  # fmt: skip
    owned = split_envs(num_envs, workers)
    obs_shape = pool.single_observation_space.shape
    obs_dtype = pool.single_observation_space.dtype
    n_actions = int(pool.single_action_space.n)
    rng = np.random.default_rng(seed)
    requested = np.zeros(num_envs, np.int64)
    returned = np.zeros(num_envs, np.int64)
    outstanding = np.zeros(num_envs, bool)
    last_elapsed = np.full(num_envs, -1, np.int64)
    ended = np.ones(num_envs, bool)
    cuts = 0  # episodes a restart cut short
    pending: list[dict] = []
    lock = threading.Lock()
    bad: list[str] = []

    def fault(r: random.Random):
        pids = pool.worker_pids()
        w = r.randrange(len(pids))
        t0 = time.time()
        try:
            os.kill(pids[w], signal.SIGKILL)
        except ProcessLookupError:
            return None
        f = {"kind": "kill_pool_worker", "worker": w, "pid": pids[w], "t": t0, "ok": False,
             "recover_s": None, "envs": set(owned[w].tolist()), "back": {}}  # fmt: skip
        with lock:
            pending.append(f)
        return f

    chaos = Chaos(fault, seed, start, every) if faults else None
    t0 = time.time()
    pool.async_reset()
    requested += 1
    outstanding[:] = True
    results = recvs = 0
    if chaos:
        chaos.start()
    quiet = warnings.catch_warnings()  # the pool warns of each restart: expected here
    quiet.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
        # after the time is up, no more faults; wait (60 s at most) for the last one's envs
        while time.time() - t0 < seconds or (pending and time.time() - t0 < seconds + 60):
            if chaos and time.time() - t0 >= seconds and not chaos.halt.is_set():
                chaos.stop()
            try:
                obs, rew, term, trunc, info = pool.recv()
            except TimeoutError as exc:
                bad.append(f"recv hung: {exc}")
                break
            except Exception as exc:  # noqa: BLE001 - the client must not crash: report it
                bad.append(f"recv raised {type(exc).__name__}: {str(exc)[:300]}")
                break
            now = time.time()
            ids = np.array(info["env_id"], dtype=np.int64)
            el = np.array(info["elapsed_step"], dtype=np.int64)
            n = len(ids)
            recvs += 1
            if len(np.unique(ids)) != n:
                bad.append(f"recv {recvs}: an env twice in one batch: {ids.tolist()}")
            if not outstanding[ids].all():
                bad.append(f"recv {recvs}: results for envs not sent: {ids.tolist()}")
            if obs.shape != (n, *obs_shape) or obs.dtype != obs_dtype:
                bad.append(f"recv {recvs}: obs {obs.shape} {obs.dtype}")
            if len(rew) != n or not np.isfinite(rew).all() or len(term) != n or len(trunc) != n:
                bad.append(f"recv {recvs}: malformed reward/flags")
            with lock:
                # envs a killed worker still owes: each comes back once as a restart (the
                # pool's contract: elapsed_step 0, reward 0, truncated), maybe only after the
                # dead worker's published results -- the pool's restart count can rise first
                owed = {i for f in pending for i in f["envs"] - set(f["back"])}
            for k, (e, i) in enumerate(zip(el.tolist(), ids.tolist())):
                cut = i in owed and bool(trunc[k]) and rew[k] == 0
                fresh = e == 0 and (ended[i] or cut)
                if not (e == last_elapsed[i] + 1 or fresh):
                    bad.append(f"recv {recvs}: env {i} elapsed_step {last_elapsed[i]} -> {e} "
                               f"(truncated {bool(trunc[k])}, reward {rew[k]}, "
                               f"owed by a killed worker: {i in owed})")  # fmt: skip
                cuts += e == 0 and not ended[i]
                last_elapsed[i], ended[i] = e, term[k] or trunc[k]
            with lock:
                for f in pending:
                    # back = its restart result (elapsed 0, truncated); an elapsed-0 result
                    # without the flag is an episode's ordinary reset that the dead worker
                    # had published before it died
                    for i in ids[(el == 0) & np.asarray(trunc, bool)].tolist():
                        if i in f["envs"] and i not in f["back"]:
                            f["back"][i] = now - f["t"]
                    if len(f["back"]) == len(f["envs"]):
                        f["ok"], f["recover_s"] = True, round(max(f["back"].values()), 3)
                    elif now - f["t"] > 60:
                        bad.append(f"envs {sorted(f['envs'] - set(f['back']))} of killed worker "
                                   f"{f['worker']} not back after 60 s")  # fmt: skip
                        f["recover_s"] = -1.0
                pending[:] = [f for f in pending if f["recover_s"] is None]
            returned[ids] += 1
            outstanding[ids] = False
            results += n
            try:
                pool.send(rng.integers(0, n_actions, size=n), ids)
            except Exception as exc:  # noqa: BLE001
                bad.append(f"send raised {type(exc).__name__}: {str(exc)[:300]}")
                break
            requested[ids] += 1
            outstanding[ids] = True
            if len(bad) > 20:
                break
    finally:
        if chaos:
            chaos.stop()
        wall = time.time() - t0
        restarts = pool.restarts
        pool.close()
        quiet.__exit__(None, None, None)
    log = [(t, {k: v for k, v in f.items() if k not in ("envs", "back")}) for t, f in
           (chaos.log if chaos else [])]  # fmt: skip
    unbalanced = np.flatnonzero(returned != requested - outstanding).tolist()
    if unbalanced:
        bad.append(f"books: envs {unbalanced} returned {returned[unbalanced].tolist()} of "
                   f"{requested[unbalanced].tolist()} requested, "
                   f"{outstanding[unbalanced].tolist()} outstanding")  # fmt: skip
    return {
        "task": task, "wall_s": round(wall, 1), "recvs": recvs, "results": results,
        "steps_per_s": round(results / wall, 1), "restarts": restarts,
        "requested": int(requested.sum()), "returned": int(returned.sum()),
        "outstanding_at_stop": int(outstanding.sum()), "lost": len(unbalanced),
        "episodes_cut_by_restarts": cuts,
        "faults": fault_stats(log), "log": log, "failures": bad,
    }  # fmt: skip


def pool_fire(args) -> dict:
    residue = Residue()
    runs, failures = [], []
    for task in args.tasks:
        clean = pool_run(task, args.baseline_minutes * 60, args.seed, args.every, args.start, False)
        fire = pool_run(task, args.minutes * 60, args.seed, args.every, args.start, True)
        for r in (clean, fire):
            failures += [f"{task}: {b}" for b in r["failures"]]
        fire["throughput_ratio"] = round(fire["steps_per_s"] / clean["steps_per_s"], 3)
        print(f"{task}: {fire['results']} results in {fire['wall_s']} s under "
              f"{fire['faults']['injected']} kills, {fire['restarts']} restarts, recover "
              f"{fire['faults']['recover_s']}, {fire['throughput_ratio']} of clean "
              f"({clean['steps_per_s']} steps/s)", flush=True)  # fmt: skip
        runs.append({"clean": clean, "fire": fire})
    result = {"scenario": "pool-fire", "runs": runs}
    result["residue"] = residue.check()
    failures += residue.failures(result["residue"])
    # one file per task set, so each task can run alone under the bench lock
    stem = "pool-fire" + "".join("_" + re.sub(r"\W+", "_", t).lower() for t in args.tasks)
    return finish("pool-fire", result, failures, stem=stem)


# ---------------------------------------------------------------------------- the queue
IDLE, PUT, PUT_MANY, GET, GET_MANY, HOLDING = range(6)
PHASES = ("between calls", "put", "put_many", "get", "get_many", "holding a batch")
MAX_IDS = 1 << 16
GET_MANY_MAX = 16


def _board() -> dict:
    """Shared (anonymous ``MAP_SHARED``, inherited by fork) state of the queue scenario."""
    specs = {
        "phase": (64, np.int64), "held": (64, np.int64), "stop": (2, np.int64),
        "lo": (MAX_IDS, np.int64), "n": (MAX_IDS, np.int64), "done": (MAX_IDS, np.int64),
        "first_op": (MAX_IDS, np.float64),
    }  # fmt: skip
    buf = mmap.mmap(-1, sum(int(np.prod(s)) * 8 for s, _ in specs.values()))
    out, off = {"_buf": buf}, 0
    for name, (shape, dt) in specs.items():
        out[name] = np.frombuffer(buf, dtype=dt, count=shape, offset=off)
        off += shape * 8
    return out


def q_message(p: int, seq: int):
    """Producer ``p``'s message ``seq``: bytes, an int64 array or a pickled tuple by turns,
    each with a payload (0-1.5 KiB) that ``q_decode`` checks."""
    n = (p * 7919 + seq * 104729) % 1500
    payload = ((np.arange(n, dtype=np.int64) + p + seq) % 251).astype(np.uint8).tobytes()
    kind = seq % 3
    if kind == 0:
        return struct.pack("<QQ", p, seq) + payload
    if kind == 1:
        return np.concatenate([np.array([p, seq], np.int64), np.frombuffer(payload, np.uint8)])
    return ("msg", p, seq, payload)


def q_decode(m) -> tuple[int, int, bool]:
    try:
        if isinstance(m, bytes):
            p, seq = struct.unpack_from("<QQ", m)
            return p, seq, m == q_message(p, seq)
        if isinstance(m, np.ndarray):
            p, seq = int(m[0]), int(m[1])
            return p, seq, bool(np.array_equal(m, q_message(p, seq)))
        _, p, seq, _ = m
        return p, seq, m == q_message(p, seq)
    except Exception:  # noqa: BLE001 - anything malformed counts as corrupt
        return -1, -1, False


def q_producer(q, board, slot: int, p: int, pause: float) -> None:
    if pause:
        from gristmill.kernels._shmqueue import set_debug_put_pause

        set_debug_put_pause(pause)
    rng = random.Random(p)
    seq = 0
    while not board["stop"][0]:
        n = 1 if rng.random() < 0.5 else rng.randint(2, 8)
        msgs = [q_message(p, seq + i) for i in range(n)]
        board["lo"][p], board["n"][p] = seq, n
        board["phase"][slot] = PUT if n == 1 else PUT_MANY
        try:
            if n == 1:
                q.put(msgs[0], timeout=0.3)
            else:
                q.put_many(msgs, timeout=0.3)
        except Full:
            board["n"][p] = 0
            board["phase"][slot] = IDLE
            continue
        seq += n
        board["done"][p] = seq
        board["phase"][slot] = IDLE
        if not board["first_op"][p]:
            board["first_op"][p] = time.time()
        if pause:
            time.sleep(0.01)
    os._exit(0)


def q_consumer(q, board, slot: int, c: int, log_dir: str) -> None:
    fd = os.open(os.path.join(log_dir, f"c{c}.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    rng = random.Random(c)
    while True:
        many = rng.random() < 0.7
        board["phase"][slot] = GET_MANY if many else GET
        try:
            msgs = q.get_many(timeout=0.2, max_messages=GET_MANY_MAX) if many else [
                q.get(timeout=0.2)]  # fmt: skip
        except Empty:
            board["phase"][slot] = IDLE
            if board["stop"][1]:
                break
            continue
        board["held"][slot] = len(msgs)
        board["phase"][slot] = HOLDING
        recs = np.array([q_decode(m) for m in msgs], dtype=np.int64)
        os.write(fd, recs.tobytes())  # one write: the batch is logged whole or not at all
        board["phase"][slot] = IDLE
        if not board["first_op"][c]:
            board["first_op"][c] = time.time()
    os.close(fd)
    os._exit(0)


def queue_run(seconds: float, seed: int, every, start: float, faults: bool,
              producers: int = 3, consumers: int = 3) -> dict:  # fmt: skip
    """Producers and consumers on one queue for ``seconds``; with ``faults`` a random one is
    SIGKILLed and replaced every ``U(every)`` s. Then producers stop, consumers drain, and the
    books are checked (see the module docstring)."""
    import multiprocessing as mp

    from gristmill.kernels.shmqueue import Queue

    ctx = mp.get_context("fork")
    board = _board()
    log_dir = tempfile.mkdtemp(prefix="gristmill_chaos_q_")
    q = Queue(max_size_bytes=64 * 1024)
    procs: dict[int, tuple] = {}  # slot -> (process, id)
    next_id = [1]
    lock = threading.Lock()
    killed: list[dict] = []

    def spawn(slot: int) -> None:
        i = next_id[0]
        next_id[0] += 1
        if slot < producers:
            pause = 0.001 if slot == 0 else 0.0
            pr = ctx.Process(target=q_producer, args=(q, board, slot, i, pause), daemon=True)
        else:
            pr = ctx.Process(target=q_consumer, args=(q, board, slot, i, log_dir), daemon=True)
        board["phase"][slot] = IDLE
        pr.start()
        procs[slot] = (pr, i)

    def fault(r: random.Random):
        with lock:
            slot = r.randrange(producers + consumers)
            pr, i = procs[slot]
            t0 = time.time()
            os.kill(pr.pid, signal.SIGKILL)
            pr.join()
            phase = int(board["phase"][slot])
            who = "consumer" if slot >= producers else "producer" if slot else "pausing producer"
            f = {"kind": f"{who} in {PHASES[phase]}", "producer": slot < producers,
                 "id": i, "t": t0, "phase": phase, "ok": True, "recover_s": None,
                 "held": int(board["held"][slot]) if phase == HOLDING else 0}  # fmt: skip
            if slot < producers:
                f["lo"], f["n"], f["done"] = (int(board[k][i]) for k in ("lo", "n", "done"))
            spawn(slot)
            f["successor"] = procs[slot][1]
            killed.append(f)
            return f

    t0 = time.time()
    for slot in range(producers + consumers):
        spawn(slot)
    chaos = Chaos(fault, seed, start, every) if faults else None
    if chaos:
        chaos.start()
    time.sleep(seconds)
    if chaos:
        chaos.stop()
    board["stop"][0] = 1
    for slot in range(producers):
        procs[slot][0].join()
    t_stop = time.time()
    board["stop"][1] = 1
    for slot in range(producers, producers + consumers):
        procs[slot][0].join()
    wall = t_stop - t0
    left = q.qsize()
    q.close()
    recs = [np.fromfile(os.path.join(log_dir, n), dtype=np.int64).reshape(-1, 3)
            for n in sorted(os.listdir(log_dir))]  # fmt: skip
    import shutil

    shutil.rmtree(log_dir, ignore_errors=True)
    for f in killed:
        f["recover_s"] = round(board["first_op"][f["successor"]] - f["t"], 3) if (
            board["first_op"][f["successor"]]) else None  # fmt: skip
    bad: list[str] = []
    allrec = np.concatenate(recs) if recs else np.zeros((0, 3), np.int64)
    corrupt = int((allrec[:, 2] == 0).sum())
    if corrupt:
        bad.append(f"{corrupt} corrupt messages")
    # per-producer order within each consumer
    disorder = 0
    for r in recs:
        order = np.lexsort((np.arange(len(r)), r[:, 0]))
        pr_, sq = r[order, 0], r[order, 1]
        same = pr_[1:] == pr_[:-1]
        disorder += int(np.count_nonzero(same & (sq[1:] <= sq[:-1])))
    if disorder:
        bad.append(f"{disorder} messages out of per-producer order within a consumer")
    keys = allrec[:, 0] * (1 << 40) + allrec[:, 1]
    uniq, counts = np.unique(keys, return_counts=True)
    dups = int((counts - 1).sum())
    if dups:
        bad.append(f"{dups} duplicate deliveries")
    held = sum(f["held"] for f in killed)
    in_get = sum(f["phase"] in (GET, GET_MANY) for f in killed if not f["producer"])
    # by role, not by name: "pausing producer ..." is a producer too (its interrupted puts
    # were counted as phantom messages when this matched names starting with "producer")
    killed_p = {f["id"]: f for f in killed if f["producer"]}
    missing = phantom = partial = sent = interrupted_delivered = interrupted_dropped = 0

    def count(lo: int, hi: int) -> int:  # received keys in [lo, hi): uniq is sorted
        return int(np.searchsorted(uniq, hi) - np.searchsorted(uniq, lo))

    for p in range(1, next_id[0]):
        done = int(board["done"][p])
        lo, n = int(board["lo"][p]), int(board["n"][p])
        maybe = (lo, lo + n) if (p in killed_p and n and lo == done) else (done, done)
        base = p << 40
        sent += done
        missing += done - count(base, base + done)
        phantom += count(base + done, base + (1 << 40)) - count(base + maybe[0], base + maybe[1])
        if maybe[1] > maybe[0]:
            have = count(base + maybe[0], base + maybe[1])
            partial += have not in (0, n)
            interrupted_delivered += have == n
            interrupted_dropped += have == 0
    if phantom:
        bad.append(f"{phantom} messages received that no put returned from or was interrupted in")
    if partial:
        bad.append(f"{partial} interrupted put_many delivered in part")
    lost_in_get = missing - held
    if not 0 <= lost_in_get <= GET_MANY_MAX * in_get:
        bad.append(f"{missing} messages missing, {held} held by killed consumers, "
                   f"{in_get} consumers killed inside get: unaccounted")  # fmt: skip
    if left:
        bad.append(f"{left} messages still queued after the drain")
    return {
        "wall_s": round(wall, 1), "received": len(allrec), "sent": sent,
        "msgs_per_s": round(len(allrec) / wall, 1), "corrupt": corrupt, "duplicates": dups,
        "out_of_order": disorder, "missing": missing, "held_by_killed_consumers": held,
        "lost_inside_get": lost_in_get, "interrupted_puts_delivered": interrupted_delivered,
        "interrupted_puts_dropped": interrupted_dropped, "interrupted_puts_partial": partial,
        "phantom": phantom, "faults": fault_stats(chaos.log if chaos else []),
        "log": chaos.log if chaos else [], "failures": bad,
    }  # fmt: skip


def queue_fire(args) -> dict:
    residue = Residue()
    clean = queue_run(args.baseline_minutes * 60, args.seed, args.every, args.start, False)
    fire = queue_run(args.minutes * 60, args.seed, args.every, args.start, True)
    failures = [f"clean: {b}" for b in clean["failures"]] + fire["failures"]
    result = {"scenario": "queue-fire", "clean": clean, "fire": fire,
              "throughput_ratio": round(fire["msgs_per_s"] / clean["msgs_per_s"], 3)}  # fmt: skip
    result["residue"] = residue.check()
    failures += residue.failures(result["residue"])
    return finish("queue-fire", result, failures)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="scenario", required=True)
    d = sub.add_parser("doom-kills", help="Doom training with rollout workers SIGKILLed")
    d.add_argument("--seeds", type=int, default=3)
    d.add_argument("--frames", type=int, default=450_000)
    d.add_argument("--every", type=float, nargs=2, default=(8.0, 15.0), help="seconds between")
    d.add_argument("--start", type=float, default=25.0, help="first fault after this")

    def scenario(name, help, minutes, every, start):
        s = sub.add_parser(name, help=help)
        s.add_argument("--minutes", type=float, default=minutes, help="under fire")
        s.add_argument("--baseline_minutes", type=float, default=min(minutes, 2.0),
                       help="the same workload without faults (throughput ratio)")
        s.add_argument("--every", type=float, nargs=2, default=every, help="seconds between")
        s.add_argument("--start", type=float, default=start, help="first fault after this")
        s.add_argument("--seed", type=int, default=0)
        return s

    f = scenario("doom-fire", "Doom training under worker/game kills and SIGSTOPs", 10, (5, 20), 20)
    f.add_argument("--heartbeat_timeout", type=float, default=10.0)
    f.add_argument("--budget_minutes", type=float, default=0.0,
                   help="frame budget = the clean run's frames/s x this (0: --minutes); under "
                   "fire the run lasts longer by 1 / its throughput ratio")
    f.add_argument("--num_policies", type=int, default=1, help="a population run if >= 2")
    f.add_argument("--env", default="doom_basic")
    pf = scenario("pool-fire", "the env pool under worker kills", 5, (5, 20), 5)
    pf.add_argument("--tasks", nargs="+", default=["Pong-v5", "CartPole-v1"])
    scenario("queue-fire", "shmqueue producers/consumers SIGKILLed", 10, (0.2, 1.0), 1)
    dk = sub.add_parser("driver-kills", help="the trainer SIGKILLed and resumed, again and again")
    dk.add_argument("--kills", type=int, default=50)
    dk.add_argument("--every", type=float, nargs=2, default=(10.0, 40.0),
                    help="seconds after start of a random kill")
    dk.add_argument("--during_save", type=float, default=0.35,
                    help="share of kills aimed at a checkpoint write")
    dk.add_argument("--save_every", type=float, default=4.0, help="--save_every_sec")
    dk.add_argument("--final_frames", type=int, default=100_000,
                    help="the last run trains this far past the newest checkpoint")
    dk.add_argument("--max_minutes", type=float, default=0.0,
                    help="start no kill cycle after this long (0: no limit)")
    dk.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.scenario == "doom-kills":
        doom_kills(args)
        return 0
    run = {"doom-fire": doom_fire, "pool-fire": pool_fire, "queue-fire": queue_fire,
           "driver-kills": driver_kills}[args.scenario]  # fmt: skip
    return 0 if run(args)["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

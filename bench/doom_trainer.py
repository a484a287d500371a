"""Doom trainer throughput: gristmill-doom vs Sample Factory 2.1.1, plus the pipeline limit.

Subcommands (run each under ``flock /tmp/gristmill-bench.lock``):

- ``components``: CPU cost per env frame of the three stages on this box — VizDoom stepping
  (one core), the learner (APPO train on a 1024-sample batch) and batched inference, each
  with torch on one thread — and the pipeline limit ``cores / sum(core-seconds per frame)``:
  the best any layout can do when every stage shares the same cores.
- ``gristmill``: run ``gristmill-doom train`` for ``--seconds`` and report steady env frames/s
  (frames trained after the first 25% of the run, divided by the time).
- ``sf``: the same for Sample Factory (``--sf_python``: the interpreter of its own venv), with
  the settings of /work/shared/notes/sample_factory.md §6.
- ``compare``: sf, gristmill, sf, gristmill (back to back) and the ratio of medians.
- ``curves``: sample efficiency. Train Sample Factory, then gristmill, for ``--frames`` env
  frames each with the same settings, read both TensorBoard reward curves (100-episode mean
  against env frames) and write bench/results/doom_curves_<env>.{json,png}.

Results print as JSON lines; BENCHMARKS.md quotes them with the command.
"""

from __future__ import annotations

import os
import sys

# bench/ holds modules named like the stdlib's (bench/queue.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_timed(cmd: list[str], seconds: float, pattern: re.Pattern, cwd: str, env=None) -> dict:
    """Run ``cmd``; every output line matching ``pattern`` (group 'frames') is stamped with the
    wall time it was read. Steady fps = frame delta over the last 75% of the samples."""
    samples: list[tuple[float, int]] = []
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    t0 = time.time()
    tail: list[str] = []

    def read():
        for line in proc.stdout:
            tail.append(line)
            del tail[:-40]
            m = pattern.search(line)
            if m:
                samples.append((time.time() - t0, int(m.group("frames").replace(",", ""))))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        # Sample Factory 2.1.1 does not stop on --train_for_seconds here: SIGINT stops it
        # cleanly (its documented way out); kill the group if even that hangs.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(10)
    wall = time.time() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the whole process tree (children are reaped by their parents in turn):
    # robust to other load on a shared box, unlike frames per wall second.
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    steady = None
    if len(samples) >= 3:
        start = next((s for s in samples if s[0] >= 0.25 * samples[-1][0]), samples[0])
        end = samples[-1]
        if end[0] > start[0]:
            steady = (end[1] - start[1]) / (end[0] - start[0])
    return {
        "steady_fps": steady,
        "frames": samples[-1][1] if samples else 0,
        "wall_s": wall,
        "cpu_s": cpu,
        "frames_per_cpu_s": (samples[-1][1] / cpu) if samples and cpu > 0 else None,
        "returncode": proc.returncode,
        "samples": len(samples),
        "tail": "".join(tail[-5:]) if steady is None else "",
    }


def _limit(args, frames: int | None) -> tuple[float, str, str]:
    """(timeout s, limit flag, value): train for ``frames`` env frames, else for --seconds."""
    if frames:
        # Generous wall cap (>= 400 frames/s) so a stuck run still ends.
        return frames / 400 + 180, "train_for_env_steps", str(frames)
    return args.seconds, "train_for_seconds", str(int(args.seconds))


def run_gristmill(args, frames: int | None = None, seed: int = 0) -> dict:
    """Train gristmill-doom for --seconds (or ``frames`` env frames, then read its curve)."""
    work = tempfile.mkdtemp(prefix="gm-doom-bench-")
    seconds, flag, value = _limit(args, frames)
    cmd = [
        sys.executable,
        "-m",
        "gristmill.apps.doom",
        "train",
        "--env",
        args.env,
        "--train_dir",
        work,
        "--experiment",
        "bench",
        "--restart",
        "true",
        "--num_workers",
        str(args.workers),
        "--num_envs_per_worker",
        str(args.envs),
        f"--{flag}",
        value,
        "--stats_every_sec",
        "5",
        "--save_every_sec",
        "100000",
        "--seed",
        str(seed),
        *args.extra,
    ]
    pat = re.compile(r"\]\s+frames\s+(?P<frames>[\d,]+)\s+\|")
    try:
        res = _run_timed(cmd, seconds, pat, ROOT)
        if frames:
            res["curve"] = _read_curve(os.path.join(work, "bench", "tb"), "episode/reward")
            res["command"] = shlex.join(cmd[1:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "system": "gristmill",
        "env": args.env,
        "workers": args.workers,
        "envs": args.envs,
        "extra": args.extra,
        **res,
    }


def _sweep_shm(before: set[str]) -> int:
    """Sample Factory 2.1.1 leaves its games' ``ViZDoomMQ*``/``ViZDoomSM*`` entries (10 MB per
    env) and multiprocessing semaphores in /dev/shm when it stops; remove the ones that
    appeared during its run (it is the only thing running then). Returns how many."""
    new = [n for n in set(os.listdir("/dev/shm")) - before if n.startswith(("ViZDoom", "sem.mp-"))]
    for name in new:
        try:
            os.unlink(os.path.join("/dev/shm", name))
        except FileNotFoundError:
            pass
    return len(new)


def run_sf(args, frames: int | None = None, seed: int | None = None) -> dict:
    """The same for Sample Factory; its reward curve is ``reward/reward`` (100-episode mean)."""
    work = tempfile.mkdtemp(prefix="sf-doom-bench-")
    shm_before = set(os.listdir("/dev/shm"))
    seconds, flag, value = _limit(args, frames)
    cmd = [
        args.sf_python,
        "-m",
        "sf_examples.vizdoom.train_vizdoom",
        f"--env={args.env}",
        "--device=cpu",
        f"--num_workers={args.workers}",
        f"--num_envs_per_worker={args.envs}",
        "--env_frameskip=4",
        "--use_rnn=True",
        "--wide_aspect_ratio=False",
        "--decorrelate_envs_on_one_worker=False",
        f"--{flag}={value}",
        f"--train_dir={work}",
        "--experiment=bench",
        "--save_every_sec=100000",
        "--with_wandb=False",
        "--experiment_summaries_interval=5",  # logging only: gristmill's --stats_every_sec
        *([f"--seed={seed}"] if seed is not None else []),
    ]
    pat = re.compile(r"Total num frames: (?P<frames>\d+)")
    try:
        res = _run_timed(cmd, seconds, pat, work)
        if frames:
            summary = os.path.join(work, "bench", ".summary", "0")  # policy 0
            res["curve"] = _read_curve(summary, "reward/reward")
            res["command"] = shlex.join(cmd[1:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        leftovers = _sweep_shm(shm_before)
    return {
        "shm_leftovers_removed": leftovers,
        "system": "sample-factory 2.1.1",
        "env": args.env,
        "workers": args.workers,
        "envs": args.envs,
        **res,
    }


def _read_curve(logdir: str, tag: str) -> list[list[float]]:
    """[[env frames, mean episode reward], ...] of TensorBoard scalar ``tag`` under ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return []
    return [[e.step, e.value] for e in acc.Scalars(tag)]


def _final(curve: list[list[float]]) -> float | None:
    """Mean reward of the last 10% of the curve's points."""
    tail = curve[-max(1, len(curve) // 10) :]
    return sum(v for _, v in tail) / len(tail) if tail else None


def _mean_curve(curves: list[list[list[float]]], points: int = 60) -> list[list[float]]:
    """Mean of several curves on a common frame grid (linear interpolation), up to the
    shortest curve's last frame."""
    import numpy as np

    curves = [c for c in curves if c]
    if not curves:
        return []
    lo = max(c[0][0] for c in curves)
    hi = min(c[-1][0] for c in curves)
    grid = np.linspace(lo, hi, points)
    ys = [np.interp(grid, [x for x, _ in c], [y for _, y in c]) for c in curves]
    return [[float(x), float(y)] for x, y in zip(grid, np.mean(ys, axis=0), strict=True)]


def curves(args) -> dict:
    """Train both for --frames env frames with --seeds seeds each (0, 1, ...), then write
    bench/results/doom_curves_<env>.{json,png}: mean episode reward (100 episodes) against env
    frames, each seed's curve and the mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = os.path.join(ROOT, "bench", "results", f"doom_curves_{args.env}")
    runs: dict[str, list[dict]] = {"sample-factory 2.1.1": [], "gristmill": []}
    if args.extend and os.path.exists(base + ".json"):
        # Keep the seeds already run with the same budget and layout; run only the missing.
        with open(base + ".json") as f:
            old = json.load(f)
        if (old["frames"], old.get("workers", args.workers), old.get("envs", args.envs)) != (
            args.frames,
            args.workers,
            args.envs,
        ):
            raise SystemExit(f"--extend: {base}.json was run with other settings")
        runs = {name: rs[: args.seeds] for name, rs in old["runs"].items()}
        if args.rerun:  # e.g. gristmill changed: its seeds again, SF's kept
            runs[{"gristmill": "gristmill", "sf": "sample-factory 2.1.1"}[args.rerun]] = []
    for seed in range(args.seeds):
        if len(runs["sample-factory 2.1.1"]) <= seed:
            runs["sample-factory 2.1.1"].append(run_sf(args, args.frames, seed=seed))
        if len(runs["gristmill"]) <= seed:
            runs["gristmill"].append(run_gristmill(args, args.frames, seed=seed))
    summary = {}
    for name, rs in runs.items():
        for r in rs:
            r["final_reward"] = _final(r["curve"])
        finals = [r["final_reward"] for r in rs if r["final_reward"] is not None]
        mean = _mean_curve([r["curve"] for r in rs])
        summary[name] = {
            "finals": finals,
            "mean_final": sum(finals) / len(finals) if finals else None,
            "mean_curve": mean,
            "frames_to_0": next((x for x, y in mean if y >= 0), None),
            "frames_to_0.5": next((x for x, y in mean if y >= 0.5), None),
        }
    out = {
        "env": args.env,
        "frames": args.frames,
        "workers": args.workers,
        "envs": args.envs,
        "seeds": args.seeds,
        "settings": f"{args.workers} workers x {args.envs} envs, conv + GRU 512, batch 1024, "
        "rollout 32, frameskip 4, 128x72 RGB, CPU; seeds 0..seeds-1 for both",
        "summary": summary,
        "runs": runs,
    }
    with open(base + ".json", "w") as f:
        json.dump(out, f, indent=1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, rs), colour in zip(runs.items(), ("tab:blue", "tab:orange"), strict=True):
        for r in rs:
            if r["curve"]:
                x, y = zip(*r["curve"], strict=True)
                ax.plot(x, y, color=colour, alpha=0.25, lw=1)
        m = summary[name]
        if m["mean_curve"]:
            x, y = zip(*m["mean_curve"], strict=True)
            ax.plot(
                x,
                y,
                color=colour,
                lw=2,
                label=f"{name}: mean of {len(rs)} (final {m['mean_final']:.2f})",
            )
    ax.set_xlabel("env frames (frameskip 4 counted)")
    ax.set_ylabel("mean episode reward (last 100 episodes)")
    ax.set_title(f"{args.env}: {args.frames:,} frames, {args.workers} x {args.envs} envs")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=110)
    return {
        "system": "curves",
        "env": args.env,
        "frames": args.frames,
        "workers": args.workers,
        "envs": args.envs,
        "seeds": args.seeds,
        **{f"{n}_finals": m["finals"] for n, m in summary.items()},
        **{f"{n}_mean_final": m["mean_final"] for n, m in summary.items()},
        **{f"{n}_frames_to_0.5": m["frames_to_0.5"] for n, m in summary.items()},
        **{f"{n}_wall_s": [r["wall_s"] for r in rs] for n, rs in runs.items()},
        "written": [base + ".json", base + ".png"],
    }


def components(args) -> dict:
    import numpy as np
    import torch
    from gristmill.apps.doom.config import TrainConfig
    from gristmill.apps.doom.env_factory import DoomEnvFactory
    from gristmill.apps.doom.model import appo_config, build_model
    from gristmill.learners import APPOLearner, retain_freed_memory

    torch.set_num_threads(1)
    retain_freed_memory()  # as the trainer does
    cfg = TrainConfig(env=args.env)
    factory = DoomEnvFactory(cfg.env, cfg.res_w, cfg.res_h, False, cfg.env_frameskip)
    # Env: 4 games stepped in turn from one thread ~ one core (Python side + game process).
    envs = [factory(i) for i in range(4)]
    rng = np.random.default_rng(0)
    for e in envs:
        e.reset(seed=0)
    steps = 0
    w0 = time.time()
    while time.time() - w0 < args.component_seconds:
        for e in envs:
            _, _, term, trunc, _ = e.step(e.action_space.sample())
            steps += 1
            if term or trunc:
                e.reset()
    env_wall = time.time() - w0
    env_fps = steps * cfg.env_frameskip / env_wall
    space, obs_space = envs[0].action_space, envs[0].observation_space
    for e in envs:
        e.close()

    model = build_model(cfg, obs_space, space)
    learner = APPOLearner(model, appo_config(cfg))
    n, t = cfg.batch_size // cfg.rollout, cfg.rollout
    obs = torch.from_numpy(
        rng.integers(0, 255, (n, t + 1, 3, cfg.res_h, cfg.res_w), dtype=np.uint8)
    )
    a = model.action_spec
    batch = {
        "obs": {"obs": obs},
        "rnn_states": torch.zeros(n, t + 1, model.state_size),
        "actions": torch.zeros(n, t, a.action_dim),
        "log_prob_actions": torch.full((n, t), -1.4),
        "action_logits": torch.zeros(n, t, a.num_logits),
        "values": torch.zeros(n, t + 1),
        "rewards": torch.zeros(n, t),
        "dones": torch.zeros(n, t, dtype=torch.bool),
        "time_outs": torch.zeros(n, t, dtype=torch.bool),
        "policy_version": torch.zeros(n, t, dtype=torch.long),
    }
    learner.train(batch)  # warm-up
    w0, reps = time.time(), 0
    while time.time() - w0 < args.component_seconds:
        batch["policy_version"].fill_(learner.train_step)
        learner.train(batch)
        reps += 1
    learn_fps = reps * n * t * cfg.env_frameskip / (time.time() - w0)

    infer_batch = args.workers * args.envs // 2
    x = {"obs": obs[:infer_batch, 0]}
    h = model.initial_state(infer_batch)
    model.act(x, h)
    w0, reps = time.time(), 0
    while time.time() - w0 < args.component_seconds:
        model.act(x, h)
        reps += 1
    infer_fps = reps * infer_batch * cfg.env_frameskip / (time.time() - w0)
    cores = os.cpu_count() or 1
    cost = 1 / env_fps + 1 / learn_fps + 1 / infer_fps
    return {
        "system": "components",
        "env": args.env,
        "env_frames_per_core_s": env_fps,
        "learner_frames_per_core_s": learn_fps,
        "inference_frames_per_core_s": infer_fps,
        "inference_batch": infer_batch,
        "cores": cores,
        "pipeline_limit_fps": cores / cost,
    }


def population(args) -> dict:
    """Population overhead (issue 14): the same run with 1 and with ``--policies`` policies
    (Sample Factory's mixed match-making), alternating, ``--repeat`` pairs; steady frames/s,
    and frames per CPU-second of the run's process tree (what a loaded box still measures)."""
    base = list(args.extra)
    fps: dict[int, list[float]] = {1: [], args.policies: []}
    eff: dict[int, list[float]] = {1: [], args.policies: []}
    for _ in range(args.repeat):
        for n in (1, args.policies):
            args.extra = [*base, "--num_policies", str(n)]
            r = run_gristmill(args)
            print(json.dumps({"num_policies": n, **r}), flush=True)
            fps[n].append(r["steady_fps"] or 0.0)
            eff[n].append(r["frames_per_cpu_s"] or 0.0)
    args.extra = base
    mean = {n: sum(v) / len(v) for n, v in fps.items()}
    mean_eff = {n: sum(v) / len(v) for n, v in eff.items()}
    return {
        "system": "population",
        "env": args.env,
        "workers": args.workers,
        "envs": args.envs,
        "fps": fps,
        "ratio": mean[args.policies] / max(mean[1], 1e-9),
        "frames_per_cpu_s": eff,
        "cpu_ratio": mean_eff[args.policies] / max(mean_eff[1], 1e-9),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "what", choices=["components", "gristmill", "sf", "compare", "curves", "population"]
    )
    p.add_argument("--policies", type=int, default=4, help="population: N policies vs 1")
    p.add_argument("--env", default="doom_basic")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--envs", type=int, default=4)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--component_seconds", type=float, default=15)
    p.add_argument("--frames", type=int, default=500_000, help="curves: env frames per run")
    p.add_argument("--sf_python", default="/work/sf-venv/bin/python")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seeds", type=int, default=1, help="curves: seeds per framework (0, 1, ...)")
    p.add_argument(
        "--extend",
        action="store_true",
        help="curves: keep the seeds in the existing results JSON, run only the missing ones",
    )
    p.add_argument(
        "--rerun",
        choices=["gristmill", "sf"],
        help="curves with --extend: run this framework's seeds again, keep the other's",
    )
    p.add_argument("--gm_args", default="", help="extra gristmill-doom flags, one string")
    args = p.parse_args()
    if args.rerun and not args.extend:
        p.error("--rerun re-runs seeds of a stored curves file: it needs --extend")
    args.extra = shlex.split(args.gm_args)
    if args.what == "components":
        print(json.dumps(components(args)), flush=True)
    elif args.what == "gristmill":
        print(json.dumps(run_gristmill(args)), flush=True)
    elif args.what == "curves":
        print(json.dumps(curves(args)), flush=True)
    elif args.what == "sf":
        print(json.dumps(run_sf(args)), flush=True)
    elif args.what == "population":
        print(json.dumps(population(args)), flush=True)
    else:
        gm, sf, gm_eff, sf_eff = [], [], [], []
        for _ in range(args.repeat):
            r = run_sf(args)
            print(json.dumps(r), flush=True)
            sf.append(r["steady_fps"] or 0.0)
            sf_eff.append(r["frames_per_cpu_s"] or 0.0)
            r = run_gristmill(args)
            print(json.dumps(r), flush=True)
            gm.append(r["steady_fps"] or 0.0)
            gm_eff.append(r["frames_per_cpu_s"] or 0.0)
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        print(
            json.dumps(
                {
                    "system": "ratio",
                    "env": args.env,
                    "gristmill_median": med(gm),
                    "sf_median": med(sf),
                    "ratio": med(gm) / max(med(sf), 1e-9),
                    "gristmill_frames_per_cpu_s": med(gm_eff),
                    "sf_frames_per_cpu_s": med(sf_eff),
                    "cpu_efficiency_ratio": med(gm_eff) / max(med(sf_eff), 1e-9),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

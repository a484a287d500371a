"""Generals league agent: training throughput against the paper-style pipeline, where the CPU
goes, and strength per CPU-hour of a few network sizes.

``throughput``: agent steps per second of ``apps/generals/selfplay.py`` (the batched engine,
one learner forward per tick, a frozen snapshot opponent playing argmax, PPO 2 epochs) and of a
pipeline built the way generals-agent does it (``_generals_bots_pipeline.py``: generals-bots
2.5.0's ``GymnasiumGenerals`` in gymnasium's ``AsyncVectorEnv``, NumPy memory features, the same
torch model, loss, epochs and minibatches), measured one after the other in the same run, plus
the gristmill loop's time shares (forward, update = PPO forward + backward + Adam, engine, ...).

``strength``: for each network size, behaviour cloning of the ``general`` bot on the same
recorded games for the same CPU budget, then games against ``expander`` and ``general`` (both
seats, fog, fresh generalsio maps, truncation 500; draws count 1/2).

Run under ``flock /tmp/gristmill-bench.lock``; results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/queue.py (the queue benchmark) would shadow the standard library's queue, which torch
# imports: run as a script, this folder must not be on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
RESULTS = ROOT / "bench" / "results"
PIPELINE = Path(__file__).with_name("_generals_bots_pipeline.py")
SIZES = {
    "small": dict(channels=16, blocks=1, stem_channels=8),
    "default": dict(channels=32, blocks=2, stem_channels=16),
    "medium": dict(channels=48, blocks=3, stem_channels=24),
}


def gristmill_throughput(boards, rollout, updates, threads, size):
    import torch
    from gristmill.apps.generals.agent import Policy
    from gristmill.apps.generals.selfplay import SelfPlay, SelfPlayConfig
    from gristmill.learners import retain_freed_memory

    torch.set_num_threads(threads)
    retain_freed_memory()  # as `gristmill-generals train` does
    torch.manual_seed(0)
    policy = Policy.create(**SIZES[size])
    cfg = SelfPlayConfig(boards=boards, rollout=rollout, epochs=2, minibatch=512, bots=(),
                         reward="winlose", snapshot_greedy=True, snapshot_threshold=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        sp = SelfPlay(policy, cfg, tmp, log=lambda s: None)
        sp.add_snapshot()
        sp.run(boards * rollout)  # warm-up: compile, allocate
        sp.timers.clear()
        steps0, w0, c0 = sp.agent_steps, time.perf_counter(), time.process_time()
        sp.run(boards * rollout * (updates + 1))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        steps = sp.agent_steps - steps0
        return {"pipeline": "gristmill selfplay", "boards": boards, "agent_steps": steps,
                "wall_s": wall, "main_cpu_s": cpu, "agent_steps_per_s": steps / wall,
                "shares": sp.profile(), "params": policy.net.num_parameters()}


def paper_throughput(boards, rollout, updates, threads, size):
    sys.path.insert(0, str(ROOT / "tests" / "envs" / "generals"))
    from generals_reference import reference_python
    from gristmill.envs.generals.agent_input import num_agent_channels

    net = dict(in_channels=num_agent_channels(7), **SIZES[size])
    args = dict(boards=boards, rollout=rollout, updates=updates, threads=threads, epochs=2,
                minibatch=512, net=net)
    proc = subprocess.run([str(reference_python()), str(PIPELINE),
                           sysconfig.get_paths()["purelib"], json.dumps(args)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cmd_throughput(a):
    rows = []
    for boards in a.boards:
        g = gristmill_throughput(boards, a.rollout, a.updates, a.threads, a.size)
        p = paper_throughput(boards, a.rollout, a.updates, a.threads, a.size)
        # per CPU-second of every process (the paper-style env workers included): on a
        # shared box the wall-clock ratio moves with whatever else runs
        g["agent_steps_per_cpu_s"] = g["agent_steps"] / g["main_cpu_s"]
        p["agent_steps_per_cpu_s"] = p["agent_steps"] / (p["main_cpu_s"] + p["env_cpu_s"])
        rows.append({"boards": boards, "gristmill": g, "paper_style": p,
                     "speedup": g["agent_steps_per_s"] / p["agent_steps_per_s"],
                     "speedup_per_cpu_s": g["agent_steps_per_cpu_s"]
                     / p["agent_steps_per_cpu_s"]})
        net_share = g["shares"].get("forward", 0) + g["shares"].get("update", 0) + \
            g["shares"].get("forward_opponents", 0)
        print(f"boards={boards}: gristmill {g['agent_steps_per_s']:.0f} agent steps/s "
              f"(network {100 * net_share:.1f} % of the loop), paper-style "
              f"{p['agent_steps_per_s']:.0f} -> {rows[-1]['speedup']:.2f}x; per CPU-second "
              f"{g['agent_steps_per_cpu_s']:.0f} vs {p['agent_steps_per_cpu_s']:.0f} "
              f"(main {p['main_cpu_s']:.1f} + env workers {p['env_cpu_s']:.1f} s) -> "
              f"{rows[-1]['speedup_per_cpu_s']:.2f}x", flush=True)
        print("  gristmill shares: " + ", ".join(f"{k} {100 * v:.1f} %"
                                                for k, v in g["shares"].items()))
        print("  paper-style shares of wall time: " + ", ".join(
            f"{k} {100 * v:.1f} %" for k, v in p["shares"].items()))
    out = {"size": a.size, "rollout": a.rollout, "updates": a.updates, "threads": a.threads,
           "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generals_agent_throughput.json").write_text(json.dumps(out, indent=1))


def cmd_strength(a):
    import torch
    from gristmill.apps.generals.agent import NetPlayer, Policy
    from gristmill.apps.generals.bc import bot_games, train_bc
    from gristmill.envs.generals.tournament import play_match

    torch.set_num_threads(a.threads)
    data = bot_games(a.games, "general", ("general", "expander", "random"), 64, "generalsio",
                     500, 0)
    train, val = data.split(0.1)
    print(f"data: {data.num_samples:,} samples from {a.games} games", flush=True)
    rows = []
    for size in a.sizes:
        torch.manual_seed(0)
        pol = Policy.create(**SIZES[size])
        c0 = time.process_time()
        m = train_bc(pol, train, val, epochs=1000, lanes=256, lr=1e-3, log=lambda s: None,
                     should_stop=lambda c0=c0: time.process_time() - c0 > 60 * a.cpu_minutes)
        cpu = time.process_time() - c0
        player = NetPlayer(pol, size)
        scores = {}
        for opp in ("expander", "general"):
            r = play_match(player, opp, a.eval_games, "generalsio", 500, seed=1)
            scores[opp] = {"score": r.score_a, "wins": r.wins_a, "draws": r.draws,
                           "losses": r.wins_b}
        rows.append({"size": size, "params": pol.net.num_parameters(), "cpu_s": cpu,
                     "bc": m, "scores": scores})
        print(f"{size}: {pol.net.num_parameters():,} params, BC {cpu / 60:.1f} CPU-min -> "
              + ", ".join(f"vs {k} {100 * v['score']:.1f} %" for k, v in scores.items()),
              flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generals_agent_strength.json").write_text(json.dumps(
        {"games": a.games, "cpu_minutes": a.cpu_minutes, "eval_games": a.eval_games,
         "rows": rows}, indent=1))


def _training_clock(run: Path) -> tuple[dict, float | None]:
    """The run's TensorBoard scalars as ``{tag: [(step, minutes, value)]}``, where minutes
    count training time from the command's start (BC data and BC included) with the gaps
    between resumed sessions left out (each events file is one session), and the minute BC
    ended (the first self-play scalar; None without one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, list] = {}
    offset = 0.0
    for path in sorted((run / "tb").glob("events.out.tfevents*")):  # named by creation time
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        t0 = last = acc.FirstEventTimestamp()  # the writer's creation: the command's start
        for tag in acc.Tags().get("scalars", []):
            for e in acc.Scalars(tag):
                series.setdefault(tag, []).append((e.step, offset + (e.wall_time - t0) / 60,
                                                   e.value))
                last = max(last, e.wall_time)
        offset += (last - t0) / 60
    for pts in series.values():
        pts.sort()
    sp = series.get("selfplay/agent_steps_per_s")
    return series, (sp[0][1] if sp else None)


def _net_minutes(run: Path, series: dict, bc_end: float | None) -> dict[str, float]:
    """Training minute of each net an ``eval --run`` plays: ``bc_policy`` at the end of BC,
    each snapshot at the agent steps it was taken at, ``policy`` at the last self-play step."""
    steps = series.get("selfplay/agent_steps_per_s", [])
    out = {} if bc_end is None else {"bc_policy": bc_end}
    if steps:
        out["policy"] = steps[-1][1]
        xs, ts = [s for s, *_ in steps], [t for _, t, _ in steps]
        manifest = json.loads((run / "population.json").read_text())
        for snap in manifest["snapshots"]:
            k = min(range(len(xs)), key=lambda i: abs(xs[i] - snap["env_steps"]))
            out[snap["name"]] = ts[k]
    return out


def cmd_curve(a):
    """Score against training time (the issue's PNG). Lines: the training-time score per bot
    (the payoff table's decayed win rate, draws 1/2); below, each bot's PFSP probability and
    the snapshots' together (where matchmaking sends the learner). With ``--eval`` (an
    ``eval --run R --out`` file): each evaluated net's score against each bot, at the training
    minute the net was taken, with its 95 % interval; the dashed line marks the end of BC."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(a.run)
    series, bc_end = _training_clock(run)
    fig, (ax, ax_p) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True,
                                   gridspec_kw={"height_ratios": [2, 1]})
    out: dict = {"bc_end_minutes": bc_end, "training": {}, "evaluated": {}, "pfsp": {}}
    colors = {}
    for tag in sorted(t for t in series if t.startswith("win_rate/")):
        name = tag.split("/", 1)[1]
        if name.startswith(("snap_", "exploit_")):
            continue
        pts = series[tag]
        line, = ax.plot([t for _, t, _ in pts], [v for *_, v in pts], alpha=0.45, lw=1,
                        label=f"{name} (training, decayed)")
        colors[name] = line.get_color()
        out["training"][name] = [(st, round(t, 3), v) for st, t, v in pts]
    if a.eval:
        evs = [json.loads(Path(f).read_text()) for f in a.eval]
        pairs = [p for e in evs for p in e["pairs"]]
        when = _net_minutes(run, series, bc_end)
        for bot in dict.fromkeys(b for e in evs for b in e["settings"]["bots"]):
            pts = sorted((when[p["a"]], p["score_a"], p["low"], p["high"], p["a"], p["games"])
                         for p in pairs if p["b"] == bot and p["a"] in when)
            if not pts:
                continue
            t, sc, lo, hi = (np.array([q[i] for q in pts]) for i in range(4))
            games = sorted({q[5] for q in pts})
            n = f"{games[0]}" if len(games) == 1 else f"{games[0]}-{games[-1]}"
            ax.errorbar(t, sc, yerr=[sc - lo, hi - sc], fmt="o-", ms=3, capsize=2,
                        color=colors.get(bot), label=f"{bot} (eval, {n} games)")
            out["evaluated"][bot] = [dict(net=q[4], minutes=round(q[0], 3), score=q[1],
                                          low=q[2], high=q[3], games=q[5]) for q in pts]
    # matchmaking: each bot's PFSP probability, and the snapshots' together
    pfsp: dict[str, dict[int, tuple[float, float]]] = {}
    for tag, pts in series.items():
        if tag.startswith("pfsp/"):
            name = tag.split("/", 1)[1]
            group = "snapshots" if name.startswith(("snap_", "exploit_")) else name
            acc = pfsp.setdefault(group, {})
            for st, t, v in pts:
                acc[st] = (t, acc.get(st, (t, 0.0))[1] + v)
    for name, acc in sorted(pfsp.items()):
        pts = [(st, *acc[st]) for st in sorted(acc)]
        ax_p.plot([t for _, t, _ in pts], [v for *_, v in pts], label=name,
                  color=colors.get(name, "black"))  # the snapshots: no training line
        out["pfsp"][name] = [(st, round(t, 3), v) for st, t, v in pts]
    ax_p.set_ylabel("PFSP probability")
    ax_p.set_ylim(0, 1)
    ax_p.grid(alpha=0.3)
    ax_p.legend(fontsize=8, loc="upper right")
    for x in (ax, ax_p):
        if bc_end is not None:
            x.axvline(bc_end, color="grey", ls="--", lw=1)
    if bc_end is not None:
        ax.text(bc_end, 0.02, " BC | self-play", color="grey", fontsize=8)
    ax_p.set_xlabel("training wall time (minutes, BC included)")
    ax.set_ylabel("score vs opponent (draw = 1/2)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Generals league agent, {run.name}")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "generals_agent_curve.png", dpi=100)
    (RESULTS / "generals_agent_curve.json").write_text(json.dumps(out))
    print(f"wrote {RESULTS / 'generals_agent_curve.png'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--boards", type=int, nargs="+", default=[16])
    p.add_argument("--rollout", type=int, default=32)
    p.add_argument("--updates", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", choices=sorted(SIZES), default="default")
    p.set_defaults(fn=cmd_throughput)
    p = sub.add_parser("strength")
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["small", "default",
                                                                         "medium"])
    p.add_argument("--games", type=int, default=200, help="recorded bot games")
    p.add_argument("--cpu-minutes", type=float, default=5.0, help="BC budget per size")
    p.add_argument("--eval-games", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=cmd_strength)
    p = sub.add_parser("curve")
    p.add_argument("run", help="a gristmill-generals train run folder")
    p.add_argument("--eval", nargs="+", help="`gristmill-generals eval --run RUN --out` JSON "
                   "files (their pairs are plotted together)")
    p.set_defaults(fn=cmd_curve)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()

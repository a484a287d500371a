"""Markdown tables for BENCHMARKS.md from bench/speed_runner.sh's JSON files.

    .venv/bin/python bench/speed_report.py bench/results/speed_main.json [...]
"""

import json
import sys
from collections import defaultdict


def best_rows(results):
    """Best configuration (by steps/s) per (task, system)."""
    best = {}
    for r in results:
        if "error" in r:
            continue
        k = (r["task"], r["system"])
        if k not in best or r["steps_per_s"] > best[k]["steps_per_s"]:
            best[k] = r
    return best


def _cfg(r):
    """``envs/batch``, plus ``/wN`` for the pools' worker (thread) count when it was set."""
    w = r.get("num_workers") or 0
    return f"{r['num_envs']}/{r['batch_size']}" + (f"/w{w}" if w else "")


def table(results, title):
    best = best_rows(results)
    out = [f"**{title}**", "",
           "| task | system | best config (envs/batch[/workers]) | steps/s | frames/s | "
           "steps per CPU-s (eff.) | of limit | of CPU limit | vs EnvPool best |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    order = ["raw", "gym-single", "gym-sync", "gym-async", "ale-vector", "envpool-sync",
             "envpool-async", "gristmill-sync", "gristmill-async"]
    tasks = []
    for r in results:
        if r["task"] not in tasks:
            tasks.append(r["task"])
    for t in tasks:
        for s in order:
            r = best.get((t, s))
            if r is None:
                continue
            cfg = "1" if s in ("raw", "gym-single") else _cfg(r)
            eff = f" ({r['cpu_efficiency']:.2f})" if "cpu_efficiency" in r else ""
            lim = f"{r['of_limit']:.2f}" if "of_limit" in r else "-"
            clim = f"{r['of_cpu_limit']:.2f}" if "of_cpu_limit" in r else "-"
            vs = f"{r['vs_envpool_best']:.2f}" if "vs_envpool_best" in r else "-"
            name = f"**{s}**" if s.startswith("gristmill") else s
            out.append(f"| {t} | {name} | {cfg} | {r['steps_per_s']:,.0f} | "
                       f"{r['frames_per_s']:,.0f} | {r['steps_per_cpu_s']:,.0f}{eff} | {lim} | "
                       f"{clim} | {vs} |")
    return "\n".join(out)


def all_configs(results):
    rows = defaultdict(list)
    for r in results:
        if "error" not in r:
            rows[(r["task"], r["system"])].append(f"{_cfg(r)}: {r['steps_per_s']:,.0f}")
    return "\n".join(f"- {t} {s}: " + "; ".join(v) for (t, s), v in rows.items())


if __name__ == "__main__":
    for path in sys.argv[1:]:
        data = json.load(open(path))
        m = data["meta"]
        print(table(data["results"], f"{path} (cores={m['cores']}, load={m['load']}, "
                    f"{m['repeats']}x{m['seconds']} s, loadavg before "
                    f"{m['loadavg_before'][0]:.2f}, after {m['loadavg_after'][0]:.2f})"))
        print()
        print(all_configs(data["results"]))
        if "python_envs" in data:
            print()
            print("| env | system | envs/batch | steps/s | steps per CPU-s | vs best "
                  "AsyncVectorEnv |")
            print("|---|---|---|---:|---:|---:|")
            for r in data["python_envs"]:
                print(f"| {r['task']} | {r['system']} | {r['num_envs']}/{r['batch_size']} | "
                      f"{r['steps_per_s']:,.0f} | {r['steps_per_cpu_s']:,.0f} | "
                      f"{r['vs_gym_async_best']:.2f} |")
        print()

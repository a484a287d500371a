"""Advantage kernels: gristmill (Numba) vs the NumPy reference vs a torch loop over time.

The peer is what Sample Factory and CleanRL do: a Python ``for`` loop over T on torch tensors
(CleanRL's GAE; Sample Factory's V-trace with the ratios computed up front from the log-ratios,
which both sides get as input). Every implementation gets the same ``[T, B]`` rollout (1%
terminations, 1% truncations; float32, and float64 with ``--dtype float64``) and the results are
checked against each other before timing.

Headline figures run on ONE core: ``torch.set_num_threads(1)``, gristmill ``parallel=False``.
The ``gm xN`` column is gristmill on all available cores (``parallel=True``, wall clock).
Per call we report the best of ``--repeat`` timing rounds, as wall-clock µs and as CPU µs
(``time.process_time``; steadier on a busy machine). Ratios use CPU µs for one-core runs.
``--runs N`` repeats the whole measurement N times in one process (the ratio's run-to-run
spread, e.g. for the "≥ 30x in 10 of 10 runs" target) and prints each run's ratios.

The *stream floor* (``floor`` in the JSON) is measured in every run next to the kernel, with the
same timing: a compiled pass that reads the bytes the kernel reads (V-trace: log-ratios,
rewards, values, next values and both flag arrays; GAE: the same less the log-ratios), writes
the bytes it writes (two ``[T, B]`` results, into kept buffers placed like the kernel's) in the
same backward-in-time row order, with only the arithmetic that keeps the compiler from dropping
the reads. No kernel can run faster than that pass on that box at that moment, so
``torch / floor`` (``best_x_torch``) is the best ratio against the torch loop ANY kernel could
reach in that run, and ``numba / floor`` (``x_floor``) is how far the kernel is from it.

    flock /tmp/gristmill-bench.lock .venv/bin/python bench/advantage.py          # quick
    flock /tmp/gristmill-bench.lock .venv/bin/python bench/advantage.py --full   # T x B grid
    flock /tmp/gristmill-bench.lock .venv/bin/python bench/advantage.py --only vtrace \
        --shape 128 1024 --runs 10 --dtype float32 float64

Writes JSON to bench/results/advantage.json and prints a table.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py shadows the stdlib ``queue`` (which torch imports): keep bench/ off sys.path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from gristmill.kernels import advantage as gm  # noqa: E402
from gristmill.kernels.advantage import reference  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "advantage.json"
GAMMA, LAM = 0.99, 0.95
QUICK_GRID = [(32, 64), (128, 1024)]
FULL_GRID = [(t, b) for t in (32, 128) for b in (64, 1024, 4096)]


# --------------------------------------------------------------------------- the torch peer
def torch_gae(r, v, nv, term, trunc, gamma=GAMMA, lam=LAM):
    """CleanRL's GAE loop (ppo.py), with explicit next values and terminated/truncated."""
    import torch

    not_term = 1.0 - term.to(r.dtype)
    not_done = 1.0 - (term | trunc).to(r.dtype)
    advantages = torch.zeros_like(r)
    last = torch.zeros_like(r[0])
    for t in reversed(range(r.shape[0])):
        delta = r[t] + gamma * nv[t] * not_term[t] - v[t]
        last = delta + gamma * lam * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + v


def torch_vtrace(log_rhos, r, v, nv, term, trunc, gamma=GAMMA, lam=1.0, clip=1.0):
    """Sample Factory's V-trace loop (learner.py): ratios up front, one step per iteration.
    Returns ``(pg_advantages, vs)`` like the kernel."""
    import torch

    ratio = torch.exp(log_rhos)
    rho = torch.clamp(ratio, max=clip)
    c = lam * torch.clamp(ratio, max=clip)
    done = term | trunc
    not_term = 1.0 - term.to(r.dtype)
    not_done = 1.0 - done.to(r.dtype)
    vs = torch.empty_like(r)
    pg = torch.empty_like(r)
    acc = torch.zeros_like(r[0])
    last = r.shape[0] - 1
    for t in reversed(range(r.shape[0])):
        delta = rho[t] * (r[t] + gamma * not_term[t] * nv[t] - v[t])
        acc = delta + gamma * not_done[t] * c[t] * acc
        vs[t] = v[t] + acc
        next_vs = nv[t] if t == last else torch.where(done[t], nv[t], vs[t + 1])
        pg[t] = rho[t] * (r[t] + gamma * not_term[t] * next_vs - v[t])
    return pg, vs


# --------------------------------------------------------------------------- stream floor
def stream_floors():
    """The floor passes (compiled on first use): ``(gae_floor, vtrace_floor)``, each taking
    the kernel's inputs and its two ``[T, B]`` outputs, C-ordered. Each input element feeds
    an output through one add or select (so no load is dead); a select between two computed
    values, never between two loads (that could become a masked load touching less memory)."""
    from numba import njit

    @njit(nogil=True)
    def _row(a, b, c, d, te, tr, out0, out1):
        for i in range(out0.shape[0]):
            out0[i] = a[i] + b[i]
            x = c[i] + d[i]
            out1[i] = -x if (te[i] | tr[i]) else x

    @njit(nogil=True)
    def vtrace_floor(lr, r, v, nv, term, trunc, pg, vs):
        for t in range(r.shape[0] - 1, -1, -1):
            _row(lr[t], r[t], v[t], nv[t], term[t], trunc[t], pg[t], vs[t])

    @njit(nogil=True)
    def gae_floor(r, v, nv, term, trunc, adv, ret):
        # five input streams: r is read once and feeds both outputs
        for t in range(r.shape[0] - 1, -1, -1):
            _row(r[t], v[t], r[t], nv[t], term[t], trunc[t], adv[t], ret[t])

    return gae_floor, vtrace_floor


# ------------------------------------------------------------------------------- harness
def rollout(T: int, B: int, dtype: str = "float32", seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        lr=rng.normal(0.0, 0.3, (T, B)).astype(dtype),
        r=rng.normal(size=(T, B)).astype(dtype),
        v=rng.normal(size=(T, B)).astype(dtype),
        nv=rng.normal(size=(T, B)).astype(dtype),
        term=rng.random((T, B)) < 0.01,
        trunc=rng.random((T, B)) < 0.01,
    )


def timeit(fn, repeat: int, min_time: float) -> tuple[float, float, float]:
    """Best-of-``repeat`` (wall µs, CPU µs) per call, each round lasting about ``min_time``
    s, and the minor page faults per call over all rounds (fresh memory for results costs
    a fault per 4 KiB page touched, and its zeroing)."""
    fn()  # warm-up (and compile)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < min_time / 4:
        fn()
        n += 1
    calls = max(1, int(n * min_time / elapsed))
    best_wall = best_cpu = float("inf")
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        best_wall = min(best_wall, (time.perf_counter() - w0) / calls)
        best_cpu = min(best_cpu, (time.process_time() - c0) / calls)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (repeat * calls)
    return best_wall * 1e6, best_cpu * 1e6, faults


def implementations(data: dict, torch_data: dict, floors) -> dict:
    d, td = data, torch_data
    gae_args = (d["r"], d["v"], d["nv"], d["term"], d["trunc"])
    vt_args = (d["lr"], *gae_args)
    t_gae = (td["r"], td["v"], td["nv"], td["term"], td["trunc"])
    t_vt = (td["lr"], *t_gae)
    # The floors write into result buffers the kernel itself allocated (kept, page-placed).
    gae_out = gm.gae(*gae_args, GAMMA, LAM, parallel=False)
    vt_out = gm.vtrace(*vt_args, GAMMA, 1.0, parallel=False)
    gae_floor, vtrace_floor = floors
    return {
        "gae": {
            "numba": lambda: gm.gae(*gae_args, GAMMA, LAM, parallel=False),
            "numba_par": lambda: gm.gae(*gae_args, GAMMA, LAM, parallel=True),
            "numpy": lambda: reference.gae(*gae_args, GAMMA, LAM),
            "torch": lambda: torch_gae(*t_gae),
            "floor": lambda: gae_floor(*gae_args, *gae_out),
        },
        "vtrace": {
            "numba": lambda: gm.vtrace(*vt_args, GAMMA, 1.0, parallel=False),
            "numba_par": lambda: gm.vtrace(*vt_args, GAMMA, 1.0, parallel=True),
            "numpy": lambda: reference.vtrace(*vt_args, GAMMA, 1.0),
            "torch": lambda: torch_vtrace(*t_vt),
            "floor": lambda: vtrace_floor(*vt_args, *vt_out),
        },
    }


def check_agreement(impls: dict) -> None:
    for kernel, fns in impls.items():
        want = fns["numpy"]()
        for name, fn in fns.items():
            if name == "floor":  # computes nothing meaningful
                continue
            got = [np.asarray(x) for x in fn()]
            for g, w in zip(got, want, strict=True):
                if not np.allclose(g, w, rtol=1e-4, atol=1e-4):
                    raise SystemExit(f"{kernel}/{name} disagrees with the reference")


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import torch

    return {
        "nproc": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "load_avg_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--quick", action="store_true", help=f"grid {QUICK_GRID} (default)")
    grid.add_argument("--full", action="store_true", help=f"grid {FULL_GRID}")
    grid.add_argument("--shape", type=int, nargs=2, metavar=("T", "B"), help="one shape only")
    parser.add_argument("--only", choices=("gae", "vtrace"), help="one kernel only")
    parser.add_argument("--dtype", nargs="+", choices=("float32", "float64"),
                        default=["float32"], help="float dtypes to run (default float32)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the measurement N times")
    parser.add_argument("--repeat", type=int, default=None, help="timing rounds (best kept)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per round")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    full = args.full
    repeat = args.repeat or (7 if full else 5)
    min_time = args.min_time or (0.2 if full else 0.1)
    shapes = [tuple(args.shape)] if args.shape else FULL_GRID if full else QUICK_GRID

    import torch
    from rich.console import Console
    from rich.table import Table

    torch.set_num_threads(1)
    info = machine()
    floors = stream_floors()
    rows = []
    for run in range(args.runs):
        for dtype in args.dtype:
            for T, B in shapes:
                data = rollout(T, B, dtype)
                torch_data = {k: torch.from_numpy(a) for k, a in data.items()}
                impls = implementations(data, torch_data, floors)
                if args.only:
                    impls = {args.only: impls[args.only]}
                check_agreement(impls)
                for kernel, fns in impls.items():
                    row = {"run": run, "dtype": dtype, "kernel": kernel, "T": T, "B": B,
                           "load_avg": os.getloadavg()}
                    for name, fn in fns.items():
                        wall, cpu, faults = timeit(fn, repeat, min_time)
                        row[f"{name}_wall_us"], row[f"{name}_cpu_us"] = wall, cpu
                        row[f"{name}_faults"] = faults
                    row["x_torch"] = row["torch_cpu_us"] / row["numba_cpu_us"]
                    row["x_numpy"] = row["numpy_cpu_us"] / row["numba_cpu_us"]
                    row["x_torch_wall"] = row["torch_wall_us"] / row["numba_wall_us"]
                    row["par_speedup_wall"] = row["numba_wall_us"] / row["numba_par_wall_us"]
                    row["x_floor"] = row["numba_cpu_us"] / row["floor_cpu_us"]
                    row["best_x_torch"] = row["torch_cpu_us"] / row["floor_cpu_us"]
                    rows.append(row)
                    print(
                        f"run {run} {dtype} {kernel:6s} T={T:<4d} B={B:<5d} numba "
                        f"{row['numba_cpu_us']:9.1f} µs  floor {row['floor_cpu_us']:8.1f} µs  "
                        f"torch {row['torch_cpu_us']:9.1f} µs  x{row['x_torch']:.1f} "
                        f"(floor: x{row['best_x_torch']:.1f}; kernel/floor "
                        f"{row['x_floor']:.2f})  page faults per call: numba "
                        f"{row['numba_faults']:.1f}, torch {row['torch_faults']:.1f}  "
                        f"load {row['load_avg'][0]:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )

    cores = info["cores_available"]
    table = Table(
        title=f"advantage kernels, µs per call (one core unless noted; {cores} cores "
        f"available; {info['cpu_model']})"
    )
    for col in ("run", "dtype", "kernel", "T", "B", "gristmill", f"gristmill x{cores}",
                "numpy ref", "torch loop", "stream floor", "vs torch", "vs numpy",
                "kernel/floor", "torch/floor"):
        table.add_column(col, justify="left" if col in ("dtype", "kernel") else "right")
    for row in rows:
        table.add_row(
            str(row["run"]), row["dtype"], row["kernel"], str(row["T"]), str(row["B"]),
            f"{row['numba_cpu_us']:.1f}", f"{row['numba_par_wall_us']:.1f}",
            f"{row['numpy_cpu_us']:.1f}", f"{row['torch_cpu_us']:.1f}",
            f"{row['floor_cpu_us']:.1f}", f"{row['x_torch']:.1f}x", f"{row['x_numpy']:.1f}x",
            f"{row['x_floor']:.2f}", f"{row['best_x_torch']:.1f}x",
        )
    Console().print(table)
    if args.runs > 1:
        for key in sorted({(r["dtype"], r["kernel"], r["T"], r["B"]) for r in rows}):
            sel = [r for r in rows if (r["dtype"], r["kernel"], r["T"], r["B"]) == key]
            xs, best = [r["x_torch"] for r in sel], [r["best_x_torch"] for r in sel]
            print(f"{' '.join(map(str, key))}: vs torch min {min(xs):.1f}x max {max(xs):.1f}x, "
                  f"torch/floor min {min(best):.1f}x max {max(best):.1f}x; "
                  f"{sum(x >= 30 for x in xs)} of {len(sel)} runs >= 30x, "
                  f"{sum(b < 30 for b in best)} with torch/floor < 30x")

    command = "bench/advantage.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {
        "benchmark": "advantage",
        "command": command.strip(),
        "settings": {"repeat": repeat, "min_time_s": min_time, "gamma": GAMMA, "lam": LAM,
                     "dtypes": args.dtype, "runs": args.runs, "p_terminated": 0.01,
                     "p_truncated": 0.01},
        "machine": info,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

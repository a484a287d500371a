"""Shared-memory queue throughput: gristmill vs faster-fifo vs multiprocessing.Queue.

Producers -> consumers in separate processes (fork), 64 B and 64 KiB ``bytes`` messages,
configs 1->1, 4->1, 1->4. Each library runs in two modes where it offers them:

- ``single``: ``put(msg)`` / ``get()`` one message at a time (all three libraries);
- ``batch``: ``put_many`` of ``--batch`` messages / ``get_many`` (gristmill, faster-fifo).

Reported per run: messages/s and MB/s over wall time (from the start signal until the last
consumer received its last message) and CPU microseconds per message (user+sys CPU of all
workers / messages: less sensitive to a loaded machine than wall time). Each cell is the best
of ``--repeat`` runs. Ratios: gristmill / faster-fifo and gristmill / multiprocessing.Queue,
each mode against the same mode (mp.Queue has only ``single``; batch is compared with it too).

    flock /tmp/gristmill-bench.lock .venv/bin/python bench/queue.py            # quick defaults
    flock /tmp/gristmill-bench.lock .venv/bin/python bench/queue.py --small 400000 --repeat 5

Writes JSON to bench/results/queue.json and prints a table.
"""

from __future__ import annotations

import os
import sys

# This file is named like the stdlib ``queue`` module: keep its folder off sys.path so that
# ``import queue`` (done by multiprocessing) finds the real one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

SENTINEL = b""
LIBS = ("gristmill", "faster-fifo", "mp.Queue")
CONFIGS = ((1, 1), (4, 1), (1, 4))
TIMEOUT = 60.0  # generous: a wedged run fails instead of hanging the benchmark


def _make_queue(lib: str, capacity: int):
    if lib == "gristmill":
        from gristmill.kernels.shmqueue import Queue

        return Queue(max_size_bytes=capacity)
    if lib == "faster-fifo":
        import faster_fifo

        return faster_fifo.Queue(max_size_bytes=capacity)
    if lib == "mp.Queue":
        return mp.get_context("fork").Queue()
    raise ValueError(f"unknown library {lib!r}")


def _producer(q, lib, mode, n, size, batch, start, out):
    msg = bytes(size)
    start.wait()
    c0 = time.process_time()
    if mode == "batch":
        chunk = [msg] * batch
        sent = 0
        while sent < n:
            k = min(batch, n - sent)
            q.put_many(chunk if k == batch else chunk[:k], True, TIMEOUT)
            sent += k
    elif lib == "faster-fifo":
        for _ in range(n):
            q.put(msg, True, TIMEOUT)
    else:
        put = q.put
        for _ in range(n):
            put(msg)
    if lib == "mp.Queue":  # put() only hands the message to a feeder thread: flush it first
        q.close()
        q.join_thread()
    out.put(("p", time.perf_counter(), time.process_time() - c0, n))


def _consumer(q, lib, mode, batch, start, out):
    got = 0
    start.wait()
    c0 = time.process_time()
    if mode == "batch":
        while True:
            msgs = q.get_many(True, TIMEOUT, max_messages_to_get=batch * 4)
            stop = sum(1 for m in msgs if not m)
            got += len(msgs) - stop
            if stop:
                if stop > 1:  # leave the other consumers their sentinels
                    q.put_many([SENTINEL] * (stop - 1), True, TIMEOUT)
                break
    else:
        get = q.get
        while True:
            m = get(True, TIMEOUT) if lib == "faster-fifo" else get()
            if not m:
                break
            got += 1
    out.put(("c", time.perf_counter(), time.process_time() - c0, got))


def run_one(lib, mode, producers, consumers, size, n_total, batch, capacity) -> dict:
    ctx = mp.get_context("fork")
    q = _make_queue(lib, capacity)
    start = ctx.Event()
    out = ctx.Queue()
    per = n_total // producers
    n_total = per * producers
    procs = [
        ctx.Process(target=_producer, args=(q, lib, mode, per, size, batch, start, out))
        for _ in range(producers)
    ]
    procs += [
        ctx.Process(target=_consumer, args=(q, lib, mode, batch, start, out))
        for _ in range(consumers)
    ]
    for p in procs:
        p.start()
    time.sleep(0.2)  # let every worker reach start.wait()
    t0 = time.perf_counter()
    start.set()
    reports = []
    try:
        for _ in range(producers):
            reports.append(out.get(timeout=2 * TIMEOUT))
        for _ in range(consumers):  # sentinels after all producers are done
            if mode == "batch":
                q.put_many([SENTINEL], True, TIMEOUT)
            elif lib == "faster-fifo":
                q.put(SENTINEL, True, TIMEOUT)
            else:
                q.put(SENTINEL)
        for _ in range(consumers):
            reports.append(out.get(timeout=2 * TIMEOUT))
    except BaseException:
        for p in procs:
            p.kill()
            p.join()
        if hasattr(q, "close"):
            q.close()
        raise
    for p in procs:
        p.join(TIMEOUT)
        if p.exitcode is None:
            p.kill()
            p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"{lib} {mode} worker exited with {p.exitcode}")
    received = sum(r[3] for r in reports if r[0] == "c")
    if received != n_total:
        raise RuntimeError(f"{lib} {mode}: sent {n_total} messages, received {received}")
    t_end = max(r[1] for r in reports if r[0] == "c")
    cpu = sum(r[2] for r in reports)
    wall = t_end - t0
    if hasattr(q, "close"):
        q.close()
    return {
        "lib": lib,
        "mode": mode,
        "config": f"{producers}->{consumers}",
        "msg_bytes": size,
        "messages": n_total,
        "wall_s": wall,
        "msgs_per_s": n_total / wall,
        "mb_per_s": n_total * size / wall / 1e6,
        "cpu_us_per_msg": cpu / n_total * 1e6,
    }


def _ratios(rows):
    best = {(r["lib"], r["mode"], r["config"], r["msg_bytes"]): r for r in rows}
    out = []
    for (lib, mode, config, size), r in sorted(best.items()):
        if lib != "gristmill":
            continue
        ff = best.get(("faster-fifo", mode, config, size))
        mq = best.get(("mp.Queue", "single", config, size))
        out.append(
            {
                "mode": mode,
                "config": config,
                "msg_bytes": size,
                "vs_faster_fifo": r["msgs_per_s"] / ff["msgs_per_s"] if ff else None,
                "vs_mp_queue": r["msgs_per_s"] / mq["msgs_per_s"] if mq else None,
                "cpu_vs_faster_fifo": ff["cpu_us_per_msg"] / r["cpu_us_per_msg"] if ff else None,
            }
        )
    return out


def _print(rows, ratios, meta):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        for r in rows:
            print(r)
        for r in ratios:
            print(r)
        return
    console = Console()
    t = Table(title=f"Queue throughput ({meta['machine']})")
    for col in ("msg", "config", "mode", "library", "msgs/s", "MB/s", "CPU µs/msg"):
        t.add_column(col, justify="right" if col not in ("mode", "library") else "left")
    for r in rows:
        size = "64 KiB" if r["msg_bytes"] == 65536 else f"{r['msg_bytes']} B"
        t.add_row(
            size, r["config"], r["mode"], r["lib"], f"{r['msgs_per_s']:,.0f}",
            f"{r['mb_per_s']:,.1f}", f"{r['cpu_us_per_msg']:.2f}",
        )
    console.print(t)
    t2 = Table(title="gristmill / peer (messages/s; CPU: peer µs per msg / gristmill's)")
    for col in ("msg", "config", "mode", "× faster-fifo", "× mp.Queue", "CPU × faster-fifo"):
        t2.add_column(col, justify="right")
    for r in ratios:
        size = "64 KiB" if r["msg_bytes"] == 65536 else f"{r['msg_bytes']} B"
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        t2.add_row(
            size, r["config"], r["mode"], fmt(r["vs_faster_fifo"]), fmt(r["vs_mp_queue"]),
            fmt(r["cpu_vs_faster_fifo"]),
        )
    console.print(t2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000, help="64 B messages per run")
    parser.add_argument("--large", type=int, default=4_000, help="64 KiB messages per run")
    parser.add_argument("--batch", type=int, default=64, help="put_many batch (64 B messages)")
    parser.add_argument("--large-batch", type=int, default=8, help="put_many batch (64 KiB)")
    parser.add_argument("--capacity", type=int, default=8 << 20, help="queue bytes (all libs)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell; best is kept")
    parser.add_argument("--libs", nargs="+", default=list(LIBS), choices=LIBS)
    parser.add_argument("--configs", nargs="+", default=[f"{p}->{c}" for p, c in CONFIGS])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 65536])
    parser.add_argument("--out", default=os.path.join(_HERE, "results", "queue.json"))
    args = parser.parse_args(argv)

    configs = []
    for c in args.configs:
        p, _, k = c.partition("->")
        configs.append((int(p), int(k)))
    rows, failures = [], []
    for size in args.sizes:
        n = args.small if size <= 4096 else args.large
        batch = args.batch if size <= 4096 else args.large_batch
        for producers, consumers in configs:
            for lib in args.libs:
                for mode in ("single", "batch") if lib != "mp.Queue" else ("single",):
                    best, errors = None, []
                    for _ in range(args.repeat):
                        try:
                            r = run_one(
                                lib, mode, producers, consumers, size, n, batch, args.capacity
                            )
                        except Exception as e:  # a peer that wedges or crashes: record it
                            errors.append(f"{type(e).__name__}: {e}")
                            print(f"  {lib} {mode} {producers}->{consumers} {size} B: {e!r}")
                            continue
                        if best is None or r["msgs_per_s"] > best["msgs_per_s"]:
                            best = r
                    if best is None:
                        failures.append(
                            {"lib": lib, "mode": mode, "config": f"{producers}->{consumers}",
                             "msg_bytes": size, "errors": errors}
                        )
                        continue
                    best["failed_runs"] = errors
                    rows.append(best)
                    print(
                        f"{size:>6} B {producers}->{consumers} {lib:<12} {mode:<6} "
                        f"{best['msgs_per_s']:>12,.0f} msg/s {best['cpu_us_per_msg']:6.2f} µs CPU",
                        flush=True,
                    )
    ratios = _ratios(rows)
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "cpu": _cpu_model(),
        "command": "bench/queue.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_at_end": os.getloadavg(),
    }
    _print(rows, ratios, meta)
    for fail in failures:
        print(f"FAILED every run: {fail}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {"meta": meta, "rows": rows, "ratios": ratios, "failures": failures}, f, indent=2
        )
    print(f"wrote {args.out}")
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())

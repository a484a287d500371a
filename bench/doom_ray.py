"""Populations on Ray: start-up cost, weight broadcast, and in-process vs Ray frames/s.

Subcommands (run each under ``flock /tmp/gristmill-bench.lock``):

- ``startup``: ``ray.init`` of a private cluster (``num_cpus=2``, no dashboard), the start of
  one empty actor, and ``ray.shutdown``, each timed (``--repeats`` times).
- ``broadcast``: the weights of gristmill-doom's default model (Sample Factory's Doom
  network: convnet_simple + GRU 512, 128x72 RGB; NumPy arrays) through the object store:
  ``ray.put`` + ``ray.get`` on the driver, and the Ray run's path -- one actor returns its
  weights (the driver owns the ref), ``--receivers`` other actors take that ref and load it
  into a model -- timed end to end (median of ``--repeats``).
- ``throughput``: the same 2-policy ``gristmill-doom train`` run in one process and with
  ``--ray local`` (each policy an actor), alternating, ``--repeats`` each, ``--seconds`` of
  training; frames/s is the rate from 20 % to 90 % of that time after the first trained
  frame (start-up and the members' staggered ends left out the same way for both), and the
  ratio of medians.

Results print as JSON lines (and go to bench/results/doom_ray.json); BENCHMARKS.md quotes
them with the command.
"""

from __future__ import annotations

import os
import sys

# bench/ holds modules named like the stdlib's (bench/queue.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "doom_ray.json")


def _emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    try:
        with open(RESULTS) as f:
            old = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        old = {}
    old[record["bench"]] = record
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(old, f, indent=1)
    return record


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


def startup(args) -> dict:
    import ray

    init, actor, down = [], [], []

    @ray.remote(num_cpus=0)
    class Empty:
        def ping(self):
            return os.getpid()

    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        t1 = time.perf_counter()
        a = Empty.remote()
        ray.get(a.ping.remote())
        t2 = time.perf_counter()
        ray.shutdown()
        t3 = time.perf_counter()
        init.append(t1 - t0)
        actor.append(t2 - t1)
        down.append(t3 - t2)
    return _emit({
        "bench": "startup",
        "ray": ray.__version__,
        "ray_init_s": init,
        "first_actor_s": actor,
        "shutdown_s": down,
        "median_init_s": statistics.median(init),
        "median_first_actor_s": statistics.median(actor),
        "median_shutdown_s": statistics.median(down),
        "commit": _commit(),
    })  # fmt: skip


def broadcast(args) -> dict:
    import numpy as np
    import ray
    from gristmill.apps.doom.config import TrainConfig
    from gristmill.apps.doom.env_factory import DoomEnvFactory
    from gristmill.apps.doom.model import build_model

    cfg = TrainConfig(env="doom_duel")
    probe = DoomEnvFactory(cfg.env, cfg.res_w, cfg.res_h)(0)
    spaces = probe.observation_space, probe.action_space
    probe.close()
    model = build_model(cfg, *spaces)
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    nbytes = sum(v.nbytes for v in weights.values())

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        put, get = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ref = ray.put(weights)
            t1 = time.perf_counter()
            ray.get(ref)
            get.append(time.perf_counter() - t1)
            put.append(t1 - t0)
            del ref

        @ray.remote(num_cpus=0)
        class Holder:
            def __init__(self, cfg, spaces):
                import torch

                torch.set_num_threads(1)
                self.model = build_model(cfg, *spaces)

            def weights(self):
                return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}

            def load(self, w):
                import torch

                self.model.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in w.items()})
                return True

        donor = Holder.remote(cfg, spaces)
        receivers = [Holder.remote(cfg, spaces) for _ in range(args.receivers)]
        ray.get([r.load.remote(weights) for r in [donor, *receivers]])  # all started
        path = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ref = donor.weights.remote()
            ray.get([r.load.remote(ref) for r in receivers])
            path.append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    return _emit({
        "bench": "broadcast",
        "weights_mb": nbytes / 1e6,
        "tensors": len(weights),
        "receivers": args.receivers,
        "put_s": statistics.median(put),
        "get_s": statistics.median(get),
        "actor_to_actors_s": statistics.median(path),
        "actor_to_actors_all_s": path,
        "commit": _commit(),
    })  # fmt: skip


_STATUS = re.compile(r"\[\s*([\d.]+)s\] frames\s+([\d,]+)")


def _rate(stderr: str, seconds: float) -> float:
    """Frames/s in the window where every policy trains: from 20 % to 90 % of
    ``seconds`` after the first trained frame (members of a Ray run start a few seconds
    apart and stop on their own clocks: the ends of a run are left out for both kinds)."""
    points = [(float(t), int(f.replace(",", ""))) for t, f in _STATUS.findall(stderr)]
    points = [p for p in points if p[1] > 0]
    if not points:
        raise RuntimeError(f"no status line with trained frames:\n{stderr[-2000:]}")
    t_first = points[0][0]
    window = [p for p in points if t_first + 0.2 * seconds <= p[0] <= t_first + 0.9 * seconds]
    if len(window) < 2:
        raise RuntimeError(f"too few status lines in the window:\n{stderr[-2000:]}")
    (t0, f0), (t1, f1) = window[0], window[-1]
    return (f1 - f0) / (t1 - t0)


def _train(extra: list[str], args, exp: str) -> float:
    cmd = [sys.executable, "-m", "gristmill.apps.doom", "train", "--env", args.env,
           "--num_policies", "2", "--pbt_mix_policies_in_one_env", "false",
           "--train_for_env_steps", "100000000", "--train_for_seconds", str(args.seconds),
           "--stats_every_sec", "5",
           "--train_dir", args.train_dir, "--experiment", exp, "--restart", "true",
           *extra]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    return _rate(run.stderr, args.seconds)


def throughput(args) -> dict:
    n = args.envs_per_policy
    # the same envs in total: in-process 2 workers x n envs (env % 2 picks the policy),
    # on Ray one worker x n envs per member (its policy's envs)
    inproc = ["--num_workers", "2", "--num_envs_per_worker", str(n)]
    onray = ["--num_workers", "1", "--num_envs_per_worker", str(n), "--ray", "local"]
    rates = {"in_process": [], "ray": []}
    for _ in range(args.repeats):
        rates["in_process"].append(_train(inproc, args, "inproc"))
        rates["ray"].append(_train(onray, args, "ray"))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return _emit({
        "bench": "throughput",
        "env": args.env,
        "seconds": args.seconds,
        "envs": 2 * n,
        "fps": rates,
        "median_fps": med,
        "ratio_ray_over_in_process": med["ray"] / med["in_process"],
        "load_avg_at_end": os.getloadavg(),
        "commit": _commit(),
    })  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("startup")
    s.add_argument("--repeats", type=int, default=3)
    b = sub.add_parser("broadcast")
    b.add_argument("--repeats", type=int, default=10)
    b.add_argument("--receivers", type=int, default=3)
    t = sub.add_parser("throughput")
    t.add_argument("--env", default="doom_basic")
    t.add_argument("--seconds", type=float, default=90.0, help="each run's training time")
    t.add_argument("--envs_per_policy", type=int, default=4)
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--timeout", type=float, default=900)
    t.add_argument("--train_dir", default=tempfile.mkdtemp(prefix="gm-doom-ray-"))
    args = p.parse_args()
    {"startup": startup, "broadcast": broadcast, "throughput": throughput}[args.cmd](args)


if __name__ == "__main__":
    main()

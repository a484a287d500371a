"""Population inference: one round of a self-play batch served by the Doom run's PolicySet.

A round of ``--agents`` agents (default 8: 2 workers x 4 envs x 2 agents, one split each)
spread over ``--policies`` policies, with the default model (convnet_simple + GRU 512 at the
default 128x72 resolution, ``doom_duel``'s observations and actions) and torch on one thread:

- ``one_policy``: all agents on policy 0 (a single-policy run's round: ``policy_fn``);
- ``loop``: one ``policy_fn`` pass per policy (the server without ``policies_fn``);
- ``fused``: ``policies_fn``, every policy in one pass (:class:`gristmill.learners.PolicyStack`);

for even groups and for uneven ones (``--uneven``, default 1,3,2,2). The variants run
interleaved, ``--rounds`` times each; the median and the minimum ms per round print as one
JSON line. Run it under ``flock /tmp/gristmill-bench.lock`` for figures to quote.

    python bench/population_inference.py --rounds 200
"""

from __future__ import annotations

import os
import sys

# bench/ holds modules named like the stdlib's (bench/queue.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="doom_duel")
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--policies", type=int, default=4)
    p.add_argument("--uneven", default="1,3,2,2", help="uneven group sizes (sum = --agents)")
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import numpy as np
    import torch
    from gristmill.apps.doom.config import TrainConfig
    from gristmill.apps.doom.env_factory import DoomEnvFactory
    from gristmill.apps.doom.model import appo_config, build_model
    from gristmill.apps.doom.policies import PolicySet
    from gristmill.learners import APPOLearner

    torch.set_num_threads(args.threads)
    cfg = TrainConfig(env=args.env)
    env = DoomEnvFactory(cfg.env, cfg.res_w, cfg.res_h, False, cfg.env_frameskip)(0)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    learners = [
        APPOLearner(build_model(cfg, obs_space, action_space), appo_config(cfg))
        for _ in range(args.policies)
    ]
    policies = PolicySet(learners, torch.device("cpu"))
    rng = np.random.default_rng(0)
    state_size = learners[0].model.state_size

    def group(k: int, n: int):
        obs = {
            key: (rng.integers(0, 256, (n, *sp.shape)).astype(sp.dtype) if sp.dtype == np.uint8
                  else rng.standard_normal((n, *sp.shape)).astype(sp.dtype))
            for key, sp in obs_space.spaces.items()
        }
        return k, obs, rng.standard_normal((n, state_size)).astype(np.float32)

    uneven = [int(x) for x in args.uneven.split(",")]
    if sum(uneven) != args.agents or len(uneven) != args.policies:
        p.error(f"--uneven {args.uneven}: {args.policies} sizes summing to {args.agents}")
    even = [args.agents // args.policies] * args.policies
    rounds = {
        "one_policy": [group(0, args.agents)],
        "even": [group(k, n) for k, n in enumerate(even)],
        "uneven": [group(k, n) for k, n in enumerate(uneven)],
    }
    variants = {
        "one_policy": lambda: policies.policy_fn(*rounds["one_policy"][0]),
        "loop_even": lambda: [policies.policy_fn(*g) for g in rounds["even"]],
        "fused_even": lambda: policies.policies_fn(rounds["even"]),
        "loop_uneven": lambda: [policies.policy_fn(*g) for g in rounds["uneven"]],
        "fused_uneven": lambda: policies.policies_fn(rounds["uneven"]),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up (builds the stack)
        fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {n: 1e3 * float(np.median(v)) for n, v in times.items()}
    print(json.dumps({
        "bench": "population_inference",
        "env": args.env,
        "agents": args.agents,
        "policies": args.policies,
        "even": even,
        "uneven": uneven,
        "threads": args.threads,
        "rounds": args.rounds,
        "median_ms": {n: round(v, 2) for n, v in med.items()},
        "min_ms": {n: round(1e3 * min(v), 2) for n, v in times.items()},
        "fused_speedup_even": round(med["loop_even"] / med["fused_even"], 2),
        "fused_speedup_uneven": round(med["loop_uneven"] / med["fused_uneven"], 2),
        "one_policy_over_fused_even": round(med["one_policy"] / med["fused_even"], 2),
    }))


if __name__ == "__main__":
    main()

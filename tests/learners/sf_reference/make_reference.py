"""Write ``sf_appo_reference.json``: Sample Factory 2.1.1's APPO learner on the batches of
:mod:`sf_appo_cases`. Run it in Sample Factory's own environment (it pins numpy<2 / gymnasium<1)::

    /path/to/sf-venv/bin/python tests/learners/sf_reference/make_reference.py

For each case it builds SF's ``Learner`` for the Doom env with the bench's flags, loads the
weights of :func:`sf_appo_cases.initial_weight`, trains ``STEPS`` times on the case's batch and
records the training statistics of every step, the normaliser state, a sample of every
parameter's final update and the model's outputs on the probe observations.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sample_factory.algo.learning.learner import Learner  # noqa: E402
from sample_factory.algo.utils.env_info import extract_env_info  # noqa: E402
from sample_factory.algo.utils.make_env import make_env_func_batched  # noqa: E402
from sample_factory.algo.utils.model_sharing import ParameterServer  # noqa: E402
from sample_factory.algo.utils.tensor_dict import TensorDict  # noqa: E402
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args  # noqa: E402
from sample_factory.utils.attr_dict import AttrDict  # noqa: E402
from sf_appo_cases import CASES, PROBES, RNN_SIZE, STEPS, initial_weight, make_batch, probe_obs  # noqa: E402
from sf_examples.vizdoom.doom.doom_params import add_doom_env_args, doom_override_defaults  # noqa: E402
from sf_examples.vizdoom.train_vizdoom import register_vizdoom_components  # noqa: E402

STAT_KEYS = (
    "loss",
    "policy_loss",
    "value_loss",
    "exploration_loss",
    "grad_norm",
    "adv_std",
    "kl_divergence",
    "lr",
)
SAMPLES_PER_PARAM = 16


def build(case: str, work: str):
    spec = CASES[case]
    n, t = spec["shape"]
    argv = [
        f"--env={spec['env']}",
        "--device=cpu",
        "--env_frameskip=4",
        "--use_rnn=True",
        "--wide_aspect_ratio=False",
        f"--rollout={t}",
        f"--recurrence={t}",
        f"--batch_size={n * t // spec['flags'].get('num_batches_per_epoch', 1)}",
        f"--train_dir={work}",
        f"--experiment={case}",
        "--seed=0",
    ]
    argv += [f"--{k}={v}" for k, v in spec["flags"].items()]
    parser, _ = parse_sf_args(argv=argv)
    add_doom_env_args(parser)
    doom_override_defaults(parser)
    cfg = parse_full_cfg(parser, argv)
    env = make_env_func_batched(cfg, AttrDict(worker_index=0, vector_index=0, env_id=0), None)
    info = extract_env_info(env, cfg)
    env.close()
    pv = torch.zeros(1, dtype=torch.int32)
    learner = Learner(cfg, info, pv, 0, ParameterServer(0, pv, True))
    learner.init()
    return cfg, learner


def main() -> None:
    torch.set_num_threads(1)
    register_vizdoom_components()
    work = "/tmp/sf_appo_reference"
    out = {"sample_factory": "2.1.1", "steps": STEPS, "cases": {}}
    for case in CASES:
        cfg, learner = build(case, work)
        ac = learner.actor_critic
        names = [k for k, _ in ac.named_parameters()]
        with torch.no_grad():
            for name, p in ac.named_parameters():
                p.copy_(torch.from_numpy(initial_weight(name, tuple(p.shape))))
        w0 = {k: p.detach().clone() for k, p in ac.named_parameters()}
        raw = make_batch(case)
        steps = []
        for _ in range(STEPS):
            b = TensorDict({k: torch.from_numpy(v.copy()) for k, v in raw.items() if k != "obs"})
            b["obs"] = TensorDict({"obs": torch.from_numpy(raw["obs"].copy())})
            # Statistics of every step, not every few seconds; none with V-trace, where SF 2.1.1's
            # summaries raise (they read ``mb.advantages``, which its V-trace path never sets).
            learner.last_summary_time = time.time() * 2 if cfg.with_vtrace else 0
            res = learner.train(b) or {}
            ts = res.get("train", {})
            steps.append({k: float(ts[k]) for k in STAT_KEYS if k in ts})
        updates = {}
        for name, p in ac.named_parameters():
            d = (p.detach() - w0[name]).reshape(-1).double()
            idx = np.random.default_rng(len(name)).choice(
                d.numel(), min(d.numel(), SAMPLES_PER_PARAM), replace=False
            )
            updates[name] = {
                "index": idx.tolist(),
                "delta": d[idx].tolist(),
                "abs_sum": float(d.abs().sum()),
                "sum": float(d.sum()),
            }
        ac.eval()
        with torch.no_grad():
            nobs = ac.normalize_obs({"obs": torch.from_numpy(probe_obs(case))})
            res = ac(nobs, torch.zeros(PROBES, RNN_SIZE))
        rms = ac.obs_normalizer.running_mean_std.running_mean_std["obs"]
        out["cases"][case] = {
            "flags": CASES[case]["flags"],
            "parameters": names,
            "train_steps": learner.train_step,
            "stats": steps,
            "updates": updates,
            "obs_norm": {
                "mean_sum": float(rms.running_mean.sum()),
                "var_sum": float(rms.running_var.sum()),
                "count": float(rms.count),
            },
            "returns_norm": {
                k: float(getattr(ac.returns_normalizer, k))
                for k in ("running_mean", "running_var", "count")
            }
            if cfg.normalize_returns
            else None,
            "probe_values": res["values"].reshape(-1).tolist(),
            "probe_logits": res["action_logits"].tolist(),
        }
        print(case, learner.train_step, steps)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sf_appo_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()

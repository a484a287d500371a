"""Host <-> device copies of the Doom APPO learner on CUDA, per minibatch, and what they cost.

Issue 13 asks for "no GPU -> CPU -> GPU copy per minibatch where it can be avoided (measure
it)". The advantage kernels (``gristmill.kernels.advantage``) run on the host, so on CUDA GAE
moves its inputs to the host once per batch and V-trace once per minibatch (it needs that
minibatch's current values); ``learners/advantages.py`` says so. This script measures it on the
Doom learner as the trainer builds it (``TrainConfig`` defaults: convnet_simple + GRU 512 on
3 x 72 x 128 frames, Sample Factory's batch of 1,024 = 32 trajectories x 32 steps):

- for GAE and for V-trace, with 1 and with 4 minibatches per batch, one ``train()`` under
  ``torch.profiler`` with CUDA activity: the Memcpy events by direction (count and GPU time)
  and the host syncs (``aten::_local_scalar_dense``, i.e. ``.item()`` / ``float(tensor)``);
- the wall time of ``train()`` each way (5 calls after 2 warm-ups, synchronised), so that the
  V-trace round trip's share of a minibatch is a number, not a guess.

Usage, on a machine with a GPU (about a minute)::

    python bench/cuda_learner_copies.py --out DIR    # -> DIR/cuda_learner_copies.json

Without CUDA it runs on the CPU, where there are no copies to count (a check of the script).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

# bench/queue.py (the queue benchmark) would shadow the standard library's queue, which torch
# imports: run as a script, this folder must not be on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gristmill.apps.doom.config import TrainConfig  # noqa: E402
from gristmill.apps.doom.model import appo_config, build_model  # noqa: E402
from gristmill.envs.doom import doom_spec  # noqa: E402
from gristmill.learners import ActorCritic, APPOLearner, select_device  # noqa: E402
from gymnasium import spaces  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

OBS = (3, 72, 128)  # the Doom trainer's frames (Sample Factory's 128 x 72 resize)


def synthetic_batch(model: ActorCritic, n: int, t: int, gen: torch.Generator) -> dict:
    """``n`` trajectories of ``t`` steps in the sampler's layout (CPU tensors, as the trainer
    hands them to the learner); outputs of one real ``act`` call tiled over time."""
    obs = torch.randint(0, 256, (n, t + 1, *OBS), dtype=torch.uint8, generator=gen)
    with torch.no_grad():
        out = model.act({"obs": obs[:, 0]}, model.initial_state(n))
    tile = lambda x, k: x.unsqueeze(1).expand(n, k, *x.shape[1:]).contiguous()  # noqa: E731
    return {
        "obs": {"obs": obs},
        "rnn_states": tile(model.initial_state(n), t + 1),
        "actions": tile(out["actions"], t),
        "log_prob_actions": tile(out["log_probs"], t),
        "action_logits": tile(out["logits"], t),
        "values": torch.randn(n, t + 1, generator=gen),
        "rewards": torch.randn(n, t, generator=gen),
        "dones": torch.rand(n, t, generator=gen) < 0.01,
        "time_outs": torch.zeros(n, t, dtype=torch.bool),
        "policy_version": torch.zeros(n, t, dtype=torch.long),
        "policy_id": torch.zeros(n, t, dtype=torch.long),
    }


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(dev: torch.device, with_vtrace: bool, minibatches: int, reps: int = 5) -> dict:
    torch.manual_seed(0)
    cfg = TrainConfig(env="doom_duel", with_vtrace=with_vtrace,
                      num_batches_per_epoch=minibatches)
    # the trainer's network for doom_duel's spaces (no game is started)
    model = build_model(cfg, spaces.Box(0, 255, OBS, np.uint8),
                        doom_spec(cfg.env).action_space())
    acfg = appo_config(cfg)
    n, t = acfg.batch_size // cfg.rollout, cfg.rollout
    batch = synthetic_batch(model, n, t, torch.Generator().manual_seed(0))
    learner = APPOLearner(model, acfg, dev)
    for _ in range(2):  # warm-up: cuDNN autotuning, allocator, Numba compile
        learner.train(batch)
    _sync(dev)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        learner.train(batch)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        learner.train(batch)
        _sync(dev)
    copies: dict[str, dict] = {}
    syncs = 0
    for e in prof.events():
        if "Memcpy" in e.name:
            kind = next((k for k in ("HtoD", "DtoH", "DtoD") if k in e.name), "other")
            c = copies.setdefault(kind, {"count": 0, "gpu_ms": 0.0})
            c["count"] += 1
            c["gpu_ms"] += getattr(e, "device_time_total", 0.0) / 1e3
        elif e.name == "aten::_local_scalar_dense":
            syncs += 1
    mbs = minibatches * acfg.num_epochs
    return {
        "with_vtrace": with_vtrace, "minibatches_per_train": mbs, "batch": n * t,
        "train_ms_median": 1e3 * sorted(times)[len(times) // 2],
        "copies": copies,
        "copies_per_minibatch": {k: v["count"] / mbs for k, v in copies.items()},
        "host_syncs_per_minibatch": syncs / mbs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results")))
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    dev = select_device(a.device)
    rows = []
    for vtrace in (False, True):
        for mbs in (1, 4):
            r = measure(dev, vtrace, mbs)
            rows.append(r)
            print(json.dumps(r), flush=True)
    out = {"device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda"
           else None, "torch": torch.__version__, "host": platform.processor(), "rows": rows}
    path = Path(a.out) / "cuda_learner_copies.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

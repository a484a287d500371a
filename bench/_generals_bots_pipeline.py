"""The paper-style self-play pipeline, for bench/generals_agent.py (runs in the generals-bots venv).

Built the way generals-agent (Straka & Schmid, arXiv 2507.06825; ``selfplay/``) does it:
generals-bots 2.5.0's ``GymnasiumGenerals`` (generalsio maps, truncation 500) in gymnasium's
``AsyncVectorEnv``; memory features updated in NumPy from the 15 observation planes; the same
torch model as gristmill's trainer (``GeneralsNet``, the same input channels); the learner
plays player 0, a frozen copy plays player 1 by argmax; PPO with the same loss, epochs and
minibatches. Only the plumbing differs from ``apps/generals/selfplay.py``.

Usage: python _generals_bots_pipeline.py MAIN_SITE_PACKAGES JSON_ARGS -> one JSON line.
"""

import json
import os
import site
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]
site.addsitedir(sys.argv[1])  # torch and gristmill from the main venv, after generals-bots'

import numpy as np  # noqa: E402
import torch  # noqa: E402
from generals.core.grid import GridFactory  # noqa: E402
from generals.envs import GymnasiumGenerals  # noqa: E402
from gristmill.envs.generals.agent_input import num_agent_channels  # noqa: E402
from gristmill.learners.generals_net import GeneralsNet, GeneralsNetConfig, MaskedPolicy  # noqa: E402
from gristmill.learners.losses import cleanrl_ppo_loss  # noqa: E402
from gymnasium.vector import AsyncVectorEnv  # noqa: E402

AGENTS = ["p0", "p1"]
K = 7
# gristmill's input = 17 observation planes, the distance planes, 6 + 2 K memory planes
NO_TARGET_PLANES = num_agent_channels(K) - 17 - (6 + 2 * K)


class NumpyMemory:
    """Memory features of both seats of N envs from the 15 planes (float64 [N, 2, 15, S, S])."""

    def __init__(self, n, S):
        self.seen = np.zeros((n, 2, S, S), bool)
        self.mount = np.zeros_like(self.seen)
        self.city = np.zeros_like(self.seen)
        self.gen = np.zeros_like(self.seen)
        self.earmy = np.zeros((n, 2, S, S), np.float32)
        self.age = np.zeros_like(self.earmy)
        self.prev = np.zeros((n, 2, 2, S, S), np.float32)
        self.deltas = np.zeros((n, 2, K, 2, S, S), np.float32)

    def update(self, o):
        t = o[:, :, 13, 0, 0]
        reset = t == 0
        for a in (self.seen, self.mount, self.city, self.gen, self.earmy, self.age, self.prev,
                  self.deltas):
            a[reset] = 0
        visible = (o[:, :, 7] + o[:, :, 8]) == 0
        self.seen |= visible
        self.mount |= o[:, :, 3] > 0
        self.city |= (o[:, :, 2] > 0) & visible
        self.gen |= (o[:, :, 1] > 0) & (o[:, :, 6] > 0)
        opp = (o[:, :, 0] * o[:, :, 6]).astype(np.float32)
        own = (o[:, :, 0] * o[:, :, 5]).astype(np.float32)
        self.earmy = np.where(visible, opp, self.earmy)
        self.age = np.where(visible, 0, self.age + (~reset)[..., None, None])
        self.deltas = np.roll(self.deltas, 1, axis=2)
        self.deltas[:, :, 0, 0] = own - self.prev[:, :, 0]
        self.deltas[:, :, 0, 1] = opp - self.prev[:, :, 1]
        self.deltas[reset] = 0
        self.prev[:, :, 0], self.prev[:, :, 1] = own, opp

    def planes(self, o, seat):
        x = o[:, seat]
        t = x[:, 13:14]
        own, opp = x[:, 0:1] * x[:, 5:6], x[:, 0:1] * x[:, 6:7]
        neu = x[:, 0:1] * x[:, 4:5]
        base = [own / 250, opp / 250, neu / 250, x[:, 1:9], x[:, 9:10] / 100, x[:, 10:11] / 250,
                x[:, 11:12] / 100, x[:, 12:13] / 250, t / 500, (t % 50) / 50,
                # the paper's input has none of gristmill's distance planes (17 on):
                # "no target" (1) keeps the same net
                np.ones_like(t.repeat(NO_TARGET_PLANES, axis=1))]
        mem = [self.seen[:, seat, None], self.mount[:, seat, None], self.city[:, seat, None],
               self.gen[:, seat, None], self.earmy[:, seat, None] / 250,
               self.age[:, seat, None] / 500,
               self.deltas[:, seat, :, 0] / 250, self.deltas[:, seat, :, 1] / 250]
        return np.concatenate([np.asarray(a, np.float32) for a in base + mem], axis=1)


def make_env(seed):
    def f():
        return GymnasiumGenerals(agents=AGENTS, grid_factory=GridFactory(mode="generalsio",
                                                                         seed=seed),
                                 truncation=500)
    return f


def process_cpu_s(pids):
    """User + system CPU seconds the processes ``pids`` have used so far (``/proc``)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / tick


def decode(idx, S):
    a = np.zeros((len(idx), 5), np.int64)
    a[:, 0] = idx == 0
    k = np.maximum(idx - 1, 0)
    plane, cell = np.divmod(k, S * S)
    a[:, 1], a[:, 2] = np.divmod(cell, S)
    a[:, 3], a[:, 4] = plane % 4, plane // 4
    return a


def main():
    args = json.loads(sys.argv[2])
    torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    n, T, S = args["boards"], args["rollout"], 24
    net = GeneralsNet(GeneralsNetConfig(**args["net"]))
    opp = GeneralsNet(GeneralsNetConfig(**args["net"]))
    opp.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, eps=1e-5)
    envs = AsyncVectorEnv([make_env(i) for i in range(n)])
    obs, info = envs.reset(seed=0)
    mem = NumpyMemory(n, S)
    rng = np.random.default_rng(0)
    timers = {"env": 0.0, "features": 0.0, "forward": 0.0, "update": 0.0}

    def masks_of(info, agent):
        return np.asarray(info[agent]["masks"], np.uint8)

    start, steps = None, 0
    for it in range(args["updates"] + 1):  # the first update is warm-up (untimed)
        if it == 1:
            start, c0 = time.perf_counter(), time.process_time()
            workers = [w.pid for w in envs.processes]
            e0 = process_cpu_s(workers)
            timers = dict.fromkeys(timers, 0.0)
        P, M = [], []
        I, L, V, R, D = [], [], [], [], []
        for t in range(T + 1):
            t0 = time.perf_counter()
            o = np.asarray(obs, np.float32)
            mem.update(o)
            x0, x1 = mem.planes(o, 0), mem.planes(o, 1)
            m0, m1 = masks_of(info, "p0"), masks_of(info, "p1")
            t1 = time.perf_counter()
            timers["features"] += t1 - t0
            with torch.no_grad():
                lg, v = net(torch.from_numpy(x0), torch.from_numpy(m0))
                d = MaskedPolicy(lg)
                idx = d.sample()
                lp = d.log_prob(idx)
                if t < T:
                    lg1, _ = opp(torch.from_numpy(x1), torch.from_numpy(m1))
                    idx1 = lg1.argmax(-1)
            t2 = time.perf_counter()
            timers["forward"] += t2 - t1
            V.append(v.numpy())
            if t == T:
                break
            P.append(x0)
            M.append(m0)
            I.append(idx.numpy())
            L.append(lp.numpy())
            acts = np.stack([decode(idx.numpy(), S), decode(idx1.numpy(), S)], 1)
            obs, _, term, trunc, info = envs.step(acts)
            R.append(np.asarray(info["p0"].get("reward", np.zeros(n)), np.float32))
            D.append(np.logical_or(term, trunc))
            timers["env"] += time.perf_counter() - t2
        t3 = time.perf_counter()
        rew, done, val = np.stack(R), np.stack(D), np.stack(V)
        adv = np.zeros((T, n), np.float32)
        last = np.zeros(n, np.float32)
        for t in range(T - 1, -1, -1):  # GAE in NumPy, gamma = 1, lambda = 0.95
            nonterm = 1.0 - done[t]
            delta = rew[t] + nonterm * val[t + 1] - val[t]
            last = delta + 0.95 * nonterm * last
            adv[t] = last
        ret = adv + val[:T]
        tens = [torch.from_numpy(np.concatenate(a)) for a in (P, M)] + \
            [torch.from_numpy(np.asarray(a).ravel()) for a in (I, L, val[:T], adv, ret)]
        N = n * T
        for _ in range(args["epochs"]):
            perm = torch.from_numpy(rng.permutation(N))
            for s in range(0, N, args["minibatch"]):
                mb = perm[s:s + args["minibatch"]]
                logits, value = net(tens[0][mb], tens[1][mb])
                d = MaskedPolicy(logits)
                out = cleanrl_ppo_loss(d.log_prob(tens[2][mb]), tens[3][mb], tens[5][mb],
                                       d.entropy(), value, tens[4][mb], tens[6][mb],
                                       clip_coef=0.15, ent_coef=0.001, vf_coef=0.5)
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
                opt.step()
        timers["update"] += time.perf_counter() - t3
        if it >= 1:
            steps += N
    wall = time.perf_counter() - start
    env_cpu = process_cpu_s(workers) - e0
    envs.close()
    print(json.dumps({"pipeline": "generals-bots AsyncVectorEnv + NumPy memory", "boards": n,
                      "agent_steps": steps, "wall_s": wall,
                      "main_cpu_s": time.process_time() - c0, "env_cpu_s": env_cpu,
                      "agent_steps_per_s": steps / wall,
                      "shares": {k: v / wall for k, v in timers.items()}}))


if __name__ == "__main__":
    main()

"""samplers.autotune (measured layouts, best first) and samplers.PerformanceEnv (a known CPU
cost per step, PufferLib's test load)."""

import time
from functools import partial

import numpy as np
import pytest
from gristmill.samplers import PerformanceEnv, autotune
from gristmill.samplers.autotune import candidates


def test_candidates_cover_the_grid_and_keep_batches_dividing_num_envs():
    got = candidates(1, grid=(2, 4))
    assert len(got) == 10  # n=2: b in {2,1}; n=4: b in {4,2,1}; each with 1 and 2 workers
    assert all(n % b == 0 and n >= w for n, b, w in got)


def test_autotune_measures_every_layout_and_sorts_best_first(shm_clean):
    res = autotune(partial(PerformanceEnv, cost=0.0), cores=1, grid=(2, 4), seconds=0.05,
                   warmup=0.0)  # fmt: skip
    assert len(res) == 10
    assert [r["steps_per_s"] for r in res] == sorted((r["steps_per_s"] for r in res), reverse=True)
    assert all(r["steps_per_s"] > 0 and r["steps_per_cpu_s"] > 0 for r in res)
    with pytest.raises(ValueError, match="seconds"):
        autotune(PerformanceEnv, cores=1, grid=(2,), seconds=0)


def test_performance_env_burns_its_cost_and_counts_its_steps():
    env = PerformanceEnv(cost=0.002, episode_length=3, obs_dim=2)
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs, [0, 0])
    t0 = time.process_time()
    for t in range(1, 4):
        obs, rew, term, trunc, _ = env.step(0)
        assert obs[0] == pytest.approx(t / 3) and not term and trunc == (t == 3)
    assert time.process_time() - t0 >= 3 * 0.002  # CPU time, not wall: holds on a loaded box
    with pytest.raises(ValueError, match="cost"):
        PerformanceEnv(cost=-1)


def test_performance_env_cost_draws_repeat_with_the_seed():
    a, b = PerformanceEnv(cost=0.0, cost_std=1e-5), PerformanceEnv(cost=0.0, cost_std=1e-5)
    a.reset(seed=3), b.reset(seed=3)
    assert np.array_equal(a._rng.normal(size=4), b._rng.normal(size=4))

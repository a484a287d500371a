"""Real clients on the pool: Gymnasium's VectorEnv API, Stable-Baselines3 PPO, and a
CleanRL-style PPO loop written against envpool's API."""

import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gristmill.samplers import VectorEnvView, make, to_sb3

pytestmark = pytest.mark.usefixtures("shm_clean")  # tests/conftest.py


def test_vector_env_view_matches_sync_vector_env():
    n = 3
    ref = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1") for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    env = VectorEnvView(make("CartPole-v1", num_envs=n, num_workers=2))
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.single_observation_space == ref.single_observation_space
    assert env.single_action_space == ref.single_action_space
    assert env.observation_space.shape == (n, 4) and env.action_space.shape == (n,)
    o1, _ = ref.reset(seed=[10, 11, 12])
    o2, _ = env.reset(seed=10)
    np.testing.assert_allclose(o1, o2, rtol=1e-6)
    rng = np.random.default_rng(0)
    dones = 0
    for _ in range(80):
        a = rng.integers(0, 2, n)
        r1, r2 = ref.step(a), env.step(a)
        np.testing.assert_allclose(r1[0], r2[0], rtol=1e-6)
        np.testing.assert_array_equal(r1[1], r2[1])
        np.testing.assert_array_equal(r1[2], r2[2])
        np.testing.assert_array_equal(r1[3], r2[3])
        dones += int(r1[2].sum())
    assert dones > 0
    o, _ = env.reset(options={"reset_mask": np.array([False, True, False])})
    assert o.shape == (n, 4)
    env.close()
    ref.close()


def test_sb3_ppo_trains_on_the_pool():
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv

    torch.set_num_threads(1)  # a 2-core box: no intra-op threads fighting the pool workers

    venv = to_sb3(make("CartPole-v1", num_envs=4, num_workers=2))
    assert isinstance(venv, VecEnv)
    obs = venv.reset()
    assert obs.shape == (4, 4)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=3072)
    assert model.num_timesteps >= 3072
    # auto-reset conversion: done envs carry their terminal observation
    venv.reset()
    seen_terminal = False
    for _ in range(200):
        obs, rew, dones, infos = venv.step(np.zeros(4, np.int64))
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i]
            assert not np.array_equal(infos[i]["terminal_observation"], obs[i])
            seen_terminal = True
    assert seen_terminal
    venv.close()


CLEANRL_STYLE = textwrap.dedent('''
    """CleanRL's ppo_atari_envpool.py loop, trimmed: only the import line differs."""
    import numpy as np
    import torch
    import torch.nn as nn
    from torch.distributions.categorical import Categorical

    import {module} as envpool

    num_envs, num_steps = 4, 16
    envs = envpool.make("Pong-v5", env_type="gym", num_envs=num_envs, episodic_life=True,
                        reward_clip=True, seed=1)
    if not hasattr(envs, "single_action_space"):  # envpool < 1.0, as CleanRL patches it
        envs.single_action_space = envs.action_space
        envs.single_observation_space = envs.observation_space

    class Agent(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(4 * 84 * 84, 32), nn.ReLU())
            self.actor = nn.Linear(32, n)
            self.critic = nn.Linear(32, 1)

        def get_action_and_value(self, x, action=None):
            h = self.net(x / 255.0)
            probs = Categorical(logits=self.actor(h))
            if action is None:
                action = probs.sample()
            return action, probs.log_prob(action), probs.entropy(), self.critic(h)

    agent = Agent(envs.single_action_space.n)
    opt = torch.optim.Adam(agent.parameters(), lr=2.5e-4)
    obs = torch.zeros((num_steps, num_envs) + envs.single_observation_space.shape)
    logprobs = torch.zeros((num_steps, num_envs))
    rewards = torch.zeros((num_steps, num_envs))
    next_obs = torch.Tensor(envs.reset()[0])
    lives_seen = set()
    for it in range(2):
        for step in range(num_steps):
            obs[step] = next_obs
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            logprobs[step] = logprob
            next_obs, reward, term, trunc, info = envs.step(action.cpu().numpy())
            rewards[step] = torch.tensor(reward)
            next_obs = torch.Tensor(next_obs)
            lives_seen.update(info["lives"].tolist())
            assert info["env_id"].tolist() == list(range(num_envs))
            assert set(info) >= {{"reward", "terminated", "lives", "elapsed_step"}}
        _, newlogprob, entropy, newvalue = agent.get_action_and_value(
            obs.reshape((-1,) + envs.single_observation_space.shape))
        loss = -(newlogprob * 0).mean() - entropy.mean() + newvalue.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    envs.close()
    print("CLEANRL-OK", sorted(lives_seen))
''')


@pytest.mark.parametrize("module", ["envpool", "gristmill.samplers"])
def test_cleanrl_style_loop_runs_unchanged(tmp_path, module):
    """The same script runs on envpool itself and on gristmill: only the import differs."""
    import subprocess
    import sys

    script = tmp_path / "ppo_envpool_style.py"
    script.write_text(CLEANRL_STYLE.format(module=module))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)
    assert "CLEANRL-OK" in out.stdout, out.stderr[-3000:]

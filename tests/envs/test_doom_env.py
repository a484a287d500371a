"""Real VizDoom games on tiny settings: every scenario, observations, frame skip, episode ends,
reward scaling, shaping, and a 2-player duel. Each test checks no game process outlives it."""

import os
import socket

import numpy as np
import pytest
from gristmill.envs.doom import (
    DOOM_ENVS,
    DoomEnv,
    DoomMultiAgentEnv,
    claim_free_port,
    doom_spec,
    find_free_port,
    game_processes,
    make_doom,
)
from gristmill.envs.doom.shaping import default_scheme, make_shaping, scheme_vector

TINY = (32, 24)


@pytest.fixture(autouse=True)
def no_game_left_behind():
    before = set(game_processes(os.getpid()))
    yield
    left = set(game_processes(os.getpid())) - before
    assert not left, f"VizDoom game processes left running: {sorted(left)}"


SINGLE = [s.name for s in DOOM_ENVS if s.num_agents == 1]


@pytest.mark.parametrize("env_id", SINGLE)
def test_scenario_resets_steps_and_closes(env_id):
    env = DoomEnv(env_id, resolution=TINY, seed=1)
    try:
        obs, info = env.reset(seed=1)
        assert env.observation_space.contains(obs)
        assert len(game_processes(os.getpid())) >= 1
        for _ in range(8):
            obs, reward, term, trunc, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs)
            assert np.isfinite(reward) and info["num_frames"] == 4
            if term or trunc:
                obs, info = env.reset()
    finally:
        env.close()


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (72, 128, 3)),
        ({"resolution": (40, 30), "grayscale": True}, (30, 40, 1)),
        ({"resolution": (40, 30), "channels_first": True}, (3, 30, 40)),
    ],
)
def test_observation_resolution_grayscale_layout(kwargs, shape):
    env = DoomEnv("doom_defend_the_center", **kwargs)
    try:
        obs, _ = env.reset(seed=3)
        assert obs.shape == shape and obs.dtype == np.uint8
        assert obs.max() > 0, "a rendered frame is not black"
    finally:
        env.close()


def test_basic_timeout_is_truncation_with_scaled_living_reward():
    # Standing still never kills the monster: the 300-tic timeout ends the episode.
    env = DoomEnv("doom_basic", resolution=TINY, frame_skip=4)
    try:
        env.reset(seed=0)
        rewards, steps = [], 0
        while True:
            _, r, term, trunc, info = env.step(0)
            rewards.append(r)
            steps += 1
            if term or trunc:
                break
        assert trunc and not term
        # basic.cfg: living reward -1 per tic, scaled by Sample Factory's 0.01.
        assert rewards[0] == pytest.approx(-4 * 0.01)
        # episode_start_time 14 tics, timeout 300 tics: about (300 - 14) / 4 steps.
        assert 70 <= steps <= 75
        assert info["episode"]["l"] == steps and info["episode"]["frames"] == 4 * steps
        assert info["true_objective"] == pytest.approx(sum(rewards))
    finally:
        env.close()


def test_frame_skip_runs_inside_vizdoom():
    env1 = DoomEnv("doom_basic", resolution=TINY, frame_skip=1)
    env2 = DoomEnv("doom_basic", resolution=TINY, frame_skip=2)
    try:
        env1.reset(seed=0)
        env2.reset(seed=0)
        _, r1, *_ = env1.step(0)
        _, r2, *_ = env2.step(0)
        assert r1 == pytest.approx(-0.01) and r2 == pytest.approx(-0.02)
    finally:
        env1.close()
        env2.close()


def test_spec_timeout_counts_frames():
    """Sample Factory's TimeLimitWrapper counts frames: 20 frames at frame skip 4 = 5 steps."""
    import dataclasses

    spec = dataclasses.replace(doom_spec("doom_defend_the_center"), timeout=20)
    env = DoomEnv(spec, resolution=TINY, frame_skip=4)
    try:
        assert env.horizon == 5
        env.reset(seed=0)
        ends = [env.step((0, 0))[2:4] for _ in range(5)]
        assert ends[-1] == (False, True) and all(e == (False, False) for e in ends[:-1])
    finally:
        env.close()
    assert DoomEnv(spec, frame_skip=3).horizon == 7  # ceil(20 / 3)


def test_step_limit_truncates():
    env = DoomEnv("doom_defend_the_center", resolution=TINY, episode_horizon=5)
    try:
        env.reset(seed=0)
        ends = [env.step((0, 0))[2:4] for _ in range(5)]
        assert ends[-1] == (False, True) and all(e == (False, False) for e in ends[:-1])
    finally:
        env.close()


def test_health_gathering_objective_is_unshaped_reward():
    env = DoomEnv("doom_health_gathering", resolution=TINY)
    try:
        env.reset(seed=0)
        total = 0.0
        for _ in range(3000):
            _, r, term, trunc, info = env.step(3)  # walk forward, picking up medkits
            total += r
            if term or trunc:
                break
        assert term or trunc
        # Shaping adds +1 per health gain on top of the game reward; the objective drops it.
        assert total >= info["true_objective"]
        assert info["true_objective"] > 0
    finally:
        env.close()


def test_sample_factory_render_options_and_game_rewards():
    """Specs apply Sample Factory's .cfg values where the wheel's differ: doom_basic shows the
    status bar (the bottom of the frame), health_gathering pays 0.01 per tic, no death penalty."""
    import dataclasses

    spec = dataclasses.replace(DOOM_ENVS[0], render=())
    assert DOOM_ENVS[0].name == "doom_basic" and ("hud", True) in DOOM_ENVS[0].render
    frames = []
    for env_id in (DOOM_ENVS[0], spec):
        env = DoomEnv(env_id, seed=1)
        try:
            frames.append(env.reset()[0].astype(int))
        finally:
            env.close()
    # Same game and seed: without the flags the frames would be identical.
    assert np.abs(frames[0][-8:] - frames[1][-8:]).mean() > 20

    env = DoomEnv("doom_health_gathering", resolution=TINY)
    try:
        env.reset(seed=0)
        assert env.game.get_living_reward() == pytest.approx(0.01)
        assert env.game.get_death_penalty() == 0.0
        _, r, *_ = env.step(0)  # idle: no medkit, so no shaping
        assert r == pytest.approx(4 * 0.01)
    finally:
        env.close()
    bad = dataclasses.replace(DOOM_ENVS[0], render=(("hologram", True),))
    env = DoomEnv(bad)
    try:
        with pytest.raises(ValueError, match="hologram"):
            env.reset()
    finally:
        env.close()


def test_bad_inputs_name_the_problem():
    with pytest.raises(KeyError, match="unknown Doom env 'doom_nope'"):
        DoomEnv("doom_nope")
    with pytest.raises(ValueError, match="frame_skip"):
        DoomEnv("doom_basic", frame_skip=0)
    with pytest.raises(ValueError, match="2-player match"):
        DoomEnv("doom_duel")
    env = DoomEnv("doom_basic", resolution=TINY)
    try:
        with pytest.raises(RuntimeError, match="before reset"):
            env.step(0)
        env.reset()
        with pytest.raises(Exception, match="out of range"):
            env.step(7)
    finally:
        env.close()


def test_free_port_search_skips_a_busy_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("", 0))
        port = busy.getsockname()[1]
        assert find_free_port(port) > port


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def test_a_claimed_port_is_skipped_until_its_claim_is_closed():
    """Two matches searching at once must not both pick the port a host has not bound yet."""
    port, claim = claim_free_port(_unused_udp_port())
    try:
        assert find_free_port(port) > port
        other, claim2 = claim_free_port(port)
        claim2.close()
        assert other > port
    finally:
        claim.close()
    assert find_free_port(port) == port


def test_a_killed_process_leaves_no_claim_on_its_port():
    import subprocess
    import sys

    code = (
        "import sys; from gristmill.envs.doom import claim_free_port; "
        "p, c = claim_free_port(int(sys.argv[1])); print(p, flush=True); sys.stdin.read()"
    )
    start = _unused_udp_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(start)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        port = int(proc.stdout.readline())
        assert find_free_port(port) > port  # held by the child
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert find_free_port(port) == port


@pytest.mark.timeout(240)
@pytest.mark.parametrize("frame_skip", [2, 4])
def test_two_player_duel_in_lockstep(frame_skip):
    """At skip 4 (the default) the players used to deadlock on the first step."""
    env = make_doom("doom_duel", resolution=TINY, frame_skip=frame_skip, timelimit=0.05)
    assert isinstance(env, DoomMultiAgentEnv)
    try:
        obs, infos = env.reset(seed=0)
        assert len(obs) == 2 and len(game_processes(os.getpid())) >= 2
        assert all(env.observation_space.contains(o) for o in obs)
        steps = 0
        while True:
            obs, rewards, term, trunc, infos = env.step([env.action_space.sample()] * 2)
            steps += 1
            assert term[0] == term[1], "players end the match together"
            if term[0] or trunc[0]:
                break
            assert steps < 200
        # 0.05 min = 105 tics at 35 Hz, frame_skip tics per step.
        lo, hi = {2: (45, 55), 4: (22, 28)}[frame_skip]
        assert lo <= steps <= hi, steps
        assert all(i["PLAYER_COUNT"] == 2 for i in infos)
        wins = [i["true_objective"] for i in infos]
        assert set(wins) <= {0.0, 1.0} and sum(wins) <= 1.0
        obs, infos = env.reset()  # a second match on the same games
        _, _, term, trunc, _ = env.step([env.action_space.sample()] * 2)
        assert not any(term) and not any(trunc)
    finally:
        env.close()


def test_single_agent_vs_bot_hosts_a_match():
    env = DoomEnv("doom_duel_bots", resolution=TINY, frame_skip=2)
    try:
        env.reset(seed=0)
        for _ in range(3):
            obs, _, _, _, info = env.step(env.action_space.sample())
        assert info["PLAYER_COUNT"] == 2  # the agent and one bot
        assert obs["measurements"].shape == (23,)
    finally:
        env.close()


def _vizdoom_shm(instance: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith("ViZDoom") and n.endswith(instance)]


def test_closing_an_env_whose_game_was_killed_removes_vizdooms_shm():
    """VizDoom leaves its shared memory and message queues behind when its game process is
    killed; closing the env removes them (and only those of games that are gone)."""
    import signal
    import time

    from gristmill.envs.doom import game_instances

    env = DoomEnv("doom_basic", resolution=TINY, seed=1)
    other = DoomEnv("doom_basic", resolution=TINY, seed=2)
    try:
        env.reset(seed=1)
        other.reset(seed=2)
        (mine,) = env._instances
        (theirs,) = other._instances
        assert mine != theirs
        assert len(_vizdoom_shm(mine)) == 3 and len(_vizdoom_shm(theirs)) == 3
        pid = next(p for p, i in game_instances(os.getpid()).items() if i == mine)
        os.kill(pid, signal.SIGKILL)
        # VizDoom's controller may reap its game itself, so wait for it to vanish instead.
        deadline = time.monotonic() + 30
        while pid in game_instances(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid not in game_instances(os.getpid())
        assert len(_vizdoom_shm(mine)) == 3, "VizDoom cleaned up by itself: test is moot"
        env.close()
        assert _vizdoom_shm(mine) == []
        assert len(_vizdoom_shm(theirs)) == 3, "a live game's entries must stay"
    finally:
        env.close()
        other.close()
    assert _vizdoom_shm(theirs) == []


@pytest.mark.timeout(240)
def test_each_duel_player_shapes_with_its_own_coefficients():
    """set_agent_params (the coefficients of the policy acting for a player, which PBT mutates
    per policy) changes that player's shaped reward only: replaying Sample Factory's shaping
    on each player's own game variables, player 1 gets none with every coefficient 0, then
    (set between matches) exactly 3x the default shaping with every coefficient x3, while
    player 0 keeps the default's."""
    env = make_doom("doom_duel", resolution=TINY, frame_skip=2, timelimit=0.05)
    kind = doom_spec("doom_duel").shaping
    default = scheme_vector(default_scheme(kind))
    assert len(env.agent_param_names) == len(default) > 0
    noop = tuple(0 for _ in env.action_space.sample())  # both stand still: few events

    def match():
        """Each step's rewards and what the default scheme pays on each player's variables."""
        env.reset(seed=0)
        replay = [make_shaping(kind), make_shaping(kind)]
        rewards, expected = [], []
        while True:
            _, r, term, trunc, infos = env.step([noop, noop])
            done = term[0] or trunc[0]
            rewards.append(r)
            expected.append([f(i, done) * env.envs[0].reward_scale for f, i in zip(replay, infos)])
            if done:
                return np.array(rewards), np.array(expected)

    try:
        env.set_agent_params(1, np.zeros_like(default))  # before the match starts: kept
        r, default_pays = match()
        assert default_pays[:, 0].sum() > 0  # e.g. the bonus for holding a loaded weapon
        np.testing.assert_allclose(r[:, 0], default_pays[:, 0], rtol=1e-6)
        assert np.all(r[:, 1] == 0), r
        env.set_agent_params(1, 3 * default)
        r, default_pays = match()
        np.testing.assert_allclose(r[:, 0], default_pays[:, 0], rtol=1e-6)
        np.testing.assert_allclose(r[:, 1], 3 * default_pays[:, 1], rtol=1e-6)
        assert r[:, 1].sum() > 0
        with pytest.raises(ValueError, match="shaping vector of 3 values"):
            env.set_agent_params(0, [1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="agent 2 of a 2-player match"):
            env.set_agent_params(2, default)
    finally:
        env.close()


def test_shaping_overrides_replace_exactly_the_named_coefficients():
    from gristmill.envs.doom.shaping import override_scheme

    base = default_scheme("deathmatch_v1")
    out = override_scheme(base, "DAMAGECOUNT=0.15,-0.15; DEATHCOUNT=-2,2")
    assert out["delta"]["DAMAGECOUNT"] == (0.15, -0.15)
    assert out["delta"]["DEATHCOUNT"] == (-2.0, 2.0)
    assert base["delta"]["DAMAGECOUNT"] == (0.01, -0.01)  # the input is not edited
    changed = scheme_vector(out) != scheme_vector(base)
    assert changed.sum() == 4  # two variables, up and down each
    assert override_scheme(base, "  ") is base
    with pytest.raises(ValueError, match="no variable 'FRAGS'"):
        override_scheme(base, "FRAGS=1,1")
    with pytest.raises(ValueError, match="two numbers"):
        override_scheme(base, "FRAGCOUNT=1,x")
    with pytest.raises(ValueError, match="no coefficients"):
        override_scheme(None, "FRAGCOUNT=1,1")

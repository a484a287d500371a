"""The trained net as a player: checkpoint round trip, bot interface, tournament, Gymnasium
opponent, and generals-bots' ``act(observation)`` with memory across calls."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from gristmill.apps.generals.agent import GeneralsBotsAgent, NetPlayer, Policy
from gristmill.envs.generals import GeneralsEngine, GeneralsEnv
from gristmill.envs.generals.encoding import PLANE_NAMES
from gristmill.envs.generals.tournament import play_match
from gristmill.learners.generals_net import index_to_action

TINY = dict(channels=8, blocks=1, stem_channels=4)


def test_policy_file_round_trips_weights_and_sizes(tmp_path):
    torch.manual_seed(0)
    p = Policy.create(history=3, **TINY)
    q = Policy.load(p.save(tmp_path / "p.pt"))
    assert q.net.cfg == p.net.cfg and q.history == 3
    for a, b in zip(p.net.state_dict().values(), q.net.state_dict().values()):
        assert torch.equal(a, b)
    assert [f.name for f in tmp_path.iterdir()] == ["p.pt"]  # no temporary left


def test_a_policy_file_of_input_layout_1_loads_and_answers_as_before_on_the_new_planes():
    """Files from before input layout 2 (no planes 20-21) load widened: the same logits and
    value on layout-2 planes as the old network had on the planes it knew."""
    from gristmill.learners.generals_net import GeneralsNet, GeneralsNetConfig

    torch.manual_seed(0)
    new = Policy.create(history=2, **TINY)
    old_cfg = GeneralsNetConfig(**{**new.net.cfg.to_dict(),
                                   "in_channels": new.net.cfg.in_channels - 2})
    old = GeneralsNet(old_cfg)
    state = {"format": "gristmill-generals-policy/1", "net": old_cfg.to_dict(), "history": 2,
             "weights": old.state_dict()}  # as layout-1 files were written
    loaded = Policy.from_state(state)
    assert loaded.net.cfg == new.net.cfg
    planes = torch.rand(3, new.net.cfg.in_channels, 24, 24)
    mask = torch.rand(3, 24, 24, 4) < 0.3
    with torch.no_grad():
        got = loaded.net(planes, mask)
        want = old(torch.cat([planes[:, :20], planes[:, 22:]], 1), mask)
    torch.testing.assert_close(got, want)
    assert Policy.from_state(loaded.state()).net.cfg == new.net.cfg  # saved as layout 2


def test_net_plays_a_tournament_and_a_gymnasium_env_without_invalid_moves():
    torch.manual_seed(0)
    player = NetPlayer(Policy.create(history=2, **TINY), "tiny")
    r = play_match(player, "random", games=4, truncation=40)
    assert r.bot_a == "tiny" and r.games == 4
    env = GeneralsEnv(opponent=player, truncation=30)
    env.reset(seed=0)
    moved = 0
    for _ in range(29):
        env.step(np.array([1, 0, 0, 0, 0]))
        moved += int(env.engine.status[0, 1] == 1)
    assert moved > 5 and env.engine.invalid_count[0, 1] == 0  # the net's seat moves, validly


def test_generals_bots_agent_matches_the_batched_bot_and_resets_on_a_new_game():
    """Greedy, the one-seat agent fed generals-bots-style Observation objects picks exactly the
    batched NetBot's moves (same memory), and a new game (tick back to 0) forgets the old one."""
    torch.manual_seed(1)
    policy = Policy.create(history=2, **TINY)
    agent = GeneralsBotsAgent(policy, greedy=True)
    bot = NetPlayer(policy, greedy=True).spawn(1)
    eng = GeneralsEngine(1, "generalsio", truncation=25, seed=2, autoreset="same_step")
    eng.reset(seed=2)
    for t in range(40):
        planes = eng.planes()[0, 0]
        fields = {n: planes[k] if k < 9 else int(planes[k, 0, 0]) for k, n in
                  enumerate(PLANE_NAMES)}
        fields["armies"] = fields["armies"].astype(np.int16)
        a = agent.act(SimpleNamespace(**fields))
        want = bot.act(eng.obs, eng.masks, eng.scalars, seats=(True, False))
        assert np.array_equal(a, want[0, 0]), t
        want[0, 1] = [1, 0, 0, 0, 0]
        eng.step(want)
    assert agent._last_tick < 25  # the second game started and the agent followed it


def test_the_agent_plays_a_pettingzoo_env_from_its_observations():
    from gristmill.envs.generals import GeneralsParallelEnv

    torch.manual_seed(2)
    agent = GeneralsBotsAgent(Policy.create(history=2, **TINY), greedy=False)
    env = GeneralsParallelEnv(truncation=40)
    obs, infos = env.reset(seed=3)
    moved = 0
    for _ in range(39):
        a = agent.act_planes(obs["player_0"]["observation"])
        obs, _, term, trunc, infos = env.step({"player_0": a, "player_1": [1, 0, 0, 0, 0]})
        moved += infos["player_0"]["status"] == 1
        assert infos["player_0"]["status"] != 2
    assert moved > 5


def _reversal(prev: np.ndarray, a: np.ndarray) -> bool:
    """Is move ``a`` [5] the army of move ``prev`` [5] going straight back?"""
    if prev[0] or a[0]:
        return False
    dr, dc = (-1, 1, 0, 0)[prev[3]], (0, 0, -1, 1)[prev[3]]
    return (a[1], a[2], a[3]) == (prev[1] + dr, prev[2] + dc, prev[3] ^ 1)


def test_a_net_never_moves_an_army_straight_back_though_unbanned_it_would():
    from gristmill.envs.generals import Bot

    torch.manual_seed(0)
    n = 8
    bot = NetPlayer(Policy.create(history=2, **TINY)).spawn(n)  # sampling
    eng = GeneralsEngine(n, "generalsio", truncation=200, seed=0)
    eng.reset(seed=0)
    rnd = Bot("random", n, seed=0)
    prev, moves, wanted = None, 0, 0
    for _ in range(80):
        actions = rnd.act(eng.obs, eng.masks, eng.scalars)
        bot.act(eng.obs, eng.masks, eng.scalars, (True, False), actions)
        a = actions[:, 0].copy()
        # what the same net picks from the engine's unbanned mask
        planes = bot.features.planes(np.arange(n), np.zeros(n, np.int64))
        raw = bot.policy.choose(planes, eng.masks[:, 0].copy())[0]
        raw = index_to_action(raw, 24)
        if prev is not None:
            for b in range(n):
                assert not _reversal(prev[b], a[b]), (b, prev[b], a[b])
                wanted += _reversal(prev[b], raw[b])
        moves += int((a[:, 0] == 0).sum())
        prev = a
        eng.step(actions)
        assert not eng.terminated.any()
    assert moves > 200 and wanted > 0  # the ban had reversals to stop
    assert eng.invalid_count[:, 0].sum() == 0

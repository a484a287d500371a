"""Self-play PPO in the league: a few tiny updates on the real engine, snapshots, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gristmill.apps.generals.agent import Policy
from gristmill.apps.generals.selfplay import LEARNER, SelfPlay, SelfPlayConfig
from gristmill.envs.generals import AgentFeatures

TINY = dict(channels=8, blocks=1, stem_channels=4)


def test_selfplay_trains_adds_snapshots_records_games_and_resumes(tmp_path):
    torch.manual_seed(0)
    cfg = SelfPlayConfig(boards=6, rollout=30, epochs=1, minibatch=64, truncation=40,
                         snapshot_threshold=0.0, snapshot_min_gap=1, seed=0)
    policy = Policy.create(history=2, **TINY)
    before = [p.detach().clone() for p in policy.net.parameters()]
    sp = SelfPlay(policy, cfg, tmp_path, log=lambda s: None)
    stats = sp.run(agent_steps=2 * 6 * 30)
    assert sp.updates == 2 and sp.agent_steps == 360
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.net.parameters()))
    assert np.isfinite(stats["loss"]) and stats["entropy"] > 0
    # 2 updates x 30 ticks with 40-tick games: every board finished at least one game
    assert sp.games >= 6 and sp.payoff.record[0].sum() == sp.games
    assert len(sp.snapshots) == 2
    assert (tmp_path / "checkpoints" / "snapshots" / "snap_001.pt").exists()
    assert "snap_000" in sp.payoff.members
    prof = sp.profile()
    assert abs(sum(prof.values()) - 1) < 1e-9 and {"forward", "update", "engine"} <= set(prof)
    # resume: counters, league and weights come back; training continues from there
    lines = []
    sp2 = SelfPlay(Policy.create(history=2, **TINY), cfg, tmp_path, log=lines.append)
    assert "resumed at update 2" in lines[0] and sp2.payoff == sp.payoff
    for a, b in zip(sp2.policy.net.parameters(), policy.net.parameters()):
        assert torch.equal(a, b)
    sp2.run(agent_steps=3 * 6 * 30)
    assert sp2.updates == 3 and LEARNER in sp2.payoff.members
    table = sp2.ratings(bootstrap=0)
    assert table.names[0] == LEARNER and np.isfinite(table["random"])


def test_selfplay_memory_sees_every_tick_once_and_boards_start_spread_over_game_time(tmp_path):
    # a second memory update of one tick (the old rollout boundary did one) zeroes the newest
    # army deltas; and boards that all start at tick 0 put one stretch of game time in every
    # rollout, as 500-tick draws keep them in step
    torch.manual_seed(0)
    cfg = SelfPlayConfig(boards=16, rollout=8, epochs=1, minibatch=64, truncation=60,
                         bots=("expander",), seed=1)
    sp = SelfPlay(Policy.create(history=2, **TINY), cfg, tmp_path, log=lambda s: None)
    eng = sp.engine
    shadow = AgentFeatures(cfg.boards, 24, 2)
    step = eng.step

    def seen_step(actions, check=True):  # what each move was chosen from
        shadow.update(eng.obs, eng.scalars)
        return step(actions, check)

    eng.step = seen_step
    sp.run(agent_steps=3 * 16 * 8)
    assert sp.updates == 3
    shadow.update(eng.obs, eng.scalars)  # the bootstrap state after the last rollout
    for name in ("flags", "enemy_army", "age", "deltas"):
        np.testing.assert_array_equal(getattr(sp.features.memory, name),
                                      getattr(shadow.memory, name), err_msg=name)
    ticks = eng.scalars[:, 0, 4]
    assert len(np.unique(ticks)) >= 8 and np.ptp(ticks) >= 30, ticks


def test_a_snapshot_joins_after_snapshot_max_gap_updates_even_below_the_threshold(tmp_path):
    cfg = SelfPlayConfig(boards=2, rollout=4, epochs=1, minibatch=8, truncation=20,
                         snapshot_threshold=2.0, snapshot_max_gap=2, seed=0)
    sp = SelfPlay(Policy.create(history=2, **TINY), cfg, tmp_path, log=lambda s: None)
    sp.run(agent_steps=5 * 2 * 4)
    assert sp.updates == 5 and list(sp.snapshots) == ["snap_000", "snap_001"]


def test_main_exploiter_trains_against_the_main_agent_joins_the_league_and_restarts(tmp_path):
    torch.manual_seed(0)
    cfg = SelfPlayConfig(boards=4, rollout=6, epochs=1, minibatch=16, truncation=10,
                         exploiter_boards=0.5, exploiter_max_gap=2, snapshot_threshold=2.0,
                         seed=0)
    policy = Policy.create(history=2, **TINY)
    start = {k: v.clone() for k, v in policy.net.state_dict().items()}
    sp = SelfPlay(policy, cfg, tmp_path, log=lambda s: None)
    exploiter = sp.pop[1].model
    sp.run(agent_steps=1 * 4 * 6)
    # one update each: both learners moved, on their own boards
    assert any(not torch.equal(v, start[k]) for k, v in policy.net.state_dict().items())
    assert any(not torch.equal(v, start[k]) for k, v in exploiter.state_dict().items())
    assert set(sp.opponent[2:]) == {LEARNER} and "p1" not in sp.opponent[:2]
    assert "p1" not in sp.members()
    sp.run(agent_steps=2 * 4 * 6)  # update 2: the gap is reached
    assert "exploit_000" in sp.snapshots and sp.state.exploiter_games == 0
    for k, v in exploiter.state_dict().items():  # back to the starting (BC) weights
        assert torch.equal(v, start[k])
    games = sp.payoff.record[sp.payoff.members.index("p1"),
                             sp.payoff.members.index(LEARNER)].sum()
    assert games >= 2  # every exploiter board finished a game, scored against the main agent
    with pytest.raises(ValueError, match="exploiter_boards"):
        SelfPlayConfig(boards=4, exploiter_boards=0.1)


def test_the_learners_stored_masks_ban_moving_an_army_straight_back(tmp_path):
    # PPO's log-probabilities must come from the mask the learner played with (agent.py's
    # ReversalBan): the tick after a move, its reverse is masked though the engine allows it
    from gristmill.learners.generals_net import index_to_action

    torch.manual_seed(0)
    cfg = SelfPlayConfig(boards=8, rollout=40, epochs=1, minibatch=64, truncation=200,
                         bots=("random",), seed=0)
    sp = SelfPlay(Policy.create(history=2, **TINY), cfg, tmp_path, log=lambda s: None)
    sp._start()
    batch = sp._rollout()
    banned = 0
    for t in range(cfg.rollout - 1):
        a = index_to_action(batch["idx"][t], 24)
        for b in np.flatnonzero(a[:, 0] == 0):
            r, c, d = a[b, 1:4]
            r2, c2 = r + (-1, 1, 0, 0)[d], c + (0, 0, -1, 1)[d]
            nxt = batch["planes"][t + 1, b]
            own_army = round(nxt[0, r2, c2] * 250)  # channel 0: own army / 250
            if nxt[15, 0, 0] > 0 and own_army >= 2:  # same game (tick > 0), a legal back move
                assert batch["masks"][t + 1, b, r2, c2, d ^ 1] == 0, (t, b)
                banned += 1
    assert banned > 20


def test_draw_reward_is_added_at_every_drawn_game_end_and_nowhere_else(tmp_path):
    # the same rollout (same seeds, no update yet) with and without a price on draws: the
    # rewards differ by exactly draw_reward at the ticks where a game was cut as a draw
    from gristmill.learners.league import DRAW

    rollouts = {}
    for draw in (0.0, -0.5):
        torch.manual_seed(0)
        cfg = SelfPlayConfig(boards=4, rollout=50, truncation=20, draw_reward=draw, seed=0)
        sp = SelfPlay(Policy.create(history=2, **TINY), cfg, tmp_path / str(draw),
                      log=lambda s: None)
        sp._start()
        rollouts[draw] = sp._rollout()
    a, b = rollouts[0.0], rollouts[-0.5]
    assert np.array_equal(a["idx"], b["idx"])  # the same games were played
    diff = b["rewards"] - a["rewards"]
    draws = sum(res == DRAW for _, res in a["results"])
    assert draws >= 4  # 20-tick games between untrained players end drawn
    assert np.allclose(diff[diff != 0], -0.5) and (diff != 0).sum() == draws
    with pytest.raises(ValueError, match="draw_reward"):
        SelfPlayConfig(draw_reward=-1.5)


def test_start_kl_keeps_selfplay_near_the_policy_it_started_from(tmp_path):
    # AlphaStar's KL(pi_start || pi) penalty: the same updates at a high learning rate end
    # much closer to the start policy with a heavy weight on it than without
    from gristmill.learners.generals_net import MaskedPolicy

    start = Policy.create(history=2, **TINY)
    kls = {}
    for coef in (0.0, 30.0):
        torch.manual_seed(0)
        cfg = SelfPlayConfig(boards=6, rollout=20, epochs=2, minibatch=40, lr=3e-3,
                             truncation=40, start_kl_coef=coef, seed=0)
        sp = SelfPlay(start.copy(), cfg, tmp_path / str(coef), log=lambda s: None)
        stats = sp.run(agent_steps=3 * 6 * 20)
        assert ("start_kl" in stats) == (coef > 0)  # logged when it is in the loss
        S = sp.policy.pad_to  # the last rollout's inputs
        planes = torch.from_numpy(sp._rollout_planes[:20].reshape(-1, start.net.cfg.in_channels,
                                                                   S, S))
        masks = torch.from_numpy(sp._rollout_masks[:20].reshape(-1, S, S, 4))
        with torch.no_grad():
            p0 = MaskedPolicy(start.net(planes, masks)[0]).log_p
            p1 = MaskedPolicy(sp.policy.net(planes, masks)[0]).log_p
        kls[coef] = float((p0.exp() * (p0 - p1)).sum(-1).mean())
    assert 0 <= kls[30.0] < 0.5 * kls[0.0], kls

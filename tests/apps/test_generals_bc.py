"""Behaviour-cloning data and training: bot games, replay loaders (gristmill and .gioreplay),
the streamed memory features, a few BC steps that lower the loss, and DAgger (the clone's
games labelled by the teacher; the ``bc --dagger-rounds`` CLI)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from gristmill.apps.generals.agent import NetBot, Policy
from gristmill.apps.generals.bc import (
    Stream,
    Trajectories,
    bot_games,
    dagger_games,
    from_gioreplay,
    from_replay,
    own_wins,
    train_bc,
    unpack_masks,
)
from gristmill.envs.generals import AgentFeatures, Bot, GeneralsEngine, MemoryFeatures
from gristmill.envs.generals.gioreplay import GioReplayError, load_gioreplay
from gristmill.envs.generals.tournament import play_match
from gristmill.learners.generals_net import action_index

TINY = dict(channels=8, blocks=1, stem_channels=4)


def test_gristmill_replays_load_move_for_move(tmp_path):
    r = play_match("general", "expander", games=4, truncation=300, keep_replays=4)
    paths = [rep.save(tmp_path / f"g{k}.npz") for k, rep in enumerate(r.replays)]
    data = from_replay(paths)
    # moves invalidated by the other player's earlier move (status 2) are flagged as the
    # replay's own playback reports them, tick for tick
    status = np.concatenate([np.stack([s.status for s in rep.states()][1:]) for rep in
                             r.replays])  # [ticks, 2]
    assert data.num_trajectories == 8
    assert data.info["illegal_moves"] == int((status == 2).sum())
    for k, rep in enumerate(r.replays):
        acts = rep.action_array().astype(np.int64)
        for p in range(2):
            j = 2 * k + p
            rows = slice(data.starts[j], data.starts[j + 1])
            assert np.array_equal(data.actions[rows], action_index(acts[:, p], 24))
            assert data.scalars[rows][0, 4] == 0  # trajectories start at tick 0
            st = np.stack([s.status[p] for s in rep.states()][1:])
            assert np.array_equal(data.legal[rows], st != 2)
    # outcomes agree with the tournament's result (A is player 0 on even games)
    wins_a = sum(int(data.outcome[2 * k + (k % 2)] == 1) for k in range(4))
    assert wins_a == r.wins_a


def test_bot_games_store_compactly_and_round_trip(tmp_path):
    data = bot_games(6, teacher="general", opponents=("expander", "general"), boards=6,
                     truncation=120, seed=0)
    assert data.num_trajectories >= 6 and data.legal.all()
    assert data.obs.dtype == np.int32 and data.masks.dtype == np.uint8
    assert set(np.unique(data.outcome)) <= {-1, 0, 1}
    back = Trajectories.load(data.save(tmp_path / "d.npz"))
    for f in Trajectories.FIELDS:
        assert np.array_equal(getattr(back, f), getattr(data, f))
    train, val = data.split(0.25, seed=1)
    assert train.num_samples + val.num_samples == data.num_samples and val.num_trajectories


def test_stream_memory_equals_a_straight_replay_of_each_trajectory():
    data = bot_games(3, opponents=("random",), boards=3, truncation=60, seed=2)
    batches = list(Stream(data, lanes=2, history=2, shuffle=False).batches())
    rows = np.concatenate([b["rows"] for b in batches])
    assert np.array_equal(np.sort(rows), np.arange(data.num_samples))  # every sample once
    planes = np.concatenate([b["planes"] for b in batches])[np.argsort(rows)]
    actions = np.concatenate([b["actions"] for b in batches])[np.argsort(rows)]
    assert np.array_equal(actions, data.actions)
    zero = np.zeros(1, np.int64)
    for k in range(data.num_trajectories):  # each trajectory alone through a fresh memory
        f = AgentFeatures(1, 24, 2, players=1)
        for r in range(data.starts[k], data.starts[k + 1]):
            f.update(data.obs[r][None, None], data.scalars[r][None, None])
            np.testing.assert_array_equal(planes[r], f.planes(zero, zero)[0])
    assert MemoryFeatures  # the stream uses the same kernel as the env


def test_stream_batches_mix_game_phases_instead_of_sweeping_the_game():
    # lanes that all started at tick 0 would put one game tick in every batch (the old
    # stream's batches swept the game from opening to end: BC forgot the phases behind it)
    data = bot_games(16, opponents=("random",), boards=16, truncation=100, seed=4)
    batches = list(Stream(data, lanes=8, history=2, seed=0).batches())
    assert all(len(b["rows"]) == 8 for b in batches[:-1])
    middle = batches[len(batches) // 4: 3 * len(batches) // 4]
    spread = [np.ptp(data.scalars[b["rows"], 4]) for b in middle]
    assert np.median(spread) >= 50, spread


def test_bc_steps_lower_the_loss_and_resume_at_the_given_lr(tmp_path):
    torch.manual_seed(0)
    data = bot_games(4, opponents=("expander",), boards=4, truncation=80, seed=3)
    train, val = data.split(0.25)
    policy = Policy.create(history=2, **TINY)
    m1 = train_bc(policy, train, val, epochs=1, lanes=64, lr=3e-3, log=lambda s: None)
    ck = tmp_path / "bc.pt"
    m3 = train_bc(policy, train, val, epochs=3, lanes=64, lr=3e-3, checkpoint=ck,
                  log=lambda s: None)
    assert m3["train_policy_loss"] < m1["train_policy_loss"]
    assert 0 <= m3["val_top1"] <= 1
    lines = []
    train_bc(policy, train, val, epochs=3, lanes=64, lr=3e-3, checkpoint=ck, log=lines.append)
    assert lines and "resumed at epoch 3" in lines[0] and len(lines) == 1
    # a resume trains at the rate it is given, not at the checkpoint's
    lines = []
    train_bc(policy, train, val, epochs=4, lanes=64, lr=1e-4, checkpoint=ck, log=lines.append)
    assert "bc: learning rate 0.003 -> 0.0001" in lines
    assert torch.load(ck, weights_only=False)["optim"]["param_groups"][0]["lr"] == 1e-4


def _gio(**kw):
    # 3 x 4 map:  A . . #      general A at 0, B at 11, a city at 6
    #             . . 5 .
    #             . . . B
    d = {"version": 13, "id": "t1", "mapWidth": 4, "mapHeight": 3, "usernames": ["a", "b"],
         "stars": [70, 71], "cities": [6], "cityArmies": [45], "generals": [0, 11],
         "mountains": [3], "afks": [],
         "moves": [
             {"index": 0, "start": 0, "end": 1, "is50": False, "turn": 3},   # A right: legal
             [1, 11, 10, 0, 3],                                             # B left: legal
             {"index": 0, "start": 5, "end": 9, "is50": True, "turn": 6},   # not A's cell: illegal
             {"index": 1, "start": 11, "end": 10, "is50": False, "turn": 8},  # legal
         ]}
    d.update(kw)
    return d


def test_gioreplay_is_replayed_and_illegal_moves_are_counted(tmp_path):
    path = tmp_path / "g.gioreplay"
    path.write_text(json.dumps(_gio()))
    g = load_gioreplay(path)
    assert g.actions.shape == (9, 2, 5) and tuple(g.actions[3, 0]) == (0, 0, 0, 3, 0)
    assert tuple(g.actions[6, 0]) == (0, 1, 1, 1, 1)
    msgs = []
    data = from_gioreplay([path], log=msgs.append)
    assert data.info["illegal_moves"] == 1 and "1 + 0 moves illegal" in msgs[0]
    assert data.num_trajectories == 2 and data.num_samples == 18
    assert (~data.legal).sum() == 1 and data.actions[6] != 0  # kept, flagged, not dropped
    eng = GeneralsEngine(1, pad_to=24)
    eng.reset()
    eng.load(0, g.game_map)
    assert eng.state.army[0, 1, 2] == 45 and (eng.obs[0, 0, 1, 2] & 15) == 1  # fogged city
    assert eng.state.terrain[0, 0, 3] == 1 and tuple(eng.state.dims[0]) == (3, 4)


@pytest.mark.parametrize("change,message", [
    (dict(usernames=["a", "b", "c"]), "3 players"),
    (dict(version=99), "unknown replay version 99"),
    (dict(mapWidth=30, mapHeight=30), "larger than pad_to=24"),
    (dict(moves=[{"index": 0, "start": 0, "end": 5, "is50": False, "turn": 1}]),
     "not to a neighbour"),
])
def test_gioreplay_refuses_what_it_cannot_replay(tmp_path, change, message):
    path = tmp_path / "bad.gioreplay"
    path.write_text(json.dumps(_gio(**change)))
    with pytest.raises(GioReplayError, match=message):
        load_gioreplay(path)


def _replay_seat(data: Trajectories, k: int, player) -> np.ndarray:
    """Action indices int64 [T] that ``player`` (Bot interface, 1 board) chooses on trajectory
    ``k``'s recorded states, fed to it one tick at a time as seat 0 of a fresh game."""
    out = []
    for r in range(data.starts[k], data.starts[k + 1]):
        obs = np.zeros((1, 2, 24, 24), np.int32)
        sc = np.zeros((1, 2, 5), np.int32)
        masks = np.zeros((1, 2, 24, 24, 4), np.uint8)
        obs[0, 0], sc[0, 0], masks[0, 0] = data.obs[r], data.scalars[r], unpack_masks(
            data.masks[r])
        sc[0, 1, 4] = sc[0, 0, 4]
        out.append(player.act(obs, masks, sc, (True, False))[0, 0])
    return action_index(np.stack(out), 24)


def test_dagger_labels_are_the_teachers_moves_on_the_states_the_clone_reached():
    torch.manual_seed(0)
    policy = Policy.create(history=2, **TINY)
    played: list[np.ndarray] = []
    data = dagger_games(policy, 4, opponents=("expander", "random"), temperature=0, boards=4,
                        truncation=60, seed=1, played=played)
    assert data.num_trajectories == 4 and data.info["clone_games"] == 4
    assert [len(p) for p in played] == list(np.diff(data.starts))
    assert (data.scalars[data.starts[:-1], 4] == 0).all() and data.legal.all()
    executed = np.concatenate(played)
    assert (executed != data.actions).mean() > 0.5  # the clone's moves were played, not these
    for k in range(data.num_trajectories):
        # a fresh teacher on the recorded states returns exactly the labels ...
        np.testing.assert_array_equal(_replay_seat(data, k, Bot("general", 1)),
                                      data.actions[data.starts[k]:data.starts[k + 1]])
        # ... and a fresh greedy clone exactly the moves that were executed there
        np.testing.assert_array_equal(_replay_seat(data, k, NetBot(policy, 1, greedy=True)),
                                      played[k])
    moves, same = data.info["clone_moves"], data.info["clone_moves_as_teacher"]
    assert moves == data.num_samples and same == int((executed == data.actions).sum())


def test_dagger_with_beta_one_is_the_teacher_playing():
    policy = Policy.create(history=2, **TINY)
    played: list[np.ndarray] = []
    data = dagger_games(policy, 3, opponents=("random",), beta=1.0, boards=3, truncation=40,
                        played=played)
    assert data.info["clone_games"] == 0 and data.num_trajectories == 3
    np.testing.assert_array_equal(np.concatenate(played), data.actions)


def test_own_wins_records_the_policys_own_moves_and_keeps_only_the_chosen_outcomes():
    torch.manual_seed(0)
    policy = Policy.create(history=2, **TINY)
    args = dict(opponents=("random",), temperature=0.25, boards=4, truncation=40, seed=3)
    played: list[np.ndarray] = []
    every = own_wins(policy, 4, keep=(1, 0, -1), played=played, **args)
    assert every.num_trajectories == every.info["games"] == every.info["kept_games"] == 4
    assert every.info["player_games"] == 4
    for k in range(4):  # the recorded action is the move played, not a teacher's label
        np.testing.assert_array_equal(every.actions[every.starts[k]:every.starts[k + 1]],
                                      played[k])
    assert (every.scalars[every.starts[:-1], 4] == 0).all()  # whole games, from tick 0
    draws = own_wins(policy, 4, keep=(0,), **args)  # the same games, only the drawn kept
    assert draws.num_trajectories == int((every.outcome == 0).sum()) == draws.info["kept_games"]
    assert (draws.outcome == 0).all() and draws.info["player_draws"] == every.info["player_draws"]
    won = own_wins(policy, 4, **args)  # the default keeps wins only
    assert won.num_trajectories == int((every.outcome == 1).sum())
    with pytest.raises(ValueError, match="keep holds outcomes"):
        own_wins(policy, 2, keep=(2,), **args)


def test_bc_cli_trains_on_several_data_files_and_records_own_wins(tmp_path):
    bot_games(4, opponents=("expander",), boards=4, truncation=50).save(tmp_path / "d.npz")
    Policy.create(history=2, **TINY).save(tmp_path / "p.pt")
    cli = [sys.executable, "-m", "gristmill.apps.generals"]
    proc = subprocess.run(cli + ["bc-data", "--own-wins", str(tmp_path / "p.pt"),
                                 "--own-wins-games", "2", "--opponents", "random", "--boards",
                                 "2", "--truncation", "30", "--keep-outcomes", "1", "0", "-1",
                                 "--out", str(tmp_path / "own.npz")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "kept 2" in proc.stdout
    own = Trajectories.load(tmp_path / "own.npz")
    base = Trajectories.load(tmp_path / "d.npz")
    proc = subprocess.run(cli + ["bc", "--data", str(tmp_path / "d.npz"), str(tmp_path / "own.npz"),
                                 "--run", str(tmp_path / "run"), "--epochs", "1", "--lanes", "8",
                                 "--held-out", "0", "--channels", "8", "--blocks", "1",
                                 "--stem-channels", "4", "--history", "2", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"bc: {base.num_samples + own.num_samples:,} train" in proc.stdout


def test_bc_cli_runs_dagger_rounds_and_resumes_them(tmp_path):
    bot_games(4, opponents=("expander",), boards=4, truncation=50).save(tmp_path / "d.npz")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "gristmill.apps.generals", "bc", "--data",
           str(tmp_path / "d.npz"), "--run", str(run_dir), "--epochs", "1", "--lanes", "32",
           "--dagger-games", "2", "--boards", "2", "--truncation", "50", "--opponents",
           "random", "--channels", "8", "--blocks", "1", "--stem-channels", "4", "--history",
           "2", "--threads", "1"]

    def run(rounds):
        proc = subprocess.run(cmd + ["--dagger-rounds", str(rounds)], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout

    out = run(1)
    assert "bc epoch 1/1" in out and "dagger round 1/1: 2 games" in out
    assert "bc epoch 2/2" in out and "dagger round 1/1 done" in out and "val_top1=" in out
    assert "clone_win_rate=" in out and "clone_random_win_rate=" in out
    out = run(2)  # round 1 is kept, round 2 plays the clone trained in round 1
    assert "resumed at epoch 2" in out and "round 1/2" not in out
    assert "dagger round 2/2: 2 games" in out and "bc epoch 3/3" in out
    for f in ("dagger/round_001.npz", "dagger/round_002.npz", "dagger/policy_002.pt",
              "bc_policy.pt"):
        assert (run_dir / f).exists(), f
    assert Trajectories.load(run_dir / "dagger/round_002.npz").info["clone_games"] == 2
    out = run(2)  # nothing left to do
    assert "resumed at epoch 3" in out and "dagger round" not in out
    # --init: a new run starting from that clone's weights (and its sizes, not the flags')
    init = cmd[: cmd.index("--run") + 1] + [str(tmp_path / "run2"), "--epochs", "1",
                                            "--init", str(run_dir / "bc_policy.pt"),
                                            "--history", "2", "--threads", "1"]
    proc = subprocess.run(init, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "bc epoch 1/1" in proc.stdout and "resumed" not in proc.stdout
    assert Policy.load(tmp_path / "run2/bc_policy.pt").net.cfg == \
        Policy.load(run_dir / "bc_policy.pt").net.cfg

"""``gristmill-generals train`` / ``eval`` end to end with tiny settings (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "gristmill.apps.generals"]
TINY = ["--channels", "8", "--blocks", "1", "--stem-channels", "4", "--history", "2",
        "--threads", "1"]


def run(*args):
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_train_runs_bc_then_selfplay_resumes_and_eval_rates_the_league(tmp_path):
    run_dir = tmp_path / "run"
    common = ["train", "--run", str(run_dir), "--bc-games", "4", "--boards", "4",
              "--bc-epochs", "1", "--lanes", "32", "--truncation", "60", "--sp-boards", "4",
              "--rollout", "16", "--minibatch", "32", "--snapshot-threshold", "0",
              "--snapshot-gap", "1", *TINY]
    out = run(*common, "--steps", "128")
    assert "bc epoch 1/1" in out and "val_top1" in out
    for f in ("bc_data.npz", "bc_policy.pt", "population.json", "policy.pt",
              "checkpoints/snapshots/snap_001.pt"):
        assert (run_dir / f).exists(), f
    assert list((run_dir / "tb").iterdir())
    assert "time shares:" in out and "forward=" in out
    out = run(*common, "--steps", "192")
    assert "resumed at update 2" in out and "bc epoch" not in out
    out = run("eval", "--run", str(run_dir), "--games", "2", "--truncation", "40",
              "--bots", "random", "expander", "--bootstrap", "0", "--threads", "1",
              "--out", str(tmp_path / "eval.json"))
    assert "| policy | random | 2 |" in out and "snap_000" in out and "ratings" in out
    saved = json.loads((tmp_path / "eval.json").read_text())
    pair = next(p for p in saved["pairs"] if (p["a"], p["b"]) == ("policy", "random"))
    assert pair["games"] == 2 == pair["wins_a"] + pair["wins_b"] + pair["draws"]
    assert "snap_000" in saved["ratings"]["names"] and saved["settings"]["truncation"] == 40
    out = run("eval", str(run_dir / "policy.pt"), "--games", "2", "--truncation", "40",
              "--bots", "random", "--bootstrap", "0", "--temperature", "0.25")
    assert "| policy | random | 2 |" in out
    proc = subprocess.run(CLI + ["eval", str(run_dir / "policy.pt"), "--temperature", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--temperature must be > 0" in proc.stderr


def test_play_accepts_an_agent_checkpoint_and_names_a_bad_player(tmp_path):
    import torch
    from gristmill.apps.generals.agent import Policy

    torch.manual_seed(0)
    path = Policy.create(history=2, channels=8, blocks=1, stem_channels=4).save(
        tmp_path / "tiny.pt")
    out = run("play", str(path), "random", "--games", "2", "--truncation", "30",
              "--replays", str(tmp_path / "reps"), "--keep", "1")
    assert "| tiny | random | 2 |" in out and (tmp_path / "reps" / "game_000.npz").exists()
    proc = subprocess.run(CLI + ["play", "nobot", "random"], capture_output=True, text=True)
    assert proc.returncode == 2 and "neither a bot" in proc.stderr


def test_train_init_starts_selfplay_from_a_policy_file_without_bc(tmp_path):
    import torch
    from gristmill.apps.generals.agent import Policy

    torch.manual_seed(0)
    start = Policy.create(history=2, channels=8, blocks=1, stem_channels=4)
    start.save(tmp_path / "start.pt")
    run_dir = tmp_path / "run"
    out = run("train", "--run", str(run_dir), "--init", str(tmp_path / "start.pt"),
              "--truncation", "60", "--sp-boards", "4", "--rollout", "16", "--minibatch", "32",
              "--steps", "64", *TINY)
    assert "self-play from" in out and "bc epoch" not in out and "bc-data" not in out
    assert not (run_dir / "bc_data.npz").exists()
    kept = Policy.load(run_dir / "bc_policy.pt")  # the exploiters' reset point: the start
    for a, b in zip(kept.net.state_dict().values(), start.net.state_dict().values()):
        assert torch.equal(a, b)
    trained = Policy.load(run_dir / "policy.pt")
    assert any(not torch.equal(a, b) for a, b in zip(trained.net.state_dict().values(),
                                                     start.net.state_dict().values()))


def test_train_refuses_bad_self_play_settings_before_doing_anything(tmp_path):
    for flag, value, words in (("--pfsp", "nope", "unknown pfsp weighting 'nope'"),
                               ("--start-kl", "-1", "start_kl_coef must be >= 0"),
                               ("--draw-reward", "-2", "draw_reward must be in [-1, 1]"),
                               ("--sp-boards", "0", "boards, rollout and minibatch must be >= 1"),
                               ("--exploiter-boards", "1.5", "exploiter_boards is a share")):
        proc = subprocess.run(CLI + ["train", "--run", str(tmp_path / "r"), flag, value],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "r").exists()


def test_train_ctrl_c_saves_the_league_and_the_same_command_resumes_it(tmp_path):
    import re
    import signal

    import torch
    from gristmill.apps.generals.agent import Policy

    torch.manual_seed(0)
    Policy.create(history=2, channels=8, blocks=1, stem_channels=4).save(tmp_path / "start.pt")
    run_dir = tmp_path / "run"
    cmd = CLI + ["train", "--run", str(run_dir), "--init", str(tmp_path / "start.pt"),
                 "--truncation", "60", "--sp-boards", "4", "--rollout", "16", "--minibatch",
                 "32", *TINY]
    proc = subprocess.Popen(cmd + ["--steps", "10000000"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in proc.stdout:  # the first finished update, not a sleep
            seen.append(line)
            if " upd 2 " in line:
                break
        assert " upd 2 " in seen[-1], "".join(seen)[-2000:]
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=300)[0]
    finally:
        proc.kill()
    out = "".join(seen) + rest
    assert proc.returncode == 0, out[-2000:]
    assert "stopping: saving" in out and "wrote" not in rest.split("stopping")[-1]
    assert not (run_dir / "policy.pt").exists()  # a stopped run is not a finished one
    assert (run_dir / "population.json").exists()
    out = run(*cmd[3:], "--steps", "64")  # the budget is spent: resume, save, finish
    resumed = re.search(r"resumed at update (\d+)", out)
    assert resumed and int(resumed.group(1)) >= 2, out[-2000:]
    assert (run_dir / "policy.pt").exists()

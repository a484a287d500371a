"""``gristmill-generals`` subcommands of the league agent: ``bc-data``, ``bc``, ``train``, ``eval``.

Examples::

    gristmill-generals bc-data --games 400 --out runs/g/bc_data.npz
    gristmill-generals bc-data --gioreplay replays/*.gioreplay --out human.npz
    gristmill-generals bc --data runs/g/bc_data.npz --run runs/g --epochs 4
    gristmill-generals bc --data runs/g/bc_data.npz --run runs/g --dagger-rounds 3  # + DAgger
    gristmill-generals bc-data --own-wins runs/g/policy.pt --opponents general --out wins.npz
    gristmill-generals bc --data runs/g/bc_data.npz wins.npz --run runs/g3 \
        --init runs/g/policy.pt --epochs 1                     # self-imitation on its wins
    gristmill-generals train --run runs/g --bc-games 300 --bc-epochs 3 --minutes 90
    gristmill-generals train --run runs/g2 --init runs/bc/bc_policy.pt --minutes 60  # no BC
    gristmill-generals eval --run runs/g --games 200          # bots + snapshots, rating table

``bc --dagger-rounds K --dagger-games G`` follows the BC epochs with K DAgger rounds (the
clone plays G games against the bots, the teacher labels every state it reaches, and training
goes on over all the data so far; ``dagger/round_<k>.npz``, ``dagger/policy_<k>.pt``).

``train`` runs the phases in order, each resumable: BC data (``bc_data.npz``), behaviour
cloning (``bc.pt`` per epoch, ``bc_policy.pt`` when done), self-play in the league (a
``learners.league.Population``: ``population.json``, ``checkpoints/``), the final
``policy.pt``. Ctrl-C (or SIGTERM) saves and exits; running the same command again resumes.
TensorBoard logs go to ``RUN/tb``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gristmill.apps.stop_signal import StopSignal
from gristmill.envs.generals import BOTS

__all__ = ["add_commands"]


def _install_stop() -> Callable[[], bool]:
    """Ctrl-C / SIGTERM set a flag that the loops poll (the returned callable); a second Ctrl-C
    aborts at once."""
    sig = StopSignal(on_stop=lambda: print("stopping: saving (Ctrl-C again to abort)",
                                           flush=True)).install()
    return lambda: sig.requested


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _writer(run: Path):
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - slow import

    return SummaryWriter(str(run / "tb"))


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def _training_process() -> None:
    """Keep freed host memory in the heap (``learners.retain_freed_memory``): the PPO and BC
    steps' activations are fresh ``mmap`` blocks otherwise, page-faulted in on every step."""
    from gristmill.learners import retain_freed_memory  # noqa: PLC0415 - imports torch

    retain_freed_memory()


def _policy(args):
    from .agent import Policy

    return Policy.create(history=args.history, channels=args.channels, blocks=args.blocks,
                         unet=not args.full_res, stem_channels=args.stem_channels,
                         device=args.device)


def _make_data(args, out: Path):
    from .bc import Trajectories, bot_games, from_gioreplay, from_replay, own_wins

    parts = []
    if args.games:
        _log(f"bc-data: {args.games} games, {args.teacher} vs {','.join(args.opponents)}")
        parts.append(bot_games(args.games, args.teacher, args.opponents, args.boards,
                               args.maps, args.truncation, args.seed))
    if getattr(args, "own_wins", None):  # (train's BC data has no such option)
        from .agent import Policy

        g = args.own_wins_games
        _log(f"bc-data: {g} games of {args.own_wins} vs {','.join(args.opponents)} at "
             f"temperature {args.temperature}, keeping games of outcome {args.keep_outcomes}")
        own = own_wins(Policy.load(args.own_wins), g, args.opponents, args.temperature,
                       args.boards, args.maps, args.truncation, args.seed, args.keep_outcomes)
        i = own.info
        _log(f"bc-data: it won {i['player_wins']} of {i['games']} games (drew "
             f"{i['player_draws']}); kept {i['kept_games']}")
        parts.append(own)
    if args.replays:
        parts.append(from_replay(args.replays))
    if args.gioreplay:
        parts.append(from_gioreplay(args.gioreplay, log=_log))
    if not parts:
        raise ValueError("bc-data: nothing to record (give --games, --own-wins, --replays or "
                         "--gioreplay)")
    data = Trajectories.concat(parts)
    data.save(out)
    _log(f"bc-data: {data.num_samples:,} samples in {data.num_trajectories} trajectories, "
         f"{data.info.get('illegal_moves', 0)} illegal moves flagged -> {out} "
         f"({out.stat().st_size / 1e6:.1f} MB)")
    return data


def _run_bc(args, policy, data, run: Path, stop, writer):
    from .bc import train_bc

    train, val = data.split(args.held_out, args.seed)
    _log(f"bc: {train.num_samples:,} train / {val.num_samples:,} held-out samples, net "
         f"{policy.net.num_parameters():,} params")
    train_bc(policy, train, val, args.epochs, lanes=args.lanes, lr=args.lr,
             checkpoint=run / "bc.pt", writer=writer, seed=args.seed, log=_log, should_stop=stop)
    return train, val


def _run_dagger(args, policy, train, val, run: Path, stop, writer):
    from .bc import run_dagger

    _log(f"dagger: {args.dagger_rounds} rounds of {args.dagger_games} games "
         f"({args.teacher} labels, clone vs {','.join(args.opponents)} at temperature "
         f"{args.dagger_temperature}, beta {args.dagger_beta} x {args.dagger_beta_decay}^round)"
         f", {args.dagger_epochs} epochs each")
    run_dagger(policy, train, val, run, args.dagger_rounds, args.dagger_games,
               args.dagger_epochs, args.epochs, teacher=args.teacher, opponents=args.opponents,
               beta=args.dagger_beta, beta_decay=args.dagger_beta_decay,
               temperature=args.dagger_temperature, boards=args.boards, maps=args.maps,
               truncation=args.truncation, held_out=args.held_out, lanes=args.lanes, lr=args.lr,
               seed=args.seed, writer=writer, log=_log, should_stop=stop)


def cmd_bc_data(args) -> int:
    try:
        _make_data(args, Path(args.out))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


def cmd_bc(args) -> int:
    from .bc import Trajectories

    _threads(args.threads)
    _training_process()
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    stop = _install_stop()
    data = Trajectories.concat([Trajectories.load(p) for p in args.data])
    if args.init:
        from .agent import Policy

        policy = Policy.load(args.init, device=args.device)
    else:
        policy = _policy(args)
    writer = _writer(run)
    try:
        train, val = _run_bc(args, policy, data, run, stop, writer)
        if args.dagger_rounds and not stop():
            _run_dagger(args, policy, train, val, run, stop, writer)
    finally:
        writer.close()
    if not stop():
        policy.save(run / "bc_policy.pt")
        _log(f"bc: wrote {run / 'bc_policy.pt'}")
    return 0


def cmd_train(args) -> int:
    from .agent import Policy
    from .bc import Trajectories
    from .selfplay import SelfPlay, SelfPlayConfig

    try:  # the self-play settings are checked before hours of BC, not after
        cfg = SelfPlayConfig(boards=args.sp_boards, rollout=args.rollout, epochs=args.ppo_epochs,
                             minibatch=args.minibatch, lr=args.sp_lr, ent_coef=args.ent_coef,
                             reward="winlose" if args.no_shaping else "shaped",
                             pfsp=args.pfsp, start_kl_coef=args.start_kl,
                             truncation=args.truncation, maps=args.maps,
                             draw_reward=args.draw_reward,
                             snapshot_threshold=args.snapshot_threshold,
                             snapshot_min_gap=args.snapshot_gap,
                             snapshot_max_gap=args.snapshot_max_gap,
                             exploiter_boards=args.exploiter_boards, seed=args.seed)
    except ValueError as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    _threads(args.threads)
    _training_process()
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    stop = _install_stop()
    writer = _writer(run)
    t0 = time.perf_counter()
    try:
        bc_done = run / "bc_policy.pt"
        if bc_done.exists():
            policy = Policy.load(bc_done, args.device)
        elif args.init:
            policy = Policy.load(args.init, args.device)
            policy.save(bc_done)  # (an older input layout saved widened)
            _log(f"train: self-play from {args.init} (no BC)")
        else:
            policy = _policy(args)
        if args.bc_epochs > 0 and not bc_done.exists():
            data_path = Path(args.bc_data) if args.bc_data else run / "bc_data.npz"
            if data_path.exists():
                data = Trajectories.load(data_path)
            else:
                args.games, args.replays, args.gioreplay = args.bc_games, None, None
                data = _make_data(args, data_path)
            args.epochs = args.bc_epochs
            _run_bc(args, policy, data, run, stop, writer)
            if stop():
                return 0
            policy.save(bc_done)
            _log(f"bc: done in {time.perf_counter() - t0:.0f} s -> {bc_done}")
        sp = SelfPlay(policy, cfg, run, writer, _log)
        minutes = None if args.minutes is None else max(
            0.0, args.minutes - (time.perf_counter() - t0) / 60)
        sp.run(args.steps, minutes, stop)
        prof = " ".join(f"{k}={100 * v:.1f}%" for k, v in sp.profile().items())
        _log(f"selfplay: {sp.agent_steps:,} agent steps, {sp.games} games, "
             f"{len(sp.snapshots)} snapshots; time shares: {prof}")
        if not stop():
            policy.save(run / "policy.pt")
            _log(f"train: wrote {run / 'policy.pt'}")
    finally:
        writer.close()
    return 0


def _wilson(score: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    d = 1 + z * z / n
    c = (score + z * z / (2 * n)) / d
    h = z * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def evaluate(players: dict, games: int, maps: str, truncation: int, seed: int,
             pairs: list[tuple[str, str]], log=_log):
    """Play ``games`` games per pair (seats alternate), return (payoff table, rows)."""
    from gristmill.envs.generals.tournament import play_match
    from gristmill.learners.league import DRAW, LOSS, WIN, PayoffTable

    table = PayoffTable(list(players))
    rows = []
    for k, (a, b) in enumerate(pairs):
        r = play_match(players[a], players[b], games, maps, truncation, seed=seed + k)
        for res, n in ((WIN, r.wins_a), (LOSS, r.wins_b), (DRAW, r.draws)):
            for _ in range(n):
                table.update(a, b, res)
        lo, hi = _wilson(r.score_a, r.games)
        rows.append((a, b, r.games, r.wins_a, r.wins_b, r.draws, r.score_a, lo, hi))
        log(f"eval {a} vs {b}: {r.wins_a}-{r.draws}-{r.wins_b} score {100 * r.score_a:.1f}% "
            f"[{100 * lo:.1f}, {100 * hi:.1f}]")
    return table, rows


def cmd_eval(args) -> int:
    from gristmill.learners.league import atomic_write_json, fit_ratings, load_member_weights

    from .agent import NetPlayer, Policy

    if not args.temperature > 0:
        print(f"eval: --temperature must be > 0, got {args.temperature}", file=sys.stderr)
        return 2
    _threads(args.threads)
    players: dict = {b: b for b in args.bots}
    run = Path(args.run) if args.run else None
    if run is not None:
        finals = [run / f"{n}.pt" for n in ("bc_policy", "policy") if (run / f"{n}.pt").exists()]
        if not finals:
            print(f"eval: {run} has no bc_policy.pt or policy.pt (the network's sizes)",
                  file=sys.stderr)
            return 2
        base = Policy.load(finals[0])
        snaps = sorted(p for p in (run / "checkpoints" / "snapshots").glob("*.pt")
                       if p.stem.startswith(("snap_", "exploit_")))
        for p in snaps[::max(1, args.every)]:
            weights = load_member_weights(str(run), p.stem)
            players[p.stem] = NetPlayer(base.with_weights(weights), p.stem,
                                        temperature=args.temperature)
        for path in finals:
            players[path.stem] = NetPlayer.load(path, temperature=args.temperature)
    for path in args.checkpoints or []:
        players[Path(path).stem] = NetPlayer.load(path, temperature=args.temperature)
    nets = [n for n in players if n not in args.bots]
    if not nets:
        print("eval: no checkpoints (give --run or checkpoints)", file=sys.stderr)
        return 2
    final = nets[-1]
    pairs = [(n, b) for n in nets for b in args.bots]
    pairs += [(n, final) for n in nets if n != final]
    if args.round_robin:
        pairs = [(a, b) for i, a in enumerate(players) for b in list(players)[i + 1:]]
    table, rows = evaluate(players, args.games, args.maps, args.truncation, args.seed, pairs)
    print("| A | B | games | A wins | B wins | draws | A score | 95 % interval |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for a, b, g, wa, wb, d, s, lo, hi in rows:
        print(f"| {a} | {b} | {g} | {wa} | {wb} | {d} | {100 * s:.1f} % | "
              f"{100 * lo:.1f}-{100 * hi:.1f} % |")
    anchor = "random" if "random" in players else args.bots[0]
    ratings = fit_ratings(table.members, table.record, anchor, bootstrap=args.bootstrap)
    print(f"\nratings (Bradley-Terry Elo, {anchor} = 0, {int(100 * ratings.confidence)} % "
          "bootstrap interval):")
    print(ratings.format())
    if args.out:
        keys = ("a", "b", "games", "wins_a", "wins_b", "draws", "score_a", "low", "high")
        atomic_write_json({
            "settings": {k: getattr(args, k) for k in ("bots", "games", "maps", "truncation",
                                                        "temperature", "seed")},
            "run": None if run is None else str(run),
            "pairs": [dict(zip(keys, r)) for r in rows],
            "ratings": ratings.state_dict()}, args.out)
        _log(f"eval: wrote {args.out}")
    return 0


def _net_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network")
    g.add_argument("--channels", type=int, default=32)
    g.add_argument("--blocks", type=int, default=2)
    g.add_argument("--stem-channels", type=int, default=16)
    g.add_argument("--full-res", action="store_true", help="no U-Net: trunk at full resolution")
    g.add_argument("--history", type=int, default=7, help="army-delta history of the memory")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    g.add_argument("--threads", type=int, help="torch threads (default: torch's)")


def _data_args(p: argparse.ArgumentParser, games_flag: str = "--games") -> None:
    p.add_argument(games_flag, dest="games" if games_flag == "--games" else "bc_games", type=int,
                   default=0 if games_flag == "--games" else 300,
                   help="bot games to record (teacher vs opponents)")
    _game_args(p)
    p.add_argument("--seed", type=int, default=0)


def _game_args(p) -> None:
    p.add_argument("--teacher", choices=BOTS, default="general")
    p.add_argument("--opponents", nargs="+", choices=BOTS, default=["general", "expander",
                                                                    "random"])
    p.add_argument("--boards", type=int, default=64, help="engine boards while recording")
    p.add_argument("--maps", choices=("uniform", "generalsio"), default="generalsio")
    p.add_argument("--truncation", type=int, default=500)


def _dagger_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("DAgger (after the BC epochs; bc.pt and dagger/ resume it)")
    g.add_argument("--dagger-rounds", type=int, default=0,
                   help="rounds of: the clone plays, the teacher labels, train on everything")
    g.add_argument("--dagger-games", type=int, default=200, help="games per round")
    g.add_argument("--dagger-epochs", type=int, default=1,
                   help="epochs per round over all the data so far")
    g.add_argument("--dagger-beta", type=float, default=0.0,
                   help="round 1's share of games the teacher plays instead of the clone")
    g.add_argument("--dagger-beta-decay", type=float, default=0.5,
                   help="beta of round k = beta x decay^(k-1)")
    g.add_argument("--dagger-temperature", type=float, default=0.25,
                   help="the clone samples at this temperature (0: argmax)")
    _game_args(g)


def _bc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lanes", type=int, default=256, help="BC batch = games streamed at once")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--held-out", type=float, default=0.1, help="fraction of games held out")


def add_commands(sub) -> None:
    p = sub.add_parser("bc-data", help="record behaviour-cloning data (bots, replays, "
                       ".gioreplay)")
    _data_args(p)
    p.add_argument("--own-wins", metavar="POLICY",
                   help="self-imitation: record this policy file's own moves in games against "
                   "--opponents, keeping only the games it won")
    p.add_argument("--own-wins-games", type=int, default=400, help="games --own-wins plays")
    p.add_argument("--keep-outcomes", type=int, nargs="+", choices=(1, 0, -1), default=[1],
                   help="--own-wins keeps the games of these outcomes (1 won, 0 drawn, -1 lost)")
    p.add_argument("--temperature", type=float, default=0.25,
                   help="--own-wins samples its moves at this temperature (0: argmax)")
    p.add_argument("--replays", nargs="+", help="gristmill replay files (.npz)")
    p.add_argument("--gioreplay", nargs="+", help="generals.io 1v1 .gioreplay files")
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(fn=cmd_bc_data)

    p = sub.add_parser("bc", help="behaviour cloning on recorded data, then DAgger rounds")
    p.add_argument("--data", required=True, nargs="+",
                   help="bc-data files (several are trained on together)")
    p.add_argument("--run", required=True, help="run folder (bc.pt, bc_policy.pt, tb/, "
                   "dagger/); bc_policy.pt is written when BC and DAgger are done")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="start from this policy's weights (its network sizes win "
                   "over the network flags; an older input layout gets zero weights on the new "
                   "planes); a fresh optimizer")
    _bc_args(p)
    _dagger_args(p)
    _net_args(p)
    p.set_defaults(fn=cmd_bc)

    p = sub.add_parser("train", help="BC, then PPO self-play in a PFSP league (resumable)")
    p.add_argument("--run", required=True, help="run folder; the same command resumes")
    _data_args(p, "--bc-games")
    p.add_argument("--bc-data", help="use this BC data file instead of recording")
    p.add_argument("--bc-epochs", type=int, default=3, help="0: no BC")
    p.add_argument("--init", help="self-play from this policy file instead of BC (it becomes "
                   "the run's bc_policy.pt: the exploiters' reset point)")
    _bc_args(p)
    p.add_argument("--steps", type=int, default=10**12, help="self-play agent steps")
    p.add_argument("--minutes", type=float, help="wall-clock budget for the whole command")
    p.add_argument("--sp-boards", type=int, default=64)
    p.add_argument("--rollout", type=int, default=32)
    p.add_argument("--ppo-epochs", type=int, default=2)
    p.add_argument("--minibatch", type=int, default=512)
    p.add_argument("--sp-lr", type=float, default=2e-4)
    p.add_argument("--ent-coef", type=float, default=0.001)
    p.add_argument("--start-kl", type=float, default=0.0,
                   help="weight of KL(start policy || policy) in the PPO loss (AlphaStar's "
                   "penalty towards the supervised policy; 0: none)")
    p.add_argument("--pfsp", default="hard",
                   help="PFSP weighting of the opponents by the learner's win rate x: hard "
                   "(1 - x)^2, variance x (1 - x), linear, linear_capped")
    p.add_argument("--no-shaping", action="store_true", help="win/lose reward only")
    p.add_argument("--draw-reward", type=float, default=0.0,
                   help="the learner's reward for a game cut at the truncation (a win is 1, a "
                   "loss -1); below 0 it pushes the learner to find the enemy general in time")
    p.add_argument("--snapshot-threshold", type=float, default=0.6)
    p.add_argument("--snapshot-gap", type=int, default=10, help="min updates between snapshots")
    p.add_argument("--snapshot-max-gap", type=int, default=40,
                   help="a snapshot joins at the latest this many updates after the last")
    p.add_argument("--exploiter-boards", type=float, default=0.0,
                   help="share of the boards for a main exploiter (AlphaStar's; reset to the "
                   "BC weights each time it joins the league); 0: none")
    _net_args(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="bots and checkpoints, both seats, rating table")
    p.add_argument("checkpoints", nargs="*", help="policy files (besides --run's)")
    p.add_argument("--run", help="a train run: its snapshots, bc_policy.pt and policy.pt")
    p.add_argument("--every", type=int, default=1, help="every k-th snapshot")
    p.add_argument("--bots", nargs="+", choices=BOTS, default=list(BOTS))
    p.add_argument("--games", type=int, default=200, help="games per pairing")
    p.add_argument("--maps", choices=("uniform", "generalsio"), default="generalsio")
    p.add_argument("--truncation", type=int, default=500)
    p.add_argument("--round-robin", action="store_true",
                   help="every pair (default: every net vs every bot and vs the last net)")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0,
                   help="the nets sample their moves at this temperature (as trained: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="also write the games and ratings here as JSON (what "
                   "`bench/generals_agent.py curve --eval` plots against training time)")
    p.set_defaults(fn=cmd_eval)

"""Behaviour cloning for the Generals league agent: data and training.

Data (:class:`Trajectories`): one seat's view of whole games, tick 0 first, stored compactly as
the engine produces it (compact int32 obs ``[N, S, S]``, scalars ``[N, 5]``, the move mask as 4
bits per cell ``uint8 [N, S, S]``, the action index taken, whether the engine executed it, and
the game's outcome per trajectory); memory features and float planes are recomputed when
streaming (they are a function of the observation history), so a sample costs ~3 kB raw and a
few hundred bytes compressed in the ``.npz``. Sources:

- :func:`bot_games`: games between scripted bots on the batched engine (the teacher's seats);
- :func:`dagger_games`: DAgger's data: the clone plays the learner seat against the bots, and
  every state it reaches is labelled with the teacher bot's move there;
- :func:`replay_trajectories`: any action sequence replayed through the engine: gristmill's own
  :class:`Replay` files (:func:`from_replay`) and generals.io ``.gioreplay`` 1v1 replays
  (:func:`from_gioreplay`). Moves the engine rejects are counted per player and kept with
  ``legal = False`` (the policy loss skips them; the value loss does not), never dropped.

Training (:func:`train_bc`): :class:`Stream` runs ``lanes`` trajectories side by side through
:class:`AgentFeatures` (memory resets at each trajectory's tick 0), one sample per lane per
batch; cross-entropy on the masked logits + ``vf_coef`` x MSE of the value against the outcome
(+1 win, -1 loss, 0 draw), held-out split by game, top-1 accuracy and losses to TensorBoard.
:func:`run_dagger` follows it with DAgger rounds (play, label, aggregate, train on).

Why DAgger: a plain clone of the ``general`` bot (4 epochs on 800 games, held-out top-1 0.70)
drifts into states the teacher never visits and never learned to leave: at temperature 0.25
it won 80.8 % against random and 73.8 % against expander (the teacher 99.8 % and 89 %), with
77-147 of 200 games running to the truncation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from gristmill.envs.generals import AgentFeatures, Bot, GeneralsEngine, Replay, parse_map
from gristmill.envs.generals.gioreplay import load_gioreplay
from gristmill.envs.generals.maps import MapArrays
from gristmill.learners.generals_net import MaskedPolicy, action_index
from gristmill.learners.league import atomic_torch_save

from .agent import NetBot, Policy

__all__ = [
    "Stream",
    "Trajectories",
    "bot_games",
    "dagger_games",
    "from_gioreplay",
    "from_replay",
    "own_wins",
    "pack_masks",
    "replay_trajectories",
    "run_dagger",
    "train_bc",
    "unpack_masks",
]

_BITS = np.array([1, 2, 4, 8], np.uint8)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """uint8 [..., S, S, 4] -> uint8 [..., S, S] with bit d set where direction d is valid."""
    return (np.asarray(masks, np.uint8) * _BITS).sum(-1).astype(np.uint8)


def unpack_masks(bits: np.ndarray) -> np.ndarray:
    return ((bits[..., None] & _BITS) != 0).astype(np.uint8)


@dataclass
class Trajectories:
    """Concatenated seat-trajectories; trajectory ``k`` is rows ``starts[k]:starts[k + 1]``."""

    obs: np.ndarray
    scalars: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    legal: np.ndarray
    starts: np.ndarray
    outcome: np.ndarray
    info: dict

    FIELDS = ("obs", "scalars", "masks", "actions", "legal", "starts", "outcome")

    @property
    def num_samples(self) -> int:
        return len(self.actions)

    @property
    def num_trajectories(self) -> int:
        return len(self.outcome)

    @property
    def pad_to(self) -> int:
        return self.obs.shape[-1]

    @classmethod
    def build(cls, parts: Sequence[tuple], info: dict | None = None, pad_to: int = 24):
        """From ``(obs [T,S,S], scalars [T,5], masks [T,S,S,4], actions [T,5], legal [T],
        outcome)`` tuples."""
        S = pad_to
        if not parts:
            z = np.zeros(0, np.int32)
            return cls(np.zeros((0, S, S), np.int32), np.zeros((0, 5), np.int32),
                       np.zeros((0, S, S), np.uint8), z, z.astype(bool), np.zeros(1, np.int64),
                       np.zeros(0, np.int8), info or {})
        lengths = [len(p[3]) for p in parts]
        return cls(
            np.concatenate([p[0] for p in parts]).astype(np.int32),
            np.concatenate([p[1] for p in parts]).astype(np.int32),
            pack_masks(np.concatenate([p[2] for p in parts])),
            action_index(np.concatenate([p[3] for p in parts]), S).astype(np.int32),
            np.concatenate([p[4] for p in parts]).astype(bool),
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            np.array([p[5] for p in parts], np.int8), info or {})

    @classmethod
    def concat(cls, items: Sequence[Trajectories]) -> Trajectories:
        items = [t for t in items if t.num_trajectories]
        if not items:
            raise ValueError("no trajectories to concatenate")
        offs = np.cumsum([0] + [t.num_samples for t in items[:-1]])
        info: dict = {}
        for t in items:
            for k, v in t.info.items():
                info[k] = info.get(k, 0) + v if isinstance(v, (int, float)) else v
        return cls(*(np.concatenate([getattr(t, f) for t in items]) for f in cls.FIELDS[:5]),
                   np.concatenate([[0]] + [t.starts[1:] + o for t, o in zip(items, offs)]),
                   np.concatenate([t.outcome for t in items]), info)

    def subset(self, traj: np.ndarray) -> Trajectories:
        rows = np.concatenate([np.arange(self.starts[k], self.starts[k + 1]) for k in traj]) \
            if len(traj) else np.zeros(0, np.int64)
        lengths = np.diff(self.starts)[traj]
        return Trajectories(self.obs[rows], self.scalars[rows], self.masks[rows],
                            self.actions[rows], self.legal[rows],
                            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                            self.outcome[traj], dict(self.info))

    def split(self, held_out: float, seed: int = 0) -> tuple[Trajectories, Trajectories]:
        """(train, held-out) by whole trajectories."""
        k = np.random.default_rng(seed).permutation(self.num_trajectories)
        n = int(round(held_out * len(k)))
        if 0 < held_out and n == 0 and len(k) > 1:
            n = 1
        return self.subset(np.sort(k[n:])), self.subset(np.sort(k[:n]))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, **{f: getattr(self, f) for f in self.FIELDS},
                            info=np.array(json.dumps(self.info)),
                            format=np.array("gristmill-generals-bc/1"))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trajectories:
        with np.load(path, allow_pickle=False) as f:
            if "format" not in f or str(f["format"]) != "gristmill-generals-bc/1":
                raise ValueError(f"{path}: not a gristmill Generals BC data file")
            return cls(*(f[k] for k in cls.FIELDS), json.loads(str(f["info"])))


class _Recorder:
    """Per (board, seat) lists of the current game's rows; finished games become parts."""

    def __init__(self, num_boards: int, seats: np.ndarray):
        self.seats = seats  # bool [N, 2]: record this seat
        self.rows: dict[tuple[int, int], list] = {}
        self.parts: list[tuple] = []
        self.illegal = np.zeros(2, np.int64)

    def before(self, eng: GeneralsEngine, actions: np.ndarray, boards=None) -> None:
        for b, p in zip(*np.nonzero(self.seats)):
            if boards is not None and b not in boards:
                continue
            self.rows.setdefault((b, p), []).append(
                (eng.obs[b, p].copy(), eng.scalars[b, p].copy(), eng.masks[b, p].copy(),
                 actions[b, p].copy()))

    def after(self, eng: GeneralsEngine, not_executed: np.ndarray | None = None) -> None:
        """The engine's verdict on the recorded moves (``status == 2``: rejected); seats where
        ``not_executed`` bool [N, 2] is set count as legal (the recorded action is a label)."""
        for (b, p), rows in self.rows.items():
            if rows and len(rows[-1]) == 4:
                bad = eng.status[b, p] == 2 and not (not_executed is not None
                                                     and not_executed[b, p])
                self.illegal[p] += int(bad)
                rows[-1] = rows[-1] + (not bad,)

    def finish(self, b: int, winner: int) -> None:
        for p in range(2):
            rows = self.rows.pop((b, p), None)
            if rows:
                outcome = 0 if winner < 0 else (1 if winner == p else -1)
                self.parts.append(tuple(np.stack([r[i] for r in rows]) for i in range(5))
                                  + (outcome,))


def _play_and_record(games: int, teacher: str, opponents: Sequence[str], boards: int,
                     maps: str, truncation: int, seed: int, clone: NetBot | None = None,
                     beta: float = 1.0, played: list | None = None,
                     should_stop: Callable[[], bool] = lambda: False,
                     record_played: bool = False
                     ) -> tuple[list[tuple], dict[str, int], int, int]:
    """The tick loop of :func:`bot_games` and :func:`dagger_games`.

    Board ``b``'s learner seat is ``b % 2`` and its opponent ``opponents[(b // 2) % len]``.
    Every tick the teacher bot acts on every seat (so any memory it keeps follows the game
    actually played), the opponents act on theirs, and the learner seat's move is the
    teacher's, or, on the games the clone plays (each game with probability ``1 - beta``),
    the clone's (``NetBot.act``, which also observes every tick). The learner seats (and both
    seats of teacher-vs-teacher games when there is no clone) are recorded with the teacher's
    move as the action. Exactly the first ``games`` games started are recorded, each to its
    end (no bias towards short games); boards whose next game would exceed it stop recording.
    With ``record_played`` the recorded action is the move executed on the seat (the clone's
    own, for self-imitation), not the teacher's label.

    Returns (the recorded parts for :meth:`Trajectories.build`, the clone's results:
    ``games``, ``wins``, ``draws`` and per opponent ``<name>_games`` etc., and the moves it
    played / those equal to the teacher's as ``moves`` / ``moves_as_teacher``, the number of
    games recorded, the engine's ``pad_to``).
    ``played`` gets, per recorded trajectory in order, the action indices int64 [T] executed
    on the learner seat (for checks). ``should_stop()`` ends the loop early.
    """
    n = max(2, min(boards, games))
    eng = GeneralsEngine(n, maps, truncation=truncation, autoreset="same_step", seed=seed)
    eng.reset(seed=seed)
    B = np.arange(n)
    names = np.array([opponents[(b // 2) % len(opponents)] for b in range(n)])
    l_seat = B % 2
    learner = np.zeros((n, 2), bool)
    learner[B, l_seat] = True
    seats = learner.copy()
    if clone is None:  # the teacher playing itself: both seats are the teacher's
        seats[names == teacher] = True
    # sorted: a set's order changes between processes, and with it the bots' seeds
    bots = {m: Bot(m, n, seed=seed + 1 + k) for k, m in enumerate(sorted({teacher, *opponents}))}
    rng = np.random.default_rng(seed)
    by_teacher = (rng.random(n) < beta) if clone is not None else np.ones(n, bool)
    counted = B < games  # this board's current game is one of the recorded ones
    started = int(counted.sum())
    rec = _Recorder(n, seats)
    labels = np.zeros((n, 2, 5), np.int32)
    executed = np.zeros_like(labels)
    tmp = np.zeros_like(labels)
    moves: dict[int, list] = {}  # board -> executed learner actions of its current game
    res = {"games": 0, "wins": 0, "draws": 0, "moves": 0, "moves_as_teacher": 0}
    S = eng.pad_to
    while counted.any() and not should_stop():
        bots[teacher].act(eng.obs, eng.masks, eng.scalars, (True, True), labels)
        for m in set(names.tolist()) - {teacher}:
            sel = ~learner & (names == m)[:, None]
            bots[m].act(eng.obs, eng.masks, eng.scalars, (True, True), tmp)
            labels[sel] = tmp[sel]
        executed[:] = labels
        if clone is not None:
            plays = learner & (counted & ~by_teacher)[:, None]
            clone.act(eng.obs, eng.masks, eng.scalars, plays, executed)
            b_cl = np.flatnonzero(plays.any(1))
            same = (executed[b_cl, l_seat[b_cl]] == labels[b_cl, l_seat[b_cl]]).all(-1)
            res["moves"] += len(b_cl)
            res["moves_as_teacher"] += int(same.sum())
        rec.before(eng, executed if record_played else labels, np.flatnonzero(counted))
        if played is not None:
            for b in np.flatnonzero(counted):
                moves.setdefault(b, []).append(executed[b, l_seat[b]].copy())
        eng.step(executed)
        # a label the engine did not execute is legal: the teacher picks from the move mask
        rec.after(eng, None if record_played else ~(executed == labels).all(-1))
        for b in np.flatnonzero((eng.terminated | eng.truncated) & counted):
            w = int(eng.episode_winner[b])
            rec.finish(b, w)
            if played is not None:
                played.append(action_index(np.stack(moves.pop(b)), S))
            if not by_teacher[b]:
                for key in ("", f"{names[b]}_"):
                    for k, v in (("games", 1), ("wins", w == l_seat[b]), ("draws", w < 0)):
                        res[key + k] = res.get(key + k, 0) + int(v)
            if started < games:
                started += 1
                if clone is not None:
                    by_teacher[b] = rng.random() < beta
            else:
                counted[b] = False
    return rec.parts, res, started - int(counted.sum()), S


def bot_games(games: int, teacher: str = "general",
              opponents: Sequence[str] = ("general", "expander", "random"), boards: int = 64,
              maps: str = "generalsio", truncation: int = 500, seed: int = 0) -> Trajectories:
    """``games`` games between ``teacher`` and each of ``opponents`` in turn on ``boards``
    engine boards (the teacher's seat alternates between boards); the teacher's seats are
    recorded (both seats when it plays itself). The first ``games`` games started are
    recorded, each played to its end."""
    parts, _, done, pad = _play_and_record(games, teacher, opponents, boards, maps, truncation,
                                           seed)
    return Trajectories.build(parts, {"source": f"bots:{teacher} vs {','.join(opponents)}",
                                      "games": done, "illegal_moves": 0}, pad)


def dagger_games(policy: Policy, games: int, teacher: str = "general",
                 opponents: Sequence[str] = ("general", "expander", "random"),
                 beta: float = 0.0, temperature: float = 0.25, boards: int = 64,
                 maps: str = "generalsio", truncation: int = 500, seed: int = 0,
                 played: list | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> Trajectories:
    """DAgger's data (Ross, Gordon & Bagnell 2011, "A Reduction of Imitation Learning and
    Structured Prediction to No-Regret Online Learning", arXiv 1011.0686): ``games`` games in
    which the clone ``policy`` plays the learner seat against the scripted ``opponents``
    (each game with probability ``beta`` the teacher plays it instead: the paper's mixture
    ``beta_i pi* + (1 - beta_i) pi_i``, ``beta`` decaying over rounds), every learner-seat
    state labelled with the ``teacher`` bot's move for it. The teacher is stepped on the
    learner seat every tick (its move computed, not executed) so that its memory follows the
    trajectory played. The clone moves as in evaluation: :class:`NetBot` (memory features,
    the reversal ban), sampling at ``temperature`` (0: argmax).

    The rows are the learner's states; ``actions`` holds the teacher's labels and ``legal``
    refers to the label (the engine's verdict where the label was the move executed, else
    True: the teacher picks from the move mask). ``info`` counts the clone's games, wins
    and draws (also per opponent: ``clone_<name>_wins``, ...) and its moves, and those equal
    to the label (``clone_moves_as_teacher``). ``played``: see :func:`_play_and_record`.
    """
    if not 0 <= beta <= 1:
        raise ValueError(f"beta is a probability, got {beta}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: argmax), got {temperature}")
    n = max(2, min(boards, games))
    clone = NetBot(policy, n, "clone", greedy=temperature == 0, seed=seed,
                   temperature=temperature or 1.0)
    parts, res, done, _ = _play_and_record(games, teacher, opponents, boards, maps, truncation,
                                           seed, clone, beta, played, should_stop)
    info = {"source": f"dagger:{teacher} labels, clone vs {','.join(opponents)}",
            "games": done, "illegal_moves": 0, **{f"clone_{k}": v for k, v in res.items()}}
    return Trajectories.build(parts, info, policy.pad_to)


def own_wins(policy: Policy, games: int, opponents: Sequence[str] = ("general",),
             temperature: float = 0.25, boards: int = 64, maps: str = "generalsio",
             truncation: int = 500, seed: int = 0, keep: Sequence[int] = (1,),
             played: list | None = None,
             should_stop: Callable[[], bool] = lambda: False) -> Trajectories:
    """Self-imitation data: ``games`` games of ``policy`` against the scripted ``opponents``
    (seats alternating, as :func:`dagger_games`), its own moves recorded, and only the games
    whose outcome for it is in ``keep`` (1: won, 0: drawn, -1: lost) kept. Behaviour cloning
    on them is the simplest form of self-imitation learning (Oh, Guo, Singh & Lee 2018,
    "Self-Imitation Learning", arXiv 1806.05635: imitate the agent's own past decisions where
    the return beat the value estimate; here, where the game was won): a supervised step
    towards what already wins, at the cost of playing games and no PPO update. The policy
    moves as in evaluation (:class:`NetBot`, the reversal ban, ``temperature``; 0: argmax).
    ``info`` counts the games played and kept and the policy's results (``player_wins``,
    ``player_<opponent>_wins``, ...).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: argmax), got {temperature}")
    if not set(keep) <= {-1, 0, 1} or not keep:
        raise ValueError(f"keep holds outcomes among 1 (won), 0 (drawn), -1 (lost), got {keep}")
    n = max(2, min(boards, games))
    player = NetBot(policy, n, "player", greedy=temperature == 0, seed=seed,
                    temperature=temperature or 1.0)
    parts, res, done, _ = _play_and_record(games, opponents[0], opponents, boards, maps,
                                           truncation, seed, player, 0.0, played, should_stop,
                                           record_played=True)
    kept = [p for p in parts if p[-1] in keep]
    if played is not None:  # the executed moves of the kept games only, in the same order
        played[:] = [m for m, p in zip(played, parts) if p[-1] in keep]
    info = {"source": f"own games of a policy vs {','.join(opponents)}, outcomes {list(keep)}",
            "games": done, "kept_games": len(kept), "illegal_moves": 0,
            **{f"player_{k}": v for k, v in res.items() if not k.startswith("moves")}}
    return Trajectories.build(kept, info, policy.pad_to)


def replay_trajectories(game_map: MapArrays, actions: np.ndarray, priority: str = "priority",
                        truncation: int | None = None, seats: Sequence[int] = (0, 1),
                        outcome_if_unfinished: int = -1) -> tuple[list[tuple], np.ndarray,
                                                                   int]:
    """Replay ``actions [T, 2, 5]`` on ``game_map`` through the engine, recording ``seats``.

    Returns (parts for :meth:`Trajectories.build`, illegal moves per player int [2], winner:
    the engine's, or ``outcome_if_unfinished`` (the winner to assume, -1 = draw) when the
    actions run out first).
    """
    eng = GeneralsEngine(1, pad_to=game_map.pad_to, truncation=truncation, priority=priority)
    eng.reset()
    eng.load(0, game_map)
    want = np.zeros((1, 2), bool)
    want[0, list(seats)] = True
    rec = _Recorder(1, want)
    winner = outcome_if_unfinished
    for t in range(len(actions)):
        a = np.ascontiguousarray(actions[t][None], np.int32)
        rec.before(eng, a)
        eng.step(a)
        rec.after(eng)
        if eng.terminated[0] or eng.truncated[0]:
            winner = int(eng.state.winner[0])
            break
    rec.finish(0, winner)
    return rec.parts, rec.illegal, winner


def from_replay(paths: Sequence[str | Path]) -> Trajectories:
    """gristmill's own replay files (both seats)."""
    parts, illegal, pad = [], np.zeros(2, np.int64), 24
    for path in paths:
        rep = Replay.load(path)
        pad = rep.pad_to
        p, ill, _ = replay_trajectories(parse_map(rep.layout, rep.pad_to), rep.action_array(),
                                        rep.priority, rep.truncation)
        parts += p
        illegal += ill
    return Trajectories.build(parts, {"source": "gristmill replays", "games": len(paths),
                                      "illegal_moves": int(illegal.sum())}, pad)


def from_gioreplay(paths: Sequence[str | Path], pad_to: int = 24,
                   log: Callable[[str], None] = print) -> Trajectories:
    """generals.io 1v1 ``.gioreplay`` files (both seats; alternating move priority). Illegal
    moves are counted and reported per file and in total."""
    parts, total = [], 0
    for path in paths:
        g = load_gioreplay(path, pad_to)
        unfinished = (1 - g.afks[0]) if g.afks and g.afks[0] in (0, 1) else -1
        p, ill, winner = replay_trajectories(g.game_map, g.actions, "alternating", None,
                                             outcome_if_unfinished=unfinished)
        total += int(ill.sum())
        if ill.any() or g.duplicates:
            log(f"{path}: {int(ill[0])} + {int(ill[1])} moves illegal in the engine "
                f"(players {g.usernames[0]}, {g.usernames[1]}), {g.duplicates} replaced "
                "by a later move in the same turn")
        parts += p
    return Trajectories.build(parts, {"source": "gioreplay", "games": len(paths),
                                      "illegal_moves": total}, pad_to)


class Stream:
    """``lanes`` trajectories side by side; :meth:`batches` yields batches of ``lanes`` samples.

    Memory features need each trajectory played from its tick 0, so samples come out in game
    order per lane. Were all lanes to start together, every batch would hold one game tick
    (all lanes at tick t, then all at t + 1, ...): an epoch would sweep the game from opening
    to end and the net would chase the current phase and forget the others. So lane ``g``
    joins ``g / lanes`` of a mean trajectory late, which spreads the lanes evenly over game
    time for the rest of the epoch, and the samples of consecutive ticks are pooled into
    batches of exactly ``lanes`` (the last one smaller). Every sample comes out once per epoch.
    """

    def __init__(self, data: Trajectories, lanes: int, history: int, seed: int = 0,
                 shuffle: bool = True):
        if data.num_trajectories == 0:
            raise ValueError("no trajectories to stream")
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self.data, self.lanes, self.history = data, lanes, history
        self.rng = np.random.default_rng(seed)
        self.shuffle = shuffle

    def _ticks(self) -> Iterator[dict[str, np.ndarray]]:
        """One dict of the live lanes' samples per engine tick."""
        d, G, S = self.data, self.lanes, self.data.pad_to
        order = list(self.rng.permutation(d.num_trajectories) if self.shuffle
                     else range(d.num_trajectories))[::-1]
        join = (np.arange(G) * (d.num_samples / d.num_trajectories / G)).astype(np.int64)
        feats = AgentFeatures(G, S, self.history, players=1)
        cur = np.full(G, -1, np.int64)  # row index per lane, -1 idle
        end = np.full(G, -1, np.int64)
        traj = np.zeros(G, np.int64)
        obs = np.zeros((G, 1, S, S), np.int32)
        sc = np.zeros((G, 1, 5), np.int32)
        tick = 0
        while True:
            for g in np.flatnonzero((cur >= end) & (join <= tick)):
                if order:
                    k = order.pop()
                    traj[g], cur[g], end[g] = k, d.starts[k], d.starts[k + 1]
                else:
                    cur[g], end[g] = -1, -1
                    join[g] = np.iinfo(np.int64).max  # done for this epoch
            live = np.flatnonzero(cur >= 0)
            if len(live) == 0:
                if not order:
                    return
                tick += 1  # lanes still waiting to join
                continue
            rows = cur[live]
            obs[:] = 0
            sc[:] = 0
            obs[live, 0], sc[live, 0] = d.obs[rows], d.scalars[rows]
            feats.update(obs, sc)  # idle lanes see tick 0: their memory stays reset
            yield {"planes": feats.planes(live, np.zeros(len(live), np.int64)),
                   "masks": unpack_masks(d.masks[rows]),
                   "actions": d.actions[rows].astype(np.int64), "legal": d.legal[rows],
                   "outcome": d.outcome[traj[live]].astype(np.float32), "rows": rows}
            cur[live] += 1
            tick += 1

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        """One epoch: every sample once, in batches of ``lanes`` (the last may be smaller);
        ``rows`` says which rows of the data each batch holds."""
        pending: list[dict[str, np.ndarray]] = []
        have = 0
        for part in self._ticks():
            pending.append(part)
            have += len(part["rows"])
            while have >= self.lanes:
                merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
                yield {k: v[: self.lanes] for k, v in merged.items()}
                rest = {k: v[self.lanes:] for k, v in merged.items()}
                have -= self.lanes
                pending = [rest] if have else []
        if have:
            yield {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}


def bc_loss(policy: Policy, batch: dict, vf_coef: float) -> tuple[torch.Tensor, dict]:
    dev = policy.device
    x = torch.from_numpy(batch["planes"]).to(dev)
    m = torch.from_numpy(batch["masks"]).to(dev)
    a = torch.from_numpy(batch["actions"]).to(dev)
    legal = torch.from_numpy(batch["legal"]).to(dev)
    z = torch.from_numpy(batch["outcome"]).to(dev)
    logits, value = policy.net(x, m)
    ce = F.cross_entropy(logits, a, reduction="none")
    n_legal = legal.sum().clamp_min(1)
    pi_loss = (ce * legal).sum() / n_legal
    v_loss = F.mse_loss(value, z)
    with torch.no_grad():
        hit = ((logits.argmax(-1) == a) & legal).sum().float() / n_legal
        ent = MaskedPolicy(logits).entropy().mean()
    return pi_loss + vf_coef * v_loss, {"policy_loss": pi_loss.item(),
                                        "value_loss": v_loss.item(), "top1": hit.item(),
                                        "entropy": ent.item(), "n": int(legal.sum())}


def _mean(stats: list[dict]) -> dict:
    n = sum(s["n"] for s in stats) or 1
    return {k: sum(s[k] * s["n"] for s in stats) / n for k in stats[0] if k != "n"}


def evaluate_bc(policy: Policy, data: Trajectories, lanes: int = 256,
                vf_coef: float = 0.5) -> dict:
    policy.net.eval()
    with torch.no_grad():
        stats = [bc_loss(policy, b, vf_coef)[1]
                 for b in Stream(data, lanes, policy.history, shuffle=False).batches()]
    policy.net.train()
    return _mean(stats)


def train_bc(policy: Policy, train: Trajectories, val: Trajectories | None, epochs: int,
             lanes: int = 256, lr: float = 3e-4, vf_coef: float = 0.5, grad_clip: float = 2.0,
             checkpoint: str | Path | None = None, writer=None, seed: int = 0,
             log: Callable[[str], None] = print, should_stop: Callable[[], bool] = lambda: False
             ) -> dict:
    """Behaviour cloning; resumes from ``checkpoint`` when it exists and saves it after every
    epoch (and when ``should_stop`` turns true, e.g. on Ctrl-C). Returns the last metrics."""
    opt = torch.optim.Adam(policy.net.parameters(), lr=lr)
    start, step = 0, 0
    if checkpoint is not None and Path(checkpoint).exists():
        st = torch.load(checkpoint, map_location="cpu", weights_only=False)
        policy.net.load_state_dict(Policy.from_state(st["policy"]).net.state_dict())
        opt.load_state_dict(st["optim"])
        if opt.param_groups[0]["lr"] != lr:  # the caller's rate wins over the checkpoint's
            log(f"bc: learning rate {opt.param_groups[0]['lr']:g} -> {lr:g}")
            for g in opt.param_groups:
                g["lr"] = lr
        start, step = st["epoch"], st["step"]
        log(f"bc: resumed at epoch {start} (step {step}) from {checkpoint}")

    def save(epoch):
        if checkpoint is not None:
            atomic_torch_save({"policy": policy.state(), "optim": opt.state_dict(), "epoch": epoch,
                         "step": step}, str(checkpoint))

    metrics: dict = {}
    for epoch in range(start, epochs):
        t0, stats, samples = time.perf_counter(), [], 0
        shown = t0
        for batch in Stream(train, lanes, policy.history, seed=seed + epoch).batches():
            loss, s = bc_loss(policy, batch, vf_coef)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.net.parameters(), grad_clip)
            opt.step()
            stats.append(s)
            step += 1
            samples += len(batch["actions"])
            if writer is not None and step % 20 == 0:
                for k, v in s.items():
                    writer.add_scalar(f"bc/train_{k}", v, step)
            if time.perf_counter() - shown >= 60:  # an epoch can take tens of minutes on a CPU
                shown = time.perf_counter()
                log(f"bc epoch {epoch + 1}/{epochs}: {samples:,} of {train.num_samples:,} "
                    f"samples ({samples / (shown - t0):.0f}/s), loss {loss.item():.3f}")
            if should_stop():
                save(epoch)
                log(f"bc: stopped in epoch {epoch}; saved {checkpoint}")
                return _mean(stats) if stats else {}
        metrics = {f"train_{k}": v for k, v in _mean(stats).items()}
        if val is not None and val.num_trajectories:
            metrics.update({f"val_{k}": v for k, v in evaluate_bc(policy, val, lanes,
                                                                  vf_coef).items()})
        dt = time.perf_counter() - t0
        metrics["samples_per_s"] = samples / dt
        if writer is not None:
            for k, v in metrics.items():
                writer.add_scalar(f"bc/{k}", v, step)
        log(f"bc epoch {epoch + 1}/{epochs}: " + " ".join(f"{k}={v:.4g}" for k, v in
                                                          metrics.items()))
        save(epoch + 1)
    return metrics


def run_dagger(policy: Policy, train: Trajectories, val: Trajectories, run_dir: str | Path,
               rounds: int, games: int, epochs: int, bc_epochs: int, *, teacher: str = "general",
               opponents: Sequence[str] = ("general", "expander", "random"), beta: float = 0.0,
               beta_decay: float = 0.5, temperature: float = 0.25, boards: int = 64,
               maps: str = "generalsio", truncation: int = 500, held_out: float = 0.1,
               lanes: int = 256, lr: float = 1e-3, seed: int = 0, writer=None,
               log: Callable[[str], None] = print,
               should_stop: Callable[[], bool] = lambda: False) -> list[dict]:
    """DAgger after ``bc_epochs`` epochs of behaviour cloning on ``train``/``val``: ``rounds``
    rounds of (play ``games`` :func:`dagger_games` with the current clone at ``beta_k = beta
    * beta_decay ** (k - 1)``; hold out ``held_out`` of them like the BC data; aggregate with
    all the data so far; ``epochs`` more epochs of :func:`train_bc` on the aggregate, resuming
    the weights and optimizer of ``run_dir/bc.pt``).

    Resumable like :func:`train_bc`: round ``k``'s games are saved (atomically) as
    ``run_dir/dagger/round_<k>.npz`` before its training, round ``k`` is done once ``bc.pt``
    has reached epoch ``bc_epochs + k * epochs``, and the clone after it is saved as
    ``run_dir/dagger/policy_<k>.pt``. Logs per round (console and ``dagger/...`` in
    TensorBoard, step = round): held-out top-1 on the aggregate's held-out games, the
    clone's win/draw rates in the round's games (played by the clone *before* the round's
    training; overall and per opponent) and how often its move was the teacher's. Returns
    the metrics of the rounds run by this call.
    """
    run_dir = Path(run_dir)
    ck, ddir = run_dir / "bc.pt", run_dir / "dagger"
    trains, vals, out = [train], [val], []
    for k in range(1, rounds + 1):
        target = bc_epochs + k * epochs
        path = ddir / f"round_{k:03d}.npz"
        st = torch.load(ck, map_location="cpu", weights_only=False) if ck.exists() else None
        if st is not None and st["epoch"] >= target and path.exists():  # done before a resume
            r_train, r_val = Trajectories.load(path).split(held_out, seed + k)
            trains.append(r_train)
            vals.append(r_val)
            continue
        b_k = beta * beta_decay ** (k - 1)
        if st is not None:  # the games are the current clone's: the checkpoint's weights
            policy.net.load_state_dict(Policy.from_state(st["policy"]).net.state_dict())
        if path.exists():
            data = Trajectories.load(path)
        else:
            t0 = time.perf_counter()
            data = dagger_games(policy, games, teacher, opponents, b_k, temperature, boards,
                                maps, truncation, seed + 1000 * k, should_stop=should_stop)
            if should_stop():
                log(f"dagger: stopped while playing round {k}'s games (not kept)")
                return out
            data.save(path)
            log(f"dagger round {k}/{rounds}: {data.info['games']} games, "
                f"{data.num_samples:,} samples in {time.perf_counter() - t0:.0f} s -> {path}")
        r_train, r_val = data.split(held_out, seed + k)
        trains.append(r_train)
        vals.append(r_val)
        agg_train, agg_val = Trajectories.concat(trains), Trajectories.concat(vals)
        log(f"dagger round {k}/{rounds}: training on {agg_train.num_samples:,} samples "
            f"({agg_train.num_trajectories + agg_val.num_trajectories} trajectories with the "
            f"held-out ones), epochs {target - epochs + 1}-{target}")
        metrics = train_bc(policy, agg_train, agg_val, target, lanes, lr, checkpoint=ck,
                           writer=writer, seed=seed, log=log, should_stop=should_stop)
        if should_stop():
            return out
        info = data.info
        m = {"round": k, "beta": b_k, "games": info["games"],
             "aggregate_samples": agg_train.num_samples + agg_val.num_samples,
             "val_top1": metrics.get("val_top1", float("nan")),
             "clone_moves_as_teacher": info["clone_moves_as_teacher"] / max(info["clone_moves"],
                                                                            1)}
        for name in ["", *dict.fromkeys(opponents)]:
            key = f"clone_{name}_" if name else "clone_"
            g = info.get(key + "games", 0)
            if g:
                m[key + "win_rate"] = info[key + "wins"] / g
                m[key + "draw_rate"] = info[key + "draws"] / g
        if writer is not None:
            for key, v in m.items():
                if key != "round":
                    writer.add_scalar(f"dagger/{key}", v, k)
        policy.save(ddir / f"policy_{k:03d}.pt")
        log(f"dagger round {k}/{rounds} done: " + " ".join(
            f"{key}={v:.4g}" for key, v in m.items() if key != "round"))
        out.append(m)
    return out

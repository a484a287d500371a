"""Bot-vs-bot matches on the batched engine: win/draw/loss counts and the win-rate table.

``play_match("general", "expander", games=200)`` plays ``games`` games at once (one per board),
seats swapped on half of them so neither bot profits from being player 0, and returns a
:class:`MatchResult`. ``win_rate_table`` plays every ordered pair of bots.

A player is a bot name or any object with a ``name`` and ``spawn(num_boards, seed)`` returning
something with :class:`Bot`'s ``act`` (e.g. the trained network, ``gristmill.apps.generals``'s
``NetPlayer``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bots import BOTS, Bot
from .engine import GeneralsEngine
from .maps import MapGenerator
from .replay import Replay

__all__ = ["MatchResult", "play_match", "win_rate_table"]


@dataclass
class MatchResult:
    bot_a: str
    bot_b: str
    wins_a: int
    wins_b: int
    draws: int
    mean_length: float
    replays: list[Replay]

    @property
    def games(self) -> int:
        return self.wins_a + self.wins_b + self.draws

    @property
    def score_a(self) -> float:
        """Win rate of ``bot_a`` counting draws as half."""
        return (self.wins_a + 0.5 * self.draws) / max(self.games, 1)


def _spawn(player, num_boards: int, seed: int):
    if isinstance(player, str):
        return Bot(player, num_boards, seed=seed)
    if not (hasattr(player, "spawn") and hasattr(player, "name")):
        raise TypeError(f"a player is a bot name {BOTS} or has .name and .spawn(num_boards, "
                        f"seed); got {player!r}")
    return player.spawn(num_boards, seed)


def _name(player) -> str:
    return player if isinstance(player, str) else player.name


def play_match(bot_a, bot_b, games: int = 200, maps: str | MapGenerator = "generalsio",
               truncation: int = 1000, priority: str = "priority", seed: int = 0,
               keep_replays: int = 0) -> MatchResult:
    """Play ``games`` games of ``bot_a`` vs ``bot_b`` (draw = truncated); A is player 0 on even
    boards and player 1 on odd ones. Keeps the first ``keep_replays`` games as replays."""
    gen = maps if isinstance(maps, MapGenerator) else MapGenerator(maps, seed=seed)
    layouts = [gen.generate() for _ in range(games)]
    eng = GeneralsEngine(games, layouts, truncation=truncation, priority=priority, seed=seed)
    eng.reset()
    for b, lay in enumerate(layouts):
        eng.load(b, lay)
    a_seat = (np.arange(games) % 2).astype(np.int64)  # A's player index per board
    bots = [_spawn(bot_a, games, seed), _spawn(bot_b, games, seed + 1)]
    bot_a, bot_b = _name(bot_a), _name(bot_b)
    seats_a = np.zeros((games, 2), bool)
    seats_a[np.arange(games), a_seat] = True
    replays = [Replay(layouts[b], priority=priority, truncation=truncation,
                      players=(bot_a, bot_b) if a_seat[b] == 0 else (bot_b, bot_a))
               for b in range(keep_replays)]
    actions = np.zeros((games, 2, 5), np.int32)
    done = np.zeros(games, bool)
    winner = np.full(games, -1)
    length = np.zeros(games)
    tmp = np.zeros_like(actions)
    for _ in range(truncation):
        actions[:] = 0
        actions[:, :, 0] = 1
        tmp[:] = actions
        # scripted bots fill both seats (cheap); other players (nets) get their own seats on
        # the boards still playing only: a finished game's moves are never scored
        live = ~done[:, None]
        bots[0].act(eng.obs, eng.masks, eng.scalars,
                    (True, True) if isinstance(bots[0], Bot) else seats_a & live, tmp)
        actions[seats_a] = tmp[seats_a]
        tmp[:] = actions
        bots[1].act(eng.obs, eng.masks, eng.scalars,
                    (True, True) if isinstance(bots[1], Bot) else ~seats_a & live, tmp)
        actions[~seats_a] = tmp[~seats_a]
        for b, r in enumerate(replays):
            if not done[b]:
                r.append(actions[b])
        eng.step(actions)
        ended = (eng.terminated | eng.truncated) & ~done
        winner[ended] = eng.episode_winner[ended]
        length[ended] = eng.episode_length[ended]
        done |= ended
        if done.all():
            break
    wins_a = int(np.sum(winner == a_seat))
    draws = int(np.sum(winner < 0))
    return MatchResult(bot_a, bot_b, wins_a, games - wins_a - draws, draws, float(length.mean()),
                       replays)


def win_rate_table(games: int = 200, maps: str = "generalsio", truncation: int = 1000,
                   seed: int = 0, bots=BOTS) -> dict[tuple[str, str], MatchResult]:
    """Every pair (a, b), a != b, of ``bots``: ``games`` games each."""
    out = {}
    for i, a in enumerate(bots):
        for b in bots[i + 1:]:
            out[(a, b)] = play_match(a, b, games, maps, truncation, seed=seed)
    return out

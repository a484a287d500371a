"""generals.io's official replay JSON (``.gioreplay``) for 1v1 games, as an engine map and a
tick-by-tick action array.

Fields read (the JSON form of generals.io replays, as in the public human-replay datasets,
e.g. HF ``strakammm/generals_io_replays``, ``version`` 13): ``version``, ``mapWidth``,
``mapHeight``, ``usernames``, ``stars``, ``cities`` + ``cityArmies``, ``generals``,
``mountains`` (cell index = row * mapWidth + col), ``moves`` (objects
``{index, start, end, is50 | isHalf, turn}`` or arrays ``[index, start, end, is50, turn]``)
and ``afks``; optional ``neutrals`` + ``neutralArmies`` (neutral land with an army).

A move at ``turn`` t is played in the engine tick that starts at time t (replay ticks are
half-turns, as the engine's). generals.io played players' moves in alternating order in that
era, so the engine replays them with ``priority="alternating"``. What is refused, with a
:class:`GioReplayError` naming it: more than two players (or teams), an unknown version, a map
larger than ``pad_to``, a move between non-adjacent cells or outside the map, or a move of an
unknown player. What the engine rejects as illegal (e.g. a source it does not own there, because
real generals.io rules differ in detail) is counted per player by :func:`load_gioreplay`'s
callers (the move still goes to the engine, which treats it as a pass).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .maps import CITY, GENERAL, MOUNTAIN, MapArrays

__all__ = ["KNOWN_VERSIONS", "GioReplay", "GioReplayError", "load_gioreplay", "parse_gioreplay"]

# versions whose JSON layout is the one above (generals.io's replay format changed its fields
# at version 6 and added neutrals/swamps later without changing these)
KNOWN_VERSIONS = frozenset(range(6, 14))


class GioReplayError(ValueError):
    """A .gioreplay that gristmill cannot replay (the message says why)."""


@dataclass
class GioReplay:
    """``game_map`` (engine arrays), ``actions`` int32 [T, 2, 5] (T = last move's turn + 1),
    ``usernames``, ``stars``, ``afks`` (player indices that went AFK), ``version``, ``id``,
    ``duplicates`` (moves replaced by a later move of the same player in the same turn)."""

    game_map: MapArrays
    actions: np.ndarray
    usernames: tuple[str, str]
    stars: tuple[int, int] | None
    afks: tuple[int, ...]
    version: int
    id: str
    duplicates: int = 0


def _move(m, where: str) -> tuple[int, int, int, bool, int]:
    if isinstance(m, dict):
        half = m.get("is50", m.get("isHalf", False))
        try:
            return int(m["index"]), int(m["start"]), int(m["end"]), bool(half), int(m["turn"])
        except KeyError as e:
            raise GioReplayError(f"{where}: move without field {e}") from None
    if isinstance(m, (list, tuple)) and len(m) >= 5:
        return int(m[0]), int(m[1]), int(m[2]), bool(m[3]), int(m[4])
    raise GioReplayError(f"{where}: a move must be an object or [index, start, end, is50, turn]")


def parse_gioreplay(data: dict, pad_to: int = 24, where: str = "replay") -> GioReplay:
    """A parsed .gioreplay JSON object -> :class:`GioReplay` (see the module docstring)."""
    if not isinstance(data, dict):
        raise GioReplayError(f"{where}: expected a JSON object, got {type(data).__name__}")
    version = data.get("version")
    if version not in KNOWN_VERSIONS:
        raise GioReplayError(f"{where}: unknown replay version {version!r}; gristmill reads "
                             f"versions {min(KNOWN_VERSIONS)}-{max(KNOWN_VERSIONS)}")
    names = list(data.get("usernames") or [])
    teams = data.get("teams")
    if len(names) != 2 or (teams is not None and len(set(teams)) != 2):
        raise GioReplayError(f"{where}: {len(names)} players"
                             f"{'' if teams is None else f', teams {teams}'}; only 1v1 replays "
                             "(two players) can be replayed")
    w, h = int(data["mapWidth"]), int(data["mapHeight"])
    if h > pad_to or w > pad_to:
        raise GioReplayError(f"{where}: map is {h}x{w}, larger than pad_to={pad_to}")
    terrain = np.full((pad_to, pad_to), MOUNTAIN, np.uint8)
    terrain[:h, :w] = 0
    army = np.zeros((pad_to, pad_to), np.int32)

    def rc(i: int, what: str) -> tuple[int, int]:
        if not 0 <= i < w * h:
            raise GioReplayError(f"{where}: {what} cell {i} outside the {h}x{w} map")
        return divmod(i, w)

    for i in data.get("mountains", []):
        terrain[rc(i, "mountain")] = MOUNTAIN
    cities, armies = data.get("cities", []), data.get("cityArmies", [])
    if len(cities) != len(armies):
        raise GioReplayError(f"{where}: {len(cities)} cities but {len(armies)} cityArmies")
    for i, a in zip(cities, armies):
        terrain[rc(i, "city")] = CITY
        army[rc(i, "city")] = int(a)
    for i, a in zip(data.get("neutrals", []), data.get("neutralArmies", [])):
        army[rc(i, "neutral")] = int(a)
    gens = data.get("generals", [])
    if len(gens) != 2:
        raise GioReplayError(f"{where}: {len(gens)} generals; a 1v1 replay has 2")
    generals = np.array([rc(i, "general") for i in gens], np.int32)
    for r, c in generals:
        terrain[r, c] = GENERAL
        army[r, c] = 1
    moves = [_move(m, where) for m in data.get("moves", [])]
    T = max((m[4] for m in moves), default=-1) + 1
    actions = np.zeros((T, 2, 5), np.int32)
    actions[:, :, 0] = 1
    duplicates = 0
    for k, (p, start, end, half, turn) in enumerate(moves):
        if p not in (0, 1):
            raise GioReplayError(f"{where}: move {k} by player {p}; a 1v1 replay has 0 and 1")
        (r, c), (r2, c2) = rc(start, "move start"), rc(end, "move end")
        d = {(-1, 0): 0, (1, 0): 1, (0, -1): 2, (0, 1): 3}.get((r2 - r, c2 - c))
        if d is None:
            raise GioReplayError(f"{where}: move {k} from cell {start} to {end} is not to a "
                                 "neighbour")
        if turn < 0:
            raise GioReplayError(f"{where}: move {k} has turn {turn} < 0")
        duplicates += int(actions[turn, p, 0] == 0)
        actions[turn, p] = (0, r, c, d, int(half))
    stars = data.get("stars")
    return GioReplay(MapArrays(terrain, army, (h, w), generals), actions,
                     (str(names[0]), str(names[1])),
                     None if stars is None else tuple(int(s or 0) for s in stars),
                     tuple(int(a.get("index", -1)) if isinstance(a, dict) else int(a[0])
                           for a in data.get("afks", [])),
                     int(version), str(data.get("id", "")), duplicates)


def load_gioreplay(path: str | Path, pad_to: int = 24) -> GioReplay:
    """Read one ``.gioreplay`` JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GioReplayError(f"{path}: not JSON ({e})") from None
    return parse_gioreplay(data, pad_to, str(path))

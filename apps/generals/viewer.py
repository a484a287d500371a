"""The replay viewer: one self-contained HTML file that replays Generals games in a browser.

``write_viewer("game.npz", "game.html")`` (or a directory of replays, shown as a list with
results) writes a page with no external resources (scripts and styles inline, no network):
the board as generals.io draws it, a timeline slider with play/pause/speed and single steps,
the full board or either player's fog of war, army and land counts with a chart over the
game, and both players' moves at the current tick.

The page does not re-implement the engine: Python replays the game once through
:class:`~gristmill.envs.generals.GeneralsEngine` and embeds the start state plus, per tick,
the cells whose owner or army changed (``[cell, owner, army]`` triples). The page expands them
into per-tick arrays when it opens a game, so seeking any tick is one table update; a
1,000-tick game is ~100 kB of HTML. Fog is the engine's rule (own cells and their 8
neighbours), computed in the page from the owners.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
from gristmill.envs.generals import Replay

__all__ = ["game_data", "load_replays", "viewer_html", "write_viewer"]

WEB = Path(__file__).with_name("web")


def asset(name: str) -> str:
    """The text of ``web/<name>`` (the pages' scripts, styles and templates)."""
    return (WEB / name).read_text(encoding="utf-8")


def result_text(winner: int, players, num_ticks: int, truncation: int | None) -> str:
    """``"<name> (red) wins"``, ``"draw (truncated at T)"`` or ``"unfinished"``."""
    if winner >= 0:
        return f"{players[winner]} ({('red', 'blue')[winner]}) wins"
    if truncation is not None and num_ticks >= truncation:
        return f"draw (truncated at {num_ticks})"
    return "unfinished"


def game_data(rep: Replay, name: str) -> dict:
    """The page's form of one game (JSON-ready): terrain, start owner/army (h*w lists, row
    major), ``diffs[t]`` = flat ``[cell, owner, army, ...]`` changed by tick t+1, ``actions``
    (10 ints per tick: both players' [pass, row, col, direction, split]) and ``status`` (2 per
    tick: the engine's MOVE_* codes)."""
    states = list(rep.states())
    first, last = states[0], states[-1]
    h, w = first.terrain.shape
    diffs = []
    owner, army = first.owner.ravel(), first.army.ravel()
    for st in states[1:]:
        o, a = st.owner.ravel(), st.army.ravel()
        idx = np.flatnonzero((o != owner) | (a != army))
        diffs.append(np.stack([idx, o[idx], a[idx]], 1).ravel().tolist())
        owner, army = o, a
    ticks = len(states) - 1
    return {
        "name": name,
        "players": list(rep.players),
        "h": int(h),
        "w": int(w),
        "terrain": first.terrain.ravel().tolist(),
        "owner0": first.owner.ravel().tolist(),
        "army0": first.army.ravel().tolist(),
        "diffs": diffs,
        "actions": rep.action_array()[:ticks].astype(int).ravel().tolist(),
        "status": [int(s) for st in states[1:] for s in st.status],
        "num_ticks": ticks,
        "winner": last.winner,
        "result": result_text(last.winner, rep.players, ticks, rep.truncation),
        "priority": rep.priority,
        "truncation": rep.truncation,
    }


def load_replays(source: str | Path) -> list[tuple[str, Replay]]:
    """``(name, Replay)`` for a replay file, or for every ``*.npz`` in a directory (sorted).

    Raises FileNotFoundError / ValueError naming the path when there is nothing to show."""
    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise ValueError(f"{path}: no replays (*.npz) in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: no such replay file or directory")
    out = []
    for f in files:
        try:
            out.append((f.stem, Replay.load(f)))
        except Exception as e:  # noqa: BLE001 - name the file whatever went wrong
            raise ValueError(f"{f}: not a readable gristmill replay ({e})") from e
    return out


def _script_json(obj) -> str:
    # JSON inside <script>: "<" escaped so no "</script>" in a name can end the element
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c")


def viewer_html(games: list[tuple[str, Replay]], title: str | None = None) -> str:
    """The viewer page for ``games`` (``(name, Replay)``); one game opens directly, several
    open as a list with results."""
    if not games:
        raise ValueError("the viewer needs at least one replay")
    data = [game_data(rep, name) for name, rep in games]
    index = [{k: d[k] for k in ("name", "players", "result", "num_ticks", "winner")}
             for d in data]
    blocks = "\n".join(f'<script type="application/json" id="game-{k}">{_script_json(d)}'
                       "</script>" for k, d in enumerate(data))
    script = asset("board.js") + "\n" + asset("viewer.js")
    title = title or (games[0][0] if len(games) == 1 else f"{len(games)} games")
    return fill_template("viewer.html", STYLE=asset("style.css"), SCRIPT=script,
                         INDEX=_script_json(index), GAMES=blocks, TITLE=html.escape(title))


def fill_template(name: str, **values: str) -> str:
    """The page ``web/<name>`` with each ``{{KEY}}`` replaced by ``values[KEY]`` (one pass, so
    text inside a value is never substituted again)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], asset(name))


def write_viewer(source: str | Path, out: str | Path | None = None) -> Path:
    """Write the viewer for a replay file or a directory of replays; returns the HTML path
    (default: the replay's path with ``.html``, or ``<dir>/index.html``)."""
    source = Path(source)
    games = load_replays(source)
    if out is None:
        out = source / "index.html" if source.is_dir() else source.with_suffix(".html")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(viewer_html(games, source.name), encoding="utf-8")
    return out

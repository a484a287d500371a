"""``gristmill-generals serve``: play Generals in the browser against a bot or a trained agent.

A local aiohttp server bound to 127.0.0.1 only. ``GET /`` is the play page, ``/ws`` the
game's websocket (one game per connection; a closed tab ends and frees its game),
``/replays`` the saved games in the viewer (:mod:`.viewer`) and ``/replay/NAME.npz`` one of
them. Every game has its own 1-board :class:`~gristmill.envs.generals.GeneralsEngine` and its
own opponent (:mod:`.players`); the engine and the opponent run in a worker thread, so a slow
network never stalls the other games or the messages. The human is player 0 (red).

Protocol: JSON text messages.

Client to server:

- ``{"type": "move", "row": r, "col": c, "dir": "up"|"down"|"left"|"right" (or 0..3),
  "half": false}``: queue a move (generals.io's move queue). One queued move runs per tick, in
  order; a move whose source is not yours, holds < 2 army or points into a mountain when its
  tick comes is dropped (and reported) and the next one is tried.
- ``{"type": "undo"}`` drops the last queued move, ``{"type": "clear"}`` all of them;
- ``{"type": "step"}``: in turn-by-turn mode, advance one tick;
- ``{"type": "new_game"}``: start another game (after the end, or to give up this one).

Server to client:

- ``start``: ``game, h, w, me, players, tick_seconds, turn_based, truncation``;
- ``state`` after every tick (and at tick 0): ``tick``, ``cells`` (h*w ints, the engine's
  compact view of the human: ``code | army << 4``, see ``envs/generals/encoding.py``),
  ``scalars`` (own land, own army, enemy land, enemy army, tick), ``queue`` ([row, col, dir,
  half] each), ``moves`` (the engine's status of both players' moves: 0 pass, 1 moved,
  2 invalid, 3 skipped), ``dropped`` ([{move, reason}]);
- ``queue`` (the queue after a change), ``over`` (``winner``, ``result`` "win"/"loss"/"draw",
  ``ticks``, ``replay`` file name, ``replay_url``) and ``error`` (``message``: what was wrong
  with the last message; the game goes on).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web
from gristmill.envs.generals import GeneralsEngine, MapGenerator, Replay, parse_map
from gristmill.envs.generals.encoding import C_OWN, C_OWN_GENERAL, CODE_BITS, CODE_MASK
from gristmill.envs.generals.engine import PRIORITY_RULES

from .players import Player, load_opponent
from .viewer import asset, fill_template, load_replays, viewer_html

__all__ = ["BadMessage", "Game", "PlayConfig", "PlayServer", "running", "serve"]

log = logging.getLogger(__name__)
HUMAN = 0  # the browser's seat (red); the opponent plays seat 1
DIR_NAMES = ("up", "down", "left", "right")
DR, DC = (-1, 1, 0, 0), (0, 0, -1, 1)
MESSAGE_TYPES = ("move", "undo", "clear", "step", "new_game")
REPLAY_NAME = re.compile(r"^[\w.-]+\.npz$")
MAX_MESSAGE = 4096  # characters; longer ones get an error (over 1 MiB aiohttp drops the link)


@dataclass
class PlayConfig:
    """How the server plays. ``opponent``: a bot name or a checkpoint (:func:`load_opponent`);
    ``tick_seconds``: real-time pace (generals.io: 0.5 s per tick); ``turn_based``: tick only
    on the player's ``step``; ``layouts``: fixed maps (character layouts) instead of drawing
    ``maps``-mode maps; ``replays``: where finished games are saved."""

    opponent: str = "expander"
    tick_seconds: float = 0.5
    turn_based: bool = False
    truncation: int = 1000
    priority: str = "priority"
    maps: str = "generalsio"
    layouts: list[str] = field(default_factory=list)
    replays: Path = Path("runs/generals_web")
    seed: int | None = None
    max_queue: int = 256

    def __post_init__(self):
        if self.tick_seconds <= 0:
            raise ValueError(f"tick_seconds must be > 0, got {self.tick_seconds}")
        if self.truncation < 1:
            raise ValueError(f"truncation must be >= 1, got {self.truncation}")
        if self.priority not in PRIORITY_RULES:
            raise ValueError(f"priority must be one of {sorted(PRIORITY_RULES)}")
        if self.maps not in ("uniform", "generalsio"):
            raise ValueError(f"maps must be 'uniform' or 'generalsio', got {self.maps!r}")
        for layout in self.layouts:
            parse_map(layout)  # InvalidMapError says what is wrong with it
        self.replays = Path(self.replays)


class BadMessage(ValueError):
    """A client message the server cannot act on; the text is sent back as an ``error``."""


def parse_message(text: str) -> dict:
    """The message as a dict with a known ``type`` (fields checked later), or BadMessage."""
    if len(text) > MAX_MESSAGE:
        raise BadMessage(f"a message is at most {MAX_MESSAGE} characters, got {len(text)}")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise BadMessage(f"a message must be JSON: {str(e)[:80]}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise BadMessage('a message is a JSON object with a "type" '
                         f"(one of {', '.join(MESSAGE_TYPES)})")
    if msg["type"] not in MESSAGE_TYPES:
        raise BadMessage(f"unknown message type {msg['type'][:40]!r}; expected one of "
                         f"{', '.join(MESSAGE_TYPES)}")
    return msg


def _int_field(msg: dict, key: str) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadMessage(f'move: "{key}" must be an integer, got {json.dumps(v)[:40]}')
    return v


class Game:
    """One game: its engine (1 board), the opponent's actor, the human's move queue and the
    replay being recorded. Not thread-safe: the server calls it from one task at a time."""

    def __init__(self, cfg: PlayConfig, opponent: Player, layout: str, seed: int, game_id: str):
        self.cfg, self.id = cfg, game_id
        self.engine = GeneralsEngine(1, [layout], truncation=cfg.truncation,
                                     priority=cfg.priority)
        self.engine.reset()
        self.engine.load(0, layout)
        self.h, self.w = (int(x) for x in self.engine.state.dims[0])
        self.opponent = opponent.spawn(1, seed)
        self.players = ("you", opponent.name)
        self.replay = Replay(layout, priority=cfg.priority, truncation=cfg.truncation,
                             players=self.players)
        self.queue: deque[tuple[int, int, int, int]] = deque()
        self.actions = np.zeros((1, 2, 5), np.int32)
        self.over = False
        self.winner = -1
        self.replay_path: Path | None = None

    @property
    def tick(self) -> int:
        return int(self.engine.state.time[0])

    # -- the move queue (called on the event loop) -----------------------------------------
    def queue_move(self, msg: dict) -> None:
        """Append a ``move`` message to the queue, or raise BadMessage saying what is wrong."""
        r, c = _int_field(msg, "row"), _int_field(msg, "col")
        d = msg.get("dir")
        if isinstance(d, str) and d in DIR_NAMES:
            d = DIR_NAMES.index(d)
        elif isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 3:
            raise BadMessage(f'move: "dir" must be one of {", ".join(DIR_NAMES)} or 0..3, got '
                             f"{json.dumps(d)[:40]}")
        half = msg.get("half", False)
        if not isinstance(half, bool):
            raise BadMessage(f'move: "half" must be true or false, got {json.dumps(half)[:40]}')
        if not (0 <= r < self.h and 0 <= c < self.w):
            raise BadMessage(f"move: ({r}, {c}) is off the {self.h} x {self.w} board")
        if not (0 <= r + DR[d] < self.h and 0 <= c + DC[d] < self.w):
            raise BadMessage(f"move: ({r}, {c}) {DIR_NAMES[d]} leaves the board")
        if len(self.queue) >= self.cfg.max_queue:
            raise BadMessage(f"the move queue is full ({self.cfg.max_queue} moves); wait for it "
                             "to run down or clear it (Q)")
        self.queue.append((r, c, d, int(half)))

    def next_action(self) -> tuple[np.ndarray, list[dict]]:
        """The human's action for this tick: the first queued move the engine would execute
        (a pass if none) and the moves dropped on the way, each with the reason."""
        action = np.array([1, 0, 0, 0, 0], np.int32)
        dropped = []
        obs, masks = self.engine.obs[0, HUMAN], self.engine.masks[0, HUMAN]
        while self.queue:
            r, c, d, half = self.queue.popleft()
            if masks[r, c, d]:
                action[:] = (0, r, c, d, half)
                break
            code, army = obs[r, c] & CODE_MASK, obs[r, c] >> CODE_BITS
            if not C_OWN <= code <= C_OWN_GENERAL:
                why = f"({r}, {c}) is not yours"
            elif army < 2:
                why = f"({r}, {c}) holds {army} army; a move needs at least 2"
            else:
                why = f"({r + DR[d]}, {c + DC[d]}) is a mountain"
            dropped.append({"move": [r, c, d, half], "reason": why})
        return action, dropped

    # -- one tick (called in a worker thread) ----------------------------------------------
    def advance(self, human: np.ndarray) -> None:
        """The opponent chooses, both moves are recorded and the engine steps one tick."""
        eng, a = self.engine, self.actions
        a[:] = 0
        a[..., 0] = 1
        a[0, HUMAN] = human
        self.opponent.act(eng.obs, eng.masks, eng.scalars, (False, True), a)  # seat 1
        self.replay.append(a[0])
        eng.step(a)
        if eng.terminated[0] or eng.truncated[0]:
            self.over = True
            self.winner = int(eng.state.winner[0])

    def state_message(self, dropped: list[dict]) -> dict:
        eng = self.engine
        return {"type": "state", "tick": self.tick,
                "cells": eng.obs[0, HUMAN, :self.h, :self.w].ravel().tolist(),
                "scalars": eng.scalars[0, HUMAN].tolist(), "queue": [list(m) for m in self.queue],
                "moves": eng.status[0].tolist(), "dropped": dropped}

    def save_replay(self) -> Path | None:
        """Write the replay (if a tick was played) to ``cfg.replays``; returns its path."""
        if self.replay_path is None and self.replay.num_ticks:
            self.cfg.replays.mkdir(parents=True, exist_ok=True)
            name = f"{time.strftime('%Y%m%d-%H%M%S')}_{self.id}.npz"
            self.replay_path = self.replay.save(self.cfg.replays / name)
        return self.replay_path


class Session:
    """One websocket: its current game and the task that ticks it."""

    def __init__(self, server: PlayServer, ws: web.WebSocketResponse):
        self.server, self.ws = server, ws
        self.game: Game | None = None
        self.ticker: asyncio.Task | None = None
        self.inflight: asyncio.Future | None = None  # the tick running in a worker thread
        self.steps = 0  # turn-by-turn: ticks requested and not yet played
        self.wake = asyncio.Event()

    async def send(self, msg: dict) -> None:
        if not self.ws.closed:
            with suppress(ConnectionError):
                await self.ws.send_json(msg)

    async def new_game(self) -> None:
        await self.end_game()
        self.game = game = self.server.make_game()
        self.steps = 0
        cfg = self.server.cfg
        await self.send({"type": "start", "game": game.id, "h": game.h, "w": game.w,
                         "me": HUMAN, "players": list(game.players),
                         "tick_seconds": cfg.tick_seconds, "turn_based": cfg.turn_based,
                         "truncation": cfg.truncation})
        await self.send(game.state_message([]))
        self.ticker = asyncio.create_task(self.run(game), name=f"generals-game-{game.id}")

    async def end_game(self) -> None:
        """Stop the ticker, save the replay and free the game (idempotent)."""
        if self.ticker is not None:
            self.ticker.cancel()
            with suppress(asyncio.CancelledError):
                await self.ticker
            self.ticker = None
        if self.inflight is not None:
            with suppress(Exception):
                await self.inflight
            self.inflight = None
        if self.game is not None:
            self.game.save_replay()
            self.server.games.pop(self.game.id, None)
            self.game = None

    async def run(self, game: Game) -> None:
        cfg = self.server.cfg
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while not game.over:
                if cfg.turn_based:
                    while self.steps == 0:
                        self.wake.clear()
                        await self.wake.wait()
                    self.steps -= 1
                else:
                    due = max(due + cfg.tick_seconds, loop.time())
                    await asyncio.sleep(due - loop.time())
                action, dropped = game.next_action()
                # shielded: a closing tab waits for the tick in flight (end_game) before saving
                self.inflight = loop.run_in_executor(None, game.advance, action)
                await asyncio.shield(self.inflight)
                await self.send(game.state_message(dropped))
        except Exception as e:  # e.g. a broken agent: this game ends, the server goes on
            log.exception("generals game %s failed", game.id)
            game.over = True
            game.save_replay()
            await self.send({"type": "error", "message": f"this game failed on the server "
                             f"({type(e).__name__}: {e}); send new_game to play again"})
            return
        path = game.save_replay()
        result = "draw" if game.winner < 0 else ("win" if game.winner == HUMAN else "loss")
        await self.send({"type": "over", "winner": game.winner, "result": result,
                         "ticks": game.tick, "replay": path.name if path else None,
                         "replay_url": f"/replay/{path.name}" if path else None})

    async def handle(self, text: str) -> None:
        msg = parse_message(text)
        kind, game = msg["type"], self.game
        if kind == "new_game":
            await self.new_game()
            return
        if game is None or game.over:
            raise BadMessage(f"{kind}: the game is over; send new_game to play again")
        if kind == "move":
            game.queue_move(msg)
        elif kind == "undo":
            if game.queue:
                game.queue.pop()
        elif kind == "clear":
            game.queue.clear()
        elif kind == "step":
            if not self.server.cfg.turn_based:
                raise BadMessage("step: the server ticks in real time (start it with "
                                 "--turn-based for turn-by-turn play)")
            if self.steps >= 16:
                raise BadMessage("step: 16 ticks are already waiting to be played")
            self.steps += 1
            self.wake.set()
            return
        await self.send({"type": "queue", "queue": [list(m) for m in game.queue]})


class PlayServer:
    """The aiohttp application and its live games (``games``: id -> :class:`Game`)."""

    def __init__(self, cfg: PlayConfig):
        self.cfg = cfg
        self.opponent = load_opponent(cfg.opponent)
        self.games: dict[str, Game] = {}
        self.sessions: set[Session] = set()
        self._seeds = np.random.SeedSequence(cfg.seed)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.app = web.Application()
        self.app.add_routes([web.get("/", self.page), web.get("/ws", self.websocket),
                             web.get("/replays", self.replay_list),
                             web.get("/replay/{name}", self.replay_page)])
        self.app.on_shutdown.append(self._close_sessions)
        self._page = fill_template("play.html", STYLE=asset("style.css"),
                                   SCRIPT=asset("board.js") + "\n" + asset("play.js"))

    def make_game(self) -> Game:
        seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
        if self.cfg.layouts:
            layout = self.cfg.layouts[seed % len(self.cfg.layouts)]
        else:
            layout = MapGenerator(self.cfg.maps, seed=seed).generate()
        game = Game(self.cfg, self.opponent, layout, seed, secrets.token_hex(4))
        self.games[game.id] = game
        return game

    # -- routes ----------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=self._page, content_type="text/html")

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = Session(self, ws)
        self.sessions.add(session)
        try:
            await session.new_game()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        await session.handle(msg.data)
                    except BadMessage as e:
                        await session.send({"type": "error", "message": str(e)})
                elif msg.type == WSMsgType.BINARY:
                    await session.send({"type": "error", "message": "messages are JSON text, "
                                        "not binary"})
        finally:
            self.sessions.discard(session)
            await session.end_game()
        return ws

    async def replay_list(self, request: web.Request) -> web.Response:
        try:
            html = await asyncio.to_thread(lambda: viewer_html(load_replays(self.cfg.replays),
                                                               "played games"))
        except (ValueError, FileNotFoundError):
            raise web.HTTPNotFound(text=f"no replays in {self.cfg.replays} yet") from None
        return web.Response(text=html, content_type="text/html")

    async def replay_page(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        path = self.cfg.replays / name
        if not REPLAY_NAME.match(name) or not path.is_file():
            raise web.HTTPNotFound(text=f"no replay named {name!r}")
        html = await asyncio.to_thread(lambda: viewer_html(load_replays(path)))
        return web.Response(text=html, content_type="text/html")

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1:``port`` (0: a free port); returns the page's URL."""
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise OSError(f"cannot listen on 127.0.0.1:{port} ({e.strerror}); pick another "
                          "port (0: any free one)") from e
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _close_sessions(self, app) -> None:
        for s in list(self.sessions):
            await s.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def serve(cfg: PlayConfig, port: int = 8765) -> None:
    """Run the server until Ctrl-C (games in progress are saved as replays)."""

    async def main():
        server = PlayServer(cfg)
        url = await server.start(port)
        mode = "turn by turn" if cfg.turn_based else f"{cfg.tick_seconds:g} s per tick"
        print(f"gristmill-generals: play against {server.opponent.name} at {url} ({mode}); "
              f"replays go to {cfg.replays}/; Ctrl-C stops", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with suppress(KeyboardInterrupt):
        asyncio.run(main())


@contextmanager
def running(cfg: PlayConfig, port: int = 0) -> Iterator[PlayServer]:
    """The server on its own event loop in a background thread (for tests and notebooks);
    ``server.url`` is its address. Stopped, with every game closed, on exit."""
    server = PlayServer(cfg)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="generals-serve", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(port), loop).result(60)
        yield server
    finally:
        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

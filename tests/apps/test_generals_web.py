"""The Generals browser pages in real headless Chromium: the replay viewer and the play server.

The browser is Debian's ``chromium`` + ``chromium-driver`` (``.ci/run`` installs them). Where
none is found the browser tests skip, saying so, except in CI (``CI`` set), where they fail.
Screenshots of both pages are kept under the test's tmp directory (their paths are printed).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from gristmill.envs.generals import GeneralsEngine, MapGenerator, Replay
from gristmill.envs.generals.encoding import CODE_BITS, CODE_MASK
from gristmill.envs.generals.maps import MOUNTAIN, PLAIN
from gristmill.envs.generals.tournament import play_match

aiohttp = pytest.importorskip("aiohttp")
from gristmill.apps.generals.server import PlayConfig, running  # noqa: E402
from gristmill.apps.generals.viewer import write_viewer  # noqa: E402

# compact code -> (kind, owner relative to the viewer: 0 me, 1 the other, -1 neutral); kinds
# as the page names them: 0 plain 1 mountain 2 city 3 general 4 fog 5 fog obstacle
CODE_VIEW = [(4, -1), (5, -1), (1, -1), (0, -1), (2, -1), (0, 0), (2, 0), (3, 0), (0, 1), (2, 1),
             (3, 1)]
DIR_KEYS = {0: "\ue013", 1: "s", 2: "\ue012", 3: "d"}  # ArrowUp, S, ArrowLeft, D
DR, DC = (-1, 1, 0, 0), (0, 0, -1, 1)


def wait_for(fn, what: str, timeout: float = 30.0):
    """Poll ``fn`` until it returns a truthy value (a deadline against hangs, not a timing
    assertion)."""
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or the reason they cannot be used."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    chrome = os.environ.get("GRISTMILL_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = os.environ.get("GRISTMILL_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chrome or not driver:
        return ("no headless Chromium found (chromium and chromedriver on PATH, or "
                "GRISTMILL_CHROMIUM / GRISTMILL_CHROMEDRIVER): apt-get install chromium "
                "chromium-driver")
    return chrome, driver


@pytest.fixture(scope="module")
def browser():
    found = _find_browser()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {found}")
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--disable-extensions"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(found[1]), options=opts)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("generals_web_artifacts")


def screenshot(driver, path) -> None:
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"screenshot {path} is (nearly) empty"
    print(f"screenshot: {path}")


# -- the replay viewer ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_game(tmp_path_factory):
    """A general-vs-expander game that ends by a capture: (replay path, Replay)."""
    res = play_match("general", "expander", games=2, truncation=600, seed=1, keep_replays=2)
    d = tmp_path_factory.mktemp("replays")
    reps = res.replays
    paths = [r.save(d / f"game_{k}.npz") for k, r in enumerate(reps)]
    won = [k for k, r in enumerate(reps) if list(r.states())[-1].winner >= 0]
    assert won, "no game of the two ended by a capture"
    return paths[won[0]], reps[won[0]]


def engine_ticks(rep: Replay, ticks):
    """The engine's state at each of ``ticks`` when the replay's actions are played:
    {tick: (terrain, owner, army, obs [2, h, w], scalars [2, 5], status [2])}."""
    eng = GeneralsEngine(1, [rep.layout], truncation=rep.truncation, priority=rep.priority)
    eng.reset()
    eng.load(0, rep.layout)
    h, w = eng.state.dims[0]
    out = {}
    acts = rep.action_array().astype(np.int32)
    for t in range(max(ticks) + 1):
        if t in ticks:
            s = eng.state
            out[t] = (s.terrain[0, :h, :w].copy(), s.owner[0, :h, :w].copy(),
                      s.army[0, :h, :w].copy(), eng.obs[0, :, :h, :w].copy(),
                      eng.scalars[0].copy(), eng.status[0].copy())
        if t < len(acts):
            eng.step(acts[t][None])
    return out


def expected_view(terrain, owner, army, obs, view):
    """What the page must show: the full state, or player ``view``'s compact observation."""
    if view is None:
        return (terrain.ravel().tolist(), np.where(terrain == MOUNTAIN, -1, owner).ravel().tolist(),
                np.where(terrain == MOUNTAIN, 0, army).ravel().tolist())
    codes = (obs[view] & CODE_MASK).ravel()
    kind = [CODE_VIEW[c][0] for c in codes]
    own = [-1 if CODE_VIEW[c][1] < 0 else (view if CODE_VIEW[c][1] == 0 else 1 - view)
           for c in codes]
    return kind, own, (obs[view] >> CODE_BITS).ravel().tolist()


SHOWN = "return gm.board.shown();"
SCORES = """return [...document.querySelectorAll('#scores-body tr')].map(tr =>
    [+tr.dataset.player, +tr.querySelector('.army').textContent,
     +tr.querySelector('.land').textContent]);"""
MOVES = "return [...document.querySelectorAll('#moves [data-player]')].map(e => +e.dataset.status);"


def test_viewer_shows_the_engine_state_at_every_sought_tick_full_and_fogged(
        browser, finished_game, artifacts):
    path, rep = finished_game
    html = write_viewer(path, artifacts / "viewer.html")
    last = len(list(rep.states())) - 1
    ticks = sorted({0, 1, 2, 49, 50, 51, last // 2, last - 1, last})
    truth = engine_ticks(rep, ticks)
    browser.get(html.as_uri())
    wait_for(lambda: browser.execute_script("return window.gm && window.gm.ready === true"),
             "the viewer to load")
    assert browser.execute_script("return gm.game.num_ticks") == last
    for t in ticks:
        terrain, owner, army, obs, scalars, status = truth[t]
        for view in (None, 0, 1):
            browser.execute_script("gm.setView(arguments[0]); gm.seek(arguments[1]);", view, t)
            shown = browser.execute_script(SHOWN)
            kind, own, arm = expected_view(terrain, owner, army, obs, view)
            where = f"tick {t}, view {view}"
            assert shown["kind"] == kind, f"cell kinds differ at {where}"
            assert shown["owner"] == own, f"cell owners differ at {where}"
            assert shown["army"] == arm, f"armies differ at {where}"
        # land and army of both players (the engine's scalars: own land, own army, ...)
        got = sorted(browser.execute_script(SCORES))
        assert got == [[p, int(scalars[p, 1]), int(scalars[p, 0])] for p in (0, 1)], t
        if t > 0:
            assert browser.execute_script(MOVES) == status.tolist(), f"move status at {t}"
    # the end: the winner is named; the loser's cells all passed over, so its view (checked
    # against the page above) is all fog
    end_obs, loser = truth[last][3], 1 - int(list(rep.states())[-1].winner)
    assert ((end_obs[loser] & CODE_MASK) <= 1).all()
    assert "wins" in browser.find_element("id", "result").text
    browser.execute_script("gm.setView(null); gm.seek(arguments[0]);", last // 2)
    screenshot(browser, artifacts / "viewer.png")


def test_viewer_plays_steps_with_keys_and_opens_a_directory_as_a_list(
        browser, finished_game, artifacts):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    path, _ = finished_game
    html = write_viewer(path.parent, artifacts / "index.html")
    browser.get(html.as_uri())
    wait_for(lambda: browser.execute_script("return window.gm && window.gm.ready === true"),
             "the list page to load")
    rows = browser.find_elements("css selector", "#list-body tr")
    names = sorted(p.stem for p in path.parent.glob("*.npz"))
    assert [r.find_element("tag name", "a").text for r in rows] == names
    assert any("wins" in r.text for r in rows)
    rows[names.index(path.stem)].click()
    assert browser.execute_script("return gm.game.name") == path.stem
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_LEFT).perform()
    assert browser.execute_script("return gm.tick") == 1
    ActionChains(browser).send_keys(Keys.END).perform()
    assert browser.execute_script("return gm.tick") == browser.execute_script(
        "return gm.game.num_ticks")
    browser.execute_script("gm.seek(0); gm.setSpeed(64); gm.play();")
    wait_for(lambda: browser.execute_script("return gm.tick") >= 5, "playback to advance")
    browser.execute_script("gm.pause();")


# -- the play server -----------------------------------------------------------------------
def _open_play(driver, url):
    driver.get(url)
    wait_for(lambda: driver.execute_script("return !!(window.gm && gm.state)"),
             "the play page's first state")
    return driver.execute_script("return gm.started.game")


def _human_view(obs):
    """What the play page must show the human (player 0) for the engine's ``obs [2, h, w]``."""
    return dict(zip(("kind", "owner", "army"), expected_view(None, None, None, obs, 0)))


def test_play_page_keyboard_moves_reach_the_engine_and_the_replay_loads(
        browser, artifacts, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    layout = MapGenerator("generalsio", seed=5).generate()
    cfg = PlayConfig(opponent="expander", turn_based=True, truncation=24, layouts=[layout],
                     replays=tmp_path / "replays", seed=0)
    with running(cfg) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        gid = _open_play(browser, srv.url)
        game = srv.games[gid]
        h, w = game.h, game.w

        def step(n):
            t = browser.execute_script("return gm.state.tick")
            ActionChains(browser).send_keys(" " * n).perform()
            wait_for(lambda: browser.execute_script("return gm.state.tick") == t + n,
                     f"tick {t + n}")

        step(4)  # the general grows to 3 army
        r0, c0 = (int(x) for x in game.engine.state.gens[0, 0])
        terrain = game.engine.state.terrain[0]

        def free(r, c):
            return 0 <= r < h and 0 <= c < w and terrain[r, c] == PLAIN

        # two chained moves out of the general, then a half move from it
        d1 = next(d for d in range(4) if free(r0 + DR[d], c0 + DC[d]))
        r1, c1 = r0 + DR[d1], c0 + DC[d1]
        d2 = next(d for d in range(4) if free(r1 + DR[d], c1 + DC[d]) and (r1 + DR[d], c1 + DC[d])
                  != (r0, c0))
        r2, c2 = r1 + DR[d2], c1 + DC[d2]
        browser.find_element("css selector", f'td[data-r="{r0}"][data-c="{c0}"]').click()
        ActionChains(browser).send_keys(DIR_KEYS[d1], DIR_KEYS[d2]).perform()
        browser.find_element("css selector", f'td[data-r="{r0}"][data-c="{c0}"]').click()
        ActionChains(browser).send_keys("z", DIR_KEYS[d1]).perform()
        want = [(r0, c0, d1, 0), (r1, c1, d2, 0), (r0, c0, d1, 1)]
        wait_for(lambda: list(game.queue) == want, f"the queue {want} on the server")
        wait_for(lambda: browser.execute_script("return gm.queue.length") == 3,
                 "the page to show the queue")
        t0 = game.tick
        step(3)
        acts = game.replay.action_array()
        assert [tuple(int(x) for x in a) for a in acts[t0:t0 + 3, 0]] == [
            (0, *m) for m in want]
        # the page shows what an independent engine says after these actions
        truth = engine_ticks(game.replay, [t0 + 3])[t0 + 3]
        shown = browser.execute_script(SHOWN)
        assert shown == _human_view(truth[3])
        assert shown["owner"][r1 * w + c1] == 0 and shown["owner"][r2 * w + c2] == 0
        screenshot(browser, artifacts / "play.png")
        # to the end: the result, the replay written, and the replay in the viewer
        while (t := browser.execute_script("return gm.state.tick")) < cfg.truncation:
            step(min(8, cfg.truncation - t))
        wait_for(lambda: browser.execute_script("return gm.over"), "the end of the game")
        final = browser.execute_script(SHOWN)
        over = browser.execute_script("return gm.over")
        assert over["result"] == "draw" and over["ticks"] == 24
        assert browser.find_element("id", "overlay").is_displayed()
        replay_path = cfg.replays / over["replay"]
        rep = Replay.load(replay_path)
        assert rep.num_ticks == 24 and rep.players == ("you", "expander")
        screenshot(browser, artifacts / "play_over.png")
        html = urllib.request.urlopen(srv.url + over["replay_url"].lstrip("/"), timeout=30).read()
        assert f'"name":"{replay_path.stem}"'.encode() in html
        listing = urllib.request.urlopen(srv.url + "replays", timeout=30).read()
        assert f'"name":"{replay_path.stem}"'.encode() in listing
        # play again: a fresh game in the same tab, the old one freed
        ActionChains(browser).send_keys("\ue007").perform()  # Enter
        wait_for(lambda: browser.execute_script("return !gm.over && gm.state && gm.started.game")
                 not in (None, False, gid), "a new game after Enter")
        assert not browser.find_element("id", "overlay").is_displayed()
        assert browser.execute_script("return gm.state.tick") == 0
        assert set(srv.games) == {browser.execute_script("return gm.started.game")}
    viewer = write_viewer(replay_path, artifacts / "played.html")
    browser.get(viewer.as_uri())
    wait_for(lambda: browser.execute_script("return window.gm && window.gm.ready === true"),
             "the viewer")
    browser.execute_script("gm.setView(0); gm.seek(gm.game.num_ticks);")
    assert browser.execute_script(SHOWN) == final


def test_two_tabs_play_at_once_and_a_closed_tab_frees_its_game(browser, tmp_path):
    cfg = PlayConfig(opponent="general", tick_seconds=0.05, truncation=10_000,
                     replays=tmp_path, seed=1)
    with running(cfg) as srv:
        first = browser.current_window_handle
        a = _open_play(browser, srv.url)
        browser.switch_to.new_window("tab")
        b = _open_play(browser, srv.url)
        assert a != b and set(srv.games) == {a, b}
        wait_for(lambda: browser.execute_script("return gm.state.tick") >= 10, "tab 2 to tick")
        browser.close()
        browser.switch_to.window(first)
        wait_for(lambda: set(srv.games) == {a}, "the closed tab's game to be freed")
        assert list(tmp_path.glob(f"*_{b}.npz")), "the closed tab's game left no replay"
        t = browser.execute_script("return gm.state.tick")
        wait_for(lambda: browser.execute_script("return gm.state.tick") > t + 5,
                 "tab 1's game to go on")
        browser.get("about:blank")
        wait_for(lambda: not srv.games, "the last game to be freed")


# -- bad input over a raw websocket (no browser needed) ------------------------------------
async def _client_session(url, script):
    async with aiohttp.ClientSession() as http, http.ws_connect(url + "ws") as ws:
        async def recv(kind):
            while True:
                m = await asyncio.wait_for(ws.receive_json(), 30)
                if m["type"] == kind:
                    return m
        return await script(ws, recv)


def test_server_answers_bad_messages_and_keeps_playing(tmp_path):
    layout = MapGenerator("generalsio", seed=2).generate()
    cfg = PlayConfig(opponent="random", turn_based=True, truncation=6, layouts=[layout],
                     replays=tmp_path, max_queue=32)

    async def script(ws, recv):
        start = await recv("start")
        first = await recv("state")
        errors = {}
        bad = {"not json": "{oops", "array": "[1, 2]", "no type": '{"row": 1}',
               "unknown type": '{"type": "fly"}', "no row": '{"type": "move", "col": 1, "dir": 0}',
               "row as string": '{"type": "move", "row": "1", "col": 1, "dir": 0}',
               "bad dir": '{"type": "move", "row": 1, "col": 1, "dir": "north"}',
               "bad half": '{"type": "move", "row": 1, "col": 1, "dir": 1, "half": "yes"}',
               "off board": '{"type": "move", "row": 99, "col": 1, "dir": 1}',
               "leaves board": '{"type": "move", "row": 0, "col": 0, "dir": "up"}'}
        for name, text in bad.items():
            await ws.send_str(text)
            errors[name] = (await recv("error"))["message"]
        await ws.send_bytes(b"\x00\x01")
        errors["binary"] = (await recv("error"))["message"]
        await ws.send_str(json.dumps({"type": "move", "pad": "x" * 10_000}))
        errors["huge"] = (await recv("error"))["message"]
        # a move from a cell the player does not own: queued, then dropped with the reason
        h, w = start["h"], start["w"]
        i = next(i for i, v in enumerate(first["cells"]) if (v & 15) < 5 and i // w < h - 1)
        r0, c0 = divmod(i, w)
        await ws.send_json({"type": "move", "row": int(r0), "col": int(c0), "dir": "down"})
        assert (await recv("queue"))["queue"] == [[int(r0), int(c0), 1, 0]]
        await ws.send_json({"type": "step"})
        st = await recv("state")
        dropped = st["dropped"]
        # a flood of moves: the queue stops at its limit, each extra move is answered
        for _ in range(200):
            await ws.send_json({"type": "move", "row": 1, "col": 1, "dir": "down"})
        replies = [await ws.receive_json() for _ in range(200)]
        full = [m for m in replies if m["type"] == "error"]
        await ws.send_json({"type": "clear"})
        assert (await recv("queue"))["queue"] == []
        for _ in range(5):  # to the end (truncation 6)
            await ws.send_json({"type": "step"})
        over = await recv("over")
        await ws.send_json({"type": "move", "row": 1, "col": 1, "dir": "down"})
        after = (await recv("error"))["message"]
        await ws.send_json({"type": "new_game"})
        again = await recv("start")
        assert set(srv.games) == {again["game"]}, "the new game replaced the old one"
        return errors, dropped, full, over, after, start, again

    with running(cfg) as srv:
        errors, dropped, full, over, after, start, again = asyncio.run(
            _client_session(srv.url, script))
        wait_for(lambda: not srv.games, "the closed connection's game to be freed")
        assert urllib.request.urlopen(srv.url, timeout=30).status == 200
    assert "JSON" in errors["not json"] and '"type"' in errors["array"]
    assert '"type"' in errors["no type"] and "'fly'" in errors["unknown type"]
    assert '"row"' in errors["no row"] and '"row"' in errors["row as string"]
    assert '"dir"' in errors["bad dir"] and '"half"' in errors["bad half"]
    assert "off the" in errors["off board"] and "leaves the board" in errors["leaves board"]
    assert "JSON text" in errors["binary"] and "at most 4096 characters" in errors["huge"]
    assert len(dropped) == 1 and "is not yours" in dropped[0]["reason"]
    assert len(full) == 200 - 32 and all("queue is full" in m["message"] for m in full)
    assert over["ticks"] == 6 and "game is over" in after
    assert again["game"] != start["game"]
    # the finished game was saved; the new one (no tick played) was freed without a file
    assert [p.name.split("_")[-1] for p in tmp_path.glob("*.npz")] == [f"{start['game']}.npz"]


class _BrokenPlayer:
    name = "broken"

    def spawn(self, num_boards, seed=None):
        return self

    def act(self, obs, masks, scalars, seats, out=None):
        raise RuntimeError("the opponent crashed")


def test_a_failing_opponent_ends_its_game_with_an_error_and_the_server_goes_on(tmp_path):
    cfg = PlayConfig(opponent="random", turn_based=True, replays=tmp_path)

    async def script(ws, recv):
        await recv("start")
        await ws.send_json({"type": "step"})
        failed = (await recv("error"))["message"]
        await ws.send_json({"type": "step"})
        after = (await recv("error"))["message"]
        return failed, after

    with running(cfg) as srv:
        srv.opponent = _BrokenPlayer()
        failed, after = asyncio.run(_client_session(srv.url, script))
        assert "the opponent crashed" in failed and "game is over" in after
        wait_for(lambda: not srv.games, "the failed game to be freed")
        assert urllib.request.urlopen(srv.url, timeout=30).status == 200


def test_server_plays_a_trained_agent_checkpoint(tmp_path):
    pytest.importorskip("torch")
    from gristmill.apps.generals.agent import Policy

    ckpt = Policy.create(history=2, channels=8, blocks=1, stem_channels=4).save(
        tmp_path / "tiny.pt")
    cfg = PlayConfig(opponent=str(ckpt), turn_based=True, truncation=8, replays=tmp_path)

    async def script(ws, recv):
        start = await recv("start")
        for _ in range(8):
            await ws.send_json({"type": "step"})
        states = [await recv("state") for _ in range(9)]
        return start, states, await recv("over")

    with running(cfg) as srv:
        start, states, over = asyncio.run(_client_session(srv.url, script))
    assert start["players"] == ["you", "tiny"]
    assert [s["tick"] for s in states] == list(range(9))
    assert over["ticks"] == 8
    rep = Replay.load(tmp_path / over["replay"])
    assert rep.num_ticks == 8 and (rep.action_array()[:, 0, 0] == 1).all()


def test_cli_serve_prints_its_loopback_url_serves_and_stops_on_ctrl_c(tmp_path):
    cmd = [sys.executable, "-m", "gristmill.apps.generals", "serve", "--port", "0",
           "--replays", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "serve printed nothing in 120 s"
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url and "expander" in line, line + proc.stderr.read()
        page = urllib.request.urlopen(url.group(0), timeout=30).read().decode()
        assert "<script src" not in page and "new WebSocket" in page
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_serve_names_a_busy_port_and_a_bad_opponent(tmp_path, capsys):
    from gristmill.apps.generals.cli import main

    with running(PlayConfig(replays=tmp_path)) as srv:
        port = srv.url.rsplit(":", 1)[1].strip("/")
        assert main(["serve", "--port", port, "--replays", str(tmp_path)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", "--opponent", str(tmp_path / "none.pt")]) == 2
    assert "neither a bot" in capsys.readouterr().err


def test_cli_view_writes_a_directory_page_and_names_a_missing_replay(finished_game, tmp_path,
                                                                    capsys):
    from gristmill.apps.generals.cli import main

    path, _ = finished_game
    out = tmp_path / "all.html"
    assert main(["view", str(path.parent), "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count('type="application/json" id="game-') == len(list(path.parent.glob("*.npz")))
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    assert main(["view", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz: no such replay" in capsys.readouterr().err

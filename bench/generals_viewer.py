"""How big and how smooth the Generals replay viewer is on a long game, in headless Chromium.

Plays one ``expander`` vs ``expander`` game to the tick limit (default 1,000 ticks), writes its
viewer page and measures in Debian's headless Chromium: the page's size, the time to open the
game (parse + expand the diffs), ``gm.seek`` with a forced layout (sequential scrub over every
tick and random jumps, full board and fogged), and frame intervals while a
``requestAnimationFrame`` loop seeks a random tick every frame (the slider being dragged).

    flock /tmp/gristmill-bench.lock .venv/bin/python -P bench/generals_viewer.py [--ticks 1000]

(``-P``: bench/queue.py would shadow the standard library's ``queue`` that selenium imports.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from gristmill.apps.generals.viewer import write_viewer
from gristmill.envs.generals.tournament import play_match

MEASURE = """
const done = arguments[arguments.length - 1];
const T = gm.game.num_ticks, out = {};
function timeSeeks(ticks) {
  const ms = [];
  for (const t of ticks) {
    const t0 = performance.now();
    gm.seek(t);
    void document.body.offsetHeight;  // force style + layout
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return {mean: ms.reduce((a, b) => a + b) / ms.length, p95: ms[Math.floor(0.95 * ms.length)],
          max: ms[ms.length - 1]};
}
const seq = [...Array(T + 1).keys()];
const rnd = Array.from({length: 500}, () => Math.floor(Math.random() * (T + 1)));
gm.setView(null);
out.sequential_full = timeSeeks(seq);
out.random_full = timeSeeks(rnd);
gm.setView(0);
out.random_fog = timeSeeks(rnd);
gm.setView(null);
const frames = [];
let last = performance.now(), n = 0;
function frame(now) {
  frames.push(now - last);
  last = now;
  gm.seek(Math.floor(Math.random() * (T + 1)));
  if (++n < 300) requestAnimationFrame(frame);
  else {
    frames.shift();
    frames.sort((a, b) => a - b);
    out.raf_frame_ms = {p50: frames[150], p95: frames[Math.floor(0.95 * frames.length)],
                        max: frames[frames.length - 1]};
    done(out);
  }
}
requestAnimationFrame(frame);
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=1000)
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    res = play_match("expander", "expander", games=1, truncation=args.ticks, seed=0,
                     keep_replays=1)
    with tempfile.TemporaryDirectory() as d:
        rep = res.replays[0].save(Path(d) / "long.npz")
        html = write_viewer(rep, Path(d) / "long.html")
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,900"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        try:
            driver.set_script_timeout(120)
            driver.get(html.as_uri())
            load = driver.execute_script(
                "const e = performance.getEntriesByType('navigation')[0];"
                "return e.domContentLoadedEventEnd - e.startTime;")
            out = driver.execute_async_script(MEASURE)
            ticks = driver.execute_script("return gm.game.num_ticks")
        finally:
            driver.quit()
        sizes = {"replay_bytes": rep.stat().st_size, "html_bytes": html.stat().st_size}
    print(json.dumps({"ticks": ticks, **sizes, "open_ms": round(load, 1),
                      **{k: {m: round(v, 2) for m, v in d.items()} for k, d in out.items()}},
                     indent=1))


if __name__ == "__main__":
    main()

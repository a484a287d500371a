"""``gristmill-doom match A B``: two trained policies in a duel, and each against the bots.

``A`` and ``B`` are members (``RUN[:policy]`` or a checkpoint file, see
:func:`~.player.resolve_checkpoint`), or ``random`` (:class:`~.player.RandomPlayer`, the
uniformly random baseline; the other member then sets the observations). They play
``episodes`` duels (``doom_duel``, Sample Factory's self-play scenario: one map, two players,
the match's time limit) and each plays
``bot_episodes`` games of ``doom_duel_bots`` (one built-in bot). The result table counts wins
(an outright win: strictly more frags), frags and deaths; ``--video`` writes player A's view of
the first duel. Both members must see the same observations (resolution, colour, frame skip),
since they share one match. Duel (and bot game) ``k`` plays game seed ``seed + k``, and the
policies sample with torch seeded by ``seed``: evaluations split into calls with seeds ``0``,
``n``, ``2n``... are independent chunks of one longer evaluation. Matches may run in parallel
(each claims its own port, :func:`gristmill.envs.doom.claim_free_port`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import cv2
import numpy as np
import torch
from gristmill.apps.doom.env_factory import DoomEnvFactory
from gristmill.apps.doom.evaluate import open_video
from gristmill.apps.doom.player import RANDOM, DoomPlayer, RandomPlayer

__all__ = ["match", "format_table"]

_SAME = ("res_w", "res_h", "grayscale", "env_frameskip")


def _env(name: str, cfg, timelimit: float):
    """``name`` with the observations ``cfg`` trained on (the trainer's own env factory)."""
    return DoomEnvFactory(
        name, cfg.res_w, cfg.res_h, cfg.grayscale, cfg.env_frameskip, timelimit=timelimit
    )(0)


def _won(info: dict) -> bool:
    """An outright win (strictly more frags): the env's ``true_objective``."""
    return float(info.get("true_objective", 0.0)) > 0


def _tally(infos: list[dict]) -> dict:
    return {
        "wins": sum(_won(i) for i in infos),
        "frags": float(sum(i.get("FRAGCOUNT", 0.0) for i in infos)),
        "deaths": float(sum(i.get("DEATHCOUNT", 0.0) for i in infos)),
        "games": len(infos),
    }


def _frame(obs) -> np.ndarray:
    img = obs["obs"] if isinstance(obs, dict) else obs
    img = np.asarray(img).transpose(1, 2, 0)  # CHW -> HWC
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return cv2.resize(img, (img.shape[1] * 4, img.shape[0] * 4), interpolation=cv2.INTER_NEAREST)


def _check(should_stop) -> None:
    # A KeyboardInterrupt raised from a signal handler is lost when the signal lands inside a
    # callback whose exceptions are swallowed (a ctypes callback of numba's JIT cache did
    # that): the loops poll the stop flag too.
    if should_stop is not None and should_stop():
        raise KeyboardInterrupt


def _duels(players, cfg, episodes, timelimit, video, deterministic, seed: int, should_stop,
           progress):
    env = _env("doom_duel", cfg, timelimit)
    finals: list[list[dict]] = [[], []]
    writer = None
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            for p in players:
                p.reset()
            done, infos = False, [{}, {}]
            while not done:
                if video is not None and ep == 0:
                    frame = _frame(obs[0])
                    if writer is None:
                        writer = open_video(video, frame.shape[1], frame.shape[0])
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                _check(should_stop)
                acts = [p.act(o, deterministic) for p, o in zip(players, obs)]
                obs, _, term, trunc, infos = env.step(acts)
                done = any(term) or any(trunc)
            for j in (0, 1):
                finals[j].append(infos[j])
            fa, fb = (float(i.get("FRAGCOUNT", 0.0)) for i in infos)
            won = "A won" if _won(infos[0]) else "B won" if _won(infos[1]) else "draw"
            progress(f"duel {ep + 1}/{episodes} (seed {seed + ep}): frags A {fa:.0f} B {fb:.0f}"
                     f", {won}")
    finally:
        env.close()
        if writer is not None:
            writer.release()
    return finals


def _vs_bots(player, name, cfg, episodes, timelimit, deterministic, seed: int,
             should_stop, progress) -> list[dict]:
    env = _env("doom_duel_bots", cfg, timelimit)
    out = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            player.reset()
            done, info = False, {}
            while not done:
                _check(should_stop)
                obs, _, term, trunc, info = env.step(player.act(obs, deterministic))
                done = term or trunc
            out.append(info)
            progress(f"{name} vs bot {ep + 1}/{episodes} (seed {seed + ep}): frags "
                     f"{float(info.get('FRAGCOUNT', 0.0)):.0f}, deaths "
                     f"{float(info.get('DEATHCOUNT', 0.0)):.0f}")
    finally:
        env.close()
    return out


def match(
    a: str,
    b: str,
    episodes: int = 10,
    bot_episodes: int = 5,
    timelimit: float = 4.0,
    video: str | None = None,
    deterministic: bool = False,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> dict:
    """Play the duels and the bot games; returns the result rows and where the video is.
    ``should_stop`` is polled before every step: when it returns True the match raises
    ``KeyboardInterrupt`` (its games are closed on the way out). ``progress`` gets one line
    per finished game (a 4-minute duel takes about a minute of CPU)."""
    if episodes < 0 or bot_episodes < 0 or timelimit <= 0:
        raise ValueError("episodes and bot_episodes must be >= 0 and timelimit > 0 (minutes)")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    torch.manual_seed(seed)
    members = [None if spec == RANDOM else DoomPlayer.config_of(spec) for spec in (a, b)]
    trained = [m for m in members if m is not None]
    if not trained:
        raise ValueError("at least one of A and B must be a trained policy, not both 'random'")
    cfg = trained[0][0]
    if len(trained) == 2:
        differ = [k for k in _SAME if getattr(cfg, k) != getattr(trained[1][0], k)]
        if differ:
            raise ValueError(
                f"{a} and {b} were trained with different {differ}: they cannot share a match"
            )
    probe = _env("doom_duel", cfg, timelimit)
    spaces = probe.observation_space, probe.action_space
    probe.close()
    players = [
        RandomPlayer(spaces[1], seed=int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
        if m is None
        else DoomPlayer(m[0], m[1], m[2], *spaces)
        for i, m in enumerate(members)
    ]
    duels = [[], []]
    if episodes:
        duels = _duels(
            players, cfg, episodes, timelimit, video, deterministic, seed, should_stop, progress
        )
    rows = []
    for name, player, infos in zip((a, b), players, duels):
        bots = _vs_bots(
            player, name, cfg, bot_episodes, timelimit, deterministic, seed, should_stop, progress
        )
        rows.append({"player": name, "checkpoint": player.path, "duel": _tally(infos),
                     "vs_bots": _tally(bots)})  # fmt: skip
    draws = episodes - rows[0]["duel"]["wins"] - rows[1]["duel"]["wins"]
    return {"rows": rows, "duels": episodes, "draws": draws, "seed": seed, "video": video}


def format_table(result: dict) -> str:
    """The result as a Markdown table."""
    lines = [
        "| player | duel wins | duel frags | duel deaths | vs bots wins | bot frags | bot deaths |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        d, b = r["duel"], r["vs_bots"]
        lines.append(
            f"| {r['player']} | {d['wins']}/{d['games']} | {d['frags']:.0f} | {d['deaths']:.0f} "
            f"| {b['wins']}/{b['games']} | {b['frags']:.0f} | {b['deaths']:.0f} |"
        )
    lines.append(f"\n{result['draws']} of {result['duels']} duels drawn.")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - use gristmill-doom match
    import sys

    print(json.dumps(match(sys.argv[1], sys.argv[2]), indent=2))

"""envs._ale_frames: incremental gray + max-pool + INTER_AREA equals the full computation.

The reference is plain: look every pixel up in the palette, ``np.maximum`` the two frames,
``cv2.resize(..., INTER_AREA)``. Checked on real emulators (several games, thousands of steps)
and, for the corner cases (changes at the borders, in one word, everywhere; colours never seen
before arriving mid-frame; the switch between partial updates and full rebuilds), on random
palette screens fed through :class:`_Screens`.
"""

from __future__ import annotations

import ale_py
import cv2
import numpy as np
import pytest
from gristmill.envs import _ale_frames
from gristmill.envs._ale_frames import IncrementalGrayArea, gray_table
from hypothesis import assume, given, settings
from hypothesis import strategies as st


def _reference(g0, g1, dst_hw):
    return cv2.resize(np.maximum(g0, g1), (dst_hw[1], dst_hw[0]), interpolation=cv2.INTER_AREA)


class _Screens:
    """A source of palette screens with ALE's two fetch calls: ``getScreen`` (indices) and
    ``getScreenGrayscale`` (through ``palette``), for screens no ROM would draw."""

    def __init__(self, palette: np.ndarray):
        self.palette = palette
        self.screen = None

    def getScreen(self, out):  # noqa: N802 - ALE's name
        out[...] = self.screen

    def getScreenGrayscale(self, out):  # noqa: N802 - ALE's name
        out[...] = self.palette[self.screen]


@st.composite
def _episode(draw):
    h = draw(st.integers(8, 60))
    w = 8 * draw(st.integers(1, 12))
    hd = draw(st.integers(1, max(1, h - 1)))
    wd = draw(st.integers(1, max(1, w - 1)))
    seed = draw(st.integers(0, 2**32 - 1))
    steps = draw(st.integers(1, 12))
    return (h, w), (hd, wd), seed, steps


@settings(max_examples=80, deadline=None)
@given(_episode())
def test_random_screens_match_the_full_computation(case):
    src_hw, dst_hw, seed, steps = case
    assume(_ale_frames.supported(src_hw, dst_hw))
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, 256).astype(np.uint8)
    screens = _Screens(palette)
    key = f"test-{seed}"  # a fresh table: colours are learnt as they come
    colours = rng.choice(256, rng.integers(2, 40), replace=False).astype(np.uint8)
    inc = IncrementalGrayArea(screens, key, src_hw, dst_hw)
    out = np.empty(dst_hw, np.uint8)
    screen = colours[rng.integers(0, len(colours), src_hw)].astype(np.uint8)
    before = np.zeros(src_hw, np.uint8)  # a reset frame: the one before reads as black
    inc.reset()
    screens.screen = screen
    inc.grab(0)
    inc.frame(out)
    np.testing.assert_array_equal(out, _reference(palette[screen], before, dst_hw))
    for _ in range(steps):
        frames = []
        for k in (1, 0):
            kind = rng.integers(0, 4)
            screen = screen.copy()
            if kind == 0:  # a few pixels, anywhere, borders included
                n = rng.integers(1, 12)
                ys, xs = rng.integers(0, src_hw[0], n), rng.integers(0, src_hw[1], n)
                screen[ys, xs] = colours[rng.integers(0, len(colours), n)]
            elif kind == 1:  # a block of rows (more than the rebuild threshold, sometimes)
                y0 = rng.integers(0, src_hw[0])
                y1 = rng.integers(y0 + 1, src_hw[0] + 1)
                screen[y0:y1] = colours[rng.integers(0, len(colours), (y1 - y0, src_hw[1]))]
            elif kind == 2:  # a colour never seen before, mid-frame
                screen[rng.integers(0, src_hw[0]), rng.integers(0, src_hw[1])] = rng.integers(
                    0, 256)
            # kind 3: unchanged
            screens.screen = screen
            inc.grab(k)
            frames.append(screen)
        inc.frame(out)
        g1, g0 = (palette[f] for f in frames)
        np.testing.assert_array_equal(out, _reference(g0, g1, dst_hw))


def test_gray_table_is_learnt_from_the_emulator_not_assumed():
    table = gray_table("test-fresh-key")
    assert (table == -1).all()
    palette = np.arange(256, dtype=np.uint8)[::-1].copy()
    screens = _Screens(palette)
    screens.screen = np.full((16, 16), 7, np.uint8)
    inc = IncrementalGrayArea(screens, "test-fresh-key", (16, 16), (5, 5))
    inc.reset()
    inc.grab(0)
    assert table[7] == palette[7] and inc.learnt == 1
    inc.grab(1)  # known colour: no second fetch
    assert inc.learnt == 1


def test_width_not_a_multiple_of_eight_is_refused():
    with pytest.raises(ValueError, match="multiple of 8"):
        IncrementalGrayArea(_Screens(np.zeros(256, np.uint8)), "x", (30, 30), (7, 7))


@pytest.mark.parametrize("game", ["pong", "breakout", "enduro"])
def test_real_games_match_the_full_computation(game):
    """Real emulators, random actions, frame skip 4: every step's frame equals the full
    computation from ``getScreenGrayscale`` (enduro scrolls: it exercises full rebuilds)."""
    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("random_seed", 1)
    ale.loadROM(ale_py.roms.get_rom_path(game))
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(0)
    dims = tuple(ale.getScreenDims())
    inc = IncrementalGrayArea(ale, game, dims, (84, 84))
    gray = np.zeros((2,) + dims, np.uint8)
    out = np.empty((84, 84), np.uint8)
    inc.reset()
    inc.grab(0)
    ale.getScreenGrayscale(gray[0])
    inc.frame(out)
    np.testing.assert_array_equal(out, _reference(gray[0], gray[1], (84, 84)))
    for step in range(400):
        a = actions[rng.integers(len(actions))]
        for t in range(4):
            ale.act(a)
            if t == 2:
                inc.grab(1)
                ale.getScreenGrayscale(gray[1])
        inc.grab(0)
        ale.getScreenGrayscale(gray[0])
        inc.frame(out)
        np.testing.assert_array_equal(out, _reference(gray[0], gray[1], (84, 84)),
                                      err_msg=f"{game} step {step}")
        if ale.game_over():
            ale.reset_game()

"""envs._area_resize: OpenCV's INTER_AREA downscaling reproduced bit for bit (cv2 is the oracle)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from gristmill.envs._area_resize import AreaResize, area_taps, supported
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st


def _cv2(src, dst_hw):
    return cv2.resize(src, (dst_hw[1], dst_hw[0]), interpolation=cv2.INTER_AREA)


@st.composite
def _case(draw):
    hs = draw(st.integers(2, 260))
    ws = draw(st.integers(2, 260))
    hd = draw(st.integers(1, hs))
    wd = draw(st.integers(1, ws))
    assume(supported((hs, ws), (hd, wd)))
    kind = draw(st.sampled_from(["uniform", "levels", "constant", "extremes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "uniform":
        img = rng.integers(0, 256, (hs, ws), dtype=np.uint8)
    elif kind == "levels":  # few distinct values: exact .5 cases in the sums are likely
        img = (rng.integers(0, 4, (hs, ws)) * 85).astype(np.uint8)
    elif kind == "constant":
        img = np.full((hs, ws), rng.integers(0, 256), np.uint8)
    else:
        img = rng.choice(np.array([0, 255], np.uint8), (hs, ws))
    return img, (hd, wd)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_case())
def test_matches_opencv_on_random_frames_and_sizes(case):
    img, dst_hw = case
    out = AreaResize(img.shape, dst_hw)(img)
    np.testing.assert_array_equal(out, _cv2(img, dst_hw))


def test_matches_opencv_on_real_atari_frames():
    from ale_py import ALEInterface, LoggerMode, roms

    ale = ALEInterface()
    ale.setLoggerMode(LoggerMode.Error)
    ale.setInt("random_seed", 3)
    ale.loadROM(roms.get_rom_path("breakout"))
    resize = AreaResize((210, 160), (84, 84))
    frame = np.empty((210, 160), np.uint8)
    out = np.empty((84, 84), np.uint8)
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(0)
    for _ in range(300):
        ale.act(actions[rng.integers(len(actions))])
        ale.getScreenGrayscale(frame)
        resize(frame, out)  # reuses its buffers: no state may leak between calls
        np.testing.assert_array_equal(out, _cv2(frame, (84, 84)))


def test_taps_are_opencv_area_weights():
    index, weight = area_taps(160, 84)
    assert index.shape == weight.shape and index.shape[0] == 84
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, rtol=1e-6)  # each cell averages
    assert index.min() == 0 and index.max() == 159
    assert (np.diff(index[:, 0]) >= 0).all()


def test_unsupported_sizes_and_bad_input_raise():
    assert not supported((210, 160), (105, 80))  # integer factors: OpenCV's fast path
    assert not supported((84, 84), (168, 100))  # upscaling
    with pytest.raises(ValueError, match="non-integer area downscale"):
        AreaResize((210, 160), (105, 80))
    r = AreaResize((210, 160), (84, 84))
    with pytest.raises(ValueError, match="src must be uint8"):
        r(np.zeros((210, 160), np.float32))
    with pytest.raises(ValueError, match="out must be uint8"):
        r(np.zeros((210, 160), np.uint8), np.zeros((84, 83), np.uint8))

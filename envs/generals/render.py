"""Pictures of Generals boards: RGB frames (OpenCV text for armies) and ANSI text.

Both draw the full state (``terrain``, ``owner``, ``army`` of one board, h x w) or one player's
view when ``fog`` (bool [h, w], True = hidden) is given. Colours follow generals.io: player 0
red, player 1 blue, neutral grey, mountains dark, cities with a square, generals with a crown
dot.
"""

from __future__ import annotations

import numpy as np

from .maps import CITY, GENERAL, MOUNTAIN

__all__ = ["render_ansi", "render_rgb"]

_PLAYER = np.array([[230, 60, 60], [40, 110, 230]], np.uint8)
_NEUTRAL = np.array([220, 220, 220], np.uint8)
_NEUTRAL_CITY = np.array([120, 120, 120], np.uint8)
_MOUNTAIN = np.array([70, 70, 70], np.uint8)
_FOG = np.array([40, 40, 40], np.uint8)
_FOG_OBSTACLE = np.array([55, 55, 55], np.uint8)


def render_rgb(terrain, owner, army, dims, cell: int = 24, fog=None,
               caption: str = "") -> np.ndarray:
    """uint8 [h*cell (+caption strip), w*cell, 3] picture of one board."""
    import cv2

    h, w = int(dims[0]), int(dims[1])
    top = 18 if caption else 0
    img = np.zeros((h * cell + top, w * cell, 3), np.uint8)
    img[:top] = 255
    for i in range(h):
        for j in range(w):
            t, o, a = terrain[i, j], owner[i, j], int(army[i, j])
            hidden = fog is not None and fog[i, j]
            if hidden:
                col = _FOG_OBSTACLE if t in (MOUNTAIN, CITY) else _FOG
            elif t == MOUNTAIN:
                col = _MOUNTAIN
            elif o >= 0:
                col = _PLAYER[o]
            else:
                col = _NEUTRAL_CITY if t == CITY else _NEUTRAL
            y0, x0 = top + i * cell, j * cell
            img[y0 + 1:y0 + cell, x0 + 1:x0 + cell] = col
            if hidden or t == MOUNTAIN:
                continue
            if t == CITY:
                cv2.rectangle(img, (x0 + 3, y0 + 3), (x0 + cell - 4, y0 + cell - 4),
                              (255, 255, 255), 1)
            elif t == GENERAL:
                cv2.circle(img, (x0 + cell // 2, y0 + cell // 2), cell // 2 - 3, (255, 215, 0), 2)
            if a:
                text = str(a) if a < 1000 else f"{a // 1000}k"
                scale = 0.33 if len(text) < 3 else 0.27
                size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0]
                cv2.putText(img, text, (x0 + (cell - size[0]) // 2, y0 + (cell + size[1]) // 2),
                            cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0) if o < 0 else
                            (255, 255, 255), 1, cv2.LINE_AA)
    if caption:
        cv2.putText(img, caption, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return img


def render_ansi(terrain, owner, army, dims, fog=None, caption: str = "") -> str:
    """Text picture: 4 columns per cell, ANSI colours (red/blue players), ``##`` mountains,
    ``C`` cities, ``G`` generals, ``..`` fog."""
    h, w = int(dims[0]), int(dims[1])
    lines = [caption] if caption else []
    colours = ("\x1b[41;97m", "\x1b[44;97m")
    reset = "\x1b[0m"
    for i in range(h):
        row = []
        for j in range(w):
            t, o, a = terrain[i, j], owner[i, j], int(army[i, j])
            if fog is not None and fog[i, j]:
                row.append("  ? " if t in (MOUNTAIN, CITY) else "  . ")
                continue
            if t == MOUNTAIN:
                row.append(" ## ")
                continue
            mark = "G" if t == GENERAL else ("C" if t == CITY else " ")
            cell = f"{mark}{a:>3}" if a < 1000 else f"{mark}{a // 1000:>2}k"
            row.append(f"{colours[o]}{cell}{reset}" if o >= 0 else cell)
        lines.append("".join(row))
    return "\n".join(lines)

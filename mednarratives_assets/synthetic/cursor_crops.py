"""Generated crops of lecture frames, with and without a mouse pointer, for training the cursor detector.

Crops are CROP_PX square at 720p scale, the size the detector sees at run time. A pointer crop
holds one sprite of a random style (arrow, hand, crosshair or I-beam; system or coloured; 14 to
60 px; with or without a drop shadow), pasted at any position so that part of it may be cut off;
its label is the box around the visible sprite and its hotspot. Backgrounds are medical slides and
every non-medical frame kind of the frame classifier's training, drawn at 1280x720 without a
pointer. Each crop is then degraded like video: JPEG at a random quality, sometimes a blur or a
down-and-up scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from mednarratives_assets.synthetic.classifier_frames import NEGATIVE_KINDS, negative_frame, positive_frame
from mednarratives_assets.synthetic.pointers import (
    CURSOR_SHAPES,
    CURSOR_THEMES,
    CursorSprite,
    CursorStyle,
    render_sprite,
)

CROP_PX = 128  # side of a detector input, in pixels of a 720p frame
FRAME_720P = (1280, 720)
SPRITE_HEIGHTS = (14, 60)
_CROPS_PER_FRAME = 8
_MIN_VISIBLE_ALPHA = 64  # sprite pixels at least this opaque make up the labelled box
_MIN_VISIBLE_PX = 30  # a pointer cut off to fewer visible pixels than this is not labelled


@dataclass(frozen=True)
class CursorCrop:
    image: np.ndarray  # RGB uint8 (CROP_PX, CROP_PX, 3)
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 of the visible sprite, in the crop
    hotspot: tuple[float, float] | None  # the pixel the pointer points at, in the crop
    style: CursorStyle | None


def random_cursor_style(rng: np.random.Generator) -> CursorStyle:
    """Any shape; a system theme (light or dark) six times in ten, else a colour; sizes log-uniform."""
    themes = tuple(CURSOR_THEMES)
    theme = themes[rng.integers(2)] if rng.random() < 0.6 else themes[2 + rng.integers(len(themes) - 2)]
    low, high = np.log(SPRITE_HEIGHTS[0]), np.log(SPRITE_HEIGHTS[1])
    return CursorStyle(
        shape=CURSOR_SHAPES[rng.integers(len(CURSOR_SHAPES))],
        theme=theme,
        size=int(round(np.exp(rng.uniform(low, high)))),
        shadow=bool(rng.random() < 0.4),
    )


def _background(rng: np.random.Generator, picture_for: Callable[[int], np.ndarray], j: int) -> np.ndarray:
    """A 720p frame without a pointer: a medical slide half the time, else a frame of any other kind."""
    if rng.random() < 0.5:
        return positive_frame(picture_for(j), rng, FRAME_720P, pointer=False)
    return negative_frame(NEGATIVE_KINDS[rng.integers(len(NEGATIVE_KINDS))], rng, FRAME_720P, pointer=False)


def _degrade(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Video compression, roughly: JPEG at quality 25 to 95, sometimes blurred or rescaled first."""
    effect = rng.random()
    if effect < 0.15:
        region = cv2.GaussianBlur(region, (3, 3), 0)
    elif effect < 0.3:
        h, w = region.shape[:2]
        scale = rng.uniform(0.5, 0.8)
        small = cv2.resize(region, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        region = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 96))])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else region


@cache
def _sprite(style: CursorStyle) -> CursorSprite:
    return render_sprite(style)


def _paste(region: np.ndarray, sprite: CursorSprite, x: int, y: int) -> np.ndarray:
    """Alpha-blend the sprite with its hotspot at (x, y); returns its opaque pixels' (x, y) in the region."""
    h, w = sprite.rgba.shape[:2]
    left, top = x - sprite.hotspot[0], y - sprite.hotspot[1]
    alpha = sprite.rgba[..., 3:4].astype(np.float32) / 255.0
    target = region[top : top + h, left : left + w]
    target[:] = (sprite.rgba[..., :3] * alpha + target * (1.0 - alpha)).astype(np.uint8)
    ys, xs = np.nonzero(sprite.rgba[..., 3] >= _MIN_VISIBLE_ALPHA)
    return np.stack([xs + left, ys + top], axis=1)


def cursor_crops(
    n: int, seed: int, picture_for: Callable[[int], np.ndarray], pointer_fraction: float = 0.6
) -> Iterator[CursorCrop]:
    """n crops, `pointer_fraction` of them with a pointer; crop i depends only on (seed, i // 8).

    The region around each crop is padded by the largest sprite, so a pointer whose hotspot lies
    near the crop's edge is drawn whole and then cut by the crop, as it would be in a frame.
    """
    pad = 2 * SPRITE_HEIGHTS[1]
    for start in range(0, n, _CROPS_PER_FRAME):
        rng = np.random.default_rng([seed, start // _CROPS_PER_FRAME])
        frame = cv2.copyMakeBorder(
            _background(rng, picture_for, start // _CROPS_PER_FRAME), pad, pad, pad, pad, cv2.BORDER_REFLECT
        )
        for _ in range(min(_CROPS_PER_FRAME, n - start)):
            x0 = pad + int(rng.integers(0, FRAME_720P[0] - CROP_PX))
            y0 = pad + int(rng.integers(0, FRAME_720P[1] - CROP_PX))
            region = frame[y0 - pad : y0 + CROP_PX + pad, x0 - pad : x0 + CROP_PX + pad].copy()
            box = hotspot = style = None
            if rng.random() < pointer_fraction:
                style = random_cursor_style(rng)
                hx, hy = (int(v) for v in rng.integers(1, CROP_PX - 1, size=2))
                opaque = _paste(region, _sprite(style), pad + hx, pad + hy) - pad
                shown = opaque[((opaque >= 0) & (opaque < CROP_PX)).all(axis=1)]
                if len(shown) >= _MIN_VISIBLE_PX:
                    x_min, y_min = shown.min(axis=0)
                    x_max, y_max = shown.max(axis=0) + 1
                    box, hotspot = (
                        (float(x_min), float(y_min), float(x_max), float(y_max)),
                        (float(hx), float(hy)),
                    )
                else:  # only a sliver shows: leave the crop without a pointer rather than unlabelled
                    region = frame[y0 - pad : y0 + CROP_PX + pad, x0 - pad : x0 + CROP_PX + pad].copy()
                    style = None
            crop = _degrade(region, rng)[pad : pad + CROP_PX, pad : pad + CROP_PX]
            yield CursorCrop(np.ascontiguousarray(crop), box, hotspot, style)

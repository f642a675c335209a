"""Generated crops of lecture frames, with and without a mouse pointer, for training the cursor detector.

Crops are CROP_PX square at 720p scale, the size the detector sees at run time. A pointer crop
holds one sprite whose theme, shape, size (16 to 96 px at 1080p, so 11 to 64 px here) and drop
shadow are drawn independently, from the themes the caller names (the training themes: reserved
ones must never reach a detector), with a laser dot now and then when a laser theme is among
them. The sprite is pasted with its hotspot at any float position, so part of it may be cut
off; its label is the box around the visible sprite and the sprite's own hotspot. Backgrounds are
medical slides and every non-medical frame kind of the frame classifier's training, drawn at
1280x720 without a pointer. Each crop is then degraded like video: JPEG at a random quality,
sometimes a blur or a down-and-up scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from mednarratives_assets.synthetic.classifier_frames import NEGATIVE_KINDS, negative_frame, positive_frame
from mednarratives_assets.synthetic.pointers import (
    LASER_THEMES,
    CursorSprite,
    CursorStyle,
    draw_theme,
    paste_sprite,
    render_sprite,
    sprite_coverage,
    theme_shapes,
)

CROP_PX = 128  # side of a detector input, in pixels of a 720p frame
FRAME_720P = (1280, 720)
SPRITE_HEIGHTS = (11, 64)  # 16 to 96 px at 1080p
LASER_SHARE = 0.1  # of pointers, when the themes include a laser
_CROPS_PER_FRAME = 8
_MIN_VISIBLE_OPACITY = 0.25  # sprite pixels at least this opaque make up the labelled box
_MIN_VISIBLE_PX = 30  # a pointer cut off to fewer visible pixels (or half of a small dot's) is not labelled


@dataclass(frozen=True)
class CursorCrop:
    image: np.ndarray  # RGB uint8 (CROP_PX, CROP_PX, 3)
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 of the visible sprite, in the crop
    hotspot: tuple[float, float] | None  # the pixel the pointer points at, in the crop
    style: CursorStyle | None


def random_cursor_style(rng: np.random.Generator, themes: Sequence[str]) -> CursorStyle:
    """A style from the given themes only: theme, shape, size and shadow drawn independently.

    The theme is a laser LASER_SHARE of the time (when lasers are given), else `draw_theme`'s.
    Sizes are log-uniform over SPRITE_HEIGHTS; a shadow four times in ten.
    """
    if not themes:
        raise ValueError("random_cursor_style needs at least one cursor theme to draw from")
    lasers = sorted({theme for theme in themes if theme in LASER_THEMES})
    pointers = sorted({theme for theme in themes if theme not in LASER_THEMES})
    if lasers and (not pointers or rng.random() < LASER_SHARE):
        theme = lasers[rng.integers(len(lasers))]
    else:
        theme = draw_theme(pointers, rng)
    shapes = theme_shapes(theme)
    low, high = np.log(SPRITE_HEIGHTS[0]), np.log(SPRITE_HEIGHTS[1])
    return CursorStyle(
        shape=shapes[rng.integers(len(shapes))],
        theme=theme,
        size=int(round(np.exp(rng.uniform(low, high)))),
        shadow=bool(rng.random() < 0.4),
    )


def _background(
    rng: np.random.Generator, picture_for: Callable[[int], np.ndarray], j: int, designs: Sequence[str]
) -> np.ndarray:
    """A 720p frame without a pointer: a medical slide half the time, else a frame of any other kind;
    part of them in the given slide designs, whose arrows and letters drawn on pictures teach the
    detector what is not a pointer."""
    if rng.random() < 0.5:
        return positive_frame(picture_for(j), rng, FRAME_720P, pointer=False, designs=designs)
    kind = NEGATIVE_KINDS[rng.integers(len(NEGATIVE_KINDS))]
    return negative_frame(kind, rng, FRAME_720P, pointer=False, designs=designs)


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


def cursor_crops(
    n: int,
    seed: int,
    picture_for: Callable[[int], np.ndarray],
    pointer_fraction: float = 0.6,
    *,
    themes: Sequence[str],
    designs: Sequence[str] = (),
) -> Iterator[CursorCrop]:
    """n crops, `pointer_fraction` of them with a pointer drawn from `themes` on backgrounds partly
    in slide `designs` (the caller's choice: the training themes and designs); crop i depends only
    on (seed, i // 8, themes, designs).

    The region around each crop is padded by twice the largest sprite height, so a pointer whose
    hotspot lies near the crop's edge is drawn whole and then cut by the crop, as it would be in a frame.
    """
    for theme in themes:
        theme_shapes(theme)  # an unknown or missing theme fails here, before any work
    pad = 2 * SPRITE_HEIGHTS[1]
    region_size = (CROP_PX + 2 * pad, CROP_PX + 2 * pad)
    for start in range(0, n, _CROPS_PER_FRAME):
        rng = np.random.default_rng([seed, start // _CROPS_PER_FRAME])
        frame = cv2.copyMakeBorder(
            _background(rng, picture_for, start // _CROPS_PER_FRAME, designs),
            pad,
            pad,
            pad,
            pad,
            cv2.BORDER_REFLECT,
        )
        for _ in range(min(_CROPS_PER_FRAME, n - start)):
            x0 = pad + int(rng.integers(0, FRAME_720P[0] - CROP_PX))
            y0 = pad + int(rng.integers(0, FRAME_720P[1] - CROP_PX))
            region = frame[y0 - pad : y0 + CROP_PX + pad, x0 - pad : x0 + CROP_PX + pad].copy()
            box = hotspot = style = None
            if rng.random() < pointer_fraction:
                style = random_cursor_style(rng, themes)
                hx, hy = (float(v) for v in rng.uniform(1, CROP_PX - 1, size=2))
                sprite = _sprite(style)
                opaque = sprite_coverage(sprite, pad + hx, pad + hy, region_size) >= _MIN_VISIBLE_OPACITY
                ys, xs = np.nonzero(opaque[pad : pad + CROP_PX, pad : pad + CROP_PX])
                if len(xs) >= min(_MIN_VISIBLE_PX, opaque.sum() / 2):
                    paste_sprite(region, sprite, pad + hx, pad + hy)
                    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
                    hotspot = (hx, hy)
                else:  # only a sliver shows: leave the crop without a pointer rather than unlabelled
                    style = None
            crop = _degrade(region, rng)[pad : pad + CROP_PX, pad : pad + CROP_PX]
            yield CursorCrop(np.ascontiguousarray(crop), box, hotspot, style)

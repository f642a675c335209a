"""Slides as a lecturer shows them: title slides, bullet slides, and slides that carry a medical image."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Rect = tuple[int, int, int, int]  # x, y, w, h in frame pixels


@dataclass(frozen=True)
class SlideTheme:
    name: str
    background: tuple[int, int, int]
    text: tuple[int, int, int]
    accent: tuple[int, int, int]


THEMES = {
    "dark": SlideTheme("dark", (17, 24, 39), (235, 238, 245), (96, 165, 250)),
    "light": SlideTheme("light", (250, 250, 246), (31, 35, 41), (190, 50, 55)),
    "slate": SlideTheme("slate", (52, 61, 70), (240, 240, 235), (250, 190, 80)),
}


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's own files, so text renders the same on every machine."""
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(
        str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name), size
    )


def _canvas(size: tuple[int, int], theme: SlideTheme) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", size, theme.background)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, size[1] - 10, size[0], size[1]], fill=theme.accent)
    return image, draw


def _wrap(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=face) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _heading(draw: ImageDraw.ImageDraw, size: tuple[int, int], theme: SlideTheme, text: str) -> int:
    """Draw the slide's heading; returns the y where the body starts."""
    scale = size[1] / 720
    face = font(round(40 * scale), bold=True)
    draw.text((round(60 * scale), round(32 * scale)), text, font=face, fill=theme.text)
    y = round(92 * scale)
    draw.rectangle(
        [round(60 * scale), y, round(260 * scale), y + max(2, round(5 * scale))], fill=theme.accent
    )
    return y + round(24 * scale)


def title_slide(size: tuple[int, int], theme: SlideTheme, title: str, subtitle: str) -> np.ndarray:
    image, draw = _canvas(size, theme)
    scale = size[1] / 720
    title_face, subtitle_face = font(round(56 * scale), bold=True), font(round(30 * scale))
    lines = _wrap(draw, title, title_face, size[0] - round(200 * scale))
    y = size[1] // 2 - len(lines) * round(70 * scale) // 2 - round(40 * scale)
    for line in lines:
        draw.text((size[0] // 2, y), line, font=title_face, fill=theme.text, anchor="mt")
        y += round(70 * scale)
    draw.rectangle(
        [size[0] // 2 - round(120 * scale), y + 10, size[0] // 2 + round(120 * scale), y + 16],
        fill=theme.accent,
    )
    draw.text(
        (size[0] // 2, y + round(40 * scale)), subtitle, font=subtitle_face, fill=theme.text, anchor="mt"
    )
    return np.asarray(image).copy()


def bullet_slide(
    size: tuple[int, int], theme: SlideTheme, heading: str, bullets: list[str]
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The slide, and where each bullet's text starts (where a lecturer points while reading it)."""
    image, draw = _canvas(size, theme)
    scale = size[1] / 720
    y = _heading(draw, size, theme, heading) + round(20 * scale)
    face = font(round(32 * scale))
    anchors = []
    left = round(100 * scale)
    for bullet in bullets:
        r = round(7 * scale)
        draw.ellipse(
            [left - 30 * scale - r, y + 18 * scale - r, left - 30 * scale + r, y + 18 * scale + r],
            fill=theme.accent,
        )
        anchors.append((left, y + round(18 * scale)))
        for line in _wrap(draw, bullet, face, size[0] - left - round(380 * scale)):
            draw.text((left, y), line, font=face, fill=theme.text)
            y += round(44 * scale)
        y += round(22 * scale)
    return np.asarray(image).copy(), anchors


def image_slide(
    size: tuple[int, int],
    theme: SlideTheme,
    heading: str,
    picture: np.ndarray,
    notes: list[str],
    reserved: Rect | None = None,
) -> tuple[np.ndarray, Rect]:
    """A medical image with the heading above and, when `notes` are given, short notes to its right.

    Returns the slide and the rectangle the image occupies. `reserved` (such as a webcam inset)
    is kept clear of the image and the notes.
    """
    image, draw = _canvas(size, theme)
    scale = size[1] / 720
    top = _heading(draw, size, theme, heading)
    bottom = size[1] - round(40 * scale)
    if reserved is not None:
        bottom = min(bottom, reserved[1] - round(16 * scale)) if notes else bottom
    area_w = round(size[0] * (0.58 if notes else 0.9))
    right_limit = reserved[0] - round(16 * scale) if reserved is not None and not notes else size[0]
    area_w = min(area_w, right_limit - round(60 * scale))
    area_h = bottom - top
    h, w = picture.shape[:2]
    fit = min(area_w / w, area_h / h)
    new_w, new_h = max(1, round(w * fit)), max(1, round(h * fit))
    x = round(60 * scale) + (area_w - new_w) // 2 if notes else (min(size[0], right_limit) - new_w) // 2
    y = top + (area_h - new_h) // 2
    image.paste(Image.fromarray(picture).resize((new_w, new_h), Image.Resampling.LANCZOS), (x, y))
    if notes:
        face = font(round(26 * scale))
        left = x + new_w + round(40 * scale)
        ny = top + round(10 * scale)
        for note in notes:
            for line in _wrap(draw, note, face, size[0] - left - round(40 * scale)):
                draw.text((left, ny), line, font=face, fill=theme.text)
                ny += round(34 * scale)
            ny += round(18 * scale)
    return np.asarray(image).copy(), (x, y, new_w, new_h)

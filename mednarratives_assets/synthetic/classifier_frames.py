"""Generated lecture frames, medical and not, for training the frame classifier.

The frames are far more varied than the demo lectures' renderer (any background colour, any layout,
the picture from a quarter of the frame to all of it, letterboxed on black, with or without text,
webcam insets, a pointer, video compression), so the classifier learns what a medical image looks
like rather than what the demo slides look like. Ordinary photos on slides, several of them
grayscale, are the hard negatives.

Given slide design names (`designs`, the training designs of the style space), half of the medical
slides, photo slides and text slides are drawn in those designs instead: header bars, framed,
matted or shadowed pictures, one or two of them, annotations and captions over the picture.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mednarratives_assets.packaged_images import package_file
from mednarratives_assets.synthetic.pointers import (
    CURSOR_SHAPES,
    CURSOR_THEMES,
    CursorSprite,
    CursorStyle,
    paste_sprite,
    render_sprite,
)
from mednarratives_assets.synthetic.slides import (
    SLIDE_DESIGNS,
    TEXT_POSITIONS,
    SlideDesign,
    bullet_slide,
    designed_image_slide,
    title_slide,
)

NEGATIVE_KINDS = ("text_slide", "diagram", "chart", "presenter", "desktop", "photo_slide")
FRAME_SIZE = (640, 360)  # (w, h) training frames are drawn at
_PICTURE_MAX_SIDE = 640  # loaded pictures are shrunk to this: frames are drawn at 640x360
# Ordinary photos that installed packages ship in their wheels (no download): scikit-image's (five of
# them grayscale), and a few people and scenes from matplotlib, scikit-learn and ultralytics.
_PHOTO_FILES = {
    "skimage": [
        f"data/{name}"
        for name in (
            "astronaut.png camera.png coffee.png chelsea.png rocket.jpg coins.png moon.png page.png text.png "
            "horse.png brick.png grass.png gravel.png clock_motion.png hubble_deep_field.jpg logo.png "
            "color.png motorcycle_left.png"
        ).split()
    ],
    "matplotlib": ["mpl-data/sample_data/grace_hopper.jpg"],
    "sklearn": ["datasets/images/china.jpg", "datasets/images/flower.jpg"],
    "ultralytics": ["assets/zidane.jpg", "assets/bus.jpg"],
}
_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
)
_WORDS = (
    "patient diagnosis treatment clinical acute chronic symptoms therapy dose risk factors management "
    "infection inflammation cardiac renal hepatic pulmonary neurological imaging findings differential "
    "signs anatomy physiology pathology lesion mass fracture tumour artery vein nerve muscle bone tissue "
    "cell blood pressure heart rate study results trial outcome survival mortality incidence prevalence "
    "review summary introduction objectives learning case history examination laboratory test normal "
    "abnormal left right upper lower anterior posterior lateral medial protocol guideline evidence level "
    "recommendation first second line the of and in with for to on a is are by from years age male female "
    "mechanism receptor enzyme drug antibiotic screening prognosis complication surgery anaesthesia"
).split()
_SKIN = ((241, 194, 167), (224, 172, 140), (198, 134, 98), (160, 105, 70), (115, 72, 45), (80, 52, 36))
_HAIR = ((30, 22, 18), (70, 45, 28), (120, 85, 50), (200, 170, 110), (160, 160, 160), (90, 30, 20))

Colour = tuple[int, int, int]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1


# ---------------------------------------------------------------- drawing helpers


@cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A font that matplotlib ships, so frames draw the same on every machine."""
    import matplotlib

    return ImageFont.truetype(
        str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name), size
    )


def _random_font(rng: np.random.Generator, size: float) -> ImageFont.FreeTypeFont:
    return _font(_FONTS[rng.integers(len(_FONTS))], max(7, round(size)))


def _hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _luminance(colour: Colour) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


@dataclass(frozen=True)
class _Palette:
    background: Colour
    text: Colour
    accent: Colour


def _palette(rng: np.random.Generator) -> _Palette:
    """Light, dark or any-hue background, with text that stays readable on it."""
    style, hue = rng.random(), rng.random()
    if style < 0.4:
        background = _hsv(hue, rng.uniform(0, 0.15), rng.uniform(0.88, 1.0))
    elif style < 0.75:
        background = _hsv(hue, rng.uniform(0, 0.6), rng.uniform(0.05, 0.3))
    else:
        background = _hsv(hue, rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.95))
    if _luminance(background) > 130:
        text = _hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0, 0.25))
    else:
        text = _hsv(rng.random(), rng.uniform(0, 0.2), rng.uniform(0.85, 1.0))
    return _Palette(background, text, _hsv(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0)))


def _canvas(rng: np.random.Generator, size: tuple[int, int], palette: _Palette) -> Image.Image:
    """A slide background: solid or gradient, with some of a template's thin bars and corner shapes."""
    w, h = size
    if rng.random() < 0.35:
        other = np.clip(np.array(palette.background) + rng.integers(-45, 46, 3), 0, 255)
        ramp = np.linspace(palette.background, other, h if rng.random() < 0.6 else w, dtype=np.float32)
        pixels = ramp[:, None, :].repeat(w, 1) if ramp.shape[0] == h else ramp[None].repeat(h, 0)
        image = Image.fromarray(pixels.astype(np.uint8))
    else:
        image = Image.new("RGB", size, palette.background)
    draw = ImageDraw.Draw(image)
    s = h / 360
    for edge in ("top", "bottom", "left"):
        if rng.random() < 0.25:
            t = round(rng.uniform(2, 12) * s)
            box = {"top": (0, 0, w, t), "bottom": (0, h - t, w, h), "left": (0, 0, t, h)}[edge]
            draw.rectangle(box, fill=palette.accent)
    if rng.random() < 0.2:
        r = round(rng.uniform(20, 70) * s)
        cx, cy = (w if rng.random() < 0.5 else 0), (h if rng.random() < 0.5 else 0)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=palette.accent)
    return image


def _words(rng: np.random.Generator, low: int, high: int) -> str:
    return " ".join(_WORDS[i] for i in rng.integers(len(_WORDS), size=rng.integers(low, high + 1)))


def _heading_text(rng: np.random.Generator) -> str:
    return _words(rng, 2, 5).title()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    """The text, cut word by word until it fits the width."""
    while text and draw.textlength(text, font=face) > width:
        text = text.rsplit(" ", 1)[0] if " " in text else ""
    return text


def _heading(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: tuple[int, int], palette: _Palette
) -> int:
    """A slide heading, left or centred, sometimes underlined; returns the y where the body starts."""
    w, h = size
    s = h / 360
    face = _random_font(rng, rng.uniform(15, 30) * s)
    margin = round(rng.uniform(12, 45) * s)
    top = round(rng.uniform(8, 24) * s)
    text = _fit_text(draw, _heading_text(rng), face, w - 2 * margin)
    if rng.random() < 0.3:
        draw.text((w // 2, top), text, font=face, fill=palette.text, anchor="mt")
    else:
        draw.text((margin, top), text, font=face, fill=palette.text)
    bottom = top + face.size + round(6 * s)
    if rng.random() < 0.5:
        draw.rectangle(
            (margin, bottom, margin + round(rng.uniform(60, 200) * s), bottom + 2), fill=palette.accent
        )
    return bottom + round(rng.uniform(6, 16) * s)


def _text_lines(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    box: Box,
    colour: Colour,
    accent: Colour,
    scale: float,
) -> None:
    """Bullets or running text filling (part of) a box."""
    x0, y0, x1, y1 = box
    face = _random_font(rng, rng.uniform(9, 18) * scale)
    step = round(face.size * rng.uniform(1.2, 1.6))
    bullets = rng.random() < 0.6
    indent = round(face.size * 1.2) if bullets else 0
    y = y0
    while y + step <= y1 and x1 - x0 - indent > face.size * 3:
        if bullets:
            r = max(2, face.size // 5)
            cy = y + face.size // 2
            draw.ellipse((x0 + r, cy - r, x0 + 3 * r, cy + r), fill=accent)
        n_lines = int(rng.integers(1, 4))
        for _ in range(n_lines):
            if y + step > y1:
                break
            text = _fit_text(draw, _words(rng, 3, 14), face, x1 - x0 - indent)
            draw.text((x0 + indent, y), text, font=face, fill=colour)
            y += step
        y += round(step * rng.uniform(0.1, 0.8))
        if rng.random() < 0.12:
            break


def _resized(picture: np.ndarray, width: int, height: int) -> Image.Image:
    interpolation = cv2.INTER_AREA if width < picture.shape[1] else cv2.INTER_LINEAR
    return Image.fromarray(cv2.resize(picture, (max(1, width), max(1, height)), interpolation=interpolation))


def _fit(picture: np.ndarray, width: int, height: int) -> tuple[int, int]:
    h, w = picture.shape[:2]
    scale = min(width / w, height / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _arrow(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    colour: Colour,
    width: int,
) -> None:
    draw.line((start, end), fill=colour, width=width)
    angle = np.arctan2(end[1] - start[1], end[0] - start[0])
    length = 4 + 3 * width
    left = (end[0] - length * np.cos(angle - 0.45), end[1] - length * np.sin(angle - 0.45))
    right = (end[0] - length * np.cos(angle + 0.45), end[1] - length * np.sin(angle + 0.45))
    draw.polygon((end, left, right), fill=colour)


# ---------------------------------------------------------------- pictures on slides (both classes)


def _picture_slide(
    pictures: list[np.ndarray], rng: np.random.Generator, size: tuple[int, int]
) -> tuple[Image.Image, list[Box]]:
    """One or two pictures on a slide of random layout; the same layouts carry medical images and photos.

    So that layout never tells the classes apart: full frame letterboxed (usually on black), a
    slide with or without heading and notes, the picture from about a quarter of the frame to all of
    it anywhere in the body, or an image viewer's dark window.
    """
    w, h = size
    s = h / 360
    layout = rng.random()
    if layout < 0.25:  # full frame, letterboxed
        dark = rng.random() < 0.8
        background = (0, 0, 0) if dark else _palette(rng).background
        image = Image.new("RGB", size, background)
        margin = rng.uniform(0, 0.06)
        pw, ph = _fit(pictures[0], round(w * (1 - margin)), round(h * (1 - margin)))
        x, y = (w - pw) // 2, (h - ph) // 2
        image.paste(_resized(pictures[0], pw, ph), (x, y))
        if rng.random() < 0.25:
            draw = ImageDraw.Draw(image)
            face = _random_font(rng, rng.uniform(9, 14) * s)
            draw.text(
                (round(8 * s), h - round(8 * s)),
                _words(rng, 2, 8),
                font=face,
                fill=(230, 230, 230),
                anchor="ls",
            )
        return image, [(x, y, x + pw, y + ph)]
    if layout < 0.33:
        return _viewer(pictures[0], rng, size)
    palette = _palette(rng)
    image = _canvas(rng, size, palette)
    draw = ImageDraw.Draw(image)
    top = _heading(draw, rng, size, palette) if rng.random() < 0.7 else round(rng.uniform(4, 20) * s)
    margin = round(rng.uniform(4, 30) * s)
    body = (margin, top, w - margin, h - round(rng.uniform(4, 24) * s))
    body_w, body_h = body[2] - body[0], body[3] - body[1]
    if len(pictures) > 1:  # two panels side by side
        gap = round(rng.uniform(4, 20) * s)
        fill = rng.uniform(0.6, 1.0)
        x, boxes = body[0], []
        for picture in pictures[:2]:
            pw, ph = _fit(picture, round((body_w - gap) / 2 * fill), round(body_h * fill))
            y = body[1] + (body_h - ph) // 2
            image.paste(_resized(picture, pw, ph), (x, y))
            boxes.append((x, y, x + pw, y + ph))
            x += pw + gap
        return image, boxes
    pw, ph = _fit(pictures[0], body_w, body_h)
    area = rng.uniform(0.25, 1.0) * (w * h) / (pw * ph)  # the picture's share of the frame's area
    shrink = min(1.0, float(np.sqrt(area)))
    pw, ph = max(1, round(pw * shrink)), max(1, round(ph * shrink))
    x = body[0] + round(rng.uniform(0, body_w - pw))
    y = body[1] + round(rng.uniform(0, body_h - ph))
    if rng.random() < 0.2:  # a frame around the picture
        border = round(rng.uniform(1, 5) * s)
        draw.rectangle(
            (x - border, y - border, x + pw + border - 1, y + ph + border - 1), fill=palette.accent
        )
    image.paste(_resized(pictures[0], pw, ph), (x, y))
    if rng.random() < 0.3:  # the lecturer's annotations on the picture
        colour = _hsv(rng.random(), 1.0, 1.0)
        for _ in range(int(rng.integers(1, 4))):
            px, py = x + rng.uniform(0.2, 0.8) * pw, y + rng.uniform(0.2, 0.8) * ph
            if rng.random() < 0.5:
                r = rng.uniform(0.05, 0.15) * min(pw, ph)
                draw.ellipse((px - r, py - r, px + r, py + r), outline=colour, width=max(1, round(2 * s)))
            else:
                start = (px + rng.uniform(-0.2, 0.2) * pw, py + rng.uniform(-0.2, 0.2) * ph)
                _arrow(draw, start, (px, py), colour, max(1, round(2 * s)))
    spaces = [
        (body[0], y, x - margin, y + ph),
        (x + pw + margin, y, body[2], y + ph),
        (body[0], y + ph + margin, body[2], body[3]),
    ]
    spaces = [b for b in spaces if b[2] - b[0] > 80 * s and b[3] - b[1] > 30 * s]
    if spaces and rng.random() < 0.7:
        box = spaces[rng.integers(len(spaces))]
        _text_lines(draw, rng, box, palette.text, palette.accent, s)
    return image, [(x, y, x + pw, y + ph)]


def _viewer(
    picture: np.ndarray, rng: np.random.Generator, size: tuple[int, int]
) -> tuple[Image.Image, list[Box]]:
    """An image viewer's dark window: toolbar, thumbnails and corner overlays around the picture."""
    w, h = size
    s = h / 360
    grey = int(rng.integers(10, 60))
    image = Image.new("RGB", size, (grey, grey, grey + int(rng.integers(0, 15))))
    draw = ImageDraw.Draw(image)
    bar = round(rng.uniform(14, 28) * s)
    draw.rectangle((0, 0, w, bar), fill=(grey + 25, grey + 25, grey + 30))
    for i in range(int(rng.integers(4, 12))):
        x = round((6 + i * 22) * s)
        draw.rectangle((x, round(3 * s), x + bar - round(6 * s), bar - round(3 * s)), outline=(170, 170, 170))
    left, boxes = 0, []
    if rng.random() < 0.5:  # thumbnail strip
        left = round(rng.uniform(50, 90) * s)
        for i in range(int(rng.integers(2, 6))):
            y = bar + round((6 + i * (left + 4)) * 1.0)
            if y + left > h:
                break
            tw, th = _fit(picture, left - 8, left - 8)
            image.paste(_resized(picture, tw, th), (4, y))
            boxes.append((4, y, 4 + tw, y + th))
    pw, ph = _fit(picture, w - left - round(8 * s), h - bar - round(8 * s))
    px, py = left + (w - left - pw) // 2, bar + (h - bar - ph) // 2
    image.paste(_resized(picture, pw, ph), (px, py))
    boxes.append((px, py, px + pw, py + ph))
    face = _font("DejaVuSansMono.ttf", max(7, round(rng.uniform(8, 12) * s)))
    overlay = (rng.integers(180, 256), rng.integers(180, 256), rng.integers(120, 256))
    overlay = tuple(int(v) for v in overlay)
    for corner in range(4):
        if rng.random() < 0.7:
            text = f"{_words(rng, 1, 2)} {int(rng.integers(1, 999))}"
            x = left + round(6 * s) if corner % 2 == 0 else w - round(6 * s)
            y = bar + round(6 * s) if corner < 2 else h - round(6 * s)
            anchor = ("l" if corner % 2 == 0 else "r") + ("t" if corner < 2 else "s")
            draw.text((x, y), text, font=face, fill=overlay, anchor=anchor)
    return image, boxes


def _augment_picture(picture: np.ndarray, rng: np.random.Generator, crop: float, colour: bool) -> np.ndarray:
    """A random crop, flip and brightness/contrast change; photos also get colour shifts and grayscale."""
    h, w = picture.shape[:2]
    ch, cw = max(8, round(h * rng.uniform(crop, 1.0))), max(8, round(w * rng.uniform(crop, 1.0)))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = picture[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if colour and rng.random() < 0.15:
        out = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2GRAY)[..., None].repeat(3, axis=2)
    gains = rng.uniform(0.85, 1.15, 3) if colour else np.ones(3)
    levels = np.arange(256, dtype=np.float32)[:, None]
    table = ((levels - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20)) * gains[None, :]
    table = np.clip(table, 0, 255).astype(np.uint8)  # one lookup per channel: cheap on large pictures
    return cv2.LUT(np.ascontiguousarray(out), table[None])


@cache
def _photos() -> tuple[np.ndarray, ...]:
    """The ordinary photos as RGB uint8 (transparency on white); those not installed are left out."""
    photos = []
    paths = [package_file(package, relative) for package, files in _PHOTO_FILES.items() for relative in files]
    for path in paths:
        if path is None:
            continue
        with Image.open(path) as photo:
            rgba = photo.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        photos.append(shrink_picture(np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))))
    if not photos:
        raise RuntimeError(
            "none of the sample photos that scikit-image ships is here: no photo_slide negatives"
        )
    return tuple(photos)


def shrink_picture(picture: np.ndarray) -> np.ndarray:
    """At most _PICTURE_MAX_SIDE on its longer side: frames are drawn small, and memory stays bounded."""
    h, w = picture.shape[:2]
    if max(h, w) <= _PICTURE_MAX_SIDE:
        return picture
    scale = _PICTURE_MAX_SIDE / max(h, w)
    return cv2.resize(picture, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- negative kinds


def _text_slide(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A title, bullet, paragraph or statement slide."""
    w, h = size
    s = h / 360
    palette = _palette(rng)
    image = _canvas(rng, size, palette)
    draw = ImageDraw.Draw(image)
    style = rng.random()
    if style < 0.25:  # title slide
        face = _random_font(rng, rng.uniform(22, 40) * s)
        y = round(h * rng.uniform(0.25, 0.45))
        for _ in range(int(rng.integers(1, 3))):
            draw.text(
                (w // 2, y),
                _fit_text(draw, _heading_text(rng), face, w - 40),
                font=face,
                fill=palette.text,
                anchor="mt",
            )
            y += round(face.size * 1.25)
        small = _random_font(rng, rng.uniform(11, 18) * s)
        for _ in range(int(rng.integers(1, 3))):
            y += round(small.size * 1.2)
            draw.text(
                (w // 2, y),
                _fit_text(draw, _words(rng, 2, 7), small, w - 40),
                font=small,
                fill=palette.text,
                anchor="mt",
            )
        return image
    if style < 0.35:  # one large statement
        face = _random_font(rng, rng.uniform(20, 32) * s)
        y = round(h * rng.uniform(0.2, 0.4))
        for _ in range(int(rng.integers(2, 5))):
            draw.text(
                (w // 2, y),
                _fit_text(draw, _words(rng, 3, 8), face, w - 60),
                font=face,
                fill=palette.text,
                anchor="mt",
            )
            y += round(face.size * 1.3)
        return image
    top = _heading(draw, rng, size, palette) if rng.random() < 0.9 else round(15 * s)
    margin = round(rng.uniform(15, 50) * s)
    bottom = h - round(rng.uniform(10, 30) * s)
    if rng.random() < 0.3:  # two columns
        middle = w // 2
        _text_lines(draw, rng, (margin, top, middle - margin // 2, bottom), palette.text, palette.accent, s)
        _text_lines(
            draw, rng, (middle + margin // 2, top, w - margin, bottom), palette.text, palette.accent, s
        )
    else:
        _text_lines(draw, rng, (margin, top, w - margin, bottom), palette.text, palette.accent, s)
    if rng.random() < 0.2:  # a boxed key point
        box = (margin, bottom - round(60 * s), w - margin, bottom)
        draw.rectangle(box, fill=palette.accent)
        face = _random_font(rng, 14 * s)
        draw.text(
            (box[0] + 10, box[1] + 10),
            _fit_text(draw, _words(rng, 4, 10), face, box[2] - box[0] - 20),
            font=face,
            fill=(255, 255, 255),
        )
    return image


def _body(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: tuple[int, int], palette: _Palette
) -> Box:
    """The area under an optional heading, inside random margins."""
    w, h = size
    s = h / 360
    top = _heading(draw, rng, size, palette) if rng.random() < 0.75 else round(rng.uniform(8, 25) * s)
    margin = round(rng.uniform(10, 50) * s)
    return margin, top, w - margin, h - round(rng.uniform(10, 30) * s)


def _label(
    draw: ImageDraw.ImageDraw, centre: tuple[float, float], text: str, face, colour, width: float
) -> None:
    draw.text(centre, _fit_text(draw, text, face, max(10, int(width))), font=face, fill=colour, anchor="mm")


def _diagram(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A flowchart, cycle, tree, Venn diagram or labelled cartoon schematic."""
    s = size[1] / 360
    palette = _palette(rng)
    image = _canvas(rng, size, palette)
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = _body(draw, rng, size, palette)
    bw, bh = x1 - x0, y1 - y0
    face = _random_font(rng, rng.uniform(9, 15) * s)
    hue = rng.random()
    fills = [
        _hsv(hue + i * rng.uniform(0.05, 0.3), rng.uniform(0.2, 0.8), rng.uniform(0.6, 1.0)) for i in range(8)
    ]
    line = palette.text
    width = max(1, round(rng.uniform(1, 3) * s))
    style = rng.random()
    if style < 0.3:  # flowchart: a grid of boxes joined by arrows
        cols, rows = int(rng.integers(2, 5)), int(rng.integers(1, 4))
        cw, rh = bw / cols, bh / rows
        centres = [(x0 + (c + 0.5) * cw, y0 + (r + 0.5) * rh) for r in range(rows) for c in range(cols)]
        half_w, half_h = cw * rng.uniform(0.28, 0.42), rh * rng.uniform(0.2, 0.35)
        for i, (cx, cy) in enumerate(centres):
            box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            if rng.random() < 0.5:
                draw.rounded_rectangle(box, radius=round(6 * s), fill=fills[i % 8], outline=line, width=width)
            else:
                draw.rectangle(box, fill=fills[i % 8], outline=line, width=width)
            _label(draw, (cx, cy), _words(rng, 1, 3), face, (20, 20, 20), 2 * half_w - 6)
            if i + 1 < len(centres) and (i + 1) % cols:
                _arrow(draw, (cx + half_w, cy), (cx + cw - half_w, cy), line, width)
            if i + cols < len(centres) and rng.random() < 0.5:
                _arrow(draw, (cx, cy + half_h), (cx, cy + rh - half_h), line, width)
    elif style < 0.5:  # cycle
        n = int(rng.integers(3, 7))
        cx, cy = x0 + bw / 2, y0 + bh / 2
        radius = min(bw, bh) * 0.36
        node = radius * rng.uniform(0.25, 0.4)
        points = [
            (
                cx + radius * np.cos(2 * np.pi * i / n - np.pi / 2),
                cy + radius * np.sin(2 * np.pi * i / n - np.pi / 2),
            )
            for i in range(n)
        ]
        for i, (px, py) in enumerate(points):
            qx, qy = points[(i + 1) % n]
            d = np.hypot(qx - px, qy - py)
            k = node / max(d, 1)
            _arrow(
                draw,
                (px + (qx - px) * k, py + (qy - py) * k),
                (qx - (qx - px) * k, qy - (qy - py) * k),
                line,
                width,
            )
        for i, (px, py) in enumerate(points):
            draw.ellipse(
                (px - node, py - node, px + node, py + node), fill=fills[i % 8], outline=line, width=width
            )
            _label(draw, (px, py), _words(rng, 1, 2), face, (20, 20, 20), 1.8 * node)
    elif style < 0.65:  # tree
        levels = int(rng.integers(2, 4))
        previous = [(x0 + bw / 2, y0 + bh / (2 * levels))]
        for level in range(levels):
            y = y0 + (level + 0.5) * bh / levels
            count = 1 if level == 0 else min(8, len(previous) * int(rng.integers(2, 4)))
            xs = [x0 + (i + 0.5) * bw / count for i in range(count)]
            half_w, half_h = min(bw / count * 0.42, 70 * s), bh / levels * 0.25
            for i, x in enumerate(xs):
                if level:
                    parent = previous[i * len(previous) // count]
                    draw.line((parent[0], parent[1] + half_h, x, y - half_h), fill=line, width=width)
                draw.rectangle(
                    (x - half_w, y - half_h, x + half_w, y + half_h),
                    fill=fills[level % 8],
                    outline=line,
                    width=width,
                )
                _label(draw, (x, y), _words(rng, 1, 2), face, (20, 20, 20), 2 * half_w - 4)
            previous = [(x, y) for x in xs]
    elif style < 0.75:  # Venn diagram
        n = int(rng.integers(2, 4))
        r = min(bw, bh) * rng.uniform(0.28, 0.38)
        cx, cy = x0 + bw / 2, y0 + bh / 2
        for i in range(n):
            a = 2 * np.pi * i / n
            px, py = cx + 0.55 * r * np.cos(a), cy + 0.55 * r * np.sin(a)
            mask = Image.new("L", size, 0)
            ImageDraw.Draw(mask).ellipse((px - r, py - r, px + r, py + r), fill=140)  # translucent
            image.paste(fills[i], (0, 0, *size), mask)
            draw.ellipse((px - r, py - r, px + r, py + r), outline=line, width=width)
            _label(
                draw,
                (cx + 1.1 * r * np.cos(a), cy + 1.1 * r * np.sin(a)),
                _words(rng, 1, 2),
                face,
                palette.text,
                r,
            )
    else:  # a flat cartoon schematic: blobs, some nested, with labels on leader lines
        for _ in range(int(rng.integers(1, 5))):
            cx, cy = x0 + rng.uniform(0.25, 0.6) * bw, y0 + rng.uniform(0.25, 0.75) * bh
            rx, ry = rng.uniform(0.1, 0.3) * bw, rng.uniform(0.15, 0.4) * bh
            angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            radii = 1 + 0.25 * np.sin(angles * rng.integers(1, 4) + rng.uniform(0, 6))
            polygon = [
                (cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for a, r in zip(angles, radii, strict=True)
            ]
            draw.polygon(polygon, fill=fills[int(rng.integers(8))], outline=line)
            if rng.random() < 0.5:
                draw.line(polygon[: int(rng.integers(4, 12))], fill=line, width=width)
            tx = x0 + bw * rng.uniform(0.75, 0.95)
            ty = cy + rng.uniform(-0.2, 0.2) * bh
            draw.line((cx, cy, tx - 4, ty), fill=line, width=1)
            draw.text((tx, ty), _words(rng, 1, 2), font=face, fill=palette.text, anchor="lm")
    return image


def _chart(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A bar, line, scatter, pie, forest or survival chart, or a table."""
    s = size[1] / 360
    palette = _palette(rng)
    image = _canvas(rng, size, palette)
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = _body(draw, rng, size, palette)
    face = _random_font(rng, rng.uniform(8, 13) * s)
    hue = rng.random()
    series = [
        _hsv(hue + i * rng.uniform(0.1, 0.4), rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0)) for i in range(6)
    ]
    ink = palette.text
    style = rng.random()
    if style < 0.15:  # pie or donut
        cx, cy = (x0 + x1) / 2 - rng.uniform(0, 0.2) * (x1 - x0), (y0 + y1) / 2
        r = min(x1 - x0, y1 - y0) * rng.uniform(0.35, 0.48)
        shares = rng.dirichlet(np.ones(int(rng.integers(2, 7))))
        start = rng.uniform(0, 360)
        for i, share in enumerate(shares):
            draw.pieslice(
                (cx - r, cy - r, cx + r, cy + r),
                start,
                start + 360 * share,
                fill=series[i],
                outline=palette.background,
            )
            start += 360 * share
        if rng.random() < 0.4:
            draw.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=palette.background)
        for i, share in enumerate(shares):  # legend
            ly = y0 + i * face.size * 1.6
            draw.rectangle((cx + r + 20, ly, cx + r + 30, ly + 10), fill=series[i])
            draw.text((cx + r + 36, ly), f"{_words(rng, 1, 2)} {share:.0%}", font=face, fill=ink)
        return image
    if style < 0.3:  # table
        rows, cols = int(rng.integers(3, 9)), int(rng.integers(2, 6))
        rh, cw = (y1 - y0) / rows, (x1 - x0) / cols
        if rng.random() < 0.7:
            draw.rectangle((x0, y0, x1, y0 + rh), fill=palette.accent)
        for r in range(rows):
            for c in range(cols):
                text = (
                    _words(rng, 1, 2)
                    if r == 0 or c == 0
                    else f"{rng.uniform(0, 100):.{int(rng.integers(0, 3))}f}"
                )
                draw.text(
                    (x0 + c * cw + 6, y0 + r * rh + rh / 2),
                    _fit_text(draw, text, face, int(cw - 8)),
                    font=face,
                    fill=ink,
                    anchor="lm",
                )
            if rng.random() < 0.8:
                draw.line((x0, y0 + r * rh, x1, y0 + r * rh), fill=ink, width=1)
        return image
    # charts on axes
    left, bottom = x0 + round(rng.uniform(25, 45) * s), y1 - round(rng.uniform(18, 30) * s)
    draw.line((left, y0, left, bottom, x1, bottom), fill=ink, width=max(1, round(s)))
    for i in range(int(rng.integers(3, 7))):
        ty = bottom - i * (bottom - y0) / 5
        draw.line((left - 4, ty, left, ty), fill=ink)
        draw.text((left - 6, ty), f"{i * int(rng.integers(1, 50))}", font=face, fill=ink, anchor="rm")
        if rng.random() < 0.4:
            draw.line(
                (left + 1, ty, x1, ty),
                fill=tuple((np.array(ink) // 2 + np.array(palette.background) // 2).tolist()),
            )
    pw, ph = x1 - left, bottom - y0
    if style < 0.5:  # bars, sometimes grouped
        n, groups = int(rng.integers(3, 12)), int(rng.integers(1, 4))
        slot = pw / n
        for i in range(n):
            for g in range(groups):
                value = rng.uniform(0.1, 0.95) * ph
                bx = left + i * slot + slot * 0.1 + g * slot * 0.8 / groups
                draw.rectangle((bx, bottom - value, bx + slot * 0.8 / groups - 1, bottom), fill=series[g])
            draw.text(
                (left + (i + 0.5) * slot, bottom + 4), _words(rng, 1, 1)[:8], font=face, fill=ink, anchor="mt"
            )
    elif style < 0.65:  # lines with markers
        for g in range(int(rng.integers(1, 4))):
            n = int(rng.integers(5, 25))
            ys = np.clip(np.cumsum(rng.normal(0, 0.12, n)) + rng.uniform(0.3, 0.7), 0.05, 0.95)
            points = [(left + pw * i / (n - 1), bottom - ph * v) for i, v in enumerate(ys)]
            draw.line(points, fill=series[g], width=max(1, round(2 * s)))
            for px, py in points if rng.random() < 0.5 else []:
                draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=series[g])
    elif style < 0.78:  # scatter
        for g in range(int(rng.integers(1, 3))):
            xs = rng.uniform(0, 1, int(rng.integers(20, 150)))
            ys = np.clip(xs * rng.uniform(-1, 1) + rng.normal(0.5, 0.15, xs.size), 0.02, 0.98)
            for px, py in zip(left + pw * xs, bottom - ph * ys, strict=True):
                draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=series[g])
    elif style < 0.9:  # survival curves
        for g in range(int(rng.integers(1, 4))):
            times = np.sort(rng.uniform(0, 1, int(rng.integers(8, 30))))
            survival, points = 1.0, [(left, y0 + 2)]
            for t in times:
                points.append((left + pw * t, bottom - ph * survival))
                survival *= rng.uniform(0.85, 0.99)
                points.append((left + pw * t, bottom - ph * survival))
            draw.line(points, fill=series[g], width=max(1, round(2 * s)))
    else:  # forest plot
        n = int(rng.integers(4, 12))
        centre = left + pw * rng.uniform(0.3, 0.7)
        draw.line((centre, y0, centre, bottom), fill=ink, width=1)
        for i in range(n):
            y = y0 + (i + 0.5) * ph / n
            mid = centre + rng.normal(0, 0.15) * pw
            half = rng.uniform(0.03, 0.2) * pw
            draw.line((mid - half, y, mid + half, y), fill=ink, width=max(1, round(s)))
            d = rng.uniform(2, 6) * s
            draw.rectangle((mid - d, y - d, mid + d, y + d), fill=series[0])
    return image


def _draw_person(image: Image.Image, rect: Box, rng: np.random.Generator) -> None:
    """A presenter in a room, drawn into a rectangle of the image: full frame or a webcam inset."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    wall = _hsv(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.3, 0.9))
    other = np.clip(np.array(wall) + rng.integers(-50, 51, 3), 0, 255)
    ramp = np.linspace(wall, other, h, dtype=np.float32)[:, None, :].repeat(w, 1)
    scene = Image.fromarray(ramp.astype(np.uint8))
    draw = ImageDraw.Draw(scene)
    for _ in range(int(rng.integers(0, 4))):  # shelves, windows, frames, plants
        fx, fy = rng.uniform(0, w), rng.uniform(0, h * 0.7)
        fw, fh = rng.uniform(0.1, 0.4) * w, rng.uniform(0.1, 0.5) * h
        what = rng.random()
        if what < 0.3:  # bookshelf
            draw.rectangle((fx, fy, fx + fw, fy + fh), fill=_hsv(0.08, 0.5, rng.uniform(0.2, 0.5)))
            bx = fx + 2
            while bx < fx + fw - 4:
                bw = rng.uniform(2, 8) * h / 360
                draw.rectangle(
                    (bx, fy + fh * rng.uniform(0.1, 0.4), bx + bw, fy + fh - 2),
                    fill=_hsv(rng.random(), 0.6, rng.uniform(0.3, 0.9)),
                )
                bx += bw + 1
        elif what < 0.55:  # window
            draw.rectangle(
                (fx, fy, fx + fw, fy + fh), fill=_hsv(0.58, rng.uniform(0, 0.3), rng.uniform(0.85, 1.0))
            )
            draw.line((fx + fw / 2, fy, fx + fw / 2, fy + fh), fill=(240, 240, 240), width=3)
        elif what < 0.8:  # a framed picture
            draw.rectangle(
                (fx, fy, fx + fw * 0.6, fy + fh * 0.6),
                fill=_hsv(rng.random(), 0.5, 0.6),
                outline=(30, 30, 30),
                width=3,
            )
        else:  # plant
            for _ in range(8):
                px, py = fx + rng.uniform(0, fw), fy + rng.uniform(0, fh)
                r = rng.uniform(0.02, 0.06) * w
                draw.ellipse(
                    (px - r, py - r * 0.6, px + r, py + r * 0.6), fill=_hsv(0.3, 0.6, rng.uniform(0.3, 0.6))
                )
    if rng.random() < 0.6:  # out of focus behind the presenter
        scene = scene.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4) * h / 360))
        draw = ImageDraw.Draw(scene)
    cx, head = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.1, 0.2)
    cy = h * rng.uniform(0.3, 0.55)
    skin, hair = _SKIN[rng.integers(len(_SKIN))], _HAIR[rng.integers(len(_HAIR))]
    shirt = _hsv(rng.random(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.9))
    shoulders = head * rng.uniform(2.2, 3.2)
    torso_top = cy + head * 1.3
    draw.rectangle((cx - head * 0.35, cy + head * 0.6, cx + head * 0.35, torso_top + head * 0.3), fill=skin)
    coat = (240, 240, 240) if rng.random() < 0.25 else shirt
    draw.rounded_rectangle(
        (cx - shoulders, torso_top, cx + shoulders, h + head), radius=round(head * 0.8), fill=coat
    )
    if coat != shirt or rng.random() < 0.4:  # shirt or collar under a coat
        draw.polygon(
            ((cx - head * 0.5, torso_top), (cx + head * 0.5, torso_top), (cx, torso_top + head * 1.2)),
            fill=shirt,
        )
    draw.ellipse((cx - head * 0.8, cy - head, cx + head * 0.8, cy + head), fill=skin)
    if rng.random() < 0.85:
        draw.chord(
            (cx - head * 0.85, cy - head * 1.1, cx + head * 0.85, cy + head * 0.4), 180, 360, fill=hair
        )
    for side in (-1, 1):
        ex = cx + side * head * 0.32
        draw.ellipse(
            (ex - head * 0.09, cy - head * 0.12, ex + head * 0.09, cy + head * 0.02), fill=(30, 25, 25)
        )
        if rng.random() < 0.3:
            draw.ellipse(
                (ex - head * 0.22, cy - head * 0.22, ex + head * 0.22, cy + head * 0.12),
                outline=(20, 20, 20),
                width=2,
            )
    mouth = head * rng.uniform(0.02, 0.12)
    draw.ellipse(
        (cx - head * 0.25, cy + head * 0.45 - mouth, cx + head * 0.25, cy + head * 0.45 + mouth),
        fill=(120, 50, 50),
    )
    if rng.random() < 0.3:  # a name banner
        bh = h * 0.12
        draw.rectangle((0, h - bh * 2, w * rng.uniform(0.4, 0.8), h - bh), fill=_hsv(rng.random(), 0.7, 0.5))
        face = _random_font(rng, bh * 0.55)
        draw.text((bh * 0.4, h - bh * 1.5), _heading_text(rng), font=face, fill=(255, 255, 255), anchor="lm")
    pixels = np.asarray(scene).astype(np.float32)
    pixels *= np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1), w, dtype=np.float32)[None, :, None]
    if rng.random() < 0.4:  # sensor noise
        pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * rng.uniform(1, 6)
    image.paste(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), (x0, y0))


def _presenter(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """The lecturer on camera: full frame, or beside a text slide."""
    w, h = size
    image = Image.new("RGB", size)
    if rng.random() < 0.75:
        _draw_person(image, (0, 0, w, h), rng)
        return image
    split = round(w * rng.uniform(0.35, 0.55))
    palette = _palette(rng)
    image.paste(_canvas(rng, size, palette))
    on_left = rng.random() < 0.5
    _draw_person(image, (0, 0, split, h) if on_left else (w - split, 0, w, h), rng)
    text_box = (split + 15, 20, w - 15, h - 15) if on_left else (15, 20, w - split - 15, h - 15)
    _text_lines(ImageDraw.Draw(image), rng, text_box, palette.text, palette.accent, h / 360)
    return image


def _desktop(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A desktop screenshot: wallpaper, a taskbar or dock, icons, and windows of everyday applications."""
    w, h = size
    s = h / 360
    if rng.random() < 0.3:
        photos = _photos()
        wallpaper = _augment_picture(photos[rng.integers(len(photos))], rng, 0.5, colour=True)
        image = _resized(wallpaper, w, h).filter(ImageFilter.GaussianBlur(rng.uniform(0, 6)))
    else:
        image = _canvas(rng, size, _palette(rng))
    draw = ImageDraw.Draw(image)
    face = _random_font(rng, rng.uniform(8, 11) * s)
    mono = _font("DejaVuSansMono.ttf", max(7, round(rng.uniform(8, 11) * s)))
    bar = round(rng.uniform(18, 30) * s)
    dark_ui = rng.random() < 0.4
    chrome = (45, 45, 50) if dark_ui else (225, 225, 228)
    ink = (220, 220, 220) if dark_ui else (30, 30, 30)
    taskbar_top = rng.random() < 0.3
    draw.rectangle((0, 0, w, bar) if taskbar_top else (0, h - bar, w, h), fill=chrome)
    ty = bar // 2 if taskbar_top else h - bar // 2
    for i in range(int(rng.integers(3, 12))):
        x = round((10 + i * 28) * s)
        draw.rounded_rectangle(
            (x, ty - bar * 0.35, x + bar * 0.7, ty + bar * 0.35), radius=3, fill=_hsv(rng.random(), 0.6, 0.8)
        )
    draw.text(
        (w - 8, ty), f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}", font=face, fill=ink, anchor="rm"
    )
    if rng.random() < 0.5:  # desktop icons
        for i in range(int(rng.integers(2, 8))):
            y = round((20 + i * 45) * s)
            if y + 40 * s > h - bar:
                break
            draw.rounded_rectangle(
                (12 * s, y, 40 * s, y + 26 * s), radius=3, fill=_hsv(rng.random(), 0.5, 0.85)
            )
            draw.text(
                (26 * s, y + 30 * s), _words(rng, 1, 1)[:8], font=face, fill=(255, 255, 255), anchor="mt"
            )
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.35:  # maximized
            box = (0, 0 if not taskbar_top else bar, w, h - bar if not taskbar_top else h)
        else:
            ww, wh = rng.uniform(0.35, 0.9) * w, rng.uniform(0.35, 0.85) * h
            wx, wy = rng.uniform(0, w - ww), rng.uniform(0, h - bar - wh)
            box = (round(wx), round(wy), round(wx + ww), round(wy + wh))
        _window(draw, image, box, rng, face, mono, dark_ui)
    return image


def _window(
    draw: ImageDraw.ImageDraw,
    image: Image.Image,
    box: Box,
    rng: np.random.Generator,
    face: ImageFont.FreeTypeFont,
    mono: ImageFont.FreeTypeFont,
    dark_ui: bool,
) -> None:
    """An application window: editor, browser, code, files, spreadsheet or terminal."""
    x0, y0, x1, y1 = box
    s = image.size[1] / 360
    title = round(rng.uniform(14, 22) * s)
    app = rng.choice(["editor", "browser", "code", "files", "sheet", "terminal"])
    content_bg = {"code": (30, 30, 35), "terminal": (12, 12, 12)}.get(
        app, (40, 40, 44) if dark_ui else (252, 252, 252)
    )
    ink = (210, 210, 210) if _luminance(content_bg) < 128 else (30, 30, 30)
    draw.rectangle(box, fill=content_bg, outline=(90, 90, 90))
    draw.rectangle((x0, y0, x1, y0 + title), fill=(60, 60, 66) if dark_ui else (232, 232, 236))
    for i, colour in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        cx = (x0 + 10 + i * 14) if rng.random() < 0.5 else (x1 - 10 - i * 14)
        draw.ellipse((cx - 4, y0 + title / 2 - 4, cx + 4, y0 + title / 2 + 4), fill=colour)
    draw.text(((x0 + x1) / 2, y0 + title / 2), _words(rng, 1, 4), font=face, fill=ink, anchor="mm")
    top = y0 + title + 4
    if app == "browser":
        draw.rounded_rectangle(
            (x0 + 8, top, x1 - 8, top + 16 * s), radius=6, fill=(225, 225, 230), outline=(160, 160, 160)
        )
        draw.text(
            (x0 + 16, top + 8 * s),
            f"https://www.{_words(rng, 1, 1)}.org/{_words(rng, 1, 1)}",
            font=face,
            fill=(60, 60, 60),
            anchor="lm",
        )
        top += round(22 * s)
        if rng.random() < 0.4 and x1 - x0 > 120:  # an ordinary photo in the page
            photos = _photos()
            photo = _augment_picture(photos[rng.integers(len(photos))], rng, 0.6, colour=True)
            pw, ph = _fit(photo, (x1 - x0) // 3, max(8, (y1 - top) // 2))
            image.paste(_resized(photo, pw, ph), (x1 - pw - 10, top + 4))
            x1 -= pw + 14
    if app == "sheet":
        cw, rh = rng.uniform(40, 80) * s, rng.uniform(11, 16) * s
        y = top
        while y < y1:
            draw.line((x0, y, x1, y), fill=(200, 200, 200))
            x = x0
            while x < x1 - cw:
                draw.text((x + 3, y + 2), f"{rng.uniform(0, 1000):.1f}", font=face, fill=ink)
                x += cw
            y += rh
        return
    if app == "files":
        y = top
        while y + 14 * s < y1:
            draw.rectangle((x0 + 8, y + 2, x0 + 8 + 10 * s, y + 12 * s), fill=_hsv(0.12, 0.6, 0.95))
            draw.text(
                (x0 + 14 + 10 * s, y),
                f"{_words(rng, 1, 3).replace(' ', '_')}.{rng.choice(['pdf', 'docx', 'png', 'txt'])}",
                font=face,
                fill=ink,
            )
            y += round(16 * s)
        return
    y, line_face = top + 4, mono if app in ("code", "terminal") else face
    while y + line_face.size < y1 - 4:
        indent = int(rng.integers(0, 4)) * 12 if app == "code" else 0
        colour = _hsv(rng.random(), 0.5, 0.9) if app == "code" else ink
        text = _fit_text(draw, _words(rng, 1, 10), line_face, max(10, x1 - x0 - 16 - indent))
        draw.text((x0 + 8 + indent, y), text, font=line_face, fill=colour)
        y += round(line_face.size * rng.uniform(1.2, 1.6))


# ---------------------------------------------------------------- frames


@cache
def _pointer(shape: str, theme: str, size: int) -> CursorSprite:
    return render_sprite(CursorStyle(shape, theme, size))


def _finish(image: Image.Image, rng: np.random.Generator, pointer: bool = True) -> np.ndarray:
    """What a lecture video adds to any slide: a webcam inset, the pointer, compression and blur."""
    w, h = image.size
    if rng.random() < 0.15:
        iw = round(w * rng.uniform(0.15, 0.28))
        ih = round(iw * rng.choice([9 / 16, 3 / 4]))
        ix = round(w - iw - rng.uniform(0, 20)) if rng.random() < 0.7 else round(rng.uniform(0, 20))
        iy = round(h - ih - rng.uniform(0, 20)) if rng.random() < 0.7 else round(rng.uniform(0, 20))
        _draw_person(image, (ix, iy, ix + iw, iy + ih), rng)
    frame = np.asarray(image).copy()
    if rng.random() < 0.3 and pointer:
        shape, theme = (
            CURSOR_SHAPES[rng.integers(len(CURSOR_SHAPES))],
            tuple(CURSOR_THEMES)[rng.integers(len(CURSOR_THEMES))],
        )
        paste_sprite(
            frame,
            _pointer(shape, theme, int(rng.integers(14, 30))),
            int(rng.integers(0, w)),
            int(rng.integers(0, h)),
        )
    effect = rng.random()
    if effect < 0.3:
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 90))])
        frame = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else frame
    elif effect < 0.45:
        frame = cv2.GaussianBlur(frame, (3, 3), 0)
    elif effect < 0.55:
        small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        frame = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(frame)


def _chosen_design(rng: np.random.Generator, designs: Sequence[str]) -> SlideDesign:
    """One of `designs`; dark designs that frame pictures or carry a header bar count twice, being the
    slides the classifier has missed."""
    unknown = [name for name in designs if name not in SLIDE_DESIGNS]
    if unknown:
        raise ValueError(f"unknown slide designs {unknown}: choose from {tuple(SLIDE_DESIGNS)}")
    chosen = [SLIDE_DESIGNS[name] for name in designs]
    weights = np.array(
        [2.0 if d.tone == "dark" and (d.image_frame != "none" or d.header_bar) else 1.0 for d in chosen]
    )
    return chosen[int(rng.choice(len(chosen), p=weights / weights.sum()))]


def _webcam(rng: np.random.Generator, size: tuple[int, int]) -> Box | None:
    """Sometimes a webcam inset in any corner, as (x0, y0, x1, y1)."""
    if rng.random() >= 0.3:
        return None
    w, h = size
    iw = round(w * rng.uniform(0.15, 0.25))
    ih = round(iw * rng.choice([9 / 16, 3 / 4]))
    margin = round(rng.uniform(0, 16) * h / 360)
    x = w - iw - margin if rng.random() < 0.5 else margin
    y = h - ih - margin if rng.random() < 0.5 else margin
    return x, y, x + iw, y + ih


def _designed_picture_slide(
    pictures: list[np.ndarray], rng: np.random.Generator, size: tuple[int, int], design: SlideDesign
) -> tuple[Image.Image, list[Box]]:
    """The pictures on a slide of the design, with notes, annotations and perhaps a webcam inset."""
    webcam = _webcam(rng, size)
    reserved = (
        None if webcam is None else (webcam[0], webcam[1], webcam[2] - webcam[0], webcam[3] - webcam[1])
    )
    slide = designed_image_slide(
        size,
        design,
        _heading_text(rng),
        pictures,
        [_words(rng, 2, 7) for _ in range(int(rng.integers(1, 4)))],
        str(rng.choice(TEXT_POSITIONS)),
        int(rng.integers(1, 4)) if rng.random() < 0.5 else 0,
        rng,
        reserved=reserved,
        slide_number=int(rng.integers(2, 60)),
    )
    image = Image.fromarray(slide.pixels)
    if webcam is not None:
        _draw_person(image, webcam, rng)
    return image, [(x, y, x + w, y + h) for x, y, w, h in slide.image_rects]


def _designed_text_slide(rng: np.random.Generator, size: tuple[int, int], design: SlideDesign) -> Image.Image:
    """A title or bullet slide of the design."""
    if rng.random() < 0.25:
        return Image.fromarray(title_slide(size, design, _heading_text(rng), _words(rng, 2, 6)))
    bullets = [_words(rng, 2, 9) for _ in range(int(rng.integers(2, 6)))]
    return Image.fromarray(bullet_slide(size, design, _heading_text(rng), bullets)[0])


@dataclass(frozen=True)
class DrawnFrame:
    frame: np.ndarray  # RGB uint8 (h, w, 3)
    boxes: list[Box]  # where the frame's pictures lie (none for a negative without pictures)
    design: str | None  # the slide design drawn, or None for a slide of random palette and layout


def draw_negative(
    kind: str,
    rng: np.random.Generator,
    size: tuple[int, int] = FRAME_SIZE,
    pointer: bool = True,
    designs: Sequence[str] = (),
) -> DrawnFrame:
    """A negative frame of `kind`; with `designs`, half the photo and text slides are drawn in one of them."""
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"unknown negative kind {kind!r}: choose one of {NEGATIVE_KINDS}")
    design = (
        _chosen_design(rng, designs)
        if designs and kind in ("photo_slide", "text_slide") and rng.random() < 0.5
        else None
    )
    boxes: list[Box] = []
    if kind == "photo_slide":
        photos = _photos()
        photo = photos[rng.integers(len(photos))]
        pictures = [
            _augment_picture(photo, rng, 0.5, colour=True) for _ in range(2 if rng.random() < 0.12 else 1)
        ]
        if design is None:
            image, boxes = _picture_slide(pictures, rng, size)
        else:
            image, boxes = _designed_picture_slide(pictures, rng, size, design)
    elif kind == "text_slide" and design is not None:
        image = _designed_text_slide(rng, size, design)
    else:
        painters = {
            "text_slide": _text_slide,
            "diagram": _diagram,
            "chart": _chart,
            "presenter": _presenter,
            "desktop": _desktop,
        }
        image = painters[kind](rng, size)
    return DrawnFrame(_finish(image, rng, pointer), boxes, None if design is None else design.name)


def negative_frame(
    kind: str,
    rng: np.random.Generator,
    size: tuple[int, int] = FRAME_SIZE,
    pointer: bool = True,
    *,
    designs: Sequence[str] = (),
) -> np.ndarray:
    """A frame without a medical image, of one of NEGATIVE_KINDS, as RGB uint8 (h, w, 3).

    `pointer=False` never draws a mouse pointer, for training the cursor detector on clean frames.
    `designs` (slide design names) are drawn for half the photo and text slides.
    """
    return draw_negative(kind, rng, size, pointer, designs).frame


def draw_positive(
    picture: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = FRAME_SIZE,
    pointer: bool = True,
    designs: Sequence[str] = (),
) -> DrawnFrame:
    """A medical picture (RGB uint8), lightly cropped and brightened, on a varied slide: with `designs`,
    half the time a slide of one of those designs (one or two pictures, notes, annotations)."""
    design = _chosen_design(rng, designs) if designs and rng.random() < 0.5 else None
    if design is None:
        pictures = [
            _augment_picture(picture, rng, 0.75, colour=False) for _ in range(2 if rng.random() < 0.12 else 1)
        ]
        image, boxes = _picture_slide(pictures, rng, size)
    else:
        pictures = [
            _augment_picture(picture, rng, 0.75, colour=False) for _ in range(2 if rng.random() < 0.3 else 1)
        ]
        image, boxes = _designed_picture_slide(pictures, rng, size, design)
    return DrawnFrame(_finish(image, rng, pointer), boxes, None if design is None else design.name)


def positive_frame(
    picture: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = FRAME_SIZE,
    pointer: bool = True,
    *,
    designs: Sequence[str] = (),
) -> np.ndarray:
    """A medical picture (RGB uint8) on a varied slide, lightly cropped and brightened: RGB (h, w, 3)."""
    return draw_positive(picture, rng, size, pointer, designs).frame


def positive_frame_with_boxes(
    picture: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    pointer: bool = True,
    *,
    designs: Sequence[str] = (),
) -> tuple[np.ndarray, list[Box]]:
    """The positive frame and where its pictures lie."""
    drawn = draw_positive(picture, rng, size, pointer, designs)
    return drawn.frame, drawn.boxes

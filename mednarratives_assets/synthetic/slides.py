"""Slides as a lecturer shows them: title slides, bullet slides, and slides that carry medical images.

Every slide is drawn in a `SlideDesign`, one value of the slide axis of the style space: its
background (flat or a vertical gradient), text and accent colours, an optional header bar behind
the heading, how pictures are framed, the heading's alignment, an optional footer and the font.
The demo's three original themes are designs too and draw exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Rect = tuple[int, int, int, int]  # x, y, w, h in frame pixels
Colour = tuple[int, int, int]

# (regular, bold) font files that matplotlib ships; classifier_frames draws with the same files
FONT_FAMILIES = {
    "DejaVuSans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "DejaVuSerif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "STIXGeneral": ("STIXGeneral.ttf", "STIXGeneralBol.ttf"),
}
IMAGE_FRAMES = ("none", "border", "thick", "mat", "shadow")
HEADING_ALIGNMENTS = ("left", "centre")
TEXT_POSITIONS = ("beside", "below", "over", "none")
ANNOTATION_COLOURS = ((255, 255, 255), (255, 221, 0))  # white or yellow, outlined in near black
_OUTLINE = (20, 20, 20)
_FOOTER_LOGO = "Department of Radiology"


def _luminance(colour: Colour) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _contrasting(colour: Colour, dark_text: Colour) -> Colour:
    """White on a dark fill, `dark_text` on a light one."""
    return (255, 255, 255) if _luminance(colour) < 140 else dark_text


@dataclass(frozen=True)
class SlideDesign:
    name: str
    background: Colour | tuple[Colour, Colour]  # a flat colour, or a vertical gradient (top, bottom)
    text: Colour
    accent: Colour
    accent_bar: bool = True  # an accent strip along the bottom edge and under a heading without a bar
    header_bar: Colour | None = None  # a full-width bar behind the heading
    image_frame: str = "none"  # one of IMAGE_FRAMES
    frame_colour: Colour = (0, 0, 0)  # the border, frame or mat; the shadow is always black
    heading_align: str = "left"  # one of HEADING_ALIGNMENTS
    footer: bool = False  # a strip along the bottom with a logo text and the slide number
    font: str = "DejaVuSans"  # one of FONT_FAMILIES

    def __post_init__(self):
        for field, value, allowed in (
            ("image_frame", self.image_frame, IMAGE_FRAMES),
            ("heading_align", self.heading_align, HEADING_ALIGNMENTS),
            ("font", self.font, tuple(FONT_FAMILIES)),
        ):
            if value not in allowed:
                raise ValueError(
                    f"slide design {self.name!r}: unknown {field} {value!r}: choose one of {allowed}"
                )

    @property
    def gradient(self) -> tuple[Colour, Colour]:
        """The background's (top, bottom) colours; the same twice for a flat background."""
        if isinstance(self.background[0], int):
            return self.background, self.background  # type: ignore[return-value]
        return self.background  # type: ignore[return-value]

    @property
    def tone(self) -> str:
        """ "dark" or "light": the background's mean luminance."""
        top, bottom = self.gradient
        return "dark" if (_luminance(top) + _luminance(bottom)) / 2 < 128 else "light"


def _designs(*designs: SlideDesign) -> dict[str, SlideDesign]:
    return {design.name: design for design in designs}


SLIDE_DESIGNS = _designs(
    # the demo's original three themes
    SlideDesign("dark", (17, 24, 39), (235, 238, 245), (96, 165, 250)),
    SlideDesign("light", (250, 250, 246), (31, 35, 41), (190, 50, 55)),
    SlideDesign("slate", (52, 61, 70), (240, 240, 235), (250, 190, 80)),
    SlideDesign(
        "night-header",
        (10, 10, 13),
        (228, 231, 238),
        (0, 168, 196),
        accent_bar=False,
        header_bar=(0, 104, 128),
        image_frame="border",
        frame_colour=(215, 220, 230),
    ),
    SlideDesign(
        "paper-header",
        (255, 255, 255),
        (33, 37, 41),
        (46, 125, 50),
        accent_bar=False,
        header_bar=(46, 125, 50),
        image_frame="border",
        frame_colour=(150, 150, 150),
    ),
    SlideDesign(
        "graphite-shadow",
        ((74, 76, 80), (30, 31, 34)),
        (240, 240, 240),
        (255, 140, 0),
        image_frame="shadow",
        font="DejaVuSerif",
    ),
    SlideDesign(
        "clinic-blue",
        ((236, 241, 247), (196, 211, 229)),
        (20, 33, 61),
        (30, 90, 160),
        accent_bar=False,
        header_bar=(20, 40, 90),
        image_frame="mat",
        frame_colour=(252, 252, 253),
    ),
    SlideDesign(
        "cream-border",
        (246, 239, 222),
        (60, 40, 25),
        (140, 80, 40),
        image_frame="thick",
        frame_colour=(92, 58, 32),
        heading_align="centre",
        font="STIXGeneral",
    ),
    SlideDesign(
        "carbon-framed",
        (14, 14, 16),
        (235, 235, 235),
        (180, 30, 40),
        accent_bar=False,
        header_bar=(120, 16, 24),
        image_frame="thick",
        frame_colour=(228, 228, 228),
        footer=True,
    ),
    SlideDesign(
        "ivory-banded",
        (255, 253, 240),
        (25, 25, 35),
        (16, 30, 70),
        accent_bar=False,
        header_bar=(16, 30, 70),
        image_frame="thick",
        frame_colour=(0, 0, 0),
        footer=True,
        font="DejaVuSerif",
    ),
    SlideDesign(
        "ocean-mat",
        ((18, 48, 96), (5, 16, 38)),
        (225, 236, 250),
        (90, 200, 230),
        image_frame="mat",
        frame_colour=(214, 226, 238),
    ),
    SlideDesign("white-minimal", (255, 255, 255), (20, 20, 20), (20, 20, 20), accent_bar=False),
)
THEMES = {name: SLIDE_DESIGNS[name] for name in ("dark", "light", "slate")}  # the demo's original looks


@cache
def _font_file(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A font from matplotlib's own files, so text renders the same on every machine."""
    import matplotlib

    return ImageFont.truetype(
        str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name), size
    )


def font(size: int, bold: bool = False, family: str = "DejaVuSans") -> ImageFont.FreeTypeFont:
    regular, heavy = FONT_FAMILIES[family]
    return _font_file(heavy if bold else regular, max(6, size))


def _scale(size: tuple[int, int]) -> float:
    return size[1] / 720


def _footer_height(size: tuple[int, int]) -> int:
    return round(34 * _scale(size))


def _intersects(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _box_rect(box: tuple[float, float, float, float]) -> Rect:
    """(x0, y0, x1, y1) to an integer x, y, w, h that covers it."""
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    return x0, y0, int(np.ceil(box[2])) - x0, int(np.ceil(box[3])) - y0


def _canvas(
    size: tuple[int, int], design: SlideDesign, reserved: Rect | None = None, slide_number: int = 1
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """The background with the design's bottom strip or footer (its texts kept clear of `reserved`)."""
    top, bottom = design.gradient
    if top == bottom:
        image = Image.new("RGB", size, top)
    else:
        ramp = np.linspace(top, bottom, size[1], dtype=np.float32)
        image = Image.fromarray(np.rint(ramp)[:, None, :].repeat(size[0], 1).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if design.footer:
        height, strip = _footer_height(size), design.header_bar or design.accent
        draw.rectangle([0, size[1] - height, size[0], size[1]], fill=strip)
        face = font(round(17 * _scale(size)), family=design.font)
        ink = _contrasting(strip, design.text)
        margin, middle = round(24 * _scale(size)), size[1] - height // 2
        for text, x, anchor in ((_FOOTER_LOGO, margin, "lm"), (str(slide_number), size[0] - margin, "rm")):
            if reserved is None or not _intersects(
                _box_rect(draw.textbbox((x, middle), text, face, anchor)), reserved
            ):
                draw.text((x, middle), text, font=face, fill=ink, anchor=anchor)
    elif design.accent_bar:
        draw.rectangle([0, size[1] - 10, size[0], size[1]], fill=design.accent)
    return image, draw


def _body_bottom(size: tuple[int, int], design: SlideDesign) -> int:
    scale = _scale(size)
    return size[1] - (_footer_height(size) + round(24 * scale) if design.footer else round(40 * scale))


def _wrap(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=face) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _clipped(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    """The text, cut word by word (a lone word letter by letter) until it fits the width."""
    while text and draw.textlength(text, font=face) > width:
        text = text.rsplit(" ", 1)[0] if " " in text.strip() else text[:-1]
    return text.rstrip()


def _heading_span(size: tuple[int, int], band: tuple[int, int], reserved: Rect | None) -> tuple[int, int]:
    """The heading's free x range: the margins, less a reserved rectangle that reaches into its band."""
    margin = round(60 * _scale(size))
    low, high = margin, size[0] - margin
    if reserved is not None and reserved[1] < band[1] and band[0] < reserved[1] + reserved[3]:
        gap = round(16 * _scale(size))
        if reserved[0] + reserved[2] / 2 > size[0] / 2:
            high = min(high, reserved[0] - gap)
        else:
            low = max(low, reserved[0] + reserved[2] + gap)
    return low, high


def _heading(
    draw: ImageDraw.ImageDraw,
    size: tuple[int, int],
    design: SlideDesign,
    text: str,
    reserved: Rect | None = None,
) -> tuple[int, Rect]:
    """Draw the slide's heading, kept clear of `reserved`; returns the y where the body starts, and
    the rectangle the heading's text covers."""
    scale = _scale(size)
    face = font(round(40 * scale), bold=True, family=design.font)
    if design.header_bar is not None:
        bar = round(104 * scale)
        draw.rectangle([0, 0, size[0], bar], fill=design.header_bar)
        ink, middle = _contrasting(design.header_bar, design.text), bar // 2
        low, high = _heading_span(size, (0, bar), reserved)
        text = _clipped(draw, text, face, high - low)
        x, anchor = ((low + high) // 2, "mm") if design.heading_align == "centre" else (low, "lm")
        draw.text((x, middle), text, font=face, fill=ink, anchor=anchor)
        return bar + round(28 * scale), _box_rect(draw.textbbox((x, middle), text, face, anchor))
    top, y = round(32 * scale), round(92 * scale)
    low, high = _heading_span(size, (top, y), reserved)
    if draw.textlength(text, font=face) > high - low:
        text = _clipped(draw, text, face, high - low)
    line = round(260 * scale) - round(60 * scale)  # the accent line under the heading
    if design.heading_align == "centre":
        x, anchor, line_left = (low + high) // 2, "mt", (low + high - line) // 2
    else:
        x, anchor, line_left = low, "la", low
    draw.text((x, top), text, font=face, fill=design.text, anchor=anchor)
    if design.accent_bar:
        draw.rectangle([line_left, y, line_left + line, y + max(2, round(5 * scale))], fill=design.accent)
    return y + round(24 * scale), _box_rect(draw.textbbox((x, top), text, face, anchor))


def title_slide(
    size: tuple[int, int], design: SlideDesign, title: str, subtitle: str, slide_number: int = 1
) -> np.ndarray:
    """The title centred on the slide, on a band of the header bar's colour when the design has one."""
    image, draw = _canvas(size, design, slide_number=slide_number)
    scale = _scale(size)
    title_face = font(round(56 * scale), bold=True, family=design.font)
    subtitle_face = font(round(30 * scale), family=design.font)
    lines = _wrap(draw, title, title_face, size[0] - round(200 * scale))
    y = size[1] // 2 - len(lines) * round(70 * scale) // 2 - round(40 * scale)
    title_ink = design.text
    if design.header_bar is not None:
        band = [0, y - round(30 * scale), size[0], y + len(lines) * round(70 * scale) + round(24 * scale)]
        draw.rectangle(band, fill=design.header_bar)
        title_ink = _contrasting(design.header_bar, design.text)
    for line in lines:
        draw.text((size[0] // 2, y), line, font=title_face, fill=title_ink, anchor="mt")
        y += round(70 * scale)
    if design.header_bar is not None:
        y += round(24 * scale)
    elif design.accent_bar:
        draw.rectangle(
            [size[0] // 2 - round(120 * scale), y + 10, size[0] // 2 + round(120 * scale), y + 16],
            fill=design.accent,
        )
    draw.text(
        (size[0] // 2, y + round(40 * scale)), subtitle, font=subtitle_face, fill=design.text, anchor="mt"
    )
    return np.asarray(image).copy()


def bullet_slide(
    size: tuple[int, int], design: SlideDesign, heading: str, bullets: list[str], slide_number: int = 1
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The slide, and where each bullet's text starts (where a lecturer points while reading it)."""
    image, draw = _canvas(size, design, slide_number=slide_number)
    scale = _scale(size)
    y = _heading(draw, size, design, heading)[0] + round(20 * scale)
    face = font(round(32 * scale), family=design.font)
    anchors = []
    left = round(100 * scale)
    for bullet in bullets:
        r = round(7 * scale)
        draw.ellipse(
            [left - 30 * scale - r, y + 18 * scale - r, left - 30 * scale + r, y + 18 * scale + r],
            fill=design.accent,
        )
        anchors.append((left, y + round(18 * scale)))
        for line in _wrap(draw, bullet, face, size[0] - left - round(380 * scale)):
            draw.text((left, y), line, font=face, fill=design.text)
            y += round(44 * scale)
        y += round(22 * scale)
    return np.asarray(image).copy(), anchors


def frame_margin(design: SlideDesign, size: tuple[int, int]) -> int:
    """How far the design's frame (border, frame, mat or shadow) reaches out from a picture, in pixels."""
    scale = _scale(size)
    return {
        "none": 0,
        "border": max(1, round(2 * scale)),
        "thick": max(3, round(10 * scale)),
        "mat": max(4, round(18 * scale)),
        "shadow": max(4, round(16 * scale)),
    }[design.image_frame]


def _draw_frame(image: Image.Image, design: SlideDesign, rect: Rect) -> Rect:
    """The design's frame around a picture's rectangle (drawn before the picture); returns its extent."""
    margin = frame_margin(design, image.size)
    x, y, w, h = rect
    outer = (x - margin, y - margin, w + 2 * margin, h + 2 * margin)
    draw = ImageDraw.Draw(image)
    box = [outer[0], outer[1], outer[0] + outer[2] - 1, outer[1] + outer[3] - 1]
    if design.image_frame in ("border", "thick", "mat"):
        draw.rectangle(box, fill=design.frame_colour)
    if design.image_frame == "mat":  # a mat's bevel: a thin darker line at its inner edge
        bevel = tuple(round(c * 0.7) for c in design.frame_colour)
        draw.rectangle([x - 1, y - 1, x + w, y + h], outline=bevel)
    if design.image_frame == "shadow":
        offset, blur = margin // 2, margin // 4
        mask = Image.new("L", (outer[2], outer[3]), 0)
        ImageDraw.Draw(mask).rectangle(
            [
                margin + offset - blur,
                margin + offset - blur,
                margin + offset + w + blur,
                margin + offset + h + blur,
            ],
            fill=200,
        )
        mask = mask.filter(ImageFilter.GaussianBlur(max(1, blur)))
        image.paste((0, 0, 0), (outer[0], outer[1]), mask)
    return outer


def _paste(image: Image.Image, picture: np.ndarray, rect: Rect) -> None:
    x, y, w, h = rect
    image.paste(Image.fromarray(picture).resize((w, h), Image.Resampling.LANCZOS), (x, y))


def _fitted(picture: np.ndarray, width: float, height: float) -> tuple[int, int]:
    h, w = picture.shape[:2]
    fit = min(width / w, height / h)
    return max(1, round(w * fit)), max(1, round(h * fit))


def image_slide(
    size: tuple[int, int],
    design: SlideDesign,
    heading: str,
    picture: np.ndarray,
    notes: list[str],
    reserved: Rect | None = None,
) -> tuple[np.ndarray, Rect]:
    """A medical image with the heading above and, when `notes` are given, short notes to its right.

    Returns the slide and the rectangle the image occupies. `reserved` (such as a webcam inset)
    is kept clear of the image and the notes. `designed_image_slide` draws richer slides.
    """
    image, draw = _canvas(size, design, reserved)
    scale = _scale(size)
    top = _heading(draw, size, design, heading, reserved)[0]
    bottom = _body_bottom(size, design)
    if reserved is not None:
        bottom = min(bottom, reserved[1] - round(16 * scale)) if notes else bottom
    area_w = round(size[0] * (0.58 if notes else 0.9))
    right_limit = reserved[0] - round(16 * scale) if reserved is not None and not notes else size[0]
    area_w = min(area_w, right_limit - round(60 * scale))
    area_h = bottom - top
    margin = frame_margin(design, size)
    new_w, new_h = _fitted(picture, area_w - 2 * margin, area_h - 2 * margin)
    x = round(60 * scale) + (area_w - new_w) // 2 if notes else (min(size[0], right_limit) - new_w) // 2
    y = top + (area_h - new_h) // 2
    _draw_frame(image, design, (x, y, new_w, new_h))
    _paste(image, picture, (x, y, new_w, new_h))
    if notes:
        face = font(round(26 * scale), family=design.font)
        left = x + new_w + margin + round(40 * scale)
        ny = top + round(10 * scale)
        for note in notes:
            for line in _wrap(draw, note, face, size[0] - left - round(40 * scale)):
                draw.text((left, ny), line, font=face, fill=design.text)
                ny += round(34 * scale)
            ny += round(18 * scale)
    return np.asarray(image).copy(), (x, y, new_w, new_h)


# ---------------------------------------------------------------- richer medical slides


@dataclass(frozen=True)
class Annotation:
    kind: str  # "arrow" or "letter"
    rect: Rect  # what it covers, outline included
    picture: int  # index into ImageSlide.image_rects of the picture it is drawn on
    point: tuple[int, int] | None = None  # where an arrow points
    text: str = ""  # a letter's letter

    def describe(self) -> dict:
        """JSON-ready."""
        described = {"kind": self.kind, "rect": list(self.rect), "picture": self.picture}
        if self.point is not None:
            described["point"] = list(self.point)
        if self.text:
            described["text"] = self.text
        return described


@dataclass(frozen=True)
class ImageSlide:
    pixels: np.ndarray  # RGB uint8 (h, w, 3)
    image_rects: list[Rect]  # where each picture lies, inside its frame
    frame_rects: list[Rect]  # each picture with its frame, mat or shadow
    annotations: list[Annotation]
    heading_rect: Rect  # the heading's text
    notes_rect: Rect | None  # the notes' text (the caption box when over the picture); None without notes
    design: str


def _free_boxes(
    body: tuple[int, int, int, int], reserved: Rect | None, gap: int
) -> list[tuple[int, int, int, int]]:
    """The body (x0, y0, x1, y1), or when `reserved` reaches into it, the parts of it beside, above and
    below the reserved rectangle."""
    if reserved is None:
        return [body]
    rx0, ry0 = reserved[0] - gap, reserved[1] - gap
    rx1, ry1 = reserved[0] + reserved[2] + gap, reserved[1] + reserved[3] + gap
    x0, y0, x1, y1 = body
    if rx1 <= x0 or x1 <= rx0 or ry1 <= y0 or y1 <= ry0:
        return [body]
    parts = [
        (x0, y0, min(x1, rx0), y1),
        (max(x0, rx1), y0, x1, y1),
        (x0, y0, x1, min(y1, ry0)),
        (x0, max(y0, ry1), x1, y1),
    ]
    return [p for p in parts if p[2] - p[0] > 4 * gap and p[3] - p[1] > 4 * gap]


@dataclass(frozen=True)
class _Layout:
    picture_rects: list[Rect]
    notes_box: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) the notes' lines are drawn into
    lines: list[str]


def _layout(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    pictures: list[np.ndarray],
    notes: list[str],
    text_position: str,
    text_left: bool,
    fill: float,
    margin: int,
    face: ImageFont.FreeTypeFont,
    scale: float,
) -> _Layout:
    """Pictures in a row, each with room for its frame, and the notes' box beside or below them."""
    x0, y0, x1, y1 = box
    gap = round(28 * scale)
    line_h = round(face.size * 1.3)
    lines: list[str] = []
    notes_box = None
    if text_position == "beside":
        column = round((x1 - x0) * 0.36)
        lines = [line for note in notes for line in _wrap(draw, note, face, column)]
        if text_left:
            notes_box, x0 = (x0, y0 + round(10 * scale), x0 + column, y1), x0 + column + gap
        else:
            notes_box, x1 = (x1 - column, y0 + round(10 * scale), x1, y1), x1 - column - gap
    elif text_position == "below":
        lines = [line for note in notes for line in _wrap(draw, note, face, x1 - x0)]
        lines = lines[: max(1, int((y1 - y0) * 0.35) // line_h)]
        y1 -= len(lines) * line_h + gap
    cell_w = (x1 - x0 - gap * (len(pictures) - 1)) / len(pictures)
    sizes = [_fitted(p, (cell_w - 2 * margin) * fill, (y1 - y0 - 2 * margin) * fill) for p in pictures]
    row_w = sum(w for w, _ in sizes) + (2 * margin + gap) * (len(sizes) - 1)
    x = x0 + (x1 - x0 - row_w) // 2
    rects = []
    for w, h in sizes:
        rects.append((x, y0 + (y1 - y0 - h) // 2, w, h))
        x += w + 2 * margin + gap
    if text_position == "below":
        top = max(r[1] + r[3] for r in rects) + margin + gap // 2
        notes_box = (box[0], top, box[2], box[3])
    if text_position == "beside":
        lines = [_clipped(draw, line, face, notes_box[2] - notes_box[0]) for line in lines]
        lines = lines[: max(0, (notes_box[3] - notes_box[1]) // line_h)]
    return _Layout(rects, notes_box, [line for line in lines if line])


def _draw_notes(
    draw: ImageDraw.ImageDraw, layout: _Layout, face: ImageFont.FreeTypeFont, colour: Colour
) -> Rect | None:
    if layout.notes_box is None or not layout.lines:
        return None
    x, y = layout.notes_box[0], layout.notes_box[1]
    step = round(face.size * 1.3)
    covered = []
    for line in layout.lines:
        draw.text((x, y), line, font=face, fill=colour)
        covered.append(draw.textbbox((x, y), line, face))
        y += step
    return _box_rect(
        (
            min(b[0] for b in covered),
            min(b[1] for b in covered),
            max(b[2] for b in covered),
            max(b[3] for b in covered),
        )
    )


def _caption(
    image: Image.Image,
    rect: Rect,
    notes: list[str],
    face: ImageFont.FreeTypeFont,
    rng: np.random.Generator,
    scale: float,
) -> Rect | None:
    """A semi-transparent dark box over the lower part of the picture, with the notes in white."""
    x, y, w, h = rect
    pad, step = max(2, round(10 * scale)), round(face.size * 1.3)
    draw = ImageDraw.Draw(image)
    lines = [
        _clipped(draw, line, face, w - 2 * pad)
        for note in notes
        for line in _wrap(draw, note, face, w - 2 * pad)
    ]
    lines = [line for line in lines if line][: max(0, (round(h * 0.4) - 2 * pad) // step)]
    if not lines:
        return None
    box_h = len(lines) * step + 2 * pad
    box = (x, y + h - box_h, w, box_h)
    shade = Image.new("RGB", (w, box_h), (0, 0, 0))
    region = image.crop((x, y + h - box_h, x + w, y + h))
    image.paste(Image.blend(region, shade, float(rng.uniform(0.5, 0.7))), (x, y + h - box_h))
    ty = y + h - box_h + pad
    for line in lines:
        draw.text((x + pad, ty), line, font=face, fill=(255, 255, 255))
        ty += step
    return box


def _inside(inner: Rect, outer: Rect) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def _arrow_shape(
    tip: tuple[float, float], angle: float, length: float, width: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The shaft (tail to the head's base) and the head's triangle of an arrow pointing at `tip`."""
    head = 2.5 * width + 4
    cos, sin = np.cos(angle), np.sin(angle)
    tail = (tip[0] - length * cos, tip[1] - length * sin)
    base = (tip[0] - head * cos, tip[1] - head * sin)
    half = head * 0.6
    triangle = [
        tip,
        (base[0] - half * sin, base[1] + half * cos),
        (base[0] + half * sin, base[1] - half * cos),
    ]
    return [tail, base], triangle


def _annotate(
    draw: ImageDraw.ImageDraw,
    region: Rect,
    picture: int,
    kind: str,
    letter: str,
    colour: Colour,
    taken: list[Rect],
    rng: np.random.Generator,
    scale: float,
) -> Annotation | None:
    """An arrow or a capital letter, outlined, somewhere inside `region` clear of `taken`."""
    x, y, w, h = region
    outline = max(1, round(2 * scale))
    for _ in range(30):
        if kind == "letter":
            face = font(max(12, round(min(44 * scale, h * 0.3))), bold=True)
            spot = (x + rng.uniform(0, w), y + rng.uniform(0, h))
            rect = _box_rect(draw.textbbox(spot, letter, face, "mm", stroke_width=outline))
            if _inside(rect, region) and not any(_intersects(rect, t) for t in taken):
                draw.text(
                    spot,
                    letter,
                    font=face,
                    fill=colour,
                    anchor="mm",
                    stroke_width=outline,
                    stroke_fill=_OUTLINE,
                )
                return Annotation("letter", rect, picture, text=letter)
            continue
        width = max(2, round(4 * scale))
        length = min(max(30 * scale, 0.3 * min(w, h)), 110 * scale)
        tip = (x + rng.uniform(0.15, 0.85) * w, y + rng.uniform(0.15, 0.85) * h)
        shaft, triangle = _arrow_shape(tip, rng.uniform(0, 2 * np.pi), length, width)
        points = np.array([*shaft, *triangle])
        reach = width / 2 + 2 * outline + 1
        rect = _box_rect((*(points.min(axis=0) - reach), *(points.max(axis=0) + reach)))
        if _inside(rect, region) and not any(_intersects(rect, t) for t in taken):
            draw.line(shaft, fill=_OUTLINE, width=width + 2 * outline)
            draw.line([*triangle, triangle[0]], fill=_OUTLINE, width=2 * outline, joint="curve")
            draw.polygon(triangle, fill=_OUTLINE)
            draw.line(shaft, fill=colour, width=width)
            draw.polygon(triangle, fill=colour)
            return Annotation("arrow", rect, picture, point=(round(tip[0]), round(tip[1])))
    return None


def designed_image_slide(
    size: tuple[int, int],
    design: SlideDesign,
    heading: str,
    pictures: list[np.ndarray],
    notes: list[str],
    text_position: str,
    annotations: int,
    rng: np.random.Generator,
    reserved: Rect | None = None,
    slide_number: int = 1,
) -> ImageSlide:
    """One or two medical pictures in the design's frames, with the notes beside, below or over them.

    `text_position` is one of TEXT_POSITIONS ("over": a semi-transparent caption box on the lower part
    of the first picture; "none" or no notes: no text but the heading). `annotations` (0 to 3) arrows
    and letters A, B, C are drawn on the pictures. Nothing but the background, header bar and footer
    strip lies under `reserved` (a webcam inset); `rng` places the annotations and picks the layout.
    """
    if len(pictures) not in (1, 2):
        raise ValueError(f"a designed image slide shows 1 or 2 pictures, not {len(pictures)}")
    for index, picture in enumerate(pictures):
        if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
            raise ValueError(
                f"picture {index} must be RGB uint8 (h, w, 3), not {picture.dtype} {picture.shape}"
            )
    if text_position not in TEXT_POSITIONS:
        raise ValueError(f"unknown text_position {text_position!r}: choose one of {TEXT_POSITIONS}")
    if not 0 <= annotations <= 3:
        raise ValueError(f"annotations must be 0 to 3, not {annotations}")
    if not notes:
        text_position = "none"
    image, draw = _canvas(size, design, reserved, slide_number)
    scale = _scale(size)
    top, heading_rect = _heading(draw, size, design, heading, reserved)
    margin = frame_margin(design, size)
    side = round(60 * scale)
    face = font(round(26 * scale), family=design.font)
    text_left, fill = bool(rng.random() < 0.3), float(rng.uniform(0.85, 1.0))
    body = (side, top, size[0] - side, _body_bottom(size, design))
    layout_in = [
        _layout(draw, box, pictures, notes, text_position, text_left, fill, margin, face, scale)
        for box in _free_boxes(body, reserved, round(16 * scale))
    ]
    if not layout_in:
        raise ValueError(f"reserved rectangle {reserved} leaves no room for pictures on a {size} slide")
    layout = max(layout_in, key=lambda candidate: sum(r[2] * r[3] for r in candidate.picture_rects))
    frame_rects = []
    for picture, rect in zip(pictures, layout.picture_rects, strict=True):
        frame_rects.append(_draw_frame(image, design, rect))
        _paste(image, picture, rect)
    if text_position == "over":
        notes_rect = _caption(image, layout.picture_rects[0], notes, face, rng, scale)
    else:
        notes_rect = _draw_notes(draw, layout, face, design.text)
    colour = ANNOTATION_COLOURS[int(rng.integers(len(ANNOTATION_COLOURS)))]
    drawn: list[Annotation] = []
    for i in range(annotations):
        picture = i % len(pictures)
        region = layout.picture_rects[picture]
        if picture == 0 and notes_rect is not None and text_position == "over":
            region = (region[0], region[1], region[2], notes_rect[1] - region[1])
        kind = "arrow" if rng.random() < 0.55 else "letter"
        taken = [a.rect for a in drawn]
        letter = "ABC"[sum(a.kind == "letter" for a in drawn)] if kind == "letter" else ""
        annotation = _annotate(draw, region, picture, kind, letter, colour, taken, rng, scale)
        if annotation is not None:
            drawn.append(annotation)
    return ImageSlide(
        np.asarray(image).copy(),
        layout.picture_rects,
        frame_rects,
        drawn,
        heading_rect,
        notes_rect,
        design.name,
    )

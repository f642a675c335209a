"""The lecturer's pointer: sprites in many styles, and human-like movement over time.

Sprites come from three kinds of theme: the project's own drawn pointers in plain colours, real
X11 cursor themes read from their Xcursor files (installed from Debian packages, see .ci/run), and
laser dots. A sprite's hotspot is a float position in pixel-centre coordinates (pixel (0, 0)
spans -0.5..0.5), and `paste_sprite` lands it exactly on a float frame position, so the truth of
where a pointer points carries no rounding.

A track holds the hotspot and its visibility for every frame. Movements follow a minimum-jerk
profile along a slightly curved path, sometimes overshooting and correcting, with a duration from
Fitts' law; dwelling is still, trembling or circling; a pointer may blink or hide when idle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mednarratives_assets.synthetic import xcursor

CURSOR_SHAPES = ("arrow", "hand", "crosshair", "ibeam")  # what system pointers draw
LASER_SHAPES = ("dot",)
# (fill, edge): the system pointers, then the coloured pointers that presentation tools offer
CURSOR_THEMES = {
    "light": ((255, 255, 255), (0, 0, 0)),
    "dark": ((0, 0, 0), (255, 255, 255)),
    "red": ((230, 40, 40), (255, 255, 255)),
    "yellow": ((250, 220, 30), (0, 0, 0)),
    "green": ((40, 200, 70), (0, 0, 0)),
    "blue": ((40, 110, 240), (255, 255, 255)),
}
LASER_THEMES = {"laser-red": (255, 40, 30), "laser-green": (50, 255, 70)}  # the beam's colour
SIZE_RANGE = (8, 192)
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class CursorStyle:
    shape: str = "arrow"
    theme: str = "light"  # a drawn theme, an installed X11 cursor theme, or a laser
    size: int = 32  # drawn: the sprite's height; X11: the nominal cursor size; laser: the glow's width
    shadow: bool = False  # a soft drop shadow below and to the right, as most desktops draw

    def __post_init__(self):
        if self.shape not in CURSOR_SHAPES + LASER_SHAPES:
            raise ValueError(
                f"unknown cursor shape {self.shape!r}: choose one of {CURSOR_SHAPES + LASER_SHAPES}"
            )
        shapes = theme_shapes(self.theme)
        if self.shape not in shapes:
            raise ValueError(f"cursor theme {self.theme!r} has no {self.shape!r}: it draws {shapes}")
        if not SIZE_RANGE[0] <= self.size <= SIZE_RANGE[1]:
            raise ValueError(f"cursor size {self.size} px is outside {SIZE_RANGE[0]}..{SIZE_RANGE[1]}")


@dataclass(frozen=True)
class CursorSprite:
    rgba: np.ndarray  # (h, w, 4) uint8, straight alpha
    hotspot: tuple[float, float]  # (x, y) inside the sprite, in pixel-centre coordinates


def theme_shapes(theme: str) -> tuple[str, ...]:
    """The shapes a theme draws; a clear error for a theme that is unknown or not installed."""
    if theme in CURSOR_THEMES:
        return CURSOR_SHAPES
    if theme in LASER_THEMES:
        return LASER_SHAPES
    if theme in xcursor.installed_themes():
        return CURSOR_SHAPES
    raise ValueError(
        f"cursor theme {theme!r} is not a drawn theme {tuple(CURSOR_THEMES)}, not a laser "
        f"{tuple(LASER_THEMES)}, and not an X11 cursor theme installed under {xcursor.ICONS_DIR}: "
        f"{xcursor.install_hint(theme)}"
    )


def pointer_themes() -> dict[str, tuple[str, ...]]:
    """Every theme usable here (drawn, installed X11, laser) -> the shapes it draws."""
    themes = dict.fromkeys(CURSOR_THEMES, CURSOR_SHAPES)
    themes.update(dict.fromkeys(xcursor.installed_themes(), CURSOR_SHAPES))
    themes.update(dict.fromkeys(LASER_THEMES, LASER_SHAPES))
    return themes


def draw_theme(themes: Sequence[str], rng: np.random.Generator) -> str:
    """A family first, then one of its themes in the order given: families with dozens of colour
    variants (oxygen has 37) do not crowd out the rest."""
    families = sorted({theme_family(theme) for theme in themes})
    family = families[rng.integers(len(families))]
    members = [theme for theme in themes if theme_family(theme) == family]
    return members[rng.integers(len(members))]


def theme_family(theme: str) -> str:
    """The design a theme belongs to ("drawn", "laser", or an X11 family such as "dmz")."""
    if theme in CURSOR_THEMES:
        return "drawn"
    if theme in LASER_THEMES:
        return "laser"
    return xcursor.theme_family(theme)


def render_sprite(style: CursorStyle) -> CursorSprite:
    if style.theme in LASER_THEMES:
        rgba, hotspot = _laser_dot(LASER_THEMES[style.theme], style.size)
    elif style.theme in CURSOR_THEMES:
        rgba, hotspot = _drawn(style)
    else:
        rgba, hotspot = _x11(style)
    if style.shadow:
        shadowed = _with_shadow(
            Image.fromarray(rgba, "RGBA"), offset=max(1, round(style.size * 0.06)), blur=style.size * 0.04
        )
        rgba = np.asarray(shadowed)
    return CursorSprite(rgba=np.ascontiguousarray(rgba), hotspot=hotspot)


def _polygons(shape: str) -> tuple[list[list[tuple[float, float]]], tuple[float, float], float]:
    """Outline polygons in units of the sprite height, the hotspot, and the sprite's width."""
    if shape == "arrow":
        arrow = [(0, 0), (0, 0.78), (0.2, 0.61), (0.33, 0.9), (0.45, 0.85), (0.32, 0.56), (0.56, 0.56)]
        return [arrow], (0, 0), 0.6
    if shape == "hand":
        finger = [(0.25, 0.08), (0.35, 0.0), (0.45, 0.08), (0.45, 0.5), (0.25, 0.5)]
        palm = [
            (0.14, 0.5),
            (0.3, 0.4),
            (0.78, 0.42),
            (0.84, 0.55),
            (0.8, 0.86),
            (0.66, 1.0),
            (0.3, 1.0),
            (0.18, 0.8),
            (0.04, 0.62),
            (0.1, 0.52),
        ]
        return [palm, finger], (0.35, 0.0), 0.9
    if shape == "crosshair":  # crosshair and I-beam: drawn from lines around their centre
        return [], (0.5, 0.5), 1.0
    return [], (0.2, 0.5), 0.4


def _drawn(style: CursorStyle) -> tuple[np.ndarray, tuple[float, float]]:
    """A drawn pointer, supersampled, with its hotspot at (or within 1/8 px of) a pixel centre, so
    that pastes at whole pixels stay sharp."""
    fill, edge = CURSOR_THEMES[style.theme]
    polygons, (hx, hy), width_ratio = _polygons(style.shape)
    ss, scale = _SUPERSAMPLE, style.size * _SUPERSAMPLE
    # PIL takes vertices as corner coordinates (rounded to whole supersampled pixels) and fills
    # the pixels whose centres lie inside or on the outline. A hotspot vertex at corner coordinate
    # ss * (n + 0.5) thus lands on the centre of output pixel n.
    hot = ((math.ceil(hx * style.size) + 2.5) * ss, (math.ceil(hy * style.size) + 2.5) * ss)
    origin_x, origin_y = hot[0] - hx * scale, hot[1] - hy * scale
    width = math.ceil((origin_x + width_ratio * scale) / ss) + 2
    height = math.ceil((origin_y + scale) / ss) + 2
    canvas = Image.new("RGBA", (width * ss, height * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    stroke = max(ss, round(scale * 0.045))
    if style.shape == "crosshair":
        arm, gap = scale * 0.48, scale * 0.12
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            segment = [(hot[0] + dx * gap, hot[1] + dy * gap), (hot[0] + dx * arm, hot[1] + dy * arm)]
            draw.line(segment, fill=edge, width=stroke * 3)
            draw.line(segment, fill=fill, width=stroke)
        r = scale * 0.26
        circle = [hot[0] - r, hot[1] - r, hot[0] + r, hot[1] + r]
        draw.ellipse(circle, outline=edge, width=stroke * 3)
        draw.ellipse(circle, outline=fill, width=stroke)
    elif style.shape == "ibeam":
        top, bottom, serif = origin_y + stroke, origin_y + scale - stroke, scale * 0.14
        strokes = [
            [(hot[0], top), (hot[0], bottom)],
            [(hot[0] - serif, top), (hot[0] + serif, top)],
            [(hot[0] - serif, bottom), (hot[0] + serif, bottom)],
        ]
        for segment in strokes:
            draw.line(segment, fill=edge, width=stroke * 3)
        for segment in strokes:
            draw.line(segment, fill=fill, width=stroke)
    else:
        for polygon in polygons:
            points = [(origin_x + x * scale, origin_y + y * scale) for x, y in polygon]
            draw.polygon(points, fill=fill, outline=edge, width=stroke)
    rgba = np.asarray(canvas.resize((width, height), Image.Resampling.BOX)).copy()  # area coverage
    if style.shape in ("crosshair", "ibeam"):  # symmetric about their centre, however PIL draws lines
        return rgba, _centroid(rgba[..., 3])
    hotspot = (hot[0] / ss - 0.5, hot[1] / ss - 0.5)
    if style.shape == "arrow":  # its 45-degree edge runs through the pixel centres PIL fills
        hotspot = (hotspot[0], hotspot[1] - 0.5 / ss)
    return rgba, hotspot


def _centroid(alpha: np.ndarray) -> tuple[float, float]:
    weights = alpha.astype(np.float64)
    ys, xs = np.indices(alpha.shape)
    return float((weights * xs).sum() / weights.sum()), float((weights * ys).sum() / weights.sum())


@cache
def _theme_images(theme: str, shape: str) -> tuple[xcursor.XcursorImage, ...]:
    return tuple(xcursor.read_xcursor(xcursor.cursor_file(theme, shape)))


def _x11(style: CursorStyle) -> tuple[np.ndarray, tuple[float, float]]:
    """The theme's image for the smallest nominal size >= the size (else its largest), scaled to it."""
    images = _theme_images(style.theme, style.shape)
    larger = [image for image in images if image.nominal_size >= style.size]
    image = larger[0] if larger else images[-1]
    xhot, yhot = image.hotspot
    if image.nominal_size == style.size:
        return image.rgba.copy(), (float(xhot), float(yhot))
    h, w = image.rgba.shape[:2]
    scale = style.size / image.nominal_size
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    rgba = image.rgba.astype(np.float32) / 255.0
    rgba[..., :3] *= rgba[..., 3:]  # resample premultiplied, so transparent pixels lend no colour
    shrinking = out_w < w
    resized = cv2.resize(rgba, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    alpha = np.clip(resized[..., 3:], 0.0, 1.0)
    colour = np.clip(resized[..., :3], 0.0, alpha) / np.maximum(alpha, 1e-6)
    straight = np.concatenate([colour, alpha], axis=-1)
    # resize maps pixel centres: x_out = (x_in + 0.5) * out_w / w - 0.5
    hotspot = ((xhot + 0.5) * out_w / w - 0.5, (yhot + 0.5) * out_h / h - 0.5)
    return np.clip(np.round(straight * 255.0), 0, 255).astype(np.uint8), hotspot


def _laser_dot(colour: tuple[int, int, int], size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """A laser pointer's spot: a bright, nearly white core in a glow of its colour; hotspot at the centre."""
    half = max(2, math.ceil((size - 1) / 2))
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    r = np.hypot(offsets[None, :], offsets[:, None])
    core_radius = max(1.2, 0.2 * size)
    core = np.clip(core_radius + 0.5 - r, 0.0, 1.0)  # an anti-aliased disc
    glow = 0.6 * np.exp(-0.5 * (r / (size / 5.0)) ** 2)
    alpha = np.maximum(core, glow)
    whiteness = 0.75 * np.clip(1.0 - r / core_radius, 0.0, 1.0)  # the camera saturates at the centre
    rgb = np.asarray(colour, np.float32) * (1.0 - whiteness[..., None]) + 255.0 * whiteness[..., None]
    rgba = np.concatenate([rgb, 255.0 * alpha[..., None]], axis=-1)
    return np.clip(np.round(rgba), 0, 255).astype(np.uint8), (float(half), float(half))


def _with_shadow(sprite: Image.Image, offset: int, blur: float) -> Image.Image:
    """The sprite over a blurred, half-transparent black copy of itself shifted down and right.

    The canvas grows to the right and downwards only, so the hotspot keeps its coordinates.
    """
    margin = offset + math.ceil(2 * blur)
    alpha = Image.new("L", (sprite.width + margin, sprite.height + margin), 0)
    alpha.paste(sprite.getchannel("A").point(lambda a: a * 0.45), (offset, offset))
    shadow = Image.new("RGBA", alpha.size, (0, 0, 0, 0))
    shadow.putalpha(alpha.filter(ImageFilter.GaussianBlur(blur)))
    shadow.alpha_composite(sprite)
    return shadow


def paste_sprite(frame: np.ndarray, sprite: CursorSprite, x: float, y: float) -> None:
    """Alpha-blend the sprite into the frame (in place) with its hotspot exactly at (x, y)."""
    placed, col, row = placed_sprite(sprite, x, y)
    h, w = placed.shape[:2]
    fx0, fy0 = max(col, 0), max(row, 0)
    fx1, fy1 = min(col + w, frame.shape[1]), min(row + h, frame.shape[0])
    if fx0 >= fx1 or fy0 >= fy1:
        return
    patch = placed[fy0 - row : fy1 - row, fx0 - col : fx1 - col]
    region = frame[fy0:fy1, fx0:fx1]
    blended = patch[..., :3] + region * (1.0 - patch[..., 3:])
    region[:] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def sprite_coverage(sprite: CursorSprite, x: float, y: float, frame_size: tuple[int, int]) -> np.ndarray:
    """The sprite's opacity (0..1) over a frame of frame_size (w, h), pasted with its hotspot at (x, y)."""
    placed, col, row = placed_sprite(sprite, x, y)
    coverage = np.zeros((frame_size[1], frame_size[0]), np.float32)
    h, w = placed.shape[:2]
    fx0, fy0 = max(col, 0), max(row, 0)
    fx1, fy1 = min(col + w, frame_size[0]), min(row + h, frame_size[1])
    if fx0 < fx1 and fy0 < fy1:
        coverage[fy0:fy1, fx0:fx1] = placed[fy0 - row : fy1 - row, fx0 - col : fx1 - col, 3]
    return coverage


def placed_sprite(sprite: CursorSprite, x: float, y: float) -> tuple[np.ndarray, int, int]:
    """The sprite premultiplied (colour 0..255 times opacity 0..1), moved by the fractional part of
    its position, and the frame column and row of its top left pixel.

    Bilinear interpolation of premultiplied pixels moves the sprite's coverage by exactly that
    fraction, so the hotspot lands on (x, y) without rounding.
    """
    left, top = x - sprite.hotspot[0], y - sprite.hotspot[1]
    col, row = math.floor(left), math.floor(top)
    premultiplied = sprite.rgba.astype(np.float32)
    premultiplied[..., 3] /= 255.0
    premultiplied[..., :3] *= premultiplied[..., 3:]
    return _shift(_shift(premultiplied, left - col, axis=1), top - row, axis=0), col, row


def _shift(image: np.ndarray, fraction: float, axis: int) -> np.ndarray:
    """The image moved by 0 <= fraction < 1 pixels along an axis, one pixel larger along it."""
    if fraction < 1e-6:
        return image
    shape = list(image.shape)
    shape[axis] += 1
    shifted = np.zeros(shape, image.dtype)
    head = [slice(None)] * image.ndim
    tail = [slice(None)] * image.ndim
    head[axis], tail[axis] = slice(0, -1), slice(1, None)
    shifted[tuple(head)] += (1.0 - fraction) * image
    shifted[tuple(tail)] += fraction * image
    return shifted


class CursorTrack:
    """Per-frame hotspot positions, written one movement after another."""

    def __init__(self, n_frames: int, fps: float, frame_size: tuple[int, int], rng: np.random.Generator):
        self.fps = fps
        self.width, self.height = frame_size
        self.rng = rng
        self.x = np.zeros(n_frames, np.float64)
        self.y = np.zeros(n_frames, np.float64)
        self.visible = np.zeros(n_frames, bool)
        self.position: tuple[float, float] | None = None  # None while the pointer is off the frame
        self.t = 0.0

    def _frames(self, t0: float, t1: float) -> np.ndarray:
        return np.arange(
            max(0, math.ceil(t0 * self.fps - 1e-9)), min(len(self.x), math.ceil(t1 * self.fps - 1e-9))
        )

    def _write(self, frames: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> None:
        self.x[frames], self.y[frames] = xs, ys
        self.visible[frames] = (xs >= 0) & (xs < self.width) & (ys >= 0) & (ys < self.height)

    def hide_until(self, t1: float) -> None:
        frames = self._frames(self.t, t1)
        self.visible[frames] = False
        self.t, self.position = max(self.t, t1), None

    def hold_until(self, t1: float, tremor_px: float = 0.0) -> None:
        """Stay put; a hand resting on the mouse trembles by a pixel or so, a released one does not."""
        if self.position is None:
            return self.hide_until(t1)
        frames = self._frames(self.t, t1)
        noise = self._smooth_noise(len(frames), tremor_px)
        self._write(frames, self.position[0] + noise[:, 0], self.position[1] + noise[:, 1])
        self.t = max(self.t, t1)

    def blink_until(self, t1: float, period_s: float, tremor_px: float = 0.0) -> None:
        """Stay put, shown for the first half of every period and hidden for the second, as a
        pointer the system hides while the lecturer types, or a flickering laser."""
        if period_s <= 0:
            raise ValueError(f"blink period {period_s} s must be positive")
        start, frames = self.t, self._frames(self.t, t1)
        self.hold_until(t1, tremor_px)
        phase = ((frames / self.fps - start) / period_s) % 1.0
        self.visible[frames[phase >= 0.5]] = False

    def hide_when_idle(self, idle_s: float, min_move_px: float = 0.5) -> None:
        """After the track is written: hide the pointer once it has not moved for idle_s, as the
        desktop setting does, and show it again on its next move (more than min_move_px)."""
        if idle_s <= 0:
            raise ValueError(f"idle time {idle_s} s must be positive")
        anchor: tuple[float, float] | None = None  # where the pointer last moved to
        last_move_s = 0.0
        shown = self.visible.copy()
        for i in np.flatnonzero(shown):
            position = (self.x[i], self.y[i])
            appeared = i == 0 or not shown[i - 1]
            if appeared or math.dist(position, anchor) > min_move_px:
                anchor, last_move_s = position, i / self.fps
            elif i / self.fps - last_move_s >= idle_s:
                self.visible[i] = False

    def move_to(self, target: tuple[float, float], arrive_by: float | None = None) -> float:
        """Move along a curved minimum-jerk path (waits if `arrive_by` leaves time); returns arrival."""
        start = self.position or self._entry_point(target)
        distance = math.dist(start, target)
        duration = (0.25 + 0.13 * math.log2(distance / 24 + 1)) * self.rng.uniform(0.85, 1.2)
        if arrive_by is not None and arrive_by - duration > self.t:
            self.hold_until(arrive_by - duration, tremor_px=0.6)
        self.position = start
        overshoot = distance > 150 and self.rng.random() < 0.35
        if overshoot:
            direction = (np.subtract(target, start)) / max(distance, 1e-6)
            beyond = tuple(np.add(target, direction * distance * self.rng.uniform(0.03, 0.07)))
            self._stroke(start, beyond, duration)
            self._stroke(beyond, target, self.rng.uniform(0.12, 0.2))
        else:
            self._stroke(start, target, duration)
        return self.t

    def dwell_until(self, t1: float, box: tuple[float, float, float, float], style: str) -> None:
        """Point at a region until t1: still, with tremor, or circling it, always inside the box."""
        x1, y1, x2, y2 = box
        if style != "circle" or self.position is None:
            return self.hold_until(t1, tremor_px=0.0 if style == "still" else 1.0)
        frames = self._frames(self.t, t1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        rx, ry = (x2 - x1) * 0.3, (y2 - y1) * 0.3
        turns_per_s = self.rng.uniform(0.5, 0.9)
        phase = np.arange(len(frames)) / self.fps * 2 * np.pi * turns_per_s
        ramp = np.minimum(1.0, np.arange(len(frames)) / (0.3 * self.fps))  # ease out from the centre
        wobble = 1 + self._smooth_noise(len(frames), 0.08)
        xs = np.clip(cx + ramp * rx * wobble[:, 0] * np.sin(phase), x1 + 1, x2 - 1)
        ys = np.clip(cy - ramp * ry * wobble[:, 1] * np.cos(phase), y1 + 1, y2 - 1)
        self._write(frames, xs, ys)
        if len(frames):
            self.position = (float(xs[-1]), float(ys[-1]))
        self.t = max(self.t, t1)

    def leave_frame(self) -> None:
        """Slide off the nearest edge of the frame, as a lecturer moving the pointer out of the way."""
        if self.position is None:
            return
        x, y = self.position
        exits = [(-40, y), (self.width + 40, y), (x, -40), (x, self.height + 40)]
        target = min(exits, key=lambda p: math.dist(p, (x, y)))
        self.move_to(target)
        self.position = None

    def _entry_point(self, target: tuple[float, float]) -> tuple[float, float]:
        x, y = target
        entries = [(-30.0, y), (self.width + 30.0, y), (x, self.height + 30.0)]
        return min(entries, key=lambda p: math.dist(p, target))

    def _stroke(self, start, end, duration: float) -> None:
        frames = self._frames(self.t, self.t + duration)
        tau = (frames / self.fps - self.t) / duration
        s = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
        (x0, y0), (x1, y1) = start, end
        bend = self.rng.normal(0, 0.12) * math.dist(start, end)
        length = max(math.dist(start, end), 1e-6)
        cx = (x0 + x1) / 2 - (y1 - y0) / length * bend
        cy = (y0 + y1) / 2 + (x1 - x0) / length * bend
        xs = (1 - s) ** 2 * x0 + 2 * (1 - s) * s * cx + s**2 * x1
        ys = (1 - s) ** 2 * y0 + 2 * (1 - s) * s * cy + s**2 * y1
        self._write(frames, xs, ys)
        self.position, self.t = end, self.t + duration

    def _smooth_noise(self, n: int, amplitude: float) -> np.ndarray:
        if n == 0 or amplitude == 0:
            return np.zeros((n, 2))
        raw = self.rng.normal(0, 1, (n + 8, 2))
        kernel = np.ones(8) / 8
        smooth = np.stack([np.convolve(raw[:, k], kernel, mode="valid")[:n] for k in range(2)], axis=1)
        return smooth / max(float(smooth.std()), 1e-6) * amplitude / 2

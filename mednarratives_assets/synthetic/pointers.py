"""The lecturer's mouse pointer: sprites in several styles, and human-like movement over time.

A track holds the hotspot (the pixel the pointer points at) and its visibility for every frame.
Movements follow a minimum-jerk profile along a slightly curved path, sometimes overshooting and
correcting, with a duration from Fitts' law; dwelling is still, trembling or circling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CURSOR_SHAPES = ("arrow", "hand", "crosshair", "ibeam")
# (fill, edge): the system pointers, then the coloured pointers that presentation tools offer
CURSOR_THEMES = {
    "light": ((255, 255, 255), (0, 0, 0)),
    "dark": ((0, 0, 0), (255, 255, 255)),
    "red": ((230, 40, 40), (255, 255, 255)),
    "yellow": ((250, 220, 30), (0, 0, 0)),
    "green": ((40, 200, 70), (0, 0, 0)),
    "blue": ((40, 110, 240), (255, 255, 255)),
}
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class CursorStyle:
    shape: str = "arrow"
    theme: str = "light"
    size: int = 32  # sprite height in pixels
    shadow: bool = False  # a soft drop shadow below and to the right, as most desktops draw

    def __post_init__(self):
        if self.shape not in CURSOR_SHAPES:
            raise ValueError(f"unknown cursor shape {self.shape!r}: choose one of {CURSOR_SHAPES}")
        if self.theme not in CURSOR_THEMES:
            raise ValueError(f"unknown cursor theme {self.theme!r}: choose one of {tuple(CURSOR_THEMES)}")
        if not 12 <= self.size <= 96:
            raise ValueError(f"cursor size {self.size} px is outside 12..96")


@dataclass(frozen=True)
class CursorSprite:
    rgba: np.ndarray  # (h, w, 4) uint8
    hotspot: tuple[int, int]  # (x, y) inside the sprite


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
    return [], (0.5, 0.5), (1.0 if shape == "crosshair" else 0.4)  # crosshair and I-beam: drawn from lines


def render_sprite(style: CursorStyle) -> CursorSprite:
    fill, edge = CURSOR_THEMES[style.theme]
    polygons, (hx, hy), width_ratio = _polygons(style.shape)
    scale = style.size * _SUPERSAMPLE
    pad = 2 * _SUPERSAMPLE
    width = math.ceil(width_ratio * scale) + 2 * pad
    height = scale + 2 * pad
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    stroke = max(_SUPERSAMPLE, round(scale * 0.045))
    if style.shape == "crosshair":
        c = (width / 2, height / 2)
        arm, gap = scale * 0.48, scale * 0.12
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            segment = [(c[0] + dx * gap, c[1] + dy * gap), (c[0] + dx * arm, c[1] + dy * arm)]
            draw.line(segment, fill=edge, width=stroke * 3)
            draw.line(segment, fill=fill, width=stroke)
        r = scale * 0.26
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], outline=edge, width=stroke * 3)
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], outline=fill, width=stroke)
        hotspot = (width // 2 // _SUPERSAMPLE, height // 2 // _SUPERSAMPLE)
    elif style.shape == "ibeam":
        cx, top, bottom, serif = width / 2, pad, pad + scale, scale * 0.14
        strokes = [
            [(cx, top + stroke), (cx, bottom - stroke)],
            [(cx - serif, top + stroke), (cx + serif, top + stroke)],
            [(cx - serif, bottom - stroke), (cx + serif, bottom - stroke)],
        ]
        for segment in strokes:
            draw.line(segment, fill=edge, width=stroke * 3)
        for segment in strokes:
            draw.line(segment, fill=fill, width=stroke)
        hotspot = (width // 2 // _SUPERSAMPLE, height // 2 // _SUPERSAMPLE)
    else:
        for polygon in polygons:
            points = [(pad + x * scale, pad + y * scale) for x, y in polygon]
            draw.polygon(points, fill=fill, outline=edge, width=stroke)
        hotspot = (round((pad + hx * scale) / _SUPERSAMPLE), round((pad + hy * scale) / _SUPERSAMPLE))
    small = canvas.resize((width // _SUPERSAMPLE, height // _SUPERSAMPLE), Image.Resampling.LANCZOS)
    if style.shadow:
        small = _with_shadow(small, offset=max(1, round(style.size * 0.06)), blur=style.size * 0.04)
    return CursorSprite(rgba=np.asarray(small).copy(), hotspot=hotspot)


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


def paste_sprite(frame: np.ndarray, sprite: CursorSprite, x: int, y: int) -> None:
    """Alpha-blend the sprite into the frame (in place) with its hotspot at pixel (x, y)."""
    h, w = sprite.rgba.shape[:2]
    left, top = x - sprite.hotspot[0], y - sprite.hotspot[1]
    fx0, fy0 = max(left, 0), max(top, 0)
    fx1, fy1 = min(left + w, frame.shape[1]), min(top + h, frame.shape[0])
    if fx0 >= fx1 or fy0 >= fy1:
        return
    patch = sprite.rgba[fy0 - top : fy1 - top, fx0 - left : fx1 - left]
    alpha = patch[..., 3:4].astype(np.float32) / 255.0
    region = frame[fy0:fy1, fx0:fx1]
    region[:] = (patch[..., :3] * alpha + region * (1.0 - alpha)).astype(np.uint8)


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

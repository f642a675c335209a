"""Variable-frame-rate video, as phone and screen recorders make it.

A screen recorder emits a frame when the picture changes: a still slide gets a frame now and then,
a moving pointer many a second. Such a file's average frame rate says nothing about when any one
frame is shown; only each frame's presentation time (its pts) does. `vfr_video` writes an H.264
mp4 whose every frame carries an explicit, irregular pts, and returns the times it used, so a test
knows exactly when each scene starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from mednarratives_assets.synthetic.pointers import CursorStyle, paste_sprite, render_sprite

# 90 kHz, as MPEG streams count time: fine enough that a frame's time is exact to 11 µs.
TIME_BASE = Fraction(1, 90_000)


@dataclass(frozen=True)
class VfrScene:
    """A picture shown for `seconds`, with frames emitted about `frame_hz` times a second."""

    picture: np.ndarray  # RGB uint8 (h, w, 3), even sizes
    seconds: float
    frame_hz: float
    jitter: float = 0.5  # each gap between frames varies by up to this share of 1 / frame_hz
    pointer: bool = False  # a pointer moves over the picture (what makes a recorder emit frames)


@dataclass(frozen=True)
class VfrVideo:
    path: Path
    frame_times: list[float]  # every frame's presentation time in seconds, in order, as written
    scene_starts: list[float]  # when each scene appears (its first frame); the last ends at duration_s
    duration_s: float


def write_vfr_mp4(
    path: Path, frames: Iterable[tuple[float, np.ndarray]], time_base: Fraction = TIME_BASE
) -> Path:
    """An H.264 mp4 of (presentation time in seconds, RGB uint8 frame) pairs, times increasing.

    Each frame's pts is its time in `time_base` units, rounded; nothing assumes a frame rate.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = None
        previous = -1
        for t, picture in frames:
            if stream is None:
                # `rate` is only the encoder's rate-control hint; every frame carries its own pts.
                stream = container.add_stream("libx264", rate=30)
                stream.height, stream.width = picture.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.time_base = time_base
                stream.codec_context.time_base = time_base
                stream.options = {"preset": "veryfast", "crf": "23"}
            pts = round(t / time_base)
            if pts <= previous:
                raise ValueError(f"{path}: frame times must increase ({t} s after pts {previous})")
            previous = pts
            yuv = cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
            container.mux(stream.encode(frame))
        if stream is None:
            raise ValueError(f"{path}: no frames to encode")
        container.mux(stream.encode())
    return path


def vfr_video(path: Path, scenes: list[VfrScene], seed: int = 0) -> VfrVideo:
    """Write the scenes one after another, each starting with a frame at its first moment (a recorder
    emits one when the picture changes), then frames at irregular gaps around 1 / frame_hz."""
    rng = np.random.default_rng(seed)
    sprite = render_sprite(CursorStyle("arrow", "light", 24))
    scene_starts, timed = [], []
    start = 0.0
    for scene in scenes:
        start = float(round(start / TIME_BASE) * TIME_BASE)
        scene_starts.append(start)
        end, t = start + scene.seconds, start
        while t < end - 1e-6:
            timed.append((t, scene))
            t += (1 + scene.jitter * rng.uniform(-1, 1)) / scene.frame_hz
        start = end
    times = [float(round(t / TIME_BASE) * TIME_BASE) for t, _ in timed]

    def frames():
        for t, scene in timed:
            picture = scene.picture
            if scene.pointer:
                picture = picture.copy()
                h, w = picture.shape[:2]
                x = w / 2 + 0.3 * w * np.sin(1.3 * t)
                y = h / 2 + 0.25 * h * np.cos(0.9 * t)
                paste_sprite(picture, sprite, round(x), round(y))
            yield t, picture

    write_vfr_mp4(path, frames())
    return VfrVideo(path, times, scene_starts, start)

"""Frames sampled from a video in one decoding pass, shared by chunking and cursor tracing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


class VideoUnreadable(ValueError):
    """The file cannot be decoded as video."""


@dataclass
class Sample:
    t: float
    small: np.ndarray  # grey, analysis_width wide
    frame: np.ndarray  # BGR, full size


def sample_video(
    path: Path, sample_hz: float, analysis_width: int, spans: list[tuple[float, float]] | None = None
) -> Iterator[Sample]:
    """Every `fps / sample_hz`-th frame, decoded in one pass: grab() every frame, retrieve() the samples.

    With `spans` ((start_s, end_s) pairs), only samples inside one of them are retrieved and
    yielded, and decoding stops after the last span ends.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoUnreadable(f"{path}: not a readable video")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not fps or fps <= 0:
            raise VideoUnreadable(f"{path}: the video stream has no frame rate")
        step = max(1, round(fps / sample_hz))
        last_s = math.inf if spans is None else max((end for _, end in spans), default=-1.0)
        index = 0
        while capture.grab():
            t = index / fps
            if t > last_s:
                return
            if index % step == 0 and (spans is None or any(start <= t <= end for start, end in spans)):
                ok, frame = capture.retrieve()
                if ok:
                    height = round(frame.shape[0] * analysis_width / frame.shape[1])
                    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                    small = cv2.resize(grey, (analysis_width, height), interpolation=cv2.INTER_AREA)
                    yield Sample(t, small, frame)
            index += 1
        if index == 0:
            raise VideoUnreadable(f"{path}: no frame could be decoded")
    finally:
        capture.release()

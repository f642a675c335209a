"""Frames sampled from a video in one decoding pass, shared by chunking and cursor tracing.

Every time is the frame's presentation time: the container's timestamp of that frame, less the
stream's start, as OpenCV's FFmpeg backend reports it after grab(). It is never the frame's index
divided by the average frame rate, which is wrong for variable-frame-rate video (phone and screen
recordings, which emit frames only when the picture changes).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

# Containers round timestamps (Matroska and WebM to 1 ms), so a frame this little before a sampling
# tick counts as on it. Well under half the frame interval of 120 fps video (4 ms).
TICK_TOLERANCE_S = 0.002


class VideoUnreadable(ValueError):
    """The file cannot be decoded as video, or its frames carry no usable presentation times."""


def is_video_fault(exc: BaseException) -> bool:
    """Whether `exc` says something about the video file itself (it cannot be decoded), rather than
    about the machine (a full disk, a missing permission, an I/O error), which must not be taken for
    a bad video.

    PyAV's errors are tested first: some of them are OSError subclasses too (av.FileNotFoundError).
    """
    return isinstance(exc, av.FFmpegError | VideoUnreadable | cv2.error)


@dataclass
class Sample:
    t: float  # presentation time in seconds from the stream's start
    small: np.ndarray  # grey, analysis_width wide
    frame: np.ndarray  # BGR, full size


def sample_frames(
    path: Path, sample_hz: float, spans: list[tuple[float, float]] | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """(presentation time, full-size BGR frame) at `sample_hz`, decoded in one pass.

    Every frame is grabbed; at each tick k / sample_hz the first frame presented at or after it is
    retrieved (a frame that covers several ticks, after a gap in a variable-frame-rate video, is
    retrieved once). With `spans` ((start_s, end_s) pairs), only samples inside one of them are
    retrieved and yielded, decoding skips the stretch before a span where a keyframe lies in it
    (`_Frames.skip_to`), and it stops after the last span ends. The samples are those that grabbing
    every frame gives: after one frame, which lies before the span, the ticks are where they would be.

    VideoUnreadable, naming the file, when it cannot be opened or decoded, or when its frames carry
    no presentation times (a raw stream) or times that run backwards.
    """
    _check_readable(path)
    spans = None if spans is None else sorted(spans)
    last_s = math.inf if spans is None else max((end for _, end in spans), default=-1.0)
    frames = _Frames(path, keyframe_times(path, last_s) if spans else [])
    try:
        next_tick = 0  # the index of the next tick to sample
        previous_t = -math.inf
        index = 0
        while (t := frames.grab()) is not None:
            if index > 0 and t <= previous_t:
                _check_time(path, index, t, previous_t)
            previous_t = max(previous_t, t)
            if t > last_s:
                return
            if t >= next_tick / sample_hz - TICK_TOLERANCE_S:
                next_tick = math.floor((t + TICK_TOLERANCE_S) * sample_hz) + 1
                if spans is None or any(start <= t <= end for start, end in spans):
                    ok, frame = frames.capture.retrieve()
                    if ok:
                        yield t, frame
            index += 1
            if spans is not None:
                upcoming = next((start for start, end in spans if end >= t), None)
                if upcoming is not None and upcoming > t:
                    frames.skip_to(upcoming)
        if index == 0:
            raise VideoUnreadable(f"{path}: no frame could be decoded")
    finally:
        frames.capture.release()


# Decoding skips ahead to this long before a span. OpenCV seeks by decoding on from the keyframe
# before a point 16 frames earlier (under a second at 16 fps and more), so a skip pays only across
# a keyframe twice this far before the span; and the frame it lands on lies before the span.
SEEK_LEAD_S = 1.0


def keyframe_times(path: Path, until_s: float) -> list[float]:
    """Presentation times, as OpenCV reports them, of the video's keyframes up to `until_s`, read
    from the container's packets without decoding; none where PyAV cannot read them."""
    times = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            start, seconds_per_tick = stream.start_time or 0, float(stream.time_base)
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                t = (packet.pts - start) * seconds_per_tick
                if t > until_s:
                    break
                if packet.is_keyframe:
                    times.append(t)
    except (av.FFmpegError, IndexError):
        return []
    return times


class _Frames:
    """An OpenCV capture of the video, grabbed frame by frame, that can skip ahead to a keyframe."""

    def __init__(self, path: Path, keyframes: list[float]):
        self.path, self.keyframes = path, keyframes
        self.capture = self._open()
        self.t = -math.inf  # the presentation time of the frame grabbed last
        self.landed: float | None = None  # a frame grabbed by skip_to, not yet handed on

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise VideoUnreadable(f"{self.path}: not a readable video")
        return capture

    def _grab(self) -> float | None:
        return self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000 if self.capture.grab() else None

    def grab(self) -> float | None:
        """The next frame's presentation time, None at the end; `capture.retrieve()` decodes it."""
        t = self.landed if self.landed is not None else self._grab()
        self.landed = None
        if t is not None:
            self.t = t
        return t

    def skip_to(self, start_s: float) -> None:
        """Skip to SEEK_LEAD_S before `start_s` where a keyframe lies between here and there, so
        that the frames in between are never decoded.

        The frame landed on must follow the one grabbed last and lie before `start_s`; where it
        does not (a file whose timestamps OpenCV's seek misjudges), decoding starts again from the
        beginning and goes on after the last frame grabbed, as if it had never skipped.
        """
        target = start_s - SEEK_LEAD_S
        after = bisect.bisect_right(self.keyframes, self.t)
        if after == len(self.keyframes) or self.keyframes[after] > target - SEEK_LEAD_S:
            return
        self.capture.set(cv2.CAP_PROP_POS_MSEC, target * 1000)
        landed = self._grab()
        if landed is not None and self.t < landed < start_s:
            self.landed = landed
            return
        self.capture.release()
        self.capture, self.keyframes = self._open(), []
        while (landed := self._grab()) is not None and landed <= self.t:
            pass
        self.landed = landed


def _check_readable(path: Path) -> None:
    """Open the file as the decoder will. OpenCV reports any failure as "not opened", so a missing
    permission or an I/O error would pass for a bad video: those raise their own OSError, naming
    the file, here. A file that is gone is this video's fault: VideoUnreadable."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except FileNotFoundError as exc:
        raise VideoUnreadable(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise VideoUnreadable(f"{path}: a folder, not a video file") from exc


def _check_time(path: Path, index: int, t: float, previous_t: float) -> None:
    """A frame timed no later than the one before it: a repeated timestamp is passed over (it is not
    sampled); a missing one (OpenCV reports 0) or one that runs backwards is an error."""
    if t == 0.0:
        raise VideoUnreadable(
            f"{path}: frame {index} has no presentation time (a raw stream, or a broken container); "
            "remux it into mp4 or mkv with timestamps"
        )
    if t < previous_t - TICK_TOLERANCE_S:
        raise VideoUnreadable(
            f"{path}: frame {index} is presented at {t:.3f} s, before the frame ahead of it "
            f"({previous_t:.3f} s): its timestamps are broken; remux it with timestamps"
        )


def sample_video(
    path: Path, sample_hz: float, analysis_width: int, spans: list[tuple[float, float]] | None = None
) -> Iterator[Sample]:
    """`sample_frames`, each with a grey copy `analysis_width` wide for comparing frames."""
    for t, frame in sample_frames(path, sample_hz, spans):
        height = round(frame.shape[0] * analysis_width / frame.shape[1])
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (analysis_width, height), interpolation=cv2.INTER_AREA)
        yield Sample(t, small, frame)

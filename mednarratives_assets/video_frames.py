"""Frames sampled from a video, shared by chunking and cursor tracing.

Every time is the frame's presentation time: the container's timestamp of that frame, less the
stream's start, as OpenCV's FFmpeg backend reports it after grab(). It is never the frame's index
divided by the average frame rate, which is wrong for variable-frame-rate video (phone and screen
recordings, which emit frames only when the picture changes).

Chunking grabs every frame with OpenCV. Tracing needs only the samples inside its chunks: PyAV
decodes just the frames those need, and gives them with OpenCV's times and pixels.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
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


class _Ticks:
    """Which frames are sampled: at each tick k / sample_hz, the first frame presented at or after
    it (a frame that covers several ticks, after a gap in a variable-frame-rate video, once)."""

    def __init__(self, sample_hz: float):
        self.sample_hz, self.next_tick = sample_hz, 0

    def take(self, t: float) -> bool:
        if t < self.next_tick / self.sample_hz - TICK_TOLERANCE_S:
            return False
        self.next_tick = math.floor((t + TICK_TOLERANCE_S) * self.sample_hz) + 1
        return True


def sample_frames(
    path: Path, sample_hz: float, spans: list[tuple[float, float]] | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """(presentation time, full-size BGR frame) at `sample_hz`, as `_Ticks` picks them.

    Without `spans`, every frame is grabbed with OpenCV in one pass and the sampled ones retrieved.
    With `spans` ((start_s, end_s) pairs), only the samples inside one of them are yielded, decoded
    by `_decoded_in_spans`; where PyAV cannot give them as OpenCV would, the rest are grabbed as
    without spans, stopping after the last span ends.

    VideoUnreadable, naming the file, when it cannot be opened or decoded, or when its frames carry
    no presentation times (a raw stream) or times that run backwards.
    """
    _check_readable(path)
    if spans is None:
        yield from _grabbed(path, sample_hz, None)
        return
    last_t = -math.inf
    try:
        for t, frame in _decoded_in_spans(path, sample_hz, sorted(spans)):
            yield t, frame
            last_t = t
        return
    except (_Unmatched, av.FFmpegError):
        pass
    after = math.nextafter(last_t, math.inf)
    yield from _grabbed(path, sample_hz, [(max(start, after), end) for start, end in spans if end >= after])


def _grabbed(
    path: Path, sample_hz: float, spans: list[tuple[float, float]] | None
) -> Iterator[tuple[float, np.ndarray]]:
    """Every frame grabbed with OpenCV, the sampled ones inside `spans` (all, without) retrieved."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoUnreadable(f"{path}: not a readable video")
    try:
        last_s = math.inf if spans is None else max((end for _, end in spans), default=-1.0)
        ticks = _Ticks(sample_hz)
        previous_t = -math.inf
        index = 0
        while capture.grab():
            t = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
            if index > 0 and t <= previous_t:
                _check_time(path, index, t, previous_t)
            previous_t = max(previous_t, t)
            if t > last_s:
                return
            if ticks.take(t) and (spans is None or any(start <= t <= end for start, end in spans)):
                ok, frame = capture.retrieve()
                if ok:
                    yield t, frame
            index += 1
        if index == 0:
            raise VideoUnreadable(f"{path}: no frame could be decoded")
    finally:
        capture.release()


class _Unmatched(Exception):
    """PyAV cannot give these samples as OpenCV would (packets without timestamps or with repeated
    ones, a rotated picture, a frame other than those foreseen): OpenCV grabs them instead."""


def _decoded_in_spans(
    path: Path, sample_hz: float, spans: list[tuple[float, float]]
) -> Iterator[tuple[float, np.ndarray]]:
    """The samples inside `spans` (sorted), decoded with PyAV from the keyframe at or before each
    span, and of its frames only those sampled or needed to decode others: a frame no other frame
    is predicted from (skip_frame NONREF) is left undecoded unless it is sampled. Over the chunks of
    the training and reserved corpora that took 9 s, where grabbing every frame up to the last
    chunk's end with OpenCV took 25 s.

    The packets' timestamps, read first, say which frames the ticks take: a frame left undecoded
    is one no tick takes, so the ticks fall as when every frame is seen. The samples must then come
    as foreseen, each timed as OpenCV would time it, or _Unmatched; their BGR pixels are OpenCV's
    (the tests compare both).
    """
    if not spans:
        return
    with av.open(str(path)) as container:
        if len(container.streams.video) != 1:
            raise _Unmatched
        stream = container.streams.video[0]
        seconds = _opencv_seconds(stream)
        last_s = max(end for _, end in spans)
        times, keyframes = {}, []  # packet pts -> presentation time; keyframes' times
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None or packet.pts in times:
                raise _Unmatched
            if packet.dts is not None and seconds(packet.dts) > last_s:
                break  # this packet and all after it are presented later still
            times[packet.pts] = seconds(packet.pts)
            if packet.is_keyframe:
                keyframes.append(times[packet.pts])
    ticks, wanted = _Ticks(sample_hz), {}
    for pts, t in sorted(times.items(), key=lambda item: item[1]):
        if ticks.take(t) and any(start <= t <= end for start, end in spans):
            wanted[pts] = t
    if not wanted:
        return
    keyframes.sort()
    keyframe_of = {}  # sample time -> the time of the keyframe its span is decoded from
    for start, end in spans:
        before = bisect.bisect_right(keyframes, start)
        for t in wanted.values():
            if start <= t <= end:
                if before == 0:
                    raise _Unmatched  # no keyframe to decode the span from
                keyframe_of.setdefault(t, keyframes[before - 1])
    yield from _decode(path, wanted, keyframe_of, times)


def _decode(
    path: Path, wanted: dict[int, float], keyframe_of: dict[float, float], times: dict[int, float]
) -> Iterator[tuple[float, np.ndarray]]:
    """`_decoded_in_spans`' second reading: the `wanted` samples (pts -> time), in order, each
    decoded from the keyframe its span starts from (`keyframe_of`), or on from the sample before
    where that keyframe is already behind."""
    pending = iter(sorted(wanted.values()))
    upcoming = next(pending)
    decoding, reached = False, -math.inf  # reached: the latest packet time read
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context
        for packet in container.demux(container.streams.video[0]):
            if packet.size == 0:
                continue
            if packet.pts not in times:
                break  # read past the last span: what the decoder holds is drained below
            reached = max(reached, times[packet.pts])
            if not decoding and not (packet.is_keyframe and times[packet.pts] == keyframe_of[upcoming]):
                continue
            decoding = True
            codec.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            for frame in codec.decode(packet):
                if not _is_sample(frame, times, upcoming):
                    continue
                yield upcoming, frame.to_ndarray(format="bgr24")
                upcoming = next(pending, None)
                if upcoming is None:
                    return
                if keyframe_of[upcoming] > reached:  # skip to the next span's keyframe
                    decoding = False
                    codec.flush_buffers()
                    break
        for frame in codec.decode(None) if decoding else ():
            if _is_sample(frame, times, upcoming):
                yield upcoming, frame.to_ndarray(format="bgr24")
                upcoming = next(pending, None)
                if upcoming is None:
                    return
    raise _Unmatched  # a sample never came


def _opencv_seconds(stream: av.video.stream.VideoStream) -> Callable[[int], float]:
    """A timestamp of `stream` in seconds from its start, computed as OpenCV computes it."""
    if stream.start_time is None:
        raise _Unmatched
    start, per_tick = stream.start_time, stream.time_base.numerator / stream.time_base.denominator
    return lambda timestamp: float(timestamp - start) * per_tick * 1000 / 1000


def _is_sample(frame: av.VideoFrame, times: dict[int, float], upcoming: float) -> bool:
    """Whether the frame is the sample `upcoming`; _Unmatched where it is no packet's, OpenCV would
    turn it, or `upcoming` was passed over. OpenCV times a frame at pts 0 by its decode timestamp,
    which must then give the same time."""
    t = times.get(frame.pts) if frame.pts is not None else None
    if t is None or frame.rotation or t > upcoming:
        raise _Unmatched
    if t == upcoming and frame.pts == 0 and times.get(frame.dts) != t:
        raise _Unmatched
    return t == upcoming


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

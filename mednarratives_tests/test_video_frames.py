"""Sampling video by presentation time, on variable-frame-rate files whose every frame time is known;
and how the stages that decode video tell a fault of the video from a fault of the machine."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import av
import cv2
import numpy as np
import polars as pl
import pytest

from mednarratives_assets import video_frames
from mednarratives_assets.stages import cursor_traces
from mednarratives_assets.stages.cursor_traces import TraceSettings, trace_channel
from mednarratives_assets.synthetic.vfr_video import VfrScene, VfrVideo, vfr_video, write_vfr_mp4
from mednarratives_assets.video_frames import (
    TICK_TOLERANCE_S,
    VideoUnreadable,
    is_video_fault,
    sample_frames,
    sample_video,
)
from mednarratives_tests.conftest import make_video

SIZE = (320, 180)


def plain(value: int) -> np.ndarray:
    picture = np.full((SIZE[1], SIZE[0], 3), value, np.uint8)
    cv2.putText(picture, str(value), (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
    return picture


@pytest.fixture(scope="module")
def screen_recording(tmp_path_factory) -> VfrVideo:
    """A screen recorder's file: a still slide at about 4 frames a second, one with a moving pointer
    at about 30, then a still one at about 2; 30 s in all."""
    scenes = [
        VfrScene(plain(40), 12.1, 4),
        VfrScene(plain(200), 10.7, 30, jitter=0.3, pointer=True),
        VfrScene(plain(120), 7.2, 2),
    ]
    return vfr_video(tmp_path_factory.mktemp("vfr") / "recording.mp4", scenes, seed=3)


def expected_samples(frame_times: list[float], sample_hz: float) -> list[float]:
    """At each tick k / sample_hz, the first frame presented at or after it; each frame once."""
    chosen, tick = [], 0
    for t in frame_times:
        if t >= tick / sample_hz - TICK_TOLERANCE_S:
            chosen.append(t)
            tick = math.floor((t + TICK_TOLERANCE_S) * sample_hz) + 1
    return chosen


def test_the_fixture_is_truly_variable_frame_rate(screen_recording):
    """Frame index / average frame rate puts the second slide's first frame seconds away from its
    true time: the mistake the sampler must not make."""
    capture = cv2.VideoCapture(str(screen_recording.path))
    average_fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    first_of_second = screen_recording.frame_times.index(screen_recording.scene_starts[1])
    assert abs(first_of_second / average_fps - screen_recording.scene_starts[1]) > 3


@pytest.mark.parametrize("sample_hz", [6.0, 10.0])
def test_sample_times_are_the_frames_presentation_times(screen_recording, sample_hz):
    times = [t for t, _ in sample_frames(screen_recording.path, sample_hz)]
    expected = expected_samples(screen_recording.frame_times, sample_hz)
    assert times == pytest.approx(expected, abs=1e-4)
    # Sampled by time: never two samples for one tick.
    ticks = {math.floor((t + TICK_TOLERANCE_S) * sample_hz) for t in times}
    assert len(ticks) == len(times)


def test_each_sample_is_the_frame_shown_at_its_time(screen_recording):
    """The picture sampled at a time is the one the recording shows then."""
    changes = screen_recording.scene_starts
    for sample in sample_video(screen_recording.path, 6.0, 160):
        scene = sum(sample.t >= start for start in changes) - 1
        level = (40, 200, 120)[scene]
        # the picture's own grey level, away from the number and the pointer
        assert abs(int(np.median(sample.frame[:20, :, 1])) - level) <= 6, (sample.t, scene)


def test_constant_frame_rate_video_samples_every_nth_frame_as_before(tmp_path):
    """At 30 fps and 6 Hz the ticks fall on every 5th frame: the frames chosen are those of old."""
    video = make_video(tmp_path / "cfr.mp4", seconds=3.0, fps=30, audio=False)
    times = [t for t, _ in sample_frames(video, 6.0)]
    assert times == pytest.approx([i / 30 for i in range(0, 90, 5)], abs=1e-6)


def test_sampling_spans_keeps_presentation_times(screen_recording):
    spans = [(5.0, 6.0), (13.0, 14.0)]
    times = [t for t, _ in sample_frames(screen_recording.path, 6.0, spans=spans)]
    expected = [
        t for t in expected_samples(screen_recording.frame_times, 6.0) if any(a <= t <= b for a, b in spans)
    ]
    assert times == pytest.approx(expected, abs=1e-4) and times


@pytest.fixture(scope="module")
def half_minute(tmp_path_factory) -> Path:
    """30 s at 30 fps with B-frames, where x264 puts a keyframe every second or two."""
    return make_video(tmp_path_factory.mktemp("cfr") / "half-minute.mp4", seconds=30.0, fps=30, audio=False)


def tagged_clip(path: Path, colorspace: int, color_range: int) -> Path:
    """4 s of a moving gradient, its colour matrix and range tagged (1: BT.709; range 2: full)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = colorspace, color_range
        for i in range(100):
            picture = np.zeros((240, 320, 3), np.uint8)
            picture[..., 0] = np.linspace(0, 255, 320)[None, :]
            picture[..., 1] = (np.linspace(0, 255, 240)[:, None] + 3 * i) % 256
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.colorspace, frame.color_range = colorspace, color_range
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


SPANS = [(12.0, 14.0), (24.0, 26.5)]


def grabbed_in(path: Path, sample_hz: float, spans: list[tuple[float, float]]) -> list:
    return [(t, f) for t, f in sample_frames(path, sample_hz) if any(a <= t <= b for a, b in spans)]


def assert_same_samples(found: list, expected: list) -> None:
    assert [t for t, _ in found] == [t for t, _ in expected] and found
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(found, expected, strict=True))


@pytest.mark.parametrize("clip", ["half-minute", "screen recording", "BT.709", "full range"])
def test_samples_inside_spans_are_decoded_by_pyav_as_opencv_grabs_them(
    clip, half_minute, screen_recording, tmp_path
):
    """Decoded from the keyframe before each span, the sampled frames and those others are
    predicted from only: the times and BGR pixels of grabbing every frame with OpenCV."""
    path, spans = {
        "half-minute": (half_minute, SPANS),
        "screen recording": (screen_recording.path, [(5.0, 6.0), (13.0, 16.5), (24.0, 28.0)]),
        "BT.709": (tagged_clip(tmp_path / "bt709.mp4", 1, 1), [(1.0, 1.5), (2.5, 4.0)]),
        "full range": (tagged_clip(tmp_path / "full.mp4", 2, 2), [(1.0, 1.5), (2.5, 4.0)]),
    }[clip]
    expected = grabbed_in(path, 10.0, spans)
    assert_same_samples(list(video_frames._decoded_in_spans(path, 10.0, spans)), expected)
    assert_same_samples(list(sample_frames(path, 10.0, spans=spans)), expected)


def test_frames_no_sample_needs_are_left_undecoded(half_minute, monkeypatch):
    """Between the spans nothing is decoded, and inside them only the frames sampled or predicted
    from (here, of 30 a second, about 22)."""
    decoded = []
    is_sample = video_frames._is_sample

    def counted(frame, times, upcoming):
        decoded.append(times[frame.pts])
        return is_sample(frame, times, upcoming)

    monkeypatch.setattr(video_frames, "_is_sample", counted)
    list(sample_frames(half_minute, 10.0, spans=SPANS))
    (_, first_end), (second_start, _) = SPANS
    assert not [t for t in decoded if first_end < t < second_start - 2]  # a keyframe lies 1.4 s before
    inside = [t for t in decoded if any(start <= t <= end for start, end in SPANS)]
    assert len(inside) < 0.8 * 30 * sum(end - start for start, end in SPANS)


def test_where_pyav_stops_matching_opencv_the_rest_is_grabbed(half_minute, monkeypatch):
    """After the samples PyAV gave, OpenCV grabs the rest: none twice, none lost."""
    is_sample = video_frames._is_sample
    given = []

    def failing_later(frame, times, upcoming):
        if len(given) == 12:
            raise video_frames._Unmatched
        found = is_sample(frame, times, upcoming)
        given.extend([upcoming] if found else [])
        return found

    monkeypatch.setattr(video_frames, "_is_sample", failing_later)
    assert_same_samples(
        list(sample_frames(half_minute, 10.0, spans=SPANS)), grabbed_in(half_minute, 10.0, SPANS)
    )
    assert len(given) == 12


def test_cursor_tracing_samples_at_the_same_presentation_times(screen_recording, tmp_path):
    """Trace points are timed by the samples cursor_traces takes through sample_video."""
    grey = np.zeros((90, 160), np.uint8)
    chunk = cursor_traces._Chunk(0, 12.5, 22.0, tmp_path / "unread.png", (180, 320), grey)
    times = [sample.t for _, sample in cursor_traces._samples_in(screen_recording.path, [chunk], 10.0)]
    expected = [t for t in expected_samples(screen_recording.frame_times, 10.0) if 12.5 <= t <= 22.0]
    assert times == pytest.approx(expected, abs=1e-4) and len(times) > 80


def test_a_stream_without_presentation_times_is_refused_naming_the_file(screen_recording, tmp_path):
    """A raw H.264 stream carries no timestamps: OpenCV reports 0 for every frame."""
    raw = tmp_path / "no-times.h264"
    with av.open(str(screen_recording.path)) as source, av.open(str(raw), "w", format="h264") as target:
        stream = source.streams.video[0]
        out = target.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.dts is not None:
                packet.stream = out
                target.mux(packet)
    for spans in (None, [(1.0, 2.0)]):
        with pytest.raises(VideoUnreadable, match=r"no-times\.h264: frame 1 has no presentation time"):
            list(sample_frames(raw, 6.0, spans=spans))


def test_frame_times_must_increase(tmp_path):
    with pytest.raises(ValueError, match="must increase"):
        write_vfr_mp4(tmp_path / "v.mp4", [(0.0, plain(0)), (0.0, plain(1))])


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x00" * 2048, "not a readable video"), (None, "no such file")],
)
def test_what_cannot_be_decoded_is_video_unreadable(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoUnreadable, match=message) as caught:
        list(sample_video(path, 6.0, 160))
    assert str(path) in str(caught.value) and is_video_fault(caught.value)


def test_an_os_error_reading_the_video_is_not_taken_for_a_bad_video(tmp_path, monkeypatch):
    """OpenCV says only "not opened"; the file is opened first so EIO or EACCES keep their errno."""
    video = make_video(tmp_path / "v.mp4", audio=False)

    def failing_open(path, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(video_frames, "open", failing_open, raising=False)
    with pytest.raises(OSError) as caught:
        list(sample_video(video, 6.0, 160))
    assert caught.value.errno == errno.EIO and not is_video_fault(caught.value)


def test_which_errors_are_the_videos_fault():
    assert is_video_fault(VideoUnreadable("x"))
    assert is_video_fault(cv2.error("decode"))
    assert is_video_fault(av.InvalidDataError(errno.EINVAL, "Invalid data"))
    # PyAV's FileNotFoundError is an OSError too: it is a video's fault all the same.
    assert is_video_fault(av.FileNotFoundError(errno.ENOENT, "No such file", "v.mp4"))
    for code in (errno.ENOSPC, errno.EACCES, errno.EIO, errno.EROFS):
        assert not is_video_fault(OSError(code, "machine", "some/path"))


def _videos_and_chunks(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    keyframe = root / "keyframes" / "ch" / "v" / "chunk-000.png"
    keyframe.parent.mkdir(parents=True)
    cv2.imwrite(str(keyframe), np.zeros((180, 320, 3), np.uint8))
    videos = pl.DataFrame([{"video_id": v, "path": f"videos/ch/{v}.mp4", "status": "ok"} for v in ("v", "w")])
    chunk = {
        "channel": "ch",
        "chunk_index": 0,
        "start_s": 0.0,
        "end_s": 1.0,
        "keyframe_path": "keyframes/ch/v/chunk-000.png",
        "is_medical": True,
        "image_x": None,
        "image_y": None,
        "image_w": None,
        "image_h": None,
    }
    chunks = pl.DataFrame([chunk | {"video_id": "v"}, chunk | {"video_id": "w", "keyframe_path": "gone.png"}])
    return videos, chunks


def test_cursor_tracing_reports_a_bad_video_or_lost_keyframe_and_raises_a_full_disk(tmp_path, monkeypatch):
    root = tmp_path / "data"
    videos, chunks = _videos_and_chunks(root)

    def undecodable(video_path, *args, **kwargs):
        raise VideoUnreadable(f"{video_path}: not a readable video")

    monkeypatch.setattr(cursor_traces, "trace_video", undecodable)
    result = trace_channel(root, "ch", videos, chunks, detector=None, settings=TraceSettings())
    reasons = dict(result.videos.select("video_id", "reason").iter_rows())
    assert "v.mp4: not a readable video" in reasons["v"] and "gone.png is missing" in reasons["w"]

    def disk_full(video_path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(video_path))

    monkeypatch.setattr(cursor_traces, "trace_video", disk_full)
    with pytest.raises(OSError, match="No space left") as caught:
        trace_channel(root, "ch", videos, chunks, detector=None, settings=TraceSettings())
    assert caught.value.errno == errno.ENOSPC

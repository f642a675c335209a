"""Cursor traces on synthetic 720p lectures whose pointer is known in every frame."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.defs.cursor_traces import cursor_traces
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.evaluation.stage_scores import TraceScore
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.stages import cursor_traces as stage
from mednarratives_assets.stages.cursor_detector import CROP_PX, Detection
from mednarratives_assets.stages.cursor_traces import (
    CURSOR_TRACES_SCHEMA,
    MOVED,
    PARKED,
    TraceSettings,
    candidate_blobs,
    clean_trace,
    normalize_to_region,
    overlay_mask,
    overlay_png,
    trace_channel,
    trace_video,
)
from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_video
from mednarratives_assets.synthetic.medical_images import packaged_images
from mednarratives_assets.synthetic.pointers import CursorStyle, paste_sprite, render_sprite
from mednarratives_assets.synthetic.slides import THEMES, image_slide
from mednarratives_assets.video_frames import Sample

SIZE = (1280, 720)
FPS = 20  # sampled every other frame: 10 Hz
SETTINGS = TraceSettings()


def always_medical(frames: list[np.ndarray]) -> np.ndarray:
    return np.ones(len(frames), np.float32)


@pytest.fixture(scope="module")
def ct_slide() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    picture = next(image for image in packaged_images() if image.image_id == "ct_head").load()
    return image_slide(SIZE, THEMES["dark"], "CT head", picture, ["hypodense focus"])


def lecture(
    path: Path, slide: np.ndarray, hotspots: list[tuple[float, float] | None], style: CursorStyle
) -> Path:
    """One still slide with the pointer's hotspot at hotspots[i] in frame i (None: no pointer)."""
    sprite = render_sprite(style)

    def frames():
        for hotspot in hotspots:
            frame = slide.copy()
            if hotspot is not None:
                paste_sprite(frame, sprite, round(hotspot[0]), round(hotspot[1]))
            yield frame

    return write_mp4(path, frames(), fps=FPS)


def truth_of(hotspots: list[tuple[float, float] | None]) -> dict:
    visible = [h is not None for h in hotspots]
    return {
        "fps": FPS,
        "height": SIZE[1],
        "cursor": {
            "visible": visible,
            "x": [h[0] if h else None for h in hotspots],
            "y": [h[1] if h else None for h in hotspots],
        },
    }


def chunks_of(video: Path, keyframes: Path) -> list[dict]:
    rows, _ = chunk_video(video, keyframes, always_medical, ChunkingSettings())
    for row in rows:
        row["keyframe_path"] = Path(row["keyframe_path"]).relative_to(keyframes.parent).as_posix()
    return rows


def path_through(points: list[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    t = np.linspace(0, len(points) - 1, n)
    xs, ys = (np.interp(t, np.arange(len(points)), [p[k] for p in points]) for k in range(2))
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def test_a_moving_pointer_is_traced_to_its_hotspot_and_its_absence_stays_a_gap(
    tmp_path, ct_slide, default_cursor_detector
):
    detector = default_cursor_detector
    slide, (ix, iy, iw, ih) = ct_slide
    hidden, moving, still = (
        [None] * FPS,
        path_through([(ix + 40, iy + 30), (ix + iw - 60, iy + ih / 2), (ix + iw / 2, iy + ih - 40)], 3 * FPS),
        [(ix + iw / 2, iy + ih - 40)] * FPS,
    )
    hotspots = hidden + moving + still + hidden + hidden
    video = lecture(tmp_path / "v.mp4", slide, hotspots, CursorStyle("arrow", "light", 30))
    rows = chunks_of(video, tmp_path / "keyframes")
    assert len(rows) == 1

    traced = trace_video(video, rows, tmp_path, detector, SETTINGS)
    points = traced.points
    assert points.columns == [c for c in CURSOR_TRACES_SCHEMA if c not in ("channel", "video_id")]
    assert set(points["t_s"]) <= set(traced.sample_times)  # no invented points
    score = TraceScore()
    score.add(points.to_dicts(), traced.sample_times, truth_of(hotspots))
    assert score.hidden_samples >= 25 and score.visible_samples >= 35
    assert score.false_positives == 0, points
    # benchmarks/cursor.py holds the detector to the targets; CI's, trained on the packaged images
    # only, finds this pointer in 78% of the samples it is visible in
    assert score.coverage >= 0.7 and score.within(6) >= 0.8, (score.coverage, score.errors_720p)
    assert set(points["method"]) == {MOVED}
    inside = points.filter(pl.col("inside_image"))
    assert inside.height >= 0.9 * points.height
    assert inside["x_norm"].is_between(0, 1).all() and inside["y_norm"].is_between(0, 1).all()
    assert set(traced.overlays) == {0}
    overlay = cv2.imdecode(np.frombuffer(traced.overlays[0], np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape[1] == 480


def test_a_small_pointer_is_seen_zoomed_in_and_found_where_the_plain_crop_misses_it(
    tmp_path, ct_slide, default_cursor_detector
):
    """A 14 px pointer (21 px at 1080p, a common OS size in a 720p recording) is at the small end of
    what the detector learned; its blob is cut narrower so the detector sees it twice as large."""
    detector = default_cursor_detector
    slide, (ix, iy, iw, ih) = ct_slide
    corners = [(ix + 40, iy + 40), (ix + iw - 50, iy + ih / 2), (ix + 60, iy + ih - 50)]
    hotspots = path_through(corners, 4 * FPS) + [None] * FPS
    video = lecture(tmp_path / "v.mp4", slide, hotspots, CursorStyle("arrow", "light", 14))
    rows = chunks_of(video, tmp_path / "keyframes")
    scores = {}
    for max_zoom in (1.0, SETTINGS.max_zoom):
        traced = trace_video(video, rows, tmp_path, detector, replace(SETTINGS, max_zoom=max_zoom))
        scores[max_zoom] = TraceScore()
        scores[max_zoom].add(traced.points.to_dicts(), traced.sample_times, truth_of(hotspots))
    plain, zoomed = scores[1.0], scores[SETTINGS.max_zoom]
    assert zoomed.false_positives == 0
    assert zoomed.coverage >= plain.coverage + 0.2, (plain.coverage, zoomed.coverage)
    assert zoomed.within(6) >= 0.8, zoomed.errors_720p


def test_a_pointer_parked_through_most_of_the_chunk_is_found_in_the_keyframe(
    tmp_path, ct_slide, default_cursor_detector
):
    """The median keeps a pointer that stays put: only the keyframe scan can find it."""
    detector = default_cursor_detector
    slide, (ix, iy, iw, ih) = ct_slide
    parked = (ix + iw * 0.4, iy + ih * 0.6)
    away = path_through([parked, (ix + iw + 150, iy + 60)], FPS)
    hotspots = [parked] * (4 * FPS) + away + [None] * FPS
    video = lecture(tmp_path / "v.mp4", slide, hotspots, CursorStyle("hand", "dark", 36))
    rows = chunks_of(video, tmp_path / "keyframes")
    traced = trace_video(video, rows, tmp_path, detector, SETTINGS)
    at_rest = traced.points.filter(pl.col("t_s") < 3.9)
    assert at_rest.height >= 0.8 * 39 and set(at_rest["method"]) == {PARKED}
    errors = np.hypot(at_rest["x_px"].to_numpy() - parked[0], at_rest["y_px"].to_numpy() - parked[1])
    assert np.median(errors) < 6
    assert traced.points.filter(pl.col("t_s") > 5.05).is_empty()


def test_a_pointer_drawn_on_the_slide_never_becomes_a_trace(tmp_path, ct_slide, default_cursor_detector):
    """A mark that looks like a pointer but never changes (part of the slide) is not one, even while
    the real pointer moves close by."""
    detector = default_cursor_detector
    slide, (ix, iy, iw, ih) = ct_slide
    slide = slide.copy()
    mark = (ix + iw // 2, iy + ih // 2)
    paste_sprite(slide, render_sprite(CursorStyle("arrow", "light", 30)), *mark)
    hotspots = [None] * FPS + path_through([(ix + 40, iy + 40), (mark[0] - 40, mark[1] + 30)], 2 * FPS)
    hotspots += [None] * (2 * FPS)
    video = lecture(tmp_path / "v.mp4", slide, hotspots, CursorStyle("arrow", "light", 30))
    traced = trace_video(video, chunks_of(video, tmp_path / "keyframes"), tmp_path, detector, SETTINGS)
    near_mark = np.hypot(traced.points["x_px"] - mark[0], traced.points["y_px"] - mark[1]) < 12
    assert not near_mark.any(), traced.points.filter(near_mark)
    assert traced.points.filter(pl.col("t_s") < 0.95).is_empty()
    assert traced.points.filter(pl.col("t_s") > 3.05).is_empty()


def test_an_arrow_on_the_slide_that_the_pointer_touched_is_not_taken_for_a_parked_pointer(
    tmp_path, ct_slide, default_cursor_detector
):
    """The lecturer points at an arrow drawn on the picture, then moves on. Its tip changed when
    the pointer came by, as a parked pointer's would; but a lecture has one pointer, and this mark
    is still there while the pointer is seen moving elsewhere."""
    detector = default_cursor_detector
    slide, (ix, iy, iw, ih) = ct_slide
    slide = slide.copy()
    mark = (ix + iw // 2, iy + ih // 2)
    paste_sprite(slide, render_sprite(CursorStyle("arrow", "light", 30)), *mark)
    to_mark = path_through([(ix + 40, iy + 40), mark], FPS)
    corners = [(ix + iw - 40, iy + 40), (ix + iw - 40, iy + ih - 40), (ix + 40, iy + ih - 40)]
    elsewhere = path_through([mark, *corners], 4 * FPS)  # round the picture's edge, away from the mark
    hotspots = to_mark + [mark] * (FPS // 2) + elsewhere + [None] * FPS
    video = lecture(tmp_path / "v.mp4", slide, hotspots, CursorStyle("hand", "dark", 36))
    traced = trace_video(video, chunks_of(video, tmp_path / "keyframes"), tmp_path, detector, SETTINGS)
    score = TraceScore()
    score.add(traced.points.to_dicts(), traced.sample_times, truth_of(hotspots))
    assert score.false_positives == 0, traced.points.filter(pl.col("t_s") >= 5.45)
    moved_on = traced.points.filter(pl.col("t_s") > 2.2)
    near_mark = np.hypot(moved_on["x_px"] - mark[0], moved_on["y_px"] - mark[1]) < 12
    assert not near_mark.any(), moved_on.filter(near_mark)
    assert score.coverage >= 0.7


def test_busy_regions_larger_than_a_pointer_become_the_overlay_mask():
    counts = np.zeros((360, 640), np.int32)
    counts[270:340, 500:630:3] = 40  # a webcam inset: scattered pixels busy in most samples
    counts[100:110, 100:106] = 40  # a trembling pointer: busy, but pointer-sized
    counts[200:260, 200:300] = 5  # a pointer path: each pixel differs in few samples
    mask = overlay_mask(counts, 50, SETTINGS)
    assert mask[300, 560] and mask[275, 501]
    assert not mask[105, 103] and not mask[230, 250]
    background = np.full((360, 640), 40, np.uint8)
    frame = background.copy()
    frame[290:300, 540:548] = 250  # the presenter moves inside the inset
    frame[150:160, 300:306] = 250  # the pointer
    assert len(candidate_blobs(frame, background, SETTINGS, 2.0)) == 2
    [blob] = candidate_blobs(frame, background, SETTINGS, 2.0, overlay=mask)
    assert abs(blob.x - 606) < 4 and abs(blob.y - 310) < 4


def test_a_presenter_busy_in_parts_masks_the_whole_inset():
    """Head and shoulders are busy apart, each smaller than a pointer may be; together they span an
    inset, and all of its rectangle is masked, the seldom-moving face included."""
    counts = np.zeros((360, 640), np.int32)
    counts[280:323, 541:589] = 40  # the head
    counts[321:349, 512:541] = 40  # the shoulders, 2 px below it
    counts[319:349, 590:620] = 40
    counts[60:82, 100:117] = 40  # the pointer hovering at two places a hundred pixels apart
    counts[60:82, 215:232] = 40
    mask = overlay_mask(counts, 50, SETTINGS)
    assert mask[280:349, 512:620].all()  # the face at (300, 565) among it
    assert not mask[:250].any()


def test_blobs_larger_than_a_pointer_are_not_candidates():
    background = np.full((360, 640), 40, np.uint8)
    frame = background.copy()
    frame[100:112, 200:208] = 250  # a pointer-sized change
    frame[200:300, 400:580] = 200  # a webcam-sized one
    [blob] = candidate_blobs(frame, background, SETTINGS, frame_scale=2.0)
    assert abs(blob.x - 408) < 4 and abs(blob.y - 212) < 4


def test_equal_blobs_come_in_the_order_labelling_the_whole_frame_gives_them():
    """Only the rectangle around the change is labelled; blobs of one size, at odd corners, are
    the candidates, and in the order, that labelling the whole frame picks."""
    background = np.full((360, 640), 40, np.uint8)
    frame = background.copy()
    for x, y in [(301, 151), (121, 153), (455, 150), (201, 203)]:
        frame[y : y + 9, x : x + 7] = 250
    changed = cv2.dilate(
        (cv2.absdiff(frame, background) > SETTINGS.diff_threshold).astype(np.uint8), np.ones((3, 3))
    )
    _, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    expected = [(left + width / 2, top + height / 2) for left, top, width, height, _ in stats[1:4]]
    blobs = candidate_blobs(frame, background, SETTINGS, frame_scale=1.0)
    assert [(blob.x, blob.y) for blob in blobs] == expected


class CentreDetector:
    """Finds a pointer at the centre of every crop, and keeps each crop it is shown."""

    min_confidence = 0.5

    def __init__(self):
        self.shown: list[np.ndarray] = []

    def locate(self, crops, min_confidence=None, batch=64):
        self.shown += crops
        return [Detection(CROP_PX / 2, CROP_PX / 2, 0.9, (54.0, 54.0, 74.0, 74.0)) for _ in crops]


def test_a_crop_seen_before_in_the_chunk_takes_the_detectors_answer_to_it():
    """A pointer that goes back and forth between two places on a still slide is cut the same way
    again and again: the detector sees each of those crops once, and every sample has its point."""
    slide = np.repeat(np.tile(np.arange(1280, dtype=np.uint8)[:, None] // 8, (720, 1, 1)), 3, axis=2)
    at = [(300, 200), (900, 500)]
    frames = []
    for x, y in at:
        frame = slide.copy()
        frame[y : y + 14, x : x + 10] = 250
        frames.append(frame)

    def small(frame: np.ndarray) -> np.ndarray:
        return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (640, 360), interpolation=cv2.INTER_AREA)

    chunk = stage._Chunk(0, 0.0, 2.0, Path("unread.png"), (720, 1280), small(slide))
    detector = CentreDetector()
    tracer = stage._ChunkTracer(chunk, detector, SETTINGS)
    for i in range(20):
        tracer.add(Sample(i / 10, small(frames[i % 2]), frames[i % 2]))
    points = tracer.points()
    assert len(detector.shown) == 2 and not np.array_equal(*detector.shown)
    assert points["t_s"].to_list() == [round(i / 10, 3) for i in range(20)]
    for (x, y), row in zip(at * 10, points.iter_rows(named=True), strict=True):
        assert abs(row["x_px"] - (x + 5)) < 2 and abs(row["y_px"] - (y + 7)) < 2


def _trace(rows: list[tuple[float, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"chunk_index": 0, "t_s": t, "x_px": x, "y_px": y, "confidence": c, "method": MOVED}
            for t, x, y, c in rows
        ]
    )


def test_cleaning_drops_jumps_and_lone_guesses_and_smooths_jitter_without_adding_points():
    rows = [(round(0.1 * i, 3), 100.0 + 10 * i, 200.0 + (1.5 if i % 2 else -1.5), 0.9) for i in range(10)]
    rows[4] = (0.4, 600.0, 50.0, 0.9)  # a jump far from both neighbours
    rows += [(3.0, 800.0, 300.0, 0.55)]  # alone, and not confident: dropped
    rows += [(4.0, 820.0, 320.0, 0.95)]  # alone but confident: kept
    cleaned = clean_trace(_trace(rows), SETTINGS, 10.0)
    times = cleaned["t_s"].to_list()
    assert 0.4 not in times and 3.0 not in times and 4.0 in times
    assert set(times) <= {r[0] for r in rows}
    inner = cleaned.filter(pl.col("t_s").is_in([0.1, 0.2, 0.6, 0.7, 0.8]))  # both neighbours kept
    assert (inner["y_px"] - 200).abs().max() < 0.5  # jitter of ±1.5 px smoothed away
    assert inner["x_px"].to_list() == pytest.approx([110, 120, 160, 170, 180])  # steady motion stays
    moved = (cleaned["x_px"].to_numpy() - np.array([r[1] for r in rows if r[0] in times])).__abs__()
    assert moved.max() <= SETTINGS.jitter_px + 1e-4


def test_a_turn_of_the_pointer_survives_smoothing():
    rows = [(0.0, 100.0, 100.0, 0.9), (0.1, 150.0, 100.0, 0.9), (0.2, 100.0, 100.0, 0.9)]
    cleaned = clean_trace(_trace(rows), SETTINGS, 10.0)
    assert cleaned["x_px"][1] >= 150 - SETTINGS.jitter_px


def test_normalized_coordinates_are_relative_to_the_image_region():
    points = _trace([(0.0, 150.0, 250.0, 0.9), (0.1, 90.0, 250.0, 0.9)])
    normalized = normalize_to_region(points, (100, 200, 200, 100))
    assert normalized["x_norm"].to_list() == pytest.approx([0.25, -0.05])
    assert normalized["y_norm"].to_list() == pytest.approx([0.5, 0.5])
    assert normalized["inside_image"].to_list() == [True, False]
    assert normalize_to_region(points, None)["x_norm"].is_null().all()


def test_the_overlay_colours_the_trace_by_time_and_leaves_gaps_open(ct_slide):
    slide = cv2.cvtColor(ct_slide[0], cv2.COLOR_RGB2BGR)
    points = _trace([(0.0, 300, 300, 0.9), (0.1, 400, 300, 0.9), (2.0, 900, 500, 0.9), (2.1, 1000, 500, 0.9)])
    picture = cv2.imdecode(
        np.frombuffer(overlay_png(slide, points, (0.0, 2.1), None), np.uint8), cv2.IMREAD_COLOR
    )
    plain = cv2.resize(slide, (480, 270), interpolation=cv2.INTER_AREA)
    assert picture.shape == (270 + 18, 480, 3)  # the keyframe at 480 px, and the time legend
    scale = 480 / SIZE[0]
    early = picture[round(300 * scale), round(350 * scale)].astype(int)  # BGR: blue at the start
    late = picture[round(500 * scale), round(950 * scale)].astype(int)  # red at the end
    assert early[0] > early[2] + 60 and late[2] > late[0] + 60
    midway = (round(400 * scale), round(650 * scale))  # between the strokes, 1.9 s apart: not joined
    assert np.abs(picture[midway].astype(int) - plain[midway].astype(int)).max() < 30


def test_a_broken_video_or_missing_keyframe_is_reported_and_the_others_are_traced(
    tmp_path, ct_slide, default_cursor_detector
):
    detector = default_cursor_detector
    slide, (ix, iy, iw, ih) = ct_slide
    hotspots = path_through([(ix + 50, iy + 50), (ix + iw - 50, iy + ih - 50)], 3 * FPS)
    root = tmp_path / "data"
    good = lecture(
        root / "videos" / "ch" / "good.mp4", slide, hotspots, CursorStyle("crosshair", "light", 28)
    )
    rows = chunks_of(good, root / "keyframes")
    (root / "videos" / "ch" / "broken.mp4").write_bytes(b"\x00" * 1000)
    videos_df = pl.DataFrame(
        [
            {"video_id": v, "path": f"videos/ch/{v}.mp4", "status": "ok"}
            for v in ("good", "broken", "nokeyframe")
        ]
    )
    chunk_rows = [{"channel": "ch", "video_id": "good", **r} for r in rows]
    chunk_rows += [{**chunk_rows[0], "video_id": "broken"}]
    chunk_rows += [{**chunk_rows[0], "video_id": "nokeyframe", "keyframe_path": "keyframes/gone.png"}]
    result = trace_channel(root, "ch", videos_df, pl.DataFrame(chunk_rows), detector, SETTINGS)
    by_video = {row["video_id"]: row for row in result.videos.to_dicts()}
    assert by_video["good"]["status"] == "ok" and by_video["good"]["n_points"] > 20
    assert by_video["broken"]["status"] == "error" and "broken.mp4" in by_video["broken"]["reason"]
    assert by_video["nokeyframe"]["status"] == "error" and "gone.png" in by_video["nokeyframe"]["reason"]
    assert set(result.traces["video_id"]) == {"good"} and result.traces.schema == pl.Schema(
        CURSOR_TRACES_SCHEMA
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sample_hz": 0}, "sample_hz"),
        ({"max_candidates": 0}, "max_candidates"),
        ({"jitter_px": -1}, "jitter_px"),
    ],
)
def test_a_wrong_setting_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        TraceSettings(**changes).validated()


def test_the_asset_traces_with_the_shipped_detector_and_writes_the_table_overlays_and_checks(
    layout, resources, instance, ct_slide
):
    slide, (ix, iy, iw, ih) = ct_slide
    hotspots = [None] * FPS + path_through([(ix + 60, iy + 60), (ix + iw - 60, iy + ih - 80)], 3 * FPS)
    lecture(layout.channel_dir("ch") / "a.mp4", slide, hotspots, CursorStyle("arrow", "dark", 30))
    instance.add_dynamic_partitions("channel", ["ch"])
    dg.materialize([videos, stable_chunks], partition_key="ch", resources=resources, instance=instance)

    result = dg.materialize(
        [videos, stable_chunks, cursor_traces],
        selection=[cursor_traces],
        partition_key="ch",
        resources=resources,
        instance=instance,
    )
    [materialization] = result.asset_materializations_for_node("cursor_traces")
    assert "data:image/png;base64," in materialization.metadata["trace a #0"].value
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"all_videos_traced": True, "points_inside_their_chunk": True}
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        table = con.sql("FROM cursor_traces ORDER BY t_s").pl()
    assert table.columns == list(CURSOR_TRACES_SCHEMA) and table.height >= 20
    assert (table["t_s"] >= 0.9).all()  # nothing while the pointer was away


def test_on_the_default_demo_corpus_traces_match_the_truth(traced_default_corpus):
    """The corpus `mednarratives demo` makes, at 1280x720, against its pointer's ground truth."""
    score = TraceScore()
    for lecture in traced_default_corpus:
        score.add(lecture.traced.points.to_dicts(), lecture.traced.sample_times, lecture.truth)
    assert score.visible_samples > 1000 and score.hidden_samples > 50
    # benchmarks/cursor.py holds the detector to the targets; CI's gives coverage 0.85 and 0.88 within 6 px
    assert score.coverage >= 0.8 and score.within(6) >= 0.85, (score.coverage, score.within(6))
    assert score.false_positive_rate < 0.03, score.false_positives


def test_a_chunk_where_no_pointer_was_found_still_gets_its_overlay(ct_slide):
    slide = cv2.cvtColor(ct_slide[0], cv2.COLOR_RGB2BGR)
    no_points = pl.DataFrame(schema={"t_s": pl.Float64, "x_px": pl.Float32, "y_px": pl.Float32})
    picture = cv2.imdecode(
        np.frombuffer(overlay_png(slide, no_points, (0.0, 2.1), None), np.uint8), cv2.IMREAD_COLOR
    )
    assert picture.shape == (270 + 18, 480, 3)

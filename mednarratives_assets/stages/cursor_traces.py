"""Cursor traces: where the lecturer's pointer is, sampled through each medical chunk.

Two passes over the video's medical chunks (10 samples a second by default):
1. Each sample is compared with the chunk's median keyframe, counting how often each pixel
   differs. The rectangle around busy regions larger than a pointer (a webcam inset) becomes the
   chunk's overlay mask, and the keyframe is scanned for a pointer parked there, one whose
   hotspot changed at some sample; a mark on the slide never changes.
2. Outside the overlay, the blobs that differ from the keyframe are candidates; the cursor
   detector, run on a 720p-scale crop around each (narrower around a small blob, so that a small
   pointer is seen zoomed in) and around any parked pointer, confirms one and puts its hotspot
   to the pixel.
Isolated jumps are then removed and detector jitter smoothed; where no pointer is confirmed the
trace has a gap.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.stages.cursor_detector import CROP_PX, CursorDetector, Detection
from mednarratives_assets.video_cache import Frames, StageCache
from mednarratives_assets.video_frames import Sample, VideoUnreadable, is_video_fault, sample_video

CURSOR_TRACES_SCHEMA = {
    "channel": pl.Utf8,
    "video_id": pl.Utf8,
    "chunk_index": pl.Int32,
    "t_s": pl.Float64,
    "x_px": pl.Float32,
    "y_px": pl.Float32,
    "confidence": pl.Float32,
    "method": pl.Utf8,
    "x_norm": pl.Float32,
    "y_norm": pl.Float32,
    "inside_image": pl.Boolean,
}
TRACED_VIDEOS_SCHEMA = {
    "video_id": pl.Utf8,
    "status": pl.Utf8,
    "reason": pl.Utf8,
    "n_chunks": pl.Int32,
    "n_samples": pl.Int32,
    "n_points": pl.Int32,
    "seconds": pl.Float64,
    "from_cache": pl.Boolean,
}
# method: how a point was found
MOVED = "motion"  # a blob that differs from the background, confirmed by the detector
PARKED = "parked"  # where the keyframe scan found a pointer that sits still through most of the chunk
ANALYSIS_WIDTH = 640  # frames are differenced at this width
_BUSY_FRACTION = 0.3  # a pixel differing in this share of a chunk's samples is busy
_PARKED_REACH_PX = 8  # at 720p: how close to a parked pointer's hotspot some change must lie
_MARK_SHARE = 0.25  # of a parked pointer's samples: seen beside the moving pointer this often, a mark
OVERLAY_WIDTH = 480
_PROGRESS_EVERY_S = 300.0  # a long video logs how far tracing has got, in seconds of video


@dataclass(frozen=True)
class TraceSettings:
    sample_hz: float = setting(10.0, "Samples traced per second of a medical chunk.", gt=0, le=60)
    diff_threshold: int = setting(28, "Grey levels a pixel must differ from the background by.", ge=1)
    min_blob_px: int = setting(6, "Changed pixels (at ANALYSIS_WIDTH) a candidate needs.", ge=1)
    max_blob_side_px: int = setting(
        140, "At 720p: a bigger blob is no pointer (a webcam inset, a video).", ge=1
    )
    max_candidates: int = setting(3, "Candidates checked per sample, the largest blobs first.", ge=1)
    outlier_px: float = setting(60.0, "A point this far from both neighbours, which agree, is dropped.", ge=0)
    jitter_px: float = setting(3.0, "Smoothing moves a point by at most this many pixels.", ge=0)
    min_lone_confidence: float = setting(
        0.6, "Detector confidence a point with no neighbour within 0.3 s needs.", ge=0, le=1
    )
    # A blob that differs from the keyframe is evidence already: the detector need only agree a
    # little. Where the keyframe scan found a pointer, the frame holds no such evidence, so a
    # parked pointer needs the detector's own min_confidence.
    # These three were chosen on training styles by benchmarks/thresholds.py.
    confirm_min_confidence: float = setting(
        0.5, "Detector confidence that confirms a moving blob as the pointer.", ge=0, le=1
    )
    # The detector finds a pointer of 11 to 64 px (720p) but is unsure of the smallest ones; seen
    # zoomed in, it knows them (issue 19: a 13 px hand at confidence 0.13, at 2x 0.79).
    zoom_to_px: float = setting(
        32.0, "At 720p: a blob smaller than this is cut narrower, so the detector sees it this size.", gt=0
    )
    max_zoom: float = setting(2.0, "The most a small blob is zoomed in.", ge=1)

    def validated(self) -> TraceSettings:
        return check_settings(self, "trace setting {name}={value!r}: must {rule}")


@dataclass(frozen=True)
class _Chunk:
    index: int
    start_s: float
    end_s: float
    keyframe_path: Path  # read again where the full-size keyframe is needed, never held for the video
    frame_shape: tuple[int, int]  # the keyframe's height and width: frame pixels
    background_small: np.ndarray  # grey at ANALYSIS_WIDTH
    parked: list[tuple[float, float]] = field(default_factory=list)  # the keyframe scan's pointers
    overlay: np.ndarray | None = None  # bool at ANALYSIS_WIDTH: busy regions larger than a pointer


# In crop pixels (720p scale): a pointer's hotspot lies within its sprite, at most about 64 px tall,
# so within this of the centre of the blob its pixels make.
BLOB_REACH = 0.35 * CROP_PX
_POINTER_REACH_720P = 0.25 * CROP_PX  # the change that may belong to one pointer, around a blob


@dataclass(frozen=True)
class _Crop:
    x0: int  # the crop's top-left in frame pixels
    y0: int
    scale: float  # frame pixels per crop pixel
    parked: int | None  # the index of the keyframe pointer it checks; None around a moving blob
    centre: tuple[float, float]  # the blob or parked pointer it was cut around, in frame pixels

    def holds(self, detection: Detection) -> bool:
        """Whether the detection lies on what the crop was cut around, not on another pointer-like
        mark in the crop (an arrow drawn on the slide): its hotspot within BLOB_REACH of the centre."""
        x, y = self.x0 + detection.x * self.scale, self.y0 + detection.y * self.scale
        return bool(np.hypot(x - self.centre[0], y - self.centre[1]) <= BLOB_REACH * self.scale)


def _crop_at(frame: np.ndarray, cx: float, cy: float, side: int) -> tuple[np.ndarray, int, int]:
    """A side x side window centred on (cx, cy), moved inside the frame, resized to CROP_PX."""
    h, w = frame.shape[:2]
    x0 = int(np.clip(round(cx - side / 2), 0, max(w - side, 0)))
    y0 = int(np.clip(round(cy - side / 2), 0, max(h - side, 0)))
    window = frame[y0 : y0 + side, x0 : x0 + side]
    if window.shape[:2] != (CROP_PX, CROP_PX):
        window = cv2.resize(window, (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(window), x0, y0


def _changed(small: np.ndarray, background_small: np.ndarray, threshold: int) -> np.ndarray:
    """uint8 mask of the pixels that differ from the background, dilated to join a pointer's parts."""
    _, changed = cv2.threshold(cv2.absdiff(small, background_small), threshold, 1, cv2.THRESH_BINARY)
    return cv2.dilate(changed, np.ones((3, 3), np.uint8))


def overlay_mask(change_counts: np.ndarray, n_samples: int, settings: TraceSettings) -> np.ndarray:
    """Where a chunk keeps changing over an area larger than a pointer: a webcam inset, a playing video.

    `change_counts` holds, per analysis pixel, in how many of the chunk's `n_samples` samples it
    differed from the keyframe. A trembling pointer keeps a pointer-sized spot busy; a pointer
    that stays longer is part of the keyframe and changes nothing.
    """
    busy = change_counts >= _BUSY_FRACTION * max(n_samples, 1)
    max_side = settings.max_blob_side_px * change_counts.shape[0] / 720
    # A presenter's head and shoulders are busy apart, a few pixels from each other.
    join = 2 * round(max_side / 8) + 1
    grouped = cv2.dilate(busy.astype(np.uint8), np.ones((join, join), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    mask = np.zeros(change_counts.shape, bool)
    for i in range(1, n):
        if max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) <= max_side:
            continue  # grown by the join, and still pointer-sized
        ys, xs = np.nonzero(busy & (labels == i))
        if max(np.ptp(xs), np.ptp(ys)) + 1 > max_side:  # an inset is a rectangle: all of it is masked
            mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    return mask


@dataclass(frozen=True)
class Blob:
    x: float  # centre, in frame pixels
    y: float
    extent: float  # the longer side of its box, in frame pixels


def candidate_blobs(
    small: np.ndarray,
    background_small: np.ndarray,
    settings: TraceSettings,
    frame_scale: float,
    overlay: np.ndarray | None = None,
) -> list[Blob]:
    """The largest blobs where the frame differs from the background.

    `frame_scale` is frame pixels per analysis pixel. Blobs larger than a pointer, and changes
    inside `overlay`, are ignored.
    """
    changed = _changed(small, background_small, settings.diff_threshold)
    if overlay is not None:
        changed[overlay] = 0
    # Labelling costs by the pixel, so only the rectangle around the change is labelled (a fifth of
    # the time), from an even corner: the labeller's 2x2 blocks, and so the blobs' order, stay as
    # over the whole frame.
    x, y, w, h = cv2.boundingRect(changed)
    if w == 0:
        return []
    x0, y0 = x - x % 2, y - y % 2
    n, _, stats, _ = cv2.connectedComponentsWithStats(changed[y0 : y + h, x0 : x + w], connectivity=8)
    stats[:, cv2.CC_STAT_LEFT] += x0
    stats[:, cv2.CC_STAT_TOP] += y0
    max_side = settings.max_blob_side_px * small.shape[0] / 720
    blobs = [
        (int(stats[i, cv2.CC_STAT_AREA]), stats[i])
        for i in range(1, n)
        if stats[i, cv2.CC_STAT_AREA] >= settings.min_blob_px
        and max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) <= max_side
    ]
    blobs.sort(key=lambda blob: -blob[0])
    # A thin pointer (a crosshair's lines) changes in fragments: its extent is that of all the
    # change within a pointer's reach of the blob.
    reach = round(_POINTER_REACH_720P * small.shape[0] / 720)
    found = []
    for _, s in blobs[: settings.max_candidates]:
        cx = s[cv2.CC_STAT_LEFT] + s[cv2.CC_STAT_WIDTH] // 2
        cy = s[cv2.CC_STAT_TOP] + s[cv2.CC_STAT_HEIGHT] // 2
        ys, xs = np.nonzero(changed[max(cy - reach, 0) : cy + reach + 1, max(cx - reach, 0) : cx + reach + 1])
        extent = max(np.ptp(xs), np.ptp(ys)) + 1
        found.append(
            Blob(
                (s[cv2.CC_STAT_LEFT] + s[cv2.CC_STAT_WIDTH] / 2) * frame_scale,
                (s[cv2.CC_STAT_TOP] + s[cv2.CC_STAT_HEIGHT] / 2) * frame_scale,
                float(extent) * frame_scale,
            )
        )
    return found


@dataclass(frozen=True)
class KeyframePointer:
    x: float  # hotspot, in frame pixels
    y: float
    confidence: float
    box: tuple[float, float, float, float]  # visible extent x1, y1, x2, y2, in frame pixels


def scan_keyframe(
    detector: CursorDetector, keyframe_bgr: np.ndarray, changed: np.ndarray | None = None
) -> list[KeyframePointer]:
    """Pointers in the keyframe itself (a parked pointer survives the median).

    The keyframe is cut into overlapping CROP_PX tiles (at 720p scale). With `changed` (a bool
    mask, at any scale, of where some frame differed from the keyframe) only the tiles holding a
    change are scanned, and a pointer counts only where its hotspot itself changed at some sample
    (within _PARKED_REACH_PX). A pointer changes those pixels when it arrives, trembles or leaves;
    a mark on the slide never does, even when the pointer passes close by.
    """
    h, w = keyframe_bgr.shape[:2]
    side = round(CROP_PX * h / 720)
    stride = max(1, round(side * 0.75))
    xs = sorted({*range(0, max(w - side, 0) + 1, stride), max(w - side, 0)})
    ys = sorted({*range(0, max(h - side, 0) + 1, stride), max(h - side, 0)})
    near = None
    if changed is not None:  # at frame scale, grown by the reach
        full = cv2.resize(changed.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        reach = 2 * round(_PARKED_REACH_PX * h / 720) + 1
        near = cv2.dilate(full, np.ones((reach, reach), np.uint8)).astype(bool)
    windows = [
        (x0, y0) for y0 in ys for x0 in xs if near is None or near[y0 : y0 + side, x0 : x0 + side].any()
    ]
    crops = [_crop_at(keyframe_bgr, x0 + side / 2, y0 + side / 2, side)[0] for x0, y0 in windows]
    found: list[KeyframePointer] = []
    scale = side / CROP_PX
    for (x0, y0), detection in zip(windows, detector.locate(crops), strict=True):
        if detection is None:
            continue
        x, y = x0 + detection.x * scale, y0 + detection.y * scale
        inside = 0 <= round(y) < h and 0 <= round(x) < w
        if near is not None and not (inside and near[round(y), round(x)]):
            continue
        if all(np.hypot(x - f.x, y - f.y) > side / 4 for f in found):  # overlapping tiles
            x1, y1, x2, y2 = detection.box
            box = (x0 + x1 * scale, y0 + y1 * scale, x0 + x2 * scale, y0 + y2 * scale)
            found.append(KeyframePointer(x, y, detection.confidence, box))
    return found


class _ChunkTracer:
    """One chunk's raw trace: crops around the candidates of each sample, sent to the detector in batches.

    Only crops and detections are held, never frames, so a long chunk costs no more memory than a
    short one. A crop whose pixels equal one the detector has seen in the chunk (a parked pointer
    on a still slide, cut again each sample) takes that crop's answer: about a third of all crops.
    """

    _BATCH = 64

    def __init__(self, chunk: _Chunk, detector: CursorDetector, settings: TraceSettings):
        self.chunk, self.detector, self.settings = chunk, detector, settings
        self.side = round(CROP_PX * chunk.frame_shape[0] / 720)
        self.frame_scale = chunk.frame_shape[1] / chunk.background_small.shape[1]
        self.crops: dict[bytes, np.ndarray] = {}  # crops new to the chunk awaiting the detector, by digest
        self.answers: dict[bytes, Detection | None] = {}  # the detector's answer to each crop seen
        self.placements: list[tuple[float, _Crop, bytes]] = []  # (sample time, where the crop lies, digest)
        self.found: list[tuple[float, Detection, _Crop]] = []
        self.sample_times: list[float] = []

    def _side_for(self, extent: float) -> int:
        """The crop side around a blob `extent` frame pixels long: CROP_PX at 720p scale, narrowed
        for a small blob so that it fills `zoom_to_px` of the crop."""
        extent_720p = extent * 720 / self.chunk.frame_shape[0]
        zoom = float(np.clip(self.settings.zoom_to_px / max(extent_720p, 1.0), 1.0, self.settings.max_zoom))
        return round(self.side / zoom)

    def add(self, sample: Sample) -> None:
        self.sample_times.append(round(sample.t, 3))
        centres = [
            (blob.x, blob.y, self._side_for(blob.extent), None)
            for blob in candidate_blobs(
                sample.small, self.chunk.background_small, self.settings, self.frame_scale, self.chunk.overlay
            )
        ]
        for i, (px, py) in enumerate(self.chunk.parked):
            if all(np.hypot(px - x, py - y) > self.side / 4 for x, y, _, _ in centres):
                centres.append((px, py, self.side, i))
        for x, y, side, parked in centres:
            crop, x0, y0 = _crop_at(sample.frame, x, y, side)
            digest = hashlib.sha256(crop).digest()
            if digest not in self.answers:
                self.crops[digest] = crop
            self.placements.append((sample.t, _Crop(x0, y0, side / CROP_PX, parked, (x, y)), digest))
        if len(self.crops) >= self._BATCH:
            self._detect()

    def _detect(self) -> None:
        detections = self.detector.locate(list(self.crops.values()), self.settings.confirm_min_confidence)
        self.answers.update(zip(self.crops, detections, strict=True))
        for t, placement, digest in self.placements:
            detection = self.answers[digest]
            if detection is None or not placement.holds(detection):
                continue
            if placement.parked is None or detection.confidence >= self.detector.min_confidence:
                self.found.append((t, detection, placement))
        self.crops, self.placements = {}, []

    def _marks(self, located: list[tuple[float, Detection, _Crop, tuple[float, float]]]) -> set[int]:
        """The parked pointers that are marks on the slide: a lecture has one pointer, and these
        were confirmed, in at least _MARK_SHARE of their samples, while the pointer was confirmed
        moving elsewhere."""
        moving: dict[float, list[tuple[float, float]]] = {}
        for t, _, p, xy in located:
            if p.parked is None:
                moving.setdefault(t, []).append(xy)
        parked = [(t, p.parked, xy) for t, _, p, xy in located if p.parked is not None]
        seen = Counter(i for _, i, _ in parked)
        beside_moving = Counter(
            i
            for t, i, (x, y) in parked
            if any(np.hypot(x - mx, y - my) > self.side / 4 for mx, my in moving.get(t, []))
        )
        return {i for i, n in beside_moving.items() if n >= max(2, _MARK_SHARE * seen[i])}

    def points(self) -> pl.DataFrame:
        """The most confident pointer of each sample, in time order."""
        self._detect()
        located = [(t, d, p, (p.x0 + d.x * p.scale, p.y0 + d.y * p.scale)) for t, d, p in self.found]
        marks = self._marks(located)
        located = [entry for entry in located if entry[2].parked not in marks]
        best: dict[float, tuple[Detection, _Crop, tuple[float, float]]] = {}
        for t, d, p, xy in located:
            if t not in best or d.confidence > best[t][0].confidence:
                best[t] = (d, p, xy)
        rows = [
            {
                "chunk_index": self.chunk.index,
                "t_s": round(t, 3),
                "x_px": x,
                "y_px": y,
                "confidence": d.confidence,
                "method": MOVED if p.parked is None else PARKED,
            }
            for t, (d, p, (x, y)) in sorted(best.items())
        ]
        return pl.DataFrame(rows, schema=_RAW_SCHEMA)


def clean_trace(points: pl.DataFrame, settings: TraceSettings, sample_hz: float) -> pl.DataFrame:
    """Drop jumps and unsupported lone points, then smooth jitter; never adds a point.

    `points` is one chunk's raw trace (t_s, x_px, y_px, confidence, ...) in time order. A point is a
    jump when it lies more than `outlier_px` from both its neighbours while they lie close to each
    other. Detector jitter is smoothed with a (1, 2, 1) average of neighbouring samples, which
    leaves steady motion where it is and moves a point by at most `jitter_px`, so real turns stay.
    """
    if points.height == 0:
        return points
    t = points["t_s"].to_numpy()
    xy = points.select("x_px", "y_px").to_numpy().astype(np.float64)
    confidence = points["confidence"].to_numpy()
    neighbour_gap = 1.5 / sample_hz
    keep = np.ones(len(t), bool)
    for i in range(len(t)):
        before = i > 0 and t[i] - t[i - 1] <= neighbour_gap
        after = i < len(t) - 1 and t[i + 1] - t[i] <= neighbour_gap
        if before and after:
            far = min(np.hypot(*(xy[i] - xy[i - 1])), np.hypot(*(xy[i] - xy[i + 1])))
            if far > settings.outlier_px and np.hypot(*(xy[i - 1] - xy[i + 1])) <= settings.outlier_px:
                keep[i] = False
        lone = not any(0 < abs(t[j] - t[i]) <= 0.3 for j in (i - 1, i + 1) if 0 <= j < len(t))
        if lone and confidence[i] < settings.min_lone_confidence:
            keep[i] = False
    points, t, xy = points.filter(pl.Series(keep)), t[keep], xy[keep]
    smoothed = xy.copy()
    for i in range(1, len(t) - 1):
        if t[i] - t[i - 1] <= neighbour_gap and t[i + 1] - t[i] <= neighbour_gap:
            average = (xy[i - 1] + 2 * xy[i] + xy[i + 1]) / 4
            smoothed[i] = xy[i] + np.clip(average - xy[i], -settings.jitter_px, settings.jitter_px)
    return points.with_columns(
        pl.Series("x_px", smoothed[:, 0], pl.Float32), pl.Series("y_px", smoothed[:, 1], pl.Float32)
    )


def normalize_to_region(points: pl.DataFrame, region: tuple[int, int, int, int] | None) -> pl.DataFrame:
    """x_norm, y_norm relative to the medical image's rectangle (x, y, w, h): [0, 1] inside it."""
    if region is None:
        return points.with_columns(
            pl.lit(None, pl.Float32).alias("x_norm"),
            pl.lit(None, pl.Float32).alias("y_norm"),
            pl.lit(None, pl.Boolean).alias("inside_image"),
        )
    x, y, w, h = region
    points = points.with_columns(
        ((pl.col("x_px") - x) / w).cast(pl.Float32).alias("x_norm"),
        ((pl.col("y_px") - y) / h).cast(pl.Float32).alias("y_norm"),
    )
    return points.with_columns(
        (pl.col("x_norm").is_between(0, 1) & pl.col("y_norm").is_between(0, 1)).alias("inside_image")
    )


def overlay_png(keyframe_bgr: np.ndarray, points: pl.DataFrame, span: tuple[float, float], region) -> bytes:
    """The keyframe with the trace drawn over it, coloured by time (blue early, red late), gaps left open."""
    scale = OVERLAY_WIDTH / keyframe_bgr.shape[1]
    picture = cv2.resize(
        keyframe_bgr, (OVERLAY_WIDTH, round(keyframe_bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    if region is not None:
        x, y, w, h = (round(v * scale) for v in region)
        cv2.rectangle(picture, (x, y), (x + w - 1, y + h - 1), (80, 200, 40), 1)
    start, end = span
    t = points["t_s"].to_numpy()
    xy = np.round(points.select("x_px", "y_px").to_numpy() * scale).astype(np.int32)
    phase = np.round(np.clip((t - start) / max(end - start, 1e-6), 0, 1) * 255).astype(np.uint8)
    # applyColorMap refuses an empty array: a chunk where no pointer was found has no points
    colours = cv2.applyColorMap(phase[:, None], cv2.COLORMAP_TURBO)[:, 0] if len(t) else []
    for i in range(1, len(t)):
        if t[i] - t[i - 1] <= 0.35:  # consecutive samples: one stroke; longer gaps stay open
            cv2.line(picture, tuple(xy[i - 1]), tuple(xy[i]), colours[i].tolist(), 2, cv2.LINE_AA)
        else:
            cv2.circle(picture, tuple(xy[i]), 2, colours[i].tolist(), -1, cv2.LINE_AA)
    legend = np.full((18, picture.shape[1], 3), 255, np.uint8)
    ramp = cv2.applyColorMap(np.linspace(0, 255, 120).astype(np.uint8)[None, :], cv2.COLORMAP_TURBO)
    legend[5:13, 60:180] = ramp
    cv2.putText(legend, f"{start:.1f}s", (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(
        legend, f"{end:.1f}s  {len(t)} points", (186, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1
    )
    ok, png = cv2.imencode(".png", np.vstack([picture, legend]))
    if not ok:
        raise ValueError("trace overlay could not be encoded as PNG")
    return png.tobytes()


def _read_keyframe(path: Path) -> np.ndarray:
    background = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if background is None:
        raise FileNotFoundError(f"keyframe {path} is missing or unreadable: re-materialize stable_chunks")
    return background


def _chunks_of(rows: list[dict], data_root: Path) -> list[_Chunk]:
    """The chunks with their small grey keyframes; full-size ones (25 MB each at 4K) are read one
    at a time where needed, so a video's memory does not grow with its number of chunks."""
    chunks = []
    for row in rows:
        path = data_root / row["keyframe_path"]
        background = _read_keyframe(path)
        height = round(background.shape[0] * ANALYSIS_WIDTH / background.shape[1])
        small = cv2.resize(
            cv2.cvtColor(background, cv2.COLOR_BGR2GRAY),
            (ANALYSIS_WIDTH, height),
            interpolation=cv2.INTER_AREA,
        )
        chunks.append(
            _Chunk(row["chunk_index"], row["start_s"], row["end_s"], path, background.shape[:2], small)
        )
    return chunks


def _samples_in(video_path: Path, chunks: list[_Chunk], sample_hz: float) -> Iterator[tuple[_Chunk, Sample]]:
    """Each sample that falls inside a chunk, with its chunk; decoding skips ahead to each chunk and
    stops after the last."""
    spans = [(chunk.start_s, chunk.end_s) for chunk in chunks]
    for sample in sample_video(video_path, sample_hz, ANALYSIS_WIDTH, spans=spans):
        yield next(chunk for chunk in chunks if chunk.start_s <= sample.t <= chunk.end_s), sample


def _prepared(
    chunks: list[_Chunk], video_path: Path, detector: CursorDetector, settings: TraceSettings
) -> list[_Chunk]:
    """The chunks with their overlay masks, from a first pass over the video, and the pointers the
    keyframe scan finds where, outside the overlays, some frame differed."""
    counts = {chunk.index: np.zeros(chunk.background_small.shape, np.int32) for chunk in chunks}
    n_samples = dict.fromkeys(counts, 0)
    for chunk, sample in _samples_in(video_path, chunks, settings.sample_hz):
        counts[chunk.index] += _changed(sample.small, chunk.background_small, settings.diff_threshold)
        n_samples[chunk.index] += 1
    prepared = []
    for chunk in chunks:
        overlay = overlay_mask(counts[chunk.index], n_samples[chunk.index], settings)
        changed = (counts[chunk.index] > 0) & ~overlay
        parked = [(p.x, p.y) for p in scan_keyframe(detector, _read_keyframe(chunk.keyframe_path), changed)]
        prepared.append(replace(chunk, parked=parked, overlay=overlay))
    return prepared


@dataclass
class VideoTrace:
    points: pl.DataFrame  # chunk_index, t_s, x_px, y_px, confidence, method, x_norm, y_norm, inside_image
    overlays: dict[int, bytes]  # chunk_index -> PNG of the keyframe with its trace
    sample_times: list[float]  # every sample traced, with or without a point


def trace_video(
    video_path: Path,
    chunk_rows: list[dict],
    data_root: Path,
    detector: CursorDetector,
    settings: TraceSettings,
    log: Callable[[str], None] = lambda _msg: None,
) -> VideoTrace:
    """The cleaned traces of the given chunks (stable_chunks rows) of one video."""
    chunks = _prepared(_chunks_of(chunk_rows, data_root), video_path, detector, settings)
    regions = {
        row["chunk_index"]: None
        if row["image_x"] is None
        else (row["image_x"], row["image_y"], row["image_w"], row["image_h"])
        for row in chunk_rows
    }
    tracers = {chunk.index: _ChunkTracer(chunk, detector, settings) for chunk in chunks}
    end_s, next_report = max((chunk.end_s for chunk in chunks), default=0.0), _PROGRESS_EVERY_S
    for chunk, sample in _samples_in(video_path, chunks, settings.sample_hz):
        tracers[chunk.index].add(sample)
        if sample.t >= next_report:
            log(f"{video_path.name}: traced up to {sample.t:.0f} s of {end_s:.0f} s")
            next_report += _PROGRESS_EVERY_S
    traces, overlays = [], {}
    for tracer in tracers.values():
        chunk, region = tracer.chunk, regions[tracer.chunk.index]
        points = normalize_to_region(clean_trace(tracer.points(), settings, settings.sample_hz), region)
        traces.append(points)
        overlays[chunk.index] = overlay_png(
            _read_keyframe(chunk.keyframe_path), points, (chunk.start_s, chunk.end_s), region
        )
    sample_times = [t for tracer in tracers.values() for t in tracer.sample_times]
    if not traces:
        return VideoTrace(pl.DataFrame(schema=_RAW_SCHEMA | _NORM_SCHEMA), overlays, sample_times)
    return VideoTrace(pl.concat(traces), overlays, sample_times)


_RAW_SCHEMA = {
    k: CURSOR_TRACES_SCHEMA[k] for k in ("chunk_index", "t_s", "x_px", "y_px", "confidence", "method")
}
_NORM_SCHEMA = {k: CURSOR_TRACES_SCHEMA[k] for k in ("x_norm", "y_norm", "inside_image")}


class _MissingKeyframe(FileNotFoundError):
    """A chunk's keyframe is not on disk (stable_chunks was re-run without it, or it was deleted)."""


def _check_keyframes(rows: list[dict], data_root: Path) -> None:
    for row in rows:
        path = data_root / row["keyframe_path"]
        if not path.is_file():
            raise _MissingKeyframe(f"keyframe {path} is missing: re-materialize stable_chunks")


@dataclass
class ChannelTraces:
    traces: pl.DataFrame  # CURSOR_TRACES_SCHEMA
    videos: pl.DataFrame  # TRACED_VIDEOS_SCHEMA
    overlays: dict[tuple[str, int], bytes]  # (video_id, chunk_index) -> PNG


def trace_channel(
    data_root: Path,
    channel: str,
    videos: pl.DataFrame,
    chunks: pl.DataFrame,
    detector: CursorDetector,
    settings: TraceSettings,
    log: Callable[[str], None] = lambda _msg: None,
    cache: StageCache | None = None,
) -> ChannelTraces:
    """Traces through every medical chunk of the channel's videos; a failing video is reported, not fatal.

    With a `cache`, a video traced before with the same content, medical chunks, settings and
    detector is not traced again (its overlays are then not drawn)."""
    settings = settings.validated()
    cache = cache or StageCache.off()
    medical = chunks.filter(pl.col("is_medical")).sort("video_id", "chunk_index")
    by_video = {key[0]: frame for key, frame in medical.group_by("video_id")}
    traced = videos.filter(pl.col("video_id").is_in(list(by_video))).sort("video_id")
    log(f"channel {channel!r}: {medical.height} medical chunks in {traced.height} videos to trace")
    traces, summaries, overlays = [pl.DataFrame(schema=CURSOR_TRACES_SCHEMA)], [], {}
    for i, video in enumerate(traced.iter_rows(named=True), 1):
        video_chunks = by_video[video["video_id"]].sort("chunk_index")
        rows = video_chunks.to_dicts()
        summary = {"video_id": video["video_id"], "status": "ok", "reason": None, "n_chunks": len(rows)}
        summaries.append(summary)
        prefix = f"video {i} of {traced.height} ({video['video_id']})"
        started = time.perf_counter()

        def traced_video(video: dict = video, rows: list[dict] = rows) -> Frames:
            _check_keyframes(rows, data_root)
            result = trace_video(data_root / video["path"], rows, data_root, detector, settings, log)
            overlays.update({(video["video_id"], index): png for index, png in result.overlays.items()})
            points = result.points.with_columns(
                pl.lit(channel).alias("channel"), pl.lit(video["video_id"]).alias("video_id")
            )
            return {
                "points": points.select(list(CURSOR_TRACES_SCHEMA)).cast(CURSOR_TRACES_SCHEMA),
                "samples": pl.DataFrame(
                    {"n_samples": [len(result.sample_times)]}, schema={"n_samples": pl.Int32}
                ),
            }

        try:
            frames, from_cache = cache.cached(
                video["video_id"],
                {"path": video["path"], "chunks": video_chunks.drop("channel")},
                ("points", "samples"),
                traced_video,
            )
        except (OSError, VideoUnreadable, cv2.error) as exc:
            # A video that cannot be decoded, or whose keyframes are gone, is this video's fault; any
            # other OSError (a full disk, a missing permission, an I/O error) is the machine's and
            # fails the run, naming the path, rather than pass for a bad video.
            if isinstance(exc, OSError) and not isinstance(exc, _MissingKeyframe) and not is_video_fault(exc):
                raise
            summary.update(
                status="error", reason=f"tracing failed: {exc}", n_samples=0, n_points=0, seconds=0.0
            )
            log(f"{prefix}: {summary['reason']}")
            continue
        seconds = time.perf_counter() - started
        traced_s = sum(row["end_s"] - row["start_s"] for row in rows)
        points, n_samples = frames["points"], int(frames["samples"]["n_samples"][0])
        traces.append(points)
        summary.update(
            n_samples=n_samples, n_points=points.height, seconds=round(seconds, 2), from_cache=from_cache
        )
        if not from_cache:  # reused videos are counted in one line: a log line is an event to store
            log(
                f"{prefix}: {points.height} points from {n_samples} samples of {len(rows)} medical "
                f"chunks ({traced_s:.0f} s) in {seconds:.1f} s"
            )
    log(f"channel {channel!r}: {cache.summary()}")
    return ChannelTraces(pl.concat(traces), pl.DataFrame(summaries, schema=TRACED_VIDEOS_SCHEMA), overlays)

"""Stage `boxes`: where the lecturer's pointer dwelt on a medical image, boxed, with the words said meanwhile.

Our method finds dwells in time: a stretch of at least `min_dwell_s` in which every trace point
stays within `dwell_radius` of the stretch's median. Points far from the dwell's median (the tail
of the approach, a stray detection) are dropped, then the box is the extent of what is left
united with the image structure under the pointer: the local-contrast blob nearest the dwell
(a lesion, a vessel) found in the keyframe. A still pointer marks one point of a structure, not
its size; the keyframe supplies the size. Boxes are clipped to the image region.

`reference_boxes` is the Quilt-LLaVA recipe, kept as the method to beat: KMeans over (x, y, t)
with time weighted so clusters stay contiguous, IQR outlier removal per cluster, and boxes kept
only with an area of 0.02 to 0.7 of the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.tables import chunk_region, grouped, medical_chunks, medical_chunks_by_video
from mednarratives_assets.video_cache import Frames, StageCache

BOXES_SCHEMA = {
    "channel": pl.Utf8,
    "video_id": pl.Utf8,
    "chunk_index": pl.Int32,
    "box_index": pl.Int32,
    "x1_px": pl.Float32,
    "y1_px": pl.Float32,
    "x2_px": pl.Float32,
    "y2_px": pl.Float32,
    "x1_norm": pl.Float32,
    "y1_norm": pl.Float32,
    "x2_norm": pl.Float32,
    "y2_norm": pl.Float32,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "phrase": pl.Utf8,
    "n_points": pl.Int32,
    "method": pl.Utf8,
}
OURS = "dwell"
REFERENCE = "quilt-kmeans"
_SALIENCY_SIDE = 160  # the keyframe's image region is analysed at this size (longer side)


@dataclass(frozen=True)
class BoxSettings:
    """Dwell detection and boxing. Lengths are fractions of the image region's longer side."""

    dwell_radius: float = setting(0.12, "A circling pointer stays within about a tenth of the image.", gt=0)
    min_dwell_s: float = setting(0.6, "Seconds the pointer must stay within dwell_radius to dwell.", gt=0)
    max_gap_s: float = setting(0.35, "Seconds of trace gap that end a dwell.", gt=0)
    outlier_mads: float = setting(
        3.0, "Points farther than this many MADs beyond the median distance are dropped.", gt=0
    )
    min_inside: float = setting(
        0.8, "Share of a dwell's points on the image; pointing elsewhere is no box.", gt=0, le=1
    )
    snap_to_image: bool = setting(True, "Size the box by the structure under the pointer.")
    min_side: float = setting(0.12, "The smallest side a box may have.", gt=0)
    max_side: float = setting(0.35, "The largest side a box may have.", gt=0)
    phrase_lead_s: float = setting(
        0.3, "Seconds a pointer arrives before the words that name the spot.", ge=0
    )

    def validated(self) -> BoxSettings:
        check_settings(self, "{name}={value!r} must {broken}")
        if self.min_side > self.max_side:
            raise ValueError(f"min_side={self.min_side} must not exceed max_side={self.max_side}")
        return self


@dataclass(frozen=True)
class Box:
    x1: float  # frame pixels
    y1: float
    x2: float
    y2: float
    start_s: float
    end_s: float
    n_points: int


def find_dwells(
    t: np.ndarray, xy: np.ndarray, radius_px: float, settings: BoxSettings
) -> list[tuple[int, int]]:
    """Index ranges [i, j) of the trace, in time order, where the pointer dwelt."""
    dwells: list[tuple[int, int]] = []
    i, n = 0, len(t)
    while i < n:
        j = i + 1
        while j < n and t[j] - t[j - 1] <= settings.max_gap_s:
            stretch = xy[i : j + 1]
            if np.hypot(*(stretch - np.median(stretch, axis=0)).T).max() > radius_px:
                break
            j += 1
        if t[j - 1] - t[i] >= settings.min_dwell_s:
            dwells.append((i, j))
            i = j
        else:
            i += 1
    return dwells


def drop_outliers(xy: np.ndarray, mads: float) -> np.ndarray:
    """The points within `mads` MADs (at least 1 px) of the median distance from the median point."""
    distance = np.hypot(*(xy - np.median(xy, axis=0)).T)
    typical = np.median(distance)
    spread = max(float(np.median(np.abs(distance - typical))), 1.0)
    return xy[distance <= typical + mads * spread]


def local_contrast(region_bgr: np.ndarray) -> tuple[np.ndarray, float]:
    """|fine - coarse blur| of the region's grey levels at `_SALIENCY_SIDE`, and the scale to that size."""
    grey = cv2.cvtColor(region_bgr, cv2.COLOR_BGR2GRAY) if region_bgr.ndim == 3 else region_bgr
    h, w = grey.shape
    scale = _SALIENCY_SIDE / max(h, w)
    small = cv2.resize(
        grey, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    small = small.astype(np.float32) / 255.0
    return np.abs(cv2.GaussianBlur(small, (0, 0), 2.0) - cv2.GaussianBlur(small, (0, 0), 9.0)), scale


def structure_under(
    contrast: np.ndarray, centre: tuple[float, float], reach: float, extent: float
) -> tuple[float, ...] | None:
    """Box (x1, y1, x2, y2) of the strongest local-contrast blob within `reach` of `centre`, cut to the
    square of half-side `extent` around it, in the contrast map's pixels; None on a flat neighbourhood.

    The cut keeps a blob that runs on through the picture (a long vessel, a bowel loop) from pulling
    the box away from where the pointer was."""
    h, w = contrast.shape
    yy, xx = np.mgrid[0:h, 0:w]
    near = np.where(np.hypot(xx - centre[0], yy - centre[1]) <= reach, contrast, 0)
    peak_y, peak_x = np.unravel_index(int(np.argmax(near)), near.shape)
    if near[peak_y, peak_x] <= 1e-3:
        return None
    window = (np.abs(xx - centre[0]) <= extent) & (np.abs(yy - centre[1]) <= extent)
    _, labels = cv2.connectedComponents(
        ((contrast >= 0.5 * contrast[peak_y, peak_x]) & window).astype(np.uint8)
    )
    ys, xs = np.nonzero(labels == labels[peak_y, peak_x])
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _clamp_box(x1, y1, x2, y2, region, settings: BoxSettings) -> tuple[float, float, float, float]:
    """The box with each side between min_side and max_side of the image, inside the image."""
    rx, ry, rw, rh = region
    longest = max(rw, rh)
    low, high = settings.min_side * longest, settings.max_side * longest
    w = float(np.clip(x2 - x1, min(low, rw), min(high, rw)))
    h = float(np.clip(y2 - y1, min(low, rh), min(high, rh)))
    cx = float(np.clip((x1 + x2) / 2, rx + w / 2, rx + rw - w / 2))
    cy = float(np.clip((y1 + y2) / 2, ry + h / 2, ry + rh - h / 2))
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def dwell_boxes(
    points: pl.DataFrame,
    region: tuple[int, int, int, int],
    keyframe_bgr: np.ndarray | None,
    settings: BoxSettings,
) -> list[Box]:
    """Boxes of one chunk's dwells. `points` has t_s, x_px, y_px (frame pixels); `region` is the
    image region (x, y, w, h) in the same pixels."""
    points = points.sort("t_s")
    t = points["t_s"].to_numpy()
    xy = np.stack([points["x_px"].to_numpy(), points["y_px"].to_numpy()], axis=1).astype(np.float64)
    rx, ry, rw, rh = region
    contrast, scale = (None, 1.0)
    if settings.snap_to_image and keyframe_bgr is not None:
        contrast, scale = local_contrast(keyframe_bgr[ry : ry + rh, rx : rx + rw])
    boxes: list[Box] = []
    for i, j in find_dwells(t, xy, settings.dwell_radius * max(rw, rh), settings):
        kept = drop_outliers(xy[i:j], settings.outlier_mads)
        inside = (kept[:, 0] >= rx) & (kept[:, 0] <= rx + rw) & (kept[:, 1] >= ry) & (kept[:, 1] <= ry + rh)
        if inside.mean() < settings.min_inside:
            continue
        (x1, y1), (x2, y2) = kept.min(axis=0), kept.max(axis=0)
        if contrast is not None:
            centre = ((np.median(kept[:, 0]) - rx) * scale, (np.median(kept[:, 1]) - ry) * scale)
            reach = max(0.08 * _SALIENCY_SIDE, (x2 - x1) * scale / 2 + 4, (y2 - y1) * scale / 2 + 4)
            found = structure_under(contrast, centre, reach, settings.max_side * _SALIENCY_SIDE / 2)
            if found is not None:
                x1, y1 = min(x1, rx + found[0] / scale), min(y1, ry + found[1] / scale)
                x2, y2 = max(x2, rx + found[2] / scale), max(y2, ry + found[3] / scale)
        box = Box(*_clamp_box(x1, y1, x2, y2, region, settings), float(t[i]), float(t[j - 1]), len(kept))
        if boxes and _same_spot(boxes[-1], box, settings):
            box = _joined(boxes.pop(), box, region, settings)
        boxes.append(box)
    return boxes


def _iou(a: Box, b: Box) -> float:
    inter = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1)) * max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter)


def _same_spot(earlier: Box, later: Box, settings: BoxSettings) -> bool:
    """A wide circle or a twitch can break one dwell in two: the halves box the same structure."""
    return later.start_s - earlier.end_s <= 2 * settings.max_gap_s and _iou(earlier, later) >= 0.5


def _joined(earlier: Box, later: Box, region, settings: BoxSettings) -> Box:
    corners = _clamp_box(
        min(earlier.x1, later.x1),
        min(earlier.y1, later.y1),
        max(earlier.x2, later.x2),
        max(earlier.y2, later.y2),
        region,
        settings,
    )
    return Box(*corners, earlier.start_s, later.end_s, earlier.n_points + later.n_points)


def reference_boxes(
    points: pl.DataFrame,
    region: tuple[int, int, int, int],
    max_clusters: int = 5,
    time_weight: float = 1.0,
    seed: int = 0,
) -> list[Box]:
    """The Quilt-LLaVA recipe: time-decayed KMeans, IQR outliers, area filter 0.02 to 0.7.

    Features are x and y as fractions of the image and time as a fraction of the chunk's trace
    times `time_weight`, so a cluster is a place visited at one time. k is chosen by silhouette.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    points = points.sort("t_s")
    if points.height < 3:
        return []
    rx, ry, rw, rh = region
    t = points["t_s"].to_numpy()
    xy = np.stack([points["x_px"].to_numpy(), points["y_px"].to_numpy()], axis=1).astype(np.float64)
    span = max(float(t[-1] - t[0]), 1e-6)
    features = np.column_stack([(xy[:, 0] - rx) / rw, (xy[:, 1] - ry) / rh, time_weight * (t - t[0]) / span])
    best_labels, best_score = np.zeros(len(t), int), -1.0
    for k in range(2, min(max_clusters, len(t) - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(features)
        score = silhouette_score(features, labels)
        if score > best_score:
            best_labels, best_score = labels, score
    boxes: list[Box] = []
    for label in np.unique(best_labels):
        member = best_labels == label
        cluster, times = xy[member], t[member]
        q1, q3 = np.percentile(cluster, [25, 75], axis=0)
        fence = 1.5 * (q3 - q1)
        keep = np.all((cluster >= q1 - fence) & (cluster <= q3 + fence), axis=1)
        cluster, times = cluster[keep], times[keep]
        (x1, y1), (x2, y2) = cluster.min(axis=0), cluster.max(axis=0)
        x1, x2 = np.clip([x1, x2], rx, rx + rw)
        y1, y2 = np.clip([y1, y2], ry, ry + rh)
        if 0.02 <= (x2 - x1) * (y2 - y1) / (rw * rh) <= 0.7:
            boxes.append(Box(x1, y1, x2, y2, float(times.min()), float(times.max()), int(keep.sum())))
    return sorted(boxes, key=lambda b: b.start_s)


def phrase_during(words: pl.DataFrame, start_s: float, end_s: float, lead_s: float) -> str:
    """The words that start while the pointer dwelt, or just before it arrived."""
    said = words.filter(pl.col("start_s").is_between(start_s - lead_s, end_s)).sort("start_s")
    return " ".join(said["word"].to_list())


def boxes_frame(
    chunk: dict, boxes: list[Box], words: pl.DataFrame, settings: BoxSettings, method: str
) -> pl.DataFrame:
    """Rows of the `boxes` table for one chunk (a `stable_chunks` row); normalized corners are
    relative to its image region."""
    rx, ry, rw, rh = chunk_region(chunk)
    rows = [
        {
            "channel": chunk["channel"],
            "video_id": chunk["video_id"],
            "chunk_index": chunk["chunk_index"],
            "box_index": index,
            "x1_px": box.x1,
            "y1_px": box.y1,
            "x2_px": box.x2,
            "y2_px": box.y2,
            "x1_norm": (box.x1 - rx) / rw,
            "y1_norm": (box.y1 - ry) / rh,
            "x2_norm": (box.x2 - rx) / rw,
            "y2_norm": (box.y2 - ry) / rh,
            "start_s": box.start_s,
            "end_s": box.end_s,
            "phrase": phrase_during(words, box.start_s, box.end_s, settings.phrase_lead_s),
            "n_points": box.n_points,
            "method": method,
        }
        for index, box in enumerate(boxes)
    ]
    return pl.DataFrame(rows, schema=BOXES_SCHEMA)


def _box_chunks(
    stable_chunks: pl.DataFrame,
    cursor_traces: pl.DataFrame,
    words: pl.DataFrame,
    settings: BoxSettings,
    method: str,
    box_chunk: Callable[[dict, pl.DataFrame], list[Box]],
    cache: StageCache | None = None,
) -> pl.DataFrame:
    """`box_chunk(chunk, points)` over every traced medical chunk, as rows of the `boxes` table,
    one video at a time (with a `cache`, only videos whose chunks, traces or words changed)."""
    cache = cache or StageCache.off()
    frames = [pl.DataFrame(schema=BOXES_SCHEMA)]
    for video_id, inputs in medical_chunks_by_video(stable_chunks, traces=cursor_traces, words=words):

        def boxed(inputs: dict = inputs) -> Frames:
            points_in = grouped(inputs["traces"], "chunk_index")
            video_boxes = [pl.DataFrame(schema=BOXES_SCHEMA)]
            for chunk in inputs["chunks"].iter_rows(named=True):
                points = points_in(chunk["chunk_index"])
                if not points.is_empty():
                    found = box_chunk(chunk, points)
                    video_boxes.append(boxes_frame(chunk, found, inputs["words"], settings, method))
            return {"boxes": pl.concat(video_boxes)}

        result, _ = cache.cached(video_id, inputs, ("boxes",), boxed)
        frames.append(result["boxes"])
    return pl.concat(frames)


def box_channel(
    data_root: Path,
    stable_chunks: pl.DataFrame,
    cursor_traces: pl.DataFrame,
    words: pl.DataFrame,
    settings: BoxSettings,
    log: Callable[[str], None] = print,
    cache: StageCache | None = None,
) -> pl.DataFrame:
    """The `boxes` table of one channel: every medical chunk's dwells, with the words said meanwhile."""

    def box_chunk(chunk: dict, points: pl.DataFrame) -> list[Box]:
        keyframe = None
        if settings.snap_to_image:
            keyframe = cv2.imread(str(data_root / chunk["keyframe_path"]))
            if keyframe is None:
                log(
                    f"{chunk['video_id']} chunk {chunk['chunk_index']}: cannot read keyframe "
                    f"{chunk['keyframe_path']}; boxing the trace alone"
                )
        return dwell_boxes(points, chunk_region(chunk), keyframe, settings)

    return _box_chunks(stable_chunks, cursor_traces, words, settings, OURS, box_chunk, cache)


_PICTURE_WIDTH = 420
_COLOURS = ((60, 200, 255), (80, 255, 120), (255, 140, 60), (200, 90, 255), (90, 90, 255))  # BGR


def boxes_png(
    data_root: Path, stable_chunks: pl.DataFrame, boxes: pl.DataFrame, limit: int | None = None
) -> dict[tuple[str, int], bytes]:
    """Per chunk with boxes, up to `limit` chunks: its image with the numbered boxes drawn, and each
    box's phrase below."""
    pictures: dict[tuple[str, int], bytes] = {}
    chunks = {
        (c["video_id"], c["chunk_index"]): c for c in medical_chunks(stable_chunks).iter_rows(named=True)
    }
    for (video_id, chunk_index), group in boxes.group_by("video_id", "chunk_index", maintain_order=True):
        if limit is not None and len(pictures) >= limit:
            break
        chunk = chunks.get((video_id, chunk_index))
        keyframe = None if chunk is None else cv2.imread(str(data_root / chunk["keyframe_path"]))
        if keyframe is None:
            continue
        rx, ry, rw, rh = chunk_region(chunk)
        scale = _PICTURE_WIDTH / rw
        picture = cv2.resize(
            keyframe[ry : ry + rh, rx : rx + rw], (_PICTURE_WIDTH, max(1, round(rh * scale)))
        )
        legend_rows = []
        for row in group.sort("box_index").iter_rows(named=True):
            colour = _COLOURS[row["box_index"] % len(_COLOURS)]
            x1, y1 = round((row["x1_px"] - rx) * scale), round((row["y1_px"] - ry) * scale)
            x2, y2 = round((row["x2_px"] - rx) * scale), round((row["y2_px"] - ry) * scale)
            cv2.rectangle(picture, (x1, y1), (x2, y2), colour, 2)
            cv2.putText(
                picture, str(row["box_index"]), (x1 + 3, y1 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1
            )
            legend_rows.append(
                (colour, f"{row['box_index']} {row['start_s']:.1f}-{row['end_s']:.1f}s: {row['phrase']}")
            )
        legend = np.full((18 * len(legend_rows) + 6, _PICTURE_WIDTH, 3), 255, np.uint8)
        for i, (colour, text) in enumerate(legend_rows):
            cv2.rectangle(legend, (4, 18 * i + 8), (12, 18 * i + 16), colour, -1)
            cv2.putText(
                legend,
                text[:62],
                (16, 18 * i + 17),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.38,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
        ok, png = cv2.imencode(".png", np.vstack([picture, legend]))
        if ok:
            pictures[(video_id, chunk_index)] = png.tobytes()
    return pictures


def reference_box_channel(
    stable_chunks: pl.DataFrame, cursor_traces: pl.DataFrame, words: pl.DataFrame
) -> pl.DataFrame:
    """The `boxes` table of one channel by the reference recipe, for comparison."""

    def box_chunk(chunk: dict, points: pl.DataFrame) -> list[Box]:
        return reference_boxes(points, chunk_region(chunk))

    return _box_chunks(stable_chunks, cursor_traces, words, BoxSettings(), REFERENCE, box_chunk)

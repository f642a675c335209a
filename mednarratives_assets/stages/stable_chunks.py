"""Stable chunks: the spans where a slide stays still while the lecturer talks over it, and one
clean keyframe for each.

One decoding pass per video, never seeking: every frame is grabbed, and a few per second are
retrieved and shrunk to a small grey picture. A span stays open while its frames match the span's
first frame and the previous sample, allowing for a pointer-sized change; fixed overlays such as a
webcam inset (small regions that stay busy from one scene to the next) are left out of that
comparison. Slow zooms and pans drift away from the first frame within a second or two, so they
never last the minimum duration. The full-size samples of the open span are kept (thinned evenly
when there are many), and their per-pixel median becomes the keyframe, which drops the moving
pointer.

Each span is finished as soon as it closes: hashed, its picture located, its keyframe written, and
scored in a small batch; then only its row and a contact-sheet tile are kept. Memory holds one open
span's samples and a few keyframes, never the video's keyframes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from mednarratives_assets.atomic_files import replaced_folder
from mednarratives_assets.channels import video_id_problem
from mednarratives_assets.contact_sheets import contact_sheet_png
from mednarratives_assets.file_hashing import sha256_of
from mednarratives_assets.image_hashing import hash_distance, perceptual_hash
from mednarratives_assets.settings import DataLayout, resolves_outside
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.video_cache import Frames, StageCache
from mednarratives_assets.video_frames import Sample, is_video_fault, sample_video

# A span's reference frame follows the picture this long after it opens, so the end of a
# cross-fade does not count as a change.
SETTLE_S = 0.5
# A scene ends where this share of the picture changes between two samples.
SCENE_CUT = 0.15
# An overlay must be busy for this many samples of a scene.
MIN_SCENE_SAMPLES = 6
# Width of a keyframe in the contact sheets.
TILE_WIDTH = 240
# Keyframes are searched for their picture at this width.
REGION_WIDTH = 480
# Frames of a still slide differ by compression noise only, a few grey levels.
NOISE_LEVELS = 24
# Keyframes wait for the classifier until this many bytes of them are pending (4 at 4K, 16 at
# 1080p): one call per keyframe would cost a thread pool's wake-up each, a few tens of ms.
SCORE_BATCH_BYTES = 96 << 20
# The median keyframe is taken over horizontal strips of about this many pixels, so its temporaries
# (the stacked samples, their sum) stay a few MB however large the frame.
MEDIAN_STRIP_PIXELS = 1 << 18

STABLE_CHUNKS_SCHEMA = {
    "channel": pl.String,
    "video_id": pl.String,
    "chunk_index": pl.Int32,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "keyframe_path": pl.String,
    "keyframe_sha256": pl.String,
    "duplicate_of": pl.Int32,
    "is_medical": pl.Boolean,
    "medical_score": pl.Float32,
    "image_x": pl.Int32,
    "image_y": pl.Int32,
    "image_w": pl.Int32,
    "image_h": pl.Int32,
    "sharpness": pl.Float32,
    "phash": pl.String,
    "n_samples": pl.Int32,
}


VIDEO_SUMMARY_SCHEMA = {
    "video_id": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "n_chunks": pl.Int32,
    "n_medical": pl.Int32,
    "seconds": pl.Float64,
    "from_cache": pl.Boolean,
}


@dataclass(frozen=True)
class ChunkingSettings:
    """How stable chunks are found; `validated()` names a wrong value."""

    min_duration_s: float = setting(2.0, "Seconds a still span must last to be a chunk.", gt=0)
    sample_hz: float = setting(6.0, "Frames compared per second of video.", gt=0)
    analysis_width: int = setting(
        160, "Width in pixels the compared frames are shrunk to (noise averages out).", gt=0
    )
    pixel_change: int = setting(25, "Grey levels a shrunken pixel must change by to count as changed.", gt=0)
    max_changed_fraction: float = setting(
        0.004, "Share of the frame outside overlays that may change: room for the pointer.", gt=0, lt=1
    )
    overlay_activity: float = setting(
        0.4, "Pixels changing in this share of samples are an overlay (see max_overlay_fraction).", gt=0, lt=1
    )
    max_overlay_fraction: float = setting(
        0.08, "An overlay's region covers at most this share of the frame.", gt=0, lt=1
    )
    keyframe_samples: int = setting(15, "At most this many full-size samples make the median keyframe.", gt=0)
    duplicate_distance: int = setting(
        6, "Keyframes whose 64-bit pHashes differ in at most this many bits are one.", ge=0
    )
    medical_threshold: float = setting(0.5, "Classifier score from which a chunk is medical.", gt=0, lt=1)

    def validated(self) -> ChunkingSettings:
        return check_settings(self, "chunking setting {name}={value!r}: must {rule}")


@dataclass
class StableSpan:
    """A still span: its samples' times and the median of its full-size samples (BGR)."""

    start_s: float
    end_s: float
    n_samples: int
    keyframe: np.ndarray


@dataclass
class _OverlayMask:
    """Small regions that keep changing through scene after scene: a webcam inset, a clock.

    A scene ends where most of the picture changes at once (a cut or a fade). A region only counts
    as an overlay once it was busy in an earlier scene too, so a presenter's moving face, a
    zoom or a circling pointer, each busy within one scene, stays content.
    """

    settings: ChunkingSettings
    scene_changes: np.ndarray | None = None
    scene_n: int = 0
    busy_before: np.ndarray | None = None
    mask: np.ndarray | None = None

    def update(self, changed: np.ndarray, scene_cut: bool) -> None:
        if self.scene_changes is None:
            self.scene_changes = np.zeros(changed.shape, np.int32)
            self.busy_before = np.zeros(changed.shape, bool)
        if scene_cut:
            if self.scene_n >= MIN_SCENE_SAMPLES:
                self.busy_before |= self._busy()
            self.scene_changes[:] = 0
            self.scene_n = 0
            self.mask = None
            return
        self.scene_changes += changed
        self.scene_n += 1
        if self.scene_n >= MIN_SCENE_SAMPLES and self.busy_before.any():
            self.mask = self._small_regions(self._busy() & self.busy_before)

    def _busy(self) -> np.ndarray:
        return self.scene_changes >= self.settings.overlay_activity * self.scene_n

    def _small_regions(self, busy: np.ndarray) -> np.ndarray:
        # Wide enough that the moving edges of one object join into one region.
        grown = cv2.dilate(busy.astype(np.uint8), np.ones((15, 15), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        mask = np.zeros(busy.shape, bool)
        limit = self.settings.max_overlay_fraction * busy.size
        for label in range(1, count):
            x, y, w, h, _ = stats[label]
            if w * h <= limit:
                mask[y : y + h, x : x + w] = True
        return mask

    def outside(self, changed: np.ndarray) -> np.ndarray:
        return changed if self.mask is None else changed & ~self.mask


def _changed(a: np.ndarray, b: np.ndarray, threshold: int) -> np.ndarray:
    return cv2.absdiff(a, b) > threshold


def median_keyframe(frames: list[np.ndarray]) -> np.ndarray:
    """The per-pixel temporal median, so a pointer that is at no one spot in most frames disappears.

    Only pixels whose frames disagree by more than noise (the pointer, an overlay) need the sort;
    the rest, nearly all of a still slide, take the mean, which equals their median within the
    noise and costs a tenth as much. Every step is per pixel, so it runs strip by strip: the
    stacked copy of the samples is never a whole frame deep (15 4K samples would be 370 MB more).
    """
    if len(frames) == 1:
        return frames[0].copy()
    keyframe = np.empty_like(frames[0])
    rows = max(1, MEDIAN_STRIP_PIXELS // frames[0].shape[1])
    for top in range(0, keyframe.shape[0], rows):
        keyframe[top : top + rows] = _median_of([frame[top : top + rows] for frame in frames])
    return keyframe


def _median_of(frames: list[np.ndarray]) -> np.ndarray:
    stack = np.stack(frames)
    keyframe = ((stack.sum(axis=0, dtype=np.uint16) + len(frames) // 2) // len(frames)).astype(np.uint8)
    disagree = (stack.max(axis=0) - stack.min(axis=0)) > NOISE_LEVELS
    if disagree.any():
        keyframe[disagree] = np.partition(stack[:, disagree], len(frames) // 2, axis=0)[len(frames) // 2]
    return keyframe


@dataclass
class _OpenSpan:
    anchor: np.ndarray
    start_s: float
    frames: list[np.ndarray] = field(default_factory=list)
    stride: int = 1
    n_samples: int = 0

    def add(self, sample: Sample, keep: int) -> None:
        """Keep every `stride`-th full-size sample; when more than `keep`, drop every other one."""
        if self.n_samples % self.stride == 0:
            self.frames.append(sample.frame)
            if len(self.frames) > keep:
                self.frames = self.frames[::2]
                self.stride *= 2
        self.n_samples += 1


def find_stable_spans(
    samples: Iterator[Sample], settings: ChunkingSettings, duration_s: float | None = None
) -> Iterator[StableSpan]:
    """Still spans of at least `min_duration_s`, in order, each with its median keyframe."""
    overlay = _OverlayMask(settings)
    previous: np.ndarray | None = None
    previous_t = 0.0
    span: _OpenSpan | None = None
    history: list[np.ndarray] = []  # the last second of small frames, for the overlay statistics
    history_length = max(1, round(settings.sample_hz))
    settle_samples = max(1, round(SETTLE_S * settings.sample_hz))

    def close(end_s: float) -> StableSpan | None:
        if span is None or end_s - span.start_s < settings.min_duration_s:
            return None
        return StableSpan(span.start_s, end_s, span.n_samples, median_keyframe(span.frames))

    for sample in samples:
        small = cv2.GaussianBlur(sample.small, (3, 3), 0)
        history.append(small)
        if previous is None or span is None:
            still = False
        else:
            moved = _changed(small, previous, settings.pixel_change)
            if len(history) > history_length:
                scene_cut = np.count_nonzero(moved) > SCENE_CUT * small.size
                overlay.update(_changed(small, history.pop(0), settings.pixel_change), scene_cut)
            limit = settings.max_changed_fraction * small.size
            drift = _changed(small, span.anchor, settings.pixel_change)
            still = (
                np.count_nonzero(overlay.outside(moved)) <= limit
                and np.count_nonzero(overlay.outside(drift)) <= limit
            )
        if not still:
            boundary = 0.0 if previous is None else (previous_t + sample.t) / 2
            finished = close(boundary)
            # The closed span's samples are let go before the caller works on its keyframe.
            span = _OpenSpan(anchor=small, start_s=boundary)
            if finished is not None:
                yield finished
                finished = None
        if span.n_samples < settle_samples:  # the span may open inside a cross-fade's tail
            span.anchor = small
        span.add(sample, settings.keyframe_samples)
        previous, previous_t = small, sample.t
    if span is not None:
        end_s = duration_s if duration_s is not None else previous_t + 0.5 / settings.sample_hz
        finished = close(end_s)
        if finished is not None:
            yield finished


def sharpness(keyframe_bgr: np.ndarray, rect: tuple[int, int, int, int] | None = None) -> float:
    """Variance of the Laplacian (of the medical image region when known): low means blurred."""
    grey = cv2.cvtColor(keyframe_bgr, cv2.COLOR_BGR2GRAY)
    if rect is not None:
        x, y, w, h = rect
        grey = grey[y : y + h, x : x + w]
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


_SECOND_PICTURE_SHARE = 0.4  # of the largest picture's area: a block this large beside it is a picture too


def locate_image_region(keyframe_bgr: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest picture-like rectangle on the slide (x, y, w, h) in frame pixels, or None.

    The slide's background is read row by row from the frame's left and right edges, since
    backgrounds run in vertical gradients and header and footer bars span the width: of the two
    edges, the one nearer the slide's usual background (the most common edge colour between 15%
    and 85% of the height, where no bar or corner inset reaches) stands for the row. Whatever
    differs from its row's background is content. Text is sparse and comes in thin lines, so the
    picture is the biggest block that stays dense after rows and columns sparser than half content
    (a heading above it, notes beside it) are trimmed off its edges. Pictures shown side by side or
    one above the other (blocks at least _SECOND_PICTURE_SHARE as large, level with it or in line
    with it) are one region: the lecturer points at either.
    """
    height, width = keyframe_bgr.shape[:2]
    scale = REGION_WIDTH / width
    small = cv2.resize(keyframe_bgr, (REGION_WIDTH, round(height * scale)), interpolation=cv2.INTER_AREA)
    rows = slice(round(0.15 * small.shape[0]), round(0.85 * small.shape[0]))
    border = np.concatenate([small[rows, 0], small[rows, -1]]).astype(np.int16)
    colour_codes = (border // 8) @ np.array([1024, 32, 1])
    values, counts = np.unique(colour_codes, return_counts=True)
    usual = border[colour_codes == values[np.argmax(counts)]].mean(axis=0)
    edges = np.stack([small[:, :3].mean(axis=1), small[:, -3:].mean(axis=1)])  # (2, rows, 3)
    nearer = np.abs(edges - usual).max(axis=2).argmin(axis=0)
    background = edges[nearer, np.arange(small.shape[0])][:, None, :]
    content = (np.abs(small.astype(np.int16) - background).max(axis=2) > 12).astype(np.uint8)
    closed = cv2.morphologyEx(content, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    blocks = []
    for label in range(1, count):
        x, y, w, h = _trim_sparse_edges(content, *stats[label][:4])
        if h >= 0.12 * small.shape[0] and w >= 0.08 * small.shape[1]:  # not a line of text or a rule
            blocks.append((x, y, w, h))
    if not blocks:
        return None
    best = max(blocks, key=lambda block: block[2] * block[3])
    x, y, w, h = best
    for bx, by, bw, bh in blocks:
        level = min(y + h, by + bh) - max(y, by) >= 0.5 * min(h, bh)
        in_line = min(x + w, bx + bw) - max(x, bx) >= 0.5 * min(w, bw)
        if bw * bh >= _SECOND_PICTURE_SHARE * best[2] * best[3] and (level or in_line):
            x1, y1 = min(x, bx), min(y, by)
            x, y, w, h = x1, y1, max(x + w, bx + bw) - x1, max(y + h, by + bh) - y1
    left, top = round(x / scale), round(y / scale)
    return left, top, min(width, round((x + w) / scale)) - left, min(height, round((y + h) / scale)) - top


def _trim_sparse_edges(content: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Shrink the box while its outermost row or column is less than half content."""
    while w > 0 and h > 0:
        box = content[y : y + h, x : x + w]
        edges = {
            "top": box[0].mean(),
            "bottom": box[-1].mean(),
            "left": box[:, 0].mean(),
            "right": box[:, -1].mean(),
        }
        side, density = min(edges.items(), key=lambda item: item[1])
        if density >= 0.5:
            break
        if side == "top":
            y, h = y + 1, h - 1
        elif side == "bottom":
            h -= 1
        elif side == "left":
            x, w = x + 1, w - 1
        else:
            w -= 1
    return x, y, w, h


MedicalScorer = Callable[[list[np.ndarray]], np.ndarray]  # RGB keyframes -> probability of a medical image


@dataclass
class ChannelChunks:
    chunks: pl.DataFrame  # STABLE_CHUNKS_SCHEMA
    videos: pl.DataFrame  # per video: status, reason, counts, seconds
    contact_sheets: dict[str, bytes]  # video_id -> PNG of its keyframes


def chunk_video(
    video_path: Path,
    keyframe_dir: Path,
    score_medical: MedicalScorer,
    settings: ChunkingSettings,
    duration_s: float | None = None,
) -> tuple[list[dict], bytes | None]:
    """The video's stable chunks as rows (without channel and video_id), and a contact sheet.

    Keyframes are written as `keyframe_dir/chunk-NNN.png`; a keyframe that repeats an earlier one of
    the video (pHash within `duplicate_distance`) is not written again: its row points at the first.
    Each span is hashed, located and written as it closes; keyframes wait for the classifier only
    until SCORE_BATCH_BYTES of them are pending, and then only the row and a small contact-sheet
    tile are kept, so memory does not grow with the video's length.

    The folder is filled under a temporary name of this run's own and swapped in whole at the end
    (`atomic_files.replaced_folder`): a re-run leaves no stale keyframes, a failed one (a full disk)
    leaves the stored keyframes as they were, and two runs never write into one folder.
    """
    samples = sample_video(video_path, settings.sample_hz, settings.analysis_width)
    rows: list[dict] = []
    tiles: list[np.ndarray] = []
    pending: list[tuple[dict, np.ndarray]] = []  # rows and RGB keyframes awaiting their scores

    def score_pending() -> None:
        scores = np.asarray(score_medical([rgb for _, rgb in pending]), dtype=np.float32).reshape(-1)
        if scores.size != len(pending):
            raise ValueError(
                f"{video_path}: the medical scorer gave {scores.size} scores for {len(pending)} keyframes"
            )
        for (row, rgb), score in zip(pending, scores, strict=True):
            row["is_medical"] = bool(score >= settings.medical_threshold)
            row["medical_score"] = float(score)
            tiles.append(_labelled_tile(rgb, row))
        pending.clear()

    with replaced_folder(keyframe_dir) as staging:
        for index, span in enumerate(find_stable_spans(samples, settings, duration_s)):
            row = _chunk_row(video_path, keyframe_dir, staging, index, span, rows, settings)
            rows.append(row)
            pending.append((row, cv2.cvtColor(span.keyframe, cv2.COLOR_BGR2RGB)))
            del span  # the next span's median is taken without this keyframe still held
            if sum(rgb.nbytes for _, rgb in pending) >= SCORE_BATCH_BYTES:
                score_pending()
        if pending:
            score_pending()
    return rows, contact_sheet_png(tiles, tile_width=TILE_WIDTH)


def _chunk_row(
    video_path: Path,
    keyframe_dir: Path,
    staging: Path,
    index: int,
    span: StableSpan,
    earlier: list[dict],
    settings: ChunkingSettings,
) -> dict:
    """One span's row, its scores still to come; its keyframe is written to `staging` unless it
    repeats an earlier one."""
    phash = perceptual_hash(span.keyframe)
    first = next(
        (
            r
            for r in earlier
            if r["duplicate_of"] is None and hash_distance(r["phash"], phash) <= settings.duplicate_distance
        ),
        None,
    )
    rect = locate_image_region(span.keyframe)
    if first is None:
        ok, png = cv2.imencode(".png", span.keyframe, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ValueError(f"{video_path}: keyframe {index} could not be encoded")
        name = f"chunk-{index:03d}.png"
        (staging / name).write_bytes(png.tobytes())
        digest = hashlib.sha256(png.tobytes()).hexdigest()
    else:
        name, digest = Path(first["keyframe_path"]).name, first["keyframe_sha256"]
    return {
        "chunk_index": index,
        "start_s": round(span.start_s, 3),
        "end_s": round(span.end_s, 3),
        "keyframe_path": str(keyframe_dir / name),
        "keyframe_sha256": digest,
        "duplicate_of": None if first is None else first["chunk_index"],
        "is_medical": None,
        "medical_score": None,
        "image_x": rect[0] if rect else None,
        "image_y": rect[1] if rect else None,
        "image_w": rect[2] if rect else None,
        "image_h": rect[3] if rect else None,
        "sharpness": sharpness(span.keyframe, rect),
        "phash": phash,
        "n_samples": span.n_samples,
    }


def _labelled_tile(keyframe_rgb: np.ndarray, row: dict) -> np.ndarray:
    """The keyframe, small, with its medical image region boxed (green: medical) and a caption."""
    scale = TILE_WIDTH / keyframe_rgb.shape[1]
    tile = cv2.resize(
        keyframe_rgb, (TILE_WIDTH, round(keyframe_rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    colour = (40, 200, 80) if row["is_medical"] else (160, 160, 160)
    if row["image_x"] is not None:
        x, y, w, h = (round(row[k] * scale) for k in ("image_x", "image_y", "image_w", "image_h"))
        cv2.rectangle(tile, (x, y), (x + w - 1, y + h - 1), colour, 2)
    label = f"#{row['chunk_index']} {row['start_s']:.1f}-{row['end_s']:.1f}s p={row['medical_score']:.2f}"
    if row["duplicate_of"] is not None:
        label += f" =#{row['duplicate_of']}"
    caption = np.full((22, TILE_WIDTH, 3), 255, np.uint8)
    cv2.putText(
        caption,
        label,
        (4, 16),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        colour if row["is_medical"] else (60, 60, 60),
        1,
        cv2.LINE_AA,
    )
    return np.vstack([tile, caption])


def chunk_channel(
    data_root: Path,
    keyframes_root: Path,
    channel: str,
    videos: pl.DataFrame,
    score_medical: MedicalScorer,
    settings: ChunkingSettings,
    log: Callable[[str], None] = lambda _msg: None,
    cache: StageCache | None = None,
) -> ChannelChunks:
    """Stable chunks of every readable video of the channel.

    A fault of one video (it cannot be decoded, its path leads outside the data root) is reported in
    its row of `videos`, and the others are chunked. A fault of the machine (a full disk, a missing
    permission, an I/O error: any other OSError) is raised, naming the path, so that a run never
    stores "chunking failed" for a good video, nor replaces good rows with none.

    Keyframes go under `keyframes_root/<channel>/<video_id>/`, which must lie inside `data_root`
    (the videos stage deletes the folders of removed videos). With a `cache`, a video chunked before
    with the same content and settings, whose keyframes are still intact, is not chunked again (its
    contact sheet is then not drawn).
    """
    settings = settings.validated()
    cache = cache or StageCache.off()
    # The channel's keyframe folder, through the channel-safe helper: a name that passes the channel
    # rule, a folder that resolves inside the data root (InvalidChannelName or OutsideDataRoot).
    channel_keyframes = DataLayout.at(data_root).channel_path(keyframes_root, channel)
    videos = videos.sort("video_id")
    chunks, summaries, sheets = [pl.DataFrame(schema=STABLE_CHUNKS_SCHEMA)], [], {}
    log(f"channel {channel!r}: {videos.height} videos to chunk")
    for i, video in enumerate(videos.iter_rows(named=True), 1):
        summary = {
            "video_id": video["video_id"],
            "status": "ok",
            "reason": None,
            "n_chunks": 0,
            "n_medical": 0,
            "seconds": 0.0,
            "from_cache": None,
        }
        summaries.append(summary)
        prefix = f"video {i} of {videos.height} ({video['video_id']})"
        if video["status"] != "ok":
            summary.update(status="error", reason=f"video unreadable: {video['error']}")
            log(f"{prefix}: skipped, {summary['reason']}")
            continue
        refused = _refused(data_root, video)
        if refused is not None:
            summary.update(status="error", reason=refused)
            log(f"{prefix}: skipped, {refused}")
            continue
        started = time.perf_counter()

        def chunked(video: dict = video) -> Frames:
            rows, sheet = chunk_video(
                data_root / video["path"],
                channel_keyframes / video["video_id"],
                score_medical,
                settings,
                video["duration_s"],
            )
            if sheet is not None:
                sheets[video["video_id"]] = sheet
            for row in rows:  # tables hold paths relative to the data root
                row["keyframe_path"] = Path(row["keyframe_path"]).relative_to(data_root).as_posix()
            key = {"channel": channel, "video_id": video["video_id"]}
            return {"chunks": pl.DataFrame([key | row for row in rows], schema=STABLE_CHUNKS_SCHEMA)}

        try:
            frames, from_cache = cache.cached(
                video["video_id"],
                {"path": video["path"], "duration_s": video["duration_s"]},
                ("chunks",),
                chunked,
                usable=lambda frames: keyframes_intact(data_root, frames["chunks"]),
            )
        except (OSError, ValueError, cv2.error) as exc:
            if isinstance(exc, OSError) and not is_video_fault(exc):
                raise  # the machine's fault, not the video's: no row may say otherwise
            summary.update(status="error", reason=f"chunking failed: {exc}")
            log(f"{prefix}: {summary['reason']}")
            continue
        seconds = time.perf_counter() - started
        video_chunks = frames["chunks"]
        chunks.append(video_chunks)
        summary.update(
            n_chunks=video_chunks.height,
            n_medical=int(video_chunks["is_medical"].sum()),
            seconds=round(seconds, 2),
            from_cache=from_cache,
        )
        if not from_cache:  # reused videos are counted in one line: a log line is an event to store
            log(
                f"{prefix}: {video_chunks.height} stable chunks, {summary['n_medical']} medical, "
                f"{video['duration_s'] or 0:.0f} s of video in {seconds:.1f} s"
            )
    log(f"channel {channel!r}: {cache.summary()}")
    return ChannelChunks(
        pl.concat(chunks),
        pl.DataFrame(summaries, schema=VIDEO_SUMMARY_SCHEMA),
        sheets,
    )


def keyframes_intact(data_root: Path, chunks: pl.DataFrame) -> bool:
    """Whether every keyframe the rows name is on disk with the sha256 they record."""
    for path, digest in chunks.select("keyframe_path", "keyframe_sha256").unique().iter_rows():
        file = data_root / path
        if not file.is_file() or sha256_of(file) != digest:
            return False
    return True


def _refused(data_root: Path, video: dict) -> str | None:
    """Why a video must not be read or given a keyframe folder, or None.

    A video file (or a folder on its path) may be a symlink to somewhere outside the data root; the
    videos stage refuses those too, this is a second line. A video id names a folder of its own.
    """
    if (problem := video_id_problem(video["video_id"])) is not None:
        return f"video id {video['video_id']!r} cannot name a keyframe folder: {problem}"
    resolved = resolves_outside(data_root / video["path"], data_root)
    if resolved is not None:
        return f"video path {video['path']} resolves outside the data root (to {resolved}); not read"
    return None

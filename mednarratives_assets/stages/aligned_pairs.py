"""Stage `aligned_pairs`: one image-text pair per medical chunk, the image cropped from the keyframe.

Text comes from the chunk's narrative: the caption as heard, the caption with the medical
vocabulary's corrections, the sentences that carry a medical term, and the phrases said while
the pointer dwelt (`roi_text`). The domain is voted by keywords in the text, one of 12; where the
text names several, the image's colour decides between grey-scale domains (CT, MRI, X-ray, ...)
and colour ones (histology, dermatology, ...). A crop within `duplicate_distance` bits of pHash of
an earlier crop of the channel is the same image shown again and gives no second pair.

A pointer held still over most of a chunk survives the keyframe's median; given the cursor
detector, each pointer it finds on the picture where the chunk's trace went is painted out
(OpenCV inpainting over its box) before the crop is taken.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.atomic_files import link_or_copy, replaced_folder
from mednarratives_assets.contact_sheets import fit_to_width
from mednarratives_assets.domains import DOMAIN_KEYWORDS, DOMAINS
from mednarratives_assets.file_hashing import sha256_of
from mednarratives_assets.image_hashing import hash_distance, perceptual_hash
from mednarratives_assets.spoken_text import strip_punctuation
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.stages.cursor_detector import CursorDetector
from mednarratives_assets.stages.cursor_traces import scan_keyframe
from mednarratives_assets.tables import chunk_region, grouped, medical_chunks_by_video, pair_id
from mednarratives_assets.video_cache import Frames, StageCache

GREY_DOMAINS = frozenset({"CT", "MRI", "X-ray", "ultrasound", "mammography", "dental"})
COLOUR_DOMAINS = frozenset(
    {"histopathology", "dermatology", "endoscopy", "ophthalmology", "surgery", "ultrasound"}
)
# A phrase said while pointing that holds one of these refers to the spot ("this lucent focus");
# others were said while the pointer merely rested.
REFERRING_WORDS = frozenset({"this", "these", "that", "those", "here", "there"})
_COLOURFUL = 0.15  # mean saturation of the lit pixels above which an image counts as colour
_PROGRESS_EVERY_VIDEOS = 50  # a video's chunks take about 0.1 s each, most of it the pointer scan
ALIGNED_PAIRS_SCHEMA = {
    "channel": pl.Utf8,
    "pair_id": pl.Utf8,
    "video_id": pl.Utf8,
    "chunk_index": pl.Int32,
    "image_path": pl.Utf8,
    "image_sha256": pl.Utf8,
    "image_width": pl.Int32,
    "image_height": pl.Int32,
    "phash": pl.Utf8,
    "caption": pl.Utf8,
    "corrected_caption": pl.Utf8,
    "medical_text": pl.Utf8,
    "roi_text": pl.Utf8,
    "domain": pl.Utf8,
    "domain_votes": pl.Utf8,
    "n_trace_points": pl.Int32,
    "n_boxes": pl.Int32,
    "n_pointers_removed": pl.Int32,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
}
SKIPPED_SCHEMA = {"video_id": pl.Utf8, "chunk_index": pl.Int32, "reason": pl.Utf8}


@dataclass(frozen=True)
class PairSettings:
    duplicate_distance: int = setting(
        6,
        "pHash bits within which two crops of a channel are one image (re-encoding flips a few).",
        ge=0,
        le=32,
        unit="bits",
    )

    def validated(self) -> PairSettings:
        return check_settings(self, "{name}={value!r} must {rule}")


@dataclass(frozen=True)
class ChannelPairs:
    pairs: pl.DataFrame
    skipped: pl.DataFrame  # chunks that gave no pair, and why


def _tokens(text: str) -> str:
    """Lower-case words without punctuation, space-separated with spaces at both ends; a word that
    Whisper split at its hyphen ("x -ray") is joined again."""
    return " " + " ".join(strip_punctuation(t).lower() for t in text.replace(" -", "-").split()) + " "


def domain_votes(text: str) -> dict[str, int]:
    """Keyword hits per domain: 2 for a modality's name, 1 for its typical words."""
    words = _tokens(text)
    votes: dict[str, int] = {}
    for domain, (names, typical) in DOMAIN_KEYWORDS.items():
        score = sum(2 * words.count(f" {k} ") for k in names) + sum(words.count(f" {k} ") for k in typical)
        if score:
            votes[domain] = score
    return votes


def colourfulness(image_bgr: np.ndarray) -> float:
    """Mean HSV saturation (0 to 1) of the pixels that are not near black."""
    hsv = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV)
    lit = hsv[..., 2] > 30
    return float(hsv[..., 1][lit].mean() / 255) if lit.any() else 0.0


def infer_domain(text: str, image_bgr: np.ndarray) -> tuple[str, dict[str, int]]:
    """One of DOMAINS, and the keyword votes it came from."""
    votes = domain_votes(text)
    if not votes:
        return "other", votes
    fitting = COLOUR_DOMAINS if colourfulness(image_bgr) > _COLOURFUL else GREY_DOMAINS
    candidates = {d: v for d, v in votes.items() if d in fitting} or votes
    return max(candidates, key=lambda d: (candidates[d], -DOMAINS.index(d))), votes


def medical_sentences(text: str, terms: frozenset[str]) -> str:
    """The sentences of `text` that hold at least one medical term."""
    sentences = [s.strip() for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]
    return " ".join(
        s
        for s in sentences
        if any(strip_punctuation(t).lower() in terms for t in s.replace("-", " - ").split())
    )


def roi_text(phrases: list[str]) -> str:
    """The phrases said while pointing that refer to the spot, joined by semicolons."""
    return "; ".join(p for p in phrases if REFERRING_WORDS & set(_tokens(p).split()))


def without_pointers(
    keyframe_bgr: np.ndarray,
    region: tuple[int, int, int, int],
    detector: CursorDetector,
    trace_xy: np.ndarray,
) -> tuple[np.ndarray, int]:
    """The keyframe with every pointer painted out whose hotspot lies on the picture where the trace
    went (within scan_keyframe's reach, 8 px at 720p, of a point of `trace_xy`), and how many.

    Only the keyframe's tiles that hold trace points are scanned: marks on an ultrasound screen
    look like pointers to the detector, but the pointer never sat on them."""
    height, width = keyframe_bgr.shape[:2]
    visited = np.zeros((height, width), bool)
    xs = np.clip(np.round(trace_xy[:, 0]).astype(int), 0, width - 1)
    ys = np.clip(np.round(trace_xy[:, 1]).astype(int), 0, height - 1)
    visited[ys, xs] = True
    x, y, w, h = region
    found = [
        p for p in scan_keyframe(detector, keyframe_bgr, visited) if x <= p.x < x + w and y <= p.y < y + h
    ]
    if not found:
        return keyframe_bgr, 0
    grow = max(2, round(3 * height / 720))  # the box's rounding and a soft shadow
    mask = np.zeros((height, width), np.uint8)
    for pointer in found:
        x1, y1, x2, y2 = pointer.box
        cv2.rectangle(mask, (int(x1) - grow, int(y1) - grow), (int(x2) + grow, int(y2) + grow), 255, -1)
    return cv2.inpaint(keyframe_bgr, mask, 5, cv2.INPAINT_TELEA), len(found)


def crop(keyframe_bgr: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = region
    return keyframe_bgr[y : y + h, x : x + w]


_CANDIDATES_SCHEMA = ALIGNED_PAIRS_SCHEMA | {"png": pl.Binary}


def _video_candidates(
    data_root: Path,
    pairs_dir: Path,
    chunks: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    traces: pl.DataFrame,
    vocabulary: MedicalVocabulary,
    detector: CursorDetector | None,
    log: Callable[[str], None],
) -> Frames:
    """One video's would-be pairs, each with its crop as PNG bytes, before the channel's
    de-duplication; and its chunks that can give no pair, with the reason."""
    by_chunk = {r["chunk_index"]: r for r in narratives.iter_rows(named=True)}
    points_of, boxes_of = grouped(traces, "chunk_index"), grouped(boxes, "chunk_index")
    rows: list[dict] = []
    skipped: list[dict] = []
    for chunk in chunks.iter_rows(named=True):
        video_id, index = chunk["video_id"], chunk["chunk_index"]
        told = by_chunk.get(index)
        if told is None or not told["caption"].strip():
            skipped.append({"video_id": video_id, "chunk_index": index, "reason": "nothing was said"})
            continue
        keyframe = cv2.imread(str(data_root / chunk["keyframe_path"]))
        if keyframe is None:
            reason = f"cannot read keyframe {chunk['keyframe_path']}"
            log(f"{video_id} chunk {index}: {reason}")
            skipped.append({"video_id": video_id, "chunk_index": index, "reason": reason})
            continue
        removed = 0
        if detector is not None:
            trace_xy = points_of(index).select("x_px", "y_px").to_numpy()
            keyframe, removed = without_pointers(keyframe, chunk_region(chunk), detector, trace_xy)
        image = crop(keyframe, chunk_region(chunk))
        ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ValueError(f"{video_id} chunk {index}: the crop could not be encoded as PNG")
        identifier = pair_id(chunk["channel"], video_id, index)
        corrected, _ = vocabulary.correct(told["caption"])
        domain, votes = infer_domain(corrected, image)
        chunk_boxes = boxes_of(index)
        rows.append(
            {
                "channel": chunk["channel"],
                "pair_id": identifier,
                "video_id": video_id,
                "chunk_index": index,
                "image_path": (pairs_dir / f"{identifier}.png").as_posix(),
                "image_sha256": hashlib.sha256(png.tobytes()).hexdigest(),
                "image_width": image.shape[1],
                "image_height": image.shape[0],
                "phash": perceptual_hash(image),
                "caption": told["caption"],
                "corrected_caption": corrected,
                "medical_text": medical_sentences(corrected, vocabulary.terms),
                "roi_text": roi_text(chunk_boxes.sort("box_index")["phrase"].to_list()),
                "domain": domain,
                "domain_votes": ", ".join(f"{d} {v}" for d, v in sorted(votes.items(), key=lambda i: -i[1])),
                "n_trace_points": told["n_trace_points"],
                "n_boxes": chunk_boxes.height,
                "n_pointers_removed": removed,
                "start_s": chunk["start_s"],
                "end_s": chunk["end_s"],
                "png": png.tobytes(),
            }
        )
    return {
        "candidates": pl.DataFrame(rows, schema=_CANDIDATES_SCHEMA),
        "skipped": pl.DataFrame(skipped, schema=SKIPPED_SCHEMA),
    }


def pair_channel(
    data_root: Path,
    pairs_dir: Path,
    stable_chunks: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    cursor_traces: pl.DataFrame,
    vocabulary: MedicalVocabulary,
    settings: PairSettings,
    detector: CursorDetector | None,
    log: Callable[[str], None] = print,
    cache: StageCache | None = None,
) -> ChannelPairs:
    """The `aligned_pairs` table of one channel. Crops are written to `pairs_dir`, relative to the data
    root and rebuilt whole (a crop already there with the same content is linked, not written
    again); a failed run leaves the stored crops as they were. Without a detector, pointers left in
    keyframes stay in the crops.

    Each video's would-be pairs are made once per content of its chunks, narratives, boxes and
    traces (with a `cache`, only for new or changed videos); the channel's de-duplication then
    runs over all of them in order."""
    cache = cache or StageCache.off()
    target = data_root / pairs_dir
    rows: list[dict] = []
    skipped = [pl.DataFrame(schema=SKIPPED_SCHEMA)]
    by_video = medical_chunks_by_video(
        stable_chunks, narratives=narratives, boxes=boxes, traces=cursor_traces
    )
    with replaced_folder(target) as staging:  # a failed run leaves the stored crops as they were
        for done, (video_id, inputs) in enumerate(by_video):
            if done and done % _PROGRESS_EVERY_VIDEOS == 0:
                log(f"{done} videos paired, {len(rows)} pairs so far")
            frames, _ = cache.cached(
                video_id,
                inputs,
                ("candidates", "skipped"),
                lambda inputs=inputs: _video_candidates(
                    data_root, pairs_dir, **inputs, vocabulary=vocabulary, detector=detector, log=log
                ),
            )
            skipped.append(frames["skipped"])
            for candidate in frames["candidates"].iter_rows(named=True):
                first = next(
                    (
                        r
                        for r in rows
                        if hash_distance(r["phash"], candidate["phash"]) <= settings.duplicate_distance
                    ),
                    None,
                )
                if first is not None:
                    reason = f"same image as {first['video_id']} chunk {first['chunk_index']}"
                    skipped.append(
                        pl.DataFrame(
                            [
                                {
                                    "video_id": video_id,
                                    "chunk_index": candidate["chunk_index"],
                                    "reason": reason,
                                }
                            ],
                            schema=SKIPPED_SCHEMA,
                        )
                    )
                    continue
                _place_crop(staging, target, candidate)
                rows.append(candidate)
    pairs = pl.DataFrame(rows, schema=_CANDIDATES_SCHEMA).drop("png")
    return ChannelPairs(pairs, pl.concat(skipped).sort("video_id", "chunk_index"))


def _place_crop(staging: Path, stored: Path, pair: dict) -> None:
    """The pair's crop in `staging`: linked from the stored folder when the file there has the same
    content, else written from its bytes."""
    name = Path(pair["image_path"]).name
    previous = stored / name
    if previous.is_file() and not previous.is_symlink() and sha256_of(previous) == pair["image_sha256"]:
        link_or_copy(previous, staging / name)
    else:
        (staging / name).write_bytes(pair["png"])


_TILE_WIDTH = 240
_CAPTION_SCALE = 0.38


def caption_lines(caption: str, n_lines: int = 2, width_px: int = _TILE_WIDTH - 8) -> list[str]:
    """The caption wrapped into at most `n_lines` lines that fit `width_px` at the tile's font,
    words never cut: the last line ends in "..." when words are left over."""
    words, lines = caption.split(), []
    while words and len(lines) < n_lines - 1:
        line = fit_to_width(" ".join(words), width_px, _CAPTION_SCALE)
        if not line.endswith("..."):
            return [*lines, line]
        taken = line[: -len("...")].split()
        if not taken:  # one word wider than the tile
            break
        lines.append(" ".join(words[: len(taken)]))
        words = words[len(taken) :]
    return [*lines, fit_to_width(" ".join(words), width_px, _CAPTION_SCALE)] if words else lines


def pair_picture(data_root: Path, pair: dict) -> np.ndarray:
    """The pair's image (RGB), small, over its domain and the first words of its caption."""
    image = cv2.imread(str(data_root / pair["image_path"]))
    if image is None:  # a grey tile that says so, not an empty one
        image = np.full((_TILE_WIDTH // 2, _TILE_WIDTH, 3), 200, np.uint8)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(image, "image missing", (60, 64), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    scale = _TILE_WIDTH / image.shape[1]
    tile = cv2.resize(
        image, (_TILE_WIDTH, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA
    )
    lines = caption_lines(pair["corrected_caption"])
    label = np.full((22 + 15 * max(1, len(lines)), _TILE_WIDTH, 3), 255, np.uint8)
    first_line = f"{pair['domain']}  {pair['video_id']} #{pair['chunk_index']}  {pair['n_boxes']} boxes"
    first_line = fit_to_width(first_line, _TILE_WIDTH - 8, 0.42)
    cv2.putText(label, first_line, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (20, 120, 40), 1, cv2.LINE_AA)
    for i, line in enumerate(lines):
        cv2.putText(
            label, line, (4, 32 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, _CAPTION_SCALE, (0, 0, 0), 1, cv2.LINE_AA
        )
    return cv2.cvtColor(np.vstack([tile, label]), cv2.COLOR_BGR2RGB)

"""A small narrated channel as upstream tables (no video): a CT-like picture with two bright foci,
the pointer resting, then still on one focus and circling the other, and the words said meanwhile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import polars as pl

from mednarratives_assets.stages.boxes import BoxSettings, box_channel
from mednarratives_assets.stages.cursor_traces import CURSOR_TRACES_SCHEMA
from mednarratives_assets.stages.narratives import NarrativeSettings, narrate_channel
from mednarratives_assets.stages.stable_chunks import STABLE_CHUNKS_SCHEMA
from mednarratives_assets.stages.transcripts import TRANSCRIPTS_SCHEMA, WORDS_SCHEMA
from mednarratives_assets.stages.videos import VIDEOS_SCHEMA

FRAME = (640, 360)
REGION = (100, 40, 300, 280)  # x, y, w, h of the picture on the slide
FOCUS_A = (170.0, 110.0, 22)  # centre x, y and radius, frame pixels
FOCUS_B = (320.0, 250.0, 28)
SAMPLE_HZ = 10


@dataclass(frozen=True)
class NarratedChannel:
    tables: dict[str, pl.DataFrame]  # videos, transcripts, stable_chunks, cursor_traces, transcript_words
    focus_boxes: list[tuple[float, float, float, float]]  # x1, y1, x2, y2 of A and B


def keyframe() -> np.ndarray:
    """A grey slide holding a dark, textured picture with two bright round foci."""
    frame = np.full((FRAME[1], FRAME[0], 3), 200, np.uint8)
    x, y, w, h = REGION
    rng = np.random.default_rng(3)
    picture = (40 + rng.normal(0, 3, (h, w))).clip(0, 255).astype(np.uint8)
    for cx, cy, r in (FOCUS_A, FOCUS_B):
        cv2.circle(picture, (round(cx - x), round(cy - y)), r, 190, -1)
    picture = cv2.GaussianBlur(picture, (0, 0), 1.5)
    frame[y : y + h, x : x + w] = picture[..., None]
    return frame


def _segment(t0: float, t1: float, position) -> list[tuple[float, float, float]]:
    times = np.arange(round(t0 * SAMPLE_HZ), round(t1 * SAMPLE_HZ)) / SAMPLE_HZ
    return [(float(t), *position(float(t))) for t in times]


def pointer_path() -> list[tuple[float, float, float]]:
    """(t, x, y): travel in, rest away from both foci, still on A (off its centre), circle B."""

    def travel(start, end, t0, t1):
        return lambda t: tuple(np.add(start, np.multiply(np.subtract(end, start), (t - t0) / (t1 - t0))))

    rest, on_a = (330.0, 80.0), (FOCUS_A[0] + 6, FOCUS_A[1] - 5)
    return [
        *_segment(2.0, 2.6, travel((560.0, 330.0), rest, 2.0, 2.6)),
        *_segment(2.6, 5.0, lambda t: rest),
        *_segment(5.0, 5.4, travel(rest, on_a, 5.0, 5.4)),
        *_segment(5.4, 8.0, lambda t: on_a),
        *_segment(8.0, 8.4, travel(on_a, FOCUS_B[:2], 8.0, 8.4)),
        *_segment(
            8.4,
            11.4,
            lambda t: (FOCUS_B[0] + 14 * np.sin(4 * (t - 8.4)), FOCUS_B[1] - 14 * np.cos(4 * (t - 8.4))),
        ),
    ]


SENTENCES = [  # (start_s, sentence); each word takes 0.3 s
    (1.5, "Next,"),
    (2.2, "Here is a CT scan of the head."),
    (5.3, "Notice this hyperdense rounded focus."),
    (8.3, "There is this bright area below."),
    (12.6, "Moving on."),
]


def words_table(channel: str, video_id: str) -> pl.DataFrame:
    rows = []
    for segment, (start, sentence) in enumerate(SENTENCES):
        for k, word in enumerate(sentence.split()):
            rows.append(
                {
                    "channel": channel,
                    "video_id": video_id,
                    "word_index": len(rows),
                    "word": word,
                    "start_s": start + 0.3 * k,
                    "end_s": start + 0.3 * k + 0.25,
                    "probability": 0.9,
                    "segment_index": segment,
                }
            )
    return pl.DataFrame(rows, schema=WORDS_SCHEMA)


def narrated_channel(data_root: Path, channel: str = "ch", video_ids=("a",)) -> NarratedChannel:
    """Every video shows the same slide as its chunk 1 (2 to 12 s), after a title chunk 0."""
    keyframes = data_root / "keyframes" / channel
    keyframes.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(keyframes / "medical.png"), keyframe())
    cv2.imwrite(str(keyframes / "title.png"), np.full((FRAME[1], FRAME[0], 3), 90, np.uint8))
    videos, transcripts, chunks, traces, words = [], [], [], [], []
    x, y, w, h = REGION
    for video_id in video_ids:
        videos.append(
            dict.fromkeys(VIDEOS_SCHEMA)
            | {"channel": channel, "video_id": video_id, "path": f"videos/{channel}/{video_id}.mp4"}
        )
        base = dict.fromkeys(STABLE_CHUNKS_SCHEMA) | {"channel": channel, "video_id": video_id}
        chunks.append(
            base
            | {"chunk_index": 0, "start_s": 0.0, "end_s": 1.8, "is_medical": False}
            | {"keyframe_path": f"keyframes/{channel}/title.png", "phash": "0" * 16}
        )
        chunks.append(
            base
            | {"chunk_index": 1, "start_s": 2.0, "end_s": 12.0, "is_medical": True, "medical_score": 0.99}
            | {"keyframe_path": f"keyframes/{channel}/medical.png", "phash": "f" * 16}
            | {"image_x": x, "image_y": y, "image_w": w, "image_h": h}
        )
        for t, px, py in pointer_path():
            traces.append(
                {
                    "channel": channel,
                    "video_id": video_id,
                    "chunk_index": 1,
                    "t_s": t,
                    "x_px": px,
                    "y_px": py,
                    "confidence": 0.9,
                    "method": "motion",
                    "x_norm": (px - x) / w,
                    "y_norm": (py - y) / h,
                    "inside_image": x <= px <= x + w and y <= py <= y + h,
                }
            )
        words.append(words_table(channel, video_id))
        transcripts.append(
            dict.fromkeys(TRANSCRIPTS_SCHEMA)
            | {"channel": channel, "video_id": video_id, "status": "ok", "n_words": words[-1].height}
        )
    boxes = [(cx - r, cy - r, cx + r, cy + r) for cx, cy, r in (FOCUS_A, FOCUS_B)]
    return NarratedChannel(
        {
            "videos": pl.DataFrame(videos, schema=VIDEOS_SCHEMA),
            "transcripts": pl.DataFrame(transcripts, schema=TRANSCRIPTS_SCHEMA),
            "stable_chunks": pl.DataFrame(chunks, schema=STABLE_CHUNKS_SCHEMA),
            "cursor_traces": pl.DataFrame(traces, schema=CURSOR_TRACES_SCHEMA),
            "transcript_words": pl.concat(words),
        },
        boxes,
    )


def narrate(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The narratives stage on the tables, default settings."""
    return narrate_channel(
        tables["videos"],
        tables["stable_chunks"],
        tables["cursor_traces"],
        tables["transcript_words"],
        NarrativeSettings(),
    )


def box(root: Path, tables: dict[str, pl.DataFrame], settings: BoxSettings | None = None, log=print):
    """The boxes stage on the tables."""
    return box_channel(
        root,
        tables["stable_chunks"],
        tables["cursor_traces"],
        tables["transcript_words"],
        settings or BoxSettings(),
        log=log,
    )

"""Stage `narratives`: each medical chunk's words joined to the pointer's trace, as Localized Narratives.

A chunk's words are those whose middle falls in the chunk's span widened by `padding_s` (speech
and slide changes do not line up to the frame). Word i's trace is the pointer's points from its
start to the start of word i + 1 (the last word's runs to the window's end), so `traces[i]` belongs
to `timed_caption[i]`. Times count from the window's start, the start of the voice recording, and
points are normalized to the pair's image (the chunk's image region), as in Google's Localized
Narratives (https://google.github.io/localized-narratives/); `voice_recording` is the video with
a media-fragment time range.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mednarratives_assets.atomic_files import replaced_file
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.tables import grouped, medical_chunks_by_video, pair_id
from mednarratives_assets.video_cache import Frames, StageCache

DATASET_ID = "mednarratives"
TIMED_UTTERANCE = pl.Struct({"utterance": pl.Utf8, "start_time": pl.Float64, "end_time": pl.Float64})
TIMED_POINT = pl.Struct({"x": pl.Float64, "y": pl.Float64, "t": pl.Float64})
NARRATIVES_SCHEMA = {
    "channel": pl.Utf8,
    "video_id": pl.Utf8,
    "chunk_index": pl.Int32,
    "dataset_id": pl.Utf8,
    "image_id": pl.Utf8,
    "annotator_id": pl.Int64,
    "caption": pl.Utf8,
    "timed_caption": pl.List(TIMED_UTTERANCE),
    "traces": pl.List(pl.List(TIMED_POINT)),
    "voice_recording": pl.Utf8,
    "window_start_s": pl.Float64,
    "window_end_s": pl.Float64,
    "n_words": pl.Int32,
    "n_trace_points": pl.Int32,
}
# Columns of the Localized Narratives JSONL, in the order Google's files use.
LN_FIELDS = (
    "dataset_id",
    "image_id",
    "annotator_id",
    "caption",
    "timed_caption",
    "traces",
    "voice_recording",
)


@dataclass(frozen=True)
class NarrativeSettings:
    padding_s: float = setting(
        0.3, "Seconds added to each side of a chunk's span when taking its words.", ge=0, le=5, unit="seconds"
    )

    def validated(self) -> NarrativeSettings:
        return check_settings(self, "{name}={value!r} must {rule}")


def annotator_id(channel: str) -> int:
    """The lecturer is the annotator; one channel stands for one lecturer."""
    return int(hashlib.sha1(channel.encode()).hexdigest()[:8], 16)


def chunk_words(words: pl.DataFrame, start_s: float, end_s: float, padding_s: float) -> pl.DataFrame:
    """The words (start_s, end_s, word) whose middle lies in the span widened by `padding_s`."""
    middle = (pl.col("start_s") + pl.col("end_s")) / 2
    return words.filter(middle.is_between(start_s - padding_s, end_s + padding_s)).sort("start_s")


def word_traces(word_starts: list[float], points: pl.DataFrame, window_end_s: float) -> list[pl.DataFrame]:
    """For each word, the points from its start to the next word's start (the last: to the window's end)."""
    ends = [*word_starts[1:], window_end_s][: len(word_starts)]
    return [
        points.filter((pl.col("t_s") >= start) & (pl.col("t_s") < end))
        for start, end in zip(word_starts, ends, strict=True)
    ]


def narrative(
    chunk: dict, words: pl.DataFrame, points: pl.DataFrame, video_path: str, settings: NarrativeSettings
) -> dict:
    """One row of the `narratives` table: a chunk's words and traces. `points` has t_s, x_norm, y_norm."""
    said = chunk_words(words, chunk["start_s"], chunk["end_s"], settings.padding_s)
    window_start = min([chunk["start_s"], *said["start_s"].to_list()])
    window_end = max([chunk["end_s"], *said["end_s"].to_list()])
    starts = said["start_s"].to_list()
    traces = [
        [
            {"x": round(x, 4), "y": round(y, 4), "t": round(t - window_start, 3)}
            for t, x, y in trace.select("t_s", "x_norm", "y_norm").iter_rows()
        ]
        for trace in word_traces(starts, points.sort("t_s"), window_end)
    ]
    return {
        "channel": chunk["channel"],
        "video_id": chunk["video_id"],
        "chunk_index": chunk["chunk_index"],
        "dataset_id": f"{DATASET_ID}/{chunk['channel']}",
        "image_id": pair_id(chunk["channel"], chunk["video_id"], chunk["chunk_index"]),
        "annotator_id": annotator_id(chunk["channel"]),
        "caption": " ".join(said["word"].to_list()),
        "timed_caption": [
            {"utterance": w, "start_time": round(s - window_start, 3), "end_time": round(e - window_start, 3)}
            for w, s, e in said.select("word", "start_s", "end_s").iter_rows()
        ],
        "traces": traces,
        "voice_recording": f"{video_path}#t={window_start:.3f},{window_end:.3f}",
        "window_start_s": window_start,
        "window_end_s": window_end,
        "n_words": said.height,
        "n_trace_points": sum(len(trace) for trace in traces),
    }


def narrate_channel(
    videos: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    cursor_traces: pl.DataFrame,
    words: pl.DataFrame,
    settings: NarrativeSettings,
    cache: StageCache | None = None,
) -> pl.DataFrame:
    """The `narratives` table of one channel: one row per medical chunk with an image region.

    With a `cache`, a video whose chunks, traces and words are unchanged is not narrated again."""
    cache = cache or StageCache.off()
    paths = dict(videos.select("video_id", "path").iter_rows())
    frames = [pl.DataFrame(schema=NARRATIVES_SCHEMA)]
    for video_id, rows in medical_chunks_by_video(stable_chunks, traces=cursor_traces, words=words):
        inputs = rows | {"path": paths.get(video_id, video_id)}

        def narrated(inputs: dict = inputs) -> Frames:
            points_in = grouped(inputs["traces"], "chunk_index")
            rows = [
                narrative(chunk, inputs["words"], points_in(chunk["chunk_index"]), inputs["path"], settings)
                for chunk in inputs["chunks"].iter_rows(named=True)
            ]
            return {"narratives": pl.DataFrame(rows, schema=NARRATIVES_SCHEMA)}

        result, _ = cache.cached(video_id, inputs, ("narratives",), narrated)
        frames.append(result["narratives"])
    return pl.concat(frames)


def write_jsonl(narratives: pl.DataFrame, path: Path) -> Path:
    """The narratives as Localized Narratives JSONL, one object per line, written atomically."""
    with replaced_file(path) as partial, partial.open("w") as out:
        for row in narratives.select(LN_FIELDS).iter_rows(named=True):
            out.write(json.dumps(row) + "\n")
    return path

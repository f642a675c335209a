"""Stage `dataset_statistics`: the figures a paper about the dataset reports, from every channel's tables.

One long table, a figure a row: `statistic` (snake_case), `breakdown` ("" for an overall figure,
else the domain or the filter rule it belongs to), `value` and `unit`, so that a dataset card
renders it without knowing the figures. Means and medians of nothing (no pairs yet) are NULL.

Duplicates: `stable_chunks` keeps a slide shown again within a video as a chunk of its own
(`duplicate_of`), and `aligned_pairs` gives no pair for a crop within `duplicate_distance` of an
earlier one of the channel. The second step is where duplicates leave the dataset; it keeps no
table of them, so they are counted as the chunks it was given (medical chunks of kept videos with
a narrated caption) that gave no pair, less those whose keyframe file is missing (the only other
reason it skips one).

A video file found in two lectures (the same sha256, in two channels or twice in one) counts once:
the first lecture by (channel, video_id) keeps it, as in the merged export, and the others are
counted in `videos_copied` and left out of every other figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mednarratives_assets.contact_sheets import figure_png
from mednarratives_assets.stages.medical_entities import mentions_per_concept
from mednarratives_assets.stages.videos import later_copies
from mednarratives_assets.tables import medical_chunks

STATISTICS_SCHEMA = {"statistic": pl.Utf8, "breakdown": pl.Utf8, "value": pl.Float64, "unit": pl.Utf8}
CHUNK_KEY = ["channel", "video_id", "chunk_index"]
_SECONDS_PER_HOUR = 3600.0
MOST_FREQUENT_CONCEPTS = 20  # concepts shown one by one in `entities_per_concept`


@dataclass(frozen=True)
class DatasetStatistics:
    table: pl.DataFrame  # STATISTICS_SCHEMA
    # The distributions behind the table's means, for the plots.
    caption_words: pl.Series  # words per pair's caption
    boxes_per_pair: pl.Series
    box_areas: pl.Series  # each paired box's area, as a fraction of its pair's image
    channels_left_out: list[str]  # channels with videos that video_filter has not seen


def caption_word_counts(pairs: pl.DataFrame) -> pl.Series:
    """Words (runs of non-space) in each pair's caption as heard."""
    return pairs["caption"].str.count_matches(r"\S+").cast(pl.Int64).alias("caption_words")


def paired_box_areas(boxes: pl.DataFrame, pairs: pl.DataFrame) -> pl.Series:
    """The area of every box of a chunk that became a pair, as a fraction of the pair's image (the
    normalized corners are fractions of the chunk's image region, which the pair's crop is)."""
    paired = boxes.join(pairs.select(CHUNK_KEY), on=CHUNK_KEY, how="semi")
    return paired.select(
        box_area=(pl.col("x2_norm") - pl.col("x1_norm")) * (pl.col("y2_norm") - pl.col("y1_norm"))
    )["box_area"].cast(pl.Float64)


def duplicates_removed(
    narratives: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    pairs: pl.DataFrame,
    video_filter: pl.DataFrame,
    keyframe_exists: Callable[[str], bool],
) -> int:
    """Chunks aligned_pairs left out as the same image as an earlier pair of their channel."""
    kept_videos = video_filter.filter(pl.col("kept")).select("channel", "video_id")
    given = (
        narratives.filter(pl.col("caption").str.strip_chars().str.len_chars() > 0)
        .select(CHUNK_KEY)
        .join(kept_videos, on=["channel", "video_id"], how="semi")
    )
    unpaired = given.join(pairs.select(CHUNK_KEY), on=CHUNK_KEY, how="anti").join(
        stable_chunks.select(*CHUNK_KEY, "keyframe_path"), on=CHUNK_KEY, how="left"
    )
    return sum(1 for path in unpaired["keyframe_path"] if path is not None and keyframe_exists(path))


def _largest_first(values: pl.Series) -> pl.DataFrame:
    """(value, count) of each distinct value, the most frequent first, ties by name."""
    return values.value_counts().sort(["count", values.name], descending=[True, False])


def _mean(values: pl.Series) -> float | None:
    return None if values.is_empty() else float(values.mean())


def _median(values: pl.Series) -> float | None:
    return None if values.is_empty() else float(values.median())


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def compute_statistics(
    videos: pl.DataFrame,
    transcript_words: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    aligned_pairs: pl.DataFrame,
    video_filter: pl.DataFrame,
    medical_entities: pl.DataFrame,
    keyframe_exists: Callable[[str], bool],
) -> DatasetStatistics:
    """The dataset's figures from the tables of every channel (each with its `channel` column).

    A channel with videos that `video_filter` does not cover yet (its run failed before it, or
    ran before the filter existed) is left out of every figure and named in `channels_left_out`:
    counted without its filter rows, the kept and filtered-out figures would be silently wrong.
    A ValueError when that leaves no channel."""
    unfiltered = videos.join(video_filter, on=["channel", "video_id"], how="anti")
    left_out = sorted(unfiltered["channel"].unique())
    if left_out and videos.filter(~pl.col("channel").is_in(left_out)).is_empty():
        raise ValueError(
            f"video_filter has no row for {unfiltered.height} video(s) of channel(s) {', '.join(left_out)}, "
            "and no other channel has videos: materialize their channel_pipeline_job (or video_filter) first"
        )
    covered = ~pl.col("channel").is_in(left_out)
    videos = videos.filter(covered)
    # A video file in two lectures counts once, as the merged export keeps its pairs once.
    copies = later_copies(videos.filter(pl.col("status") == "ok")).select("channel", "video_id")
    videos, transcript_words, stable_chunks, narratives, boxes, aligned_pairs, video_filter = (
        table.filter(covered).join(copies, on=["channel", "video_id"], how="anti")
        for table in (videos, transcript_words, stable_chunks, narratives, boxes, aligned_pairs, video_filter)
    )
    rows: list[tuple[str, str, float | None, str]] = []

    def add(statistic: str, value: float | None, unit: str, breakdown: str = "") -> None:
        rows.append((statistic, breakdown, None if value is None else float(value), unit))

    kept = video_filter.filter(pl.col("kept"))
    filtered_out = video_filter.filter(~pl.col("kept"))
    video_hours = float(videos["duration_s"].sum() or 0.0) / _SECONDS_PER_HOUR
    pairs = aligned_pairs
    words = caption_word_counts(pairs)
    traced = pairs.filter(pl.col("n_trace_points") > 0)
    areas = paired_box_areas(boxes, pairs)

    add("channels", videos["channel"].n_unique(), "channels")
    add("videos", videos.height, "videos")
    add("videos_copied", copies.height, "videos")
    add("video_hours", video_hours, "hours")
    add("speech_hours", float(video_filter["speech_s"].sum() or 0.0) / _SECONDS_PER_HOUR, "hours")
    add("kept_videos", kept.height, "videos")
    add("kept_video_hours", float(kept["duration_s"].sum() or 0.0) / _SECONDS_PER_HOUR, "hours")
    add("videos_filtered_out", filtered_out.height, "videos")
    for rule, n in _largest_first(filtered_out["filtered_by"]).rows():
        add("videos_filtered_out", n, "videos", rule)
    add("medical_chunks", medical_chunks(stable_chunks).height, "chunks")
    duplicates = duplicates_removed(narratives, stable_chunks, pairs, video_filter, keyframe_exists)
    add("duplicates_removed", duplicates, "chunks")
    add("pairs", pairs.height, "pairs")
    add("pairs_per_video_hour", _ratio(pairs.height, video_hours), "pairs per hour")
    add("caption_words_mean", _mean(words), "words")
    add("caption_words_median", _median(words), "words")
    domains = _largest_first(pairs["domain"])
    add("domains", domains.height, "domains")
    for domain, n in domains.rows():
        add("pairs_per_domain", n, "pairs", domain)
    add("traced_pairs", traced.height, "pairs")
    add("traced_pair_fraction", _ratio(traced.height, pairs.height), "fraction")
    add("trace_points_per_traced_pair_mean", _mean(traced["n_trace_points"]), "points")
    add("boxes", areas.len(), "boxes")
    add("pairs_with_boxes", pairs.filter(pl.col("n_boxes") > 0).height, "pairs")
    add("boxes_per_pair_mean", _mean(pairs["n_boxes"]), "boxes")
    add("box_area_mean", _mean(areas), "fraction")
    add("box_area_median", _median(areas), "fraction")
    # The entities of the pairs counted above: of covered channels, and of no later copy of a video.
    pair_key = ["channel", "pair_id"]
    entities = medical_entities.join(pairs.select(pair_key), on=pair_key, how="semi")
    concepts = mentions_per_concept(entities)
    add("entity_mentions", entities.height, "mentions")
    add("distinct_concepts", concepts.height, "concepts")
    add("pairs_with_entities", entities.select("channel", "pair_id").n_unique(), "pairs")
    add("entities_per_pair_mean", _ratio(entities.height, pairs.height), "mentions")
    for name, n in concepts.head(MOST_FREQUENT_CONCEPTS).select("concept_name", "mentions").rows():
        add("entities_per_concept", n, "mentions", name)
    add("asr_word_probability_mean", _mean(transcript_words["probability"].drop_nulls()), "probability")
    return DatasetStatistics(
        pl.DataFrame(rows, schema=STATISTICS_SCHEMA, orient="row"),
        words,
        pairs["n_boxes"].cast(pl.Int64),
        areas,
        left_out,
    )


def _bars(table: pl.DataFrame, statistic: str, title: str, xlabel: str) -> bytes | None:
    """A horizontal bar per breakdown of `statistic`, largest first; None when it has none."""
    shown = table.filter((pl.col("statistic") == statistic) & (pl.col("breakdown") != ""))
    if shown.is_empty():
        return None
    figure = Figure(figsize=(6, 0.35 * shown.height + 1.2), dpi=100)
    axis = figure.subplots()
    axis.barh(shown["breakdown"].to_list(), shown["value"].to_list(), color="#3b75af")
    axis.invert_yaxis()
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts
    axis.set_xlabel(xlabel)
    axis.set_title(title)
    return figure_png(figure)


def _histogram(values: pl.Series, title: str, xlabel: str, ylabel: str, bins) -> bytes | None:
    """A histogram of `values`; None when there are none."""
    if values.is_empty():
        return None
    figure = Figure(figsize=(6, 3.2), dpi=100)
    axis = figure.subplots()
    axis.hist(values.to_numpy(), bins=bins, color="#3b75af", edgecolor="white")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    return figure_png(figure)


def statistics_plots(statistics: DatasetStatistics) -> dict[str, bytes | None]:
    """PNG plots by name: pairs per domain, words per caption, boxes per pair, box area and the
    videos filtered out by rule; None for a plot with nothing to show."""
    table = statistics.table
    most_boxes = int(statistics.boxes_per_pair.max() or 0)
    return {
        "pairs_per_domain": _bars(table, "pairs_per_domain", "Pairs per domain", "pairs"),
        "caption_words": _histogram(statistics.caption_words, "Words per caption", "words", "pairs", bins=20),
        "boxes_per_pair": _histogram(
            statistics.boxes_per_pair,
            "Boxes per pair",
            "boxes",
            "pairs",
            bins=np.arange(most_boxes + 2) - 0.5,  # one bar per whole number of boxes
        ),
        "box_area": _histogram(
            statistics.box_areas,
            "Box area",
            "fraction of the pair's image",
            "boxes",
            bins=20,  # over the areas found: boxes are at most 0.35 of the image a side
        ),
        "videos_filtered_out": _bars(
            table, "videos_filtered_out", "Videos filtered out, by the first rule broken", "videos"
        ),
    }

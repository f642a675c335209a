"""Stage `dataset_export_all`: every channel's pairs as one dataset, split by lecture.

    <dataset>/README.md                  dataset card: its `configs` block maps the splits, and
                                         the dataset's statistics as a table
    <dataset>/<split>/metadata.parquet   as in a channel's export (`dataset_export.py`)
    <dataset>/<split>/<pair_id>.png
    <dataset>/narratives/<split>.jsonl   Localized Narratives of the split's pairs

The splits are train, validation and test, by lecture (`lecture_splits.py`): no lecture and no
picture is in two of them. A video file found in several lectures (the same sha256 in two channels,
or twice in one) gives its pairs once: those of the first copy by (channel, video_id); the others'
are left out and listed (`duplicate_lectures`). `datasets.load_dataset("<dataset>")` gives a
DatasetDict of the splits that hold pairs. The folder is written whole beside the old one, then swapped in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from mednarratives_assets.atomic_files import replaced_folder
from mednarratives_assets.lecture_splits import split_by_lecture
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.stages.curated_text import with_curated_texts
from mednarratives_assets.stages.dataset_export import content_fingerprint, narratives_of, write_pairs_folder
from mednarratives_assets.stages.narratives import write_jsonl
from mednarratives_assets.stages.videos import later_copies

SPLITS = ("train", "validation", "test")
# The long table `dataset_statistics` that the card shows: one figure a row.
STATISTICS_COLUMNS = ("statistic", "breakdown", "value", "unit")


@dataclass(frozen=True)
class MergedExportSettings:
    """How the lectures of every channel are shared among the splits."""

    train_fraction: float = setting(0.8, "Share of the lectures in the train split.", gt=0, le=1)
    validation_fraction: float = setting(0.1, "Share of the lectures in the validation split.", ge=0, lt=1)
    test_fraction: float = setting(0.1, "Share of the lectures in the test split.", ge=0, lt=1)
    seed: int = setting(
        0,
        "Seeds which lectures go to which split. With GenMedCLIP's seed and a train share of 1 less "
        "its held_out_fraction, train holds the lectures GenMedCLIP trains on.",
    )
    duplicate_distance: int = setting(
        6, "pHash bits: lectures showing images this close go to the same split.", ge=0
    )

    def validated(self) -> MergedExportSettings:
        check_settings(self, "{name} must {rule}, got {value!r}")
        total = sum(self.fractions.values())
        if abs(total - 1) > 1e-9:
            raise ValueError(
                f"train_fraction, validation_fraction and test_fraction must add up to 1, got {total:g}"
            )
        return self

    @property
    def fractions(self) -> dict[str, float]:
        shares = (self.train_fraction, self.validation_fraction, self.test_fraction)
        return dict(zip(SPLITS, shares, strict=True))


@dataclass(frozen=True)
class SplitSummary:
    n_lectures: int
    n_pairs: int
    n_boxes: int
    n_narratives: int


@dataclass(frozen=True)
class MergedExportSummary:
    folder: Path
    splits: dict[str, SplitSummary]
    dropped_pair_ids: list[str]  # near-duplicates of an earlier split's images (lecture_splits rule 4)
    # Lectures whose video is a copy of an earlier one's (`first_copies`): channel, video_id,
    # copy_of_channel, copy_of_video_id, n_pairs (left out).
    duplicate_lectures: pl.DataFrame | None = None


DUPLICATE_COLUMNS = {
    "channel": pl.Utf8,
    "video_id": pl.Utf8,
    "copy_of_channel": pl.Utf8,
    "copy_of_video_id": pl.Utf8,
    "n_pairs": pl.UInt32,
}


def first_copies(pairs: pl.DataFrame, videos: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pairs without those of videos whose content (sha256, from `videos`: channel, video_id,
    sha256) an earlier lecture by (channel, video_id) has, and those lectures (DUPLICATE_COLUMNS).
    Pairs of a video without a known sha256 are kept. Deterministic: the first channel by name keeps
    the pairs, whichever channel ran first."""
    empty = pl.DataFrame(schema=DUPLICATE_COLUMNS)
    if videos is None or videos.is_empty() or pairs.is_empty():
        return pairs, empty
    lectures = pairs.select("channel", "video_id").unique().join(videos, on=["channel", "video_id"])
    copies = later_copies(lectures)
    if copies.is_empty():
        return pairs, empty
    n_pairs = pairs.group_by("channel", "video_id").len("n_pairs")
    copies = copies.join(n_pairs, on=["channel", "video_id"]).select(list(DUPLICATE_COLUMNS))
    copies = copies.cast(DUPLICATE_COLUMNS)
    kept = pairs.join(copies.select("channel", "video_id"), on=["channel", "video_id"], how="anti")
    return kept, copies.sort("channel", "video_id")


def export_all_channels(
    data_root: Path,
    folder: Path,
    pairs: pl.DataFrame,
    curated: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    statistics: pl.DataFrame,
    settings: MergedExportSettings,
    videos: pl.DataFrame | None = None,
) -> MergedExportSummary:
    """Write the merged dataset folder of `pairs` (aligned_pairs of every channel) with their texts
    from `curated` (curated_text of every channel; `with_curated_texts`), boxes and narratives, its
    card showing `statistics` (the dataset_statistics table). `videos` (the videos table: channel,
    video_id, sha256) tells which lectures are copies of one video file: only the first copy's
    pairs are written (`first_copies`), and only theirs need curated texts."""
    settings = settings.validated()
    statistics_md = statistics_table(statistics)  # a malformed table fails before anything is written
    if pairs.is_empty():
        raise ValueError("aligned_pairs holds no pairs in any channel: there is no dataset to export")
    pairs, duplicates = first_copies(pairs, videos)
    pairs = with_curated_texts(pairs, curated, then="export again")
    split = split_by_lecture(pairs, settings.fractions, settings.seed, settings.duplicate_distance)
    lectures_in = dict(split.lectures.group_by("split").len().iter_rows())
    summaries = {}
    with replaced_folder(folder) as staging:  # a failed export leaves the stored one as it was
        for name, part in split.pairs.items():
            n_boxes = write_pairs_folder(data_root, staging / name, part, boxes)
            told = narratives_of(narratives, part)
            write_jsonl(told, staging / "narratives" / f"{name}.jsonl")
            summaries[name] = SplitSummary(lectures_in.get(name, 0), part.height, n_boxes, told.height)
        card = dataset_card(
            summaries,
            pairs["channel"].n_unique(),
            settings.duplicate_distance,
            len(split.dropped_pair_ids),
            statistics_md,
            content_fingerprint(staging),
            duplicates,
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
    return MergedExportSummary(folder, summaries, split.dropped_pair_ids, duplicates)


def dataset_card(
    splits: dict[str, SplitSummary],
    n_channels: int,
    duplicate_distance: int,
    n_dropped: int,
    statistics_md: str,
    fingerprint: str,
    duplicates: pl.DataFrame | None = None,
) -> str:
    """The card: YAML front matter whose `configs` maps each split holding pairs to its folder
    (Hugging Face's image folder cannot read a split without images), then the text.

    Hugging Face caches a local folder's dataset by the card's metadata, not by its files' content:
    `dataset_info` carries the content's fingerprint so that a new export is read anew."""
    filled = [name for name, split in splits.items() if split.n_pairs]
    front = {
        "configs": [
            {
                "config_name": "default",
                "drop_labels": True,
                "data_files": [{"split": name, "path": f"{name}/*"} for name in filled],
            }
        ],
        "dataset_info": {
            "config_name": "default",
            "description": f"MedNarratives, every channel; content fingerprint {fingerprint}",
            "splits": [{"name": name, "num_examples": splits[name].n_pairs} for name in filled],
        },
        "task_categories": ["image-to-text", "zero-shot-image-classification"],
        "tags": ["medical", "localized-narratives"],
    }
    rows = "\n".join(
        f"| {name} | {s.n_lectures} | {s.n_pairs} | {s.n_boxes} | {s.n_narratives} |"
        for name, s in splits.items()
    )
    n_lectures = sum(s.n_lectures for s in splits.values())
    dropped = (
        f" Too few lectures show pictures of their own to give every split one, so {n_dropped} pairs"
        " repeating a picture of an earlier split were left out."
        if n_dropped
        else ""
    )
    if duplicates is not None and not duplicates.is_empty():
        dropped += (
            f" {duplicates.height} lectures are copies of another lecture's video file (the same sha256),"
            f" so their {duplicates['n_pairs'].sum()} pairs were left out: the first copy by channel"
            " name keeps its pairs."
        )
    return f"""---
{yaml.safe_dump(front, sort_keys=False)}---
# MedNarratives: every channel

Image-text pairs from narrated medical lecture videos, made by MedNarratives: each image is a
still medical slide's picture, cropped from its keyframe; the text is what the lecturer said
while it was shown. {n_channels} channels, {n_lectures} lectures.

## Splits

By lecture (a channel's video): no lecture is in two splits, and lectures that show one picture
(within {duplicate_distance} bits of pHash) are in the same split.{dropped}

| split | lectures | pairs | boxes | narratives |
|---|---|---|---|---|
{rows}

Load it with `datasets.load_dataset("<this folder>")`: a DatasetDict of the splits with pairs.

- `<split>/metadata.parquet`: `file_name`, `pair_id`, `channel`, `video_id`, `caption` (as
  heard), `corrected_caption`, `medical_text`, `roi_text` (curated: by rules, or by a language
  model whose answer passed checks against what was heard; `text_source` says which,
  `rejected_reason` why a model's answer was not used), `domain` (one of 12), `boxes` (corners as
  fractions of the image, the phrase said while the pointer dwelt, and when).
- `narratives/<split>.jsonl`: Localized Narratives of the split's pairs (`image_id` is the
  `pair_id`; `traces[i]` is the pointer while `timed_caption[i]` was said; times in seconds from
  the recording's start, points as fractions of the image).

## Statistics

{statistics_md}
"""


def statistics_table(statistics: pl.DataFrame) -> str:
    """The dataset_statistics rows (statistic, breakdown, value, unit) as a markdown table, in
    their order; an empty breakdown is an overall figure."""
    missing = [column for column in STATISTICS_COLUMNS if column not in statistics.columns]
    if missing:
        raise ValueError(
            f"dataset_statistics lacks the column(s) {', '.join(missing)}: "
            f"it must hold {', '.join(STATISTICS_COLUMNS)}"
        )
    if statistics.is_empty():
        return "No statistics were computed."
    lines = ["| statistic | breakdown | value | unit |", "|---|---|---|---|"]
    for statistic, breakdown, value, unit in statistics.select(STATISTICS_COLUMNS).iter_rows():
        cells = (statistic, breakdown or "overall", _figure(value), unit or "")
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    """12,345 for counts and large figures; four significant digits below 1,000 (0.8312, 12.5)."""
    if value is None or math.isnan(value):
        return ""
    if abs(value) >= 1000 or float(value).is_integer():  # inf too
        return f"{value:,.0f}"
    return f"{value:.4g}"

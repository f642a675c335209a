"""Stage `dataset_export`: a channel's pairs as a dataset folder other tools read as it is.

    <export>/README.md              dataset card; its `configs` block points Hugging Face at train/,
                                    its `dataset_info` holds the content's fingerprint
    <export>/train/metadata.parquet one row per pair: file_name, texts (curated_text's), domain,
                                    boxes (normalized)
    <export>/train/<pair_id>.png    the pair's image
    <export>/narratives.jsonl       Localized Narratives, image_id = pair_id

`datasets.load_dataset("<export>")` gives a train split with an `image` column; `pl.read_parquet`
reads the metadata directly. The folder is written whole beside the old one, then swapped in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mednarratives_assets.atomic_files import link_or_copy, replaced_folder
from mednarratives_assets.stages.curated_text import with_curated_texts
from mednarratives_assets.stages.narratives import write_jsonl

_CARD = """---
configs:
- config_name: default
  data_dir: train
  drop_labels: true
dataset_info:
  config_name: default
  description: MedNarratives, one channel; content fingerprint {fingerprint}
task_categories:
- image-to-text
- zero-shot-image-classification
tags:
- medical
- localized-narratives
---
# {title}

Image-text pairs from narrated medical lecture videos, made by MedNarratives: each image is a
still medical slide's picture, cropped from its keyframe; the text is what the lecturer said
while it was shown. {n_pairs} pairs, {n_boxes} pointer boxes, {n_narratives} narratives.

- `train/metadata.parquet`: `file_name`, `pair_id`, `caption` (as heard), `corrected_caption`,
  `medical_text`, `roi_text` (curated: by rules, or by a language model whose answer passed
  checks against what was heard; `text_source` says which, `rejected_reason` why a model's answer
  was not used), `domain` (one of 12), `boxes` (corners as fractions of the image, the phrase said
  while the pointer dwelt, and when), and where the pair comes from.
- `narratives.jsonl`: Localized Narratives (`traces[i]` is the pointer while `timed_caption[i]`
  was said; times in seconds from the recording's start, points as fractions of the image).

Load it with `datasets.load_dataset("<this folder>")`.
"""
BOX_STRUCT = pl.Struct(
    {
        "x1": pl.Float32,
        "y1": pl.Float32,
        "x2": pl.Float32,
        "y2": pl.Float32,
        "phrase": pl.Utf8,
        "start_s": pl.Float64,
        "end_s": pl.Float64,
    }
)


@dataclass(frozen=True)
class ExportSummary:
    folder: Path
    n_pairs: int
    n_boxes: int
    n_narratives: int


def pairs_with_boxes(pairs: pl.DataFrame, boxes: pl.DataFrame) -> pl.DataFrame:
    """The pairs, each with a `boxes` list (empty when the pointer never dwelt) and its `file_name`."""
    nested = (
        boxes.sort("box_index")
        .group_by("channel", "video_id", "chunk_index", maintain_order=True)
        .agg(
            boxes=pl.struct(
                x1="x1_norm",
                y1="y1_norm",
                x2="x2_norm",
                y2="y2_norm",
                phrase="phrase",
                start_s="start_s",
                end_s="end_s",
            )
        )
    )
    return (
        pairs.join(nested, on=["channel", "video_id", "chunk_index"], how="left")
        .with_columns(
            pl.col("boxes").fill_null(pl.lit([], dtype=pl.List(BOX_STRUCT))),
            file_name=pl.col("pair_id") + ".png",
        )
        .select("file_name", *pairs.columns, "boxes")
    )


def write_pairs_folder(data_root: Path, folder: Path, pairs: pl.DataFrame, boxes: pl.DataFrame) -> int:
    """`folder` (new) with the pairs' images and their metadata.parquet, as Hugging Face's image
    folder reads them; returns the number of boxes written."""
    folder.mkdir()
    for image_path, identifier in pairs.select("image_path", "pair_id").iter_rows():
        source = data_root / image_path
        if not source.is_file():
            raise FileNotFoundError(
                f"pair {identifier}: image {source} is missing: re-materialize aligned_pairs"
            )
        link_or_copy(source, folder / f"{identifier}.png")
    table = pairs_with_boxes(pairs, boxes)
    table.write_parquet(folder / "metadata.parquet")
    return int(table["boxes"].list.len().sum() or 0)


def narratives_of(narratives: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """The narratives of `pairs` (image_id = pair_id): those of chunks without a pair are left out."""
    return narratives.filter(pl.col("image_id").is_in(pairs["pair_id"].to_list()))


def export_dataset(
    data_root: Path,
    folder: Path,
    title: str,
    pairs: pl.DataFrame,
    curated: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
) -> ExportSummary:
    """Write the dataset folder for `pairs` with their texts from `curated` (`with_curated_texts`);
    narratives and boxes of chunks without a pair are left out."""
    pairs = with_curated_texts(pairs, curated, then="export again")
    with replaced_folder(folder) as staging:  # a failed export leaves the stored one as it was
        n_boxes = write_pairs_folder(data_root, staging / "train", pairs, boxes)
        told = narratives_of(narratives, pairs)
        write_jsonl(told, staging / "narratives.jsonl")
        card = _CARD.format(
            title=title,
            n_pairs=pairs.height,
            n_boxes=n_boxes,
            n_narratives=told.height,
            fingerprint=content_fingerprint(staging),
        )
        (staging / "README.md").write_text(card)
    return ExportSummary(folder, pairs.height, n_boxes, told.height)


def content_fingerprint(folder: Path) -> str:
    """16 hex digits of SHA-256 over the folder's tables and narratives (the images' hashes are
    in the tables).

    Hugging Face caches a local folder's dataset by its card's metadata, not by its files' content:
    the card carries this so that a new export is read anew."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.parquet")) + sorted(folder.rglob("*.jsonl")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]

from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.defs.automation import DATASET_FOLLOWS_CHANNELS
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.dataset_export_all import MergedExportSettings, export_all_channels

MergedExportConfig = config_class(
    MergedExportSettings,
    "MergedExportConfig",
    "How the lectures of every channel are shared among the train, validation and test splits.",
)


@dg.asset(
    group_name="dataset",
    automation_condition=DATASET_FOLLOWS_CHANNELS,
    kinds={"parquet", "huggingface"},
    # Written by its own asset (table dataset_statistics); shown on the dataset card.
    ins={"dataset_statistics": dg.AssetIn()},
    output_required=False,
)
def dataset_export_all(
    context: dg.AssetExecutionContext,
    config: MergedExportConfig,
    aligned_pairs: pl.DataFrame,
    curated_text: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    dataset_statistics: pl.DataFrame,
    videos: pl.DataFrame,
    paths: DataPaths,
) -> Iterator[dg.MaterializeResult]:
    """Every channel's pairs as one dataset folder, data/dataset: train, validation and test splits
    by lecture (loadable by Hugging Face `datasets.load_dataset(folder)` as a DatasetDict), Localized
    Narratives JSONL per split, and a dataset card with the dataset's statistics. The texts are
    curated_text's, with their text_source; a pair curated_text lacks fails it. A video file in
    several channels (the same sha256 in `videos`) gives its pairs once, from the first channel by
    name; `duplicate_lectures` lists the copies left out. Without a pair in any channel it makes
    nothing, and says so."""
    if aligned_pairs.is_empty():  # the automation follows channels before any has pairs
        context.log.info("aligned_pairs holds no pairs in any channel: no merged dataset to export")
        return
    try:
        settings = settings_from(config, MergedExportSettings)
    except ValueError as exc:
        raise dg.Failure(f"dataset_export_all config: {exc}") from exc
    layout = paths.layout
    try:
        summary = export_all_channels(
            layout.data_root,
            # OutsideDataRoot (a ValueError) when the folder is a link leading out: never replaced
            layout.inside(layout.merged_dataset_dir, "the merged dataset folder"),
            aligned_pairs,
            curated_text,
            narratives,
            boxes,
            dataset_statistics,
            settings,
            videos,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise dg.Failure(f"dataset_export_all: {exc}") from exc
    duplicates = summary.duplicate_lectures
    per_split = {}
    for name, split in summary.splits.items():
        per_split[f"n_pairs_{name}"] = split.n_pairs
        per_split[f"n_lectures_{name}"] = split.n_lectures
    yield dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(summary.folder)),
            **per_split,
            "n_boxes": sum(split.n_boxes for split in summary.splits.values()),
            "n_dropped_as_duplicates": len(summary.dropped_pair_ids),
            "n_duplicate_lectures": duplicates.height,
            "n_pairs_of_duplicate_lectures": int(duplicates["n_pairs"].sum()),
            "duplicate_lectures": markdown_preview(duplicates, list(duplicates.columns)),
            "load_with": dg.MetadataValue.md(f'`datasets.load_dataset("{summary.folder}")`'),
        }
    )

import dagster as dg
import polars as pl

from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.dataset_export import export_dataset


@channel_asset("narratives", kinds=frozenset({"parquet", "huggingface"}))
def dataset_export(
    context: dg.AssetExecutionContext,
    aligned_pairs: pl.DataFrame,
    curated_text: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    paths: DataPaths,
) -> dg.MaterializeResult:
    """The channel's pairs as a dataset folder, data/exports/<channel>: Parquet metadata with the
    images (loadable by Hugging Face `datasets.load_dataset(folder)`) and Localized Narratives JSONL.
    The texts are curated_text's, with their text_source; a pair curated_text lacks fails it."""
    layout = paths.layout
    channel = context.partition_key
    try:
        summary = export_dataset(
            layout.data_root,
            layout.channel_path(layout.exports_dir, channel),
            f"MedNarratives: {channel}",
            aligned_pairs,
            curated_text,
            narratives,
            boxes,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise dg.Failure(f"dataset_export: {exc}") from exc
    return dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(summary.folder)),
            "n_pairs": summary.n_pairs,
            "n_boxes": summary.n_boxes,
            "n_narratives": summary.n_narratives,
            "load_with": dg.MetadataValue.md(f'`datasets.load_dataset("{summary.folder}")`'),
        }
    )

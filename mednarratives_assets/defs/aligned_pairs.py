from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.contact_sheets import contact_sheet_png
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.defs.resources import DUCKDB_POOL, DataPaths
from mednarratives_assets.stages.aligned_pairs import PairSettings, pair_channel, pair_picture

MAX_SHEET_PAIRS = 24


class AlignedPairsConfig(dg.Config):
    """duplicate_distance: pHash bits within which two crops of a channel count as one image."""

    duplicate_distance: int = PairSettings.duplicate_distance


@dg.asset(
    partitions_def=channel_partitions,
    ins={"stable_chunks": dg.AssetIn(), "narratives": dg.AssetIn(), "boxes": dg.AssetIn()},
    metadata={"partition_expr": "channel"},
    pool=DUCKDB_POOL,
    kinds={"duckdb", "polars"},
    group_name="narratives",
    check_specs=[
        dg.AssetCheckSpec(
            "every_pair_has_a_caption", asset="aligned_pairs", partitions_def=channel_partitions
        ),
        dg.AssetCheckSpec("pair_ids_are_unique", asset="aligned_pairs", partitions_def=channel_partitions),
    ],
)
def aligned_pairs(
    context: dg.AssetExecutionContext,
    config: AlignedPairsConfig,
    stable_chunks: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    paths: DataPaths,
) -> Iterator:
    """One image-text pair per medical chunk: the keyframe cropped to its medical image, the words,
    corrected and sorted (medical sentences, pointed-at phrases), and a domain of 12.

    Crops under data/pairs/<channel>/; a crop that repeats an earlier one of the channel (pHash)
    gives no second pair. Table `aligned_pairs`, documented in docs/schema.md.
    """
    try:
        settings = PairSettings(**config.model_dump()).validated()
    except ValueError as exc:
        raise dg.Failure(f"aligned_pairs: {exc}") from exc
    layout = paths.layout
    channel = context.partition_key
    result = pair_channel(
        layout.data_root,
        layout.pairs_dir.relative_to(layout.data_root) / channel,
        stable_chunks,
        narratives,
        boxes,
        MedicalVocabulary(),
        settings,
        log=context.log.warning,
    )
    pairs = result.pairs
    empty = pairs.filter(pl.col("caption").str.strip_chars().str.len_chars() == 0)
    repeated = pairs.filter(pl.col("pair_id").is_duplicated())
    sheet = contact_sheet_png(
        [pair_picture(layout.data_root, row) for row in pairs.head(MAX_SHEET_PAIRS).iter_rows(named=True)]
    )
    yield dg.Output(
        pairs,
        metadata={
            "dagster/row_count": pairs.height,
            "n_skipped": result.skipped.height,
            "domains": {d: int(n) for d, n in pairs["domain"].value_counts(sort=True).iter_rows()},
            "pairs": markdown_preview(
                pairs, ["video_id", "chunk_index", "domain", "n_boxes", "corrected_caption"]
            ),
            "skipped": markdown_preview(result.skipped, list(result.skipped.columns)),
            "images": png_image(sheet, f"aligned pairs of {channel}"),
        },
    )
    yield dg.AssetCheckResult(
        check_name="every_pair_has_a_caption",
        passed=empty.is_empty(),
        metadata={
            "n_empty": empty.height,
            "empty": markdown_preview(empty, ["pair_id", "video_id", "chunk_index"]),
        },
    )
    yield dg.AssetCheckResult(
        check_name="pair_ids_are_unique",
        passed=repeated.is_empty(),
        metadata={
            "n_repeated": repeated.height,
            "repeated": markdown_preview(repeated, ["pair_id", "video_id"]),
        },
    )

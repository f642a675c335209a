from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.contact_sheets import contact_sheet_png
from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.stage_settings import setting
from mednarratives_assets.stages.aligned_pairs import PairSettings, pair_channel, pair_picture
from mednarratives_assets.stages.video_filter import kept_rows

MAX_SHEET_PAIRS = 24


AlignedPairsConfig = config_class(
    PairSettings,
    "AlignedPairsConfig",
    "Pairing and de-duplication.",
    extra={
        "remove_pointers": setting(
            True, "Paint out pointers the cursor detector finds on the picture where the chunk's trace went."
        )
    },
)


@channel_asset(
    "narratives",
    deps=[cursor_detector],
    checks={
        "every_pair_has_a_caption": "Every pair has words: a pair without text cannot train a CLIP model.",
        "pair_ids_are_unique": "No pair_id repeats: image files and narratives are named by it.",
    },
)
def aligned_pairs(
    context: dg.AssetExecutionContext,
    config: AlignedPairsConfig,
    videos: pl.DataFrame,
    video_filter: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    cursor_traces: pl.DataFrame,
    paths: DataPaths,
    models: ModelStore,
) -> Iterator:
    """One image-text pair per medical chunk: the keyframe cropped to its medical image, the words,
    corrected and sorted (medical sentences, pointed-at phrases), and a domain of 12.

    Only the videos `video_filter` keeps are paired. Crops under data/pairs/<channel>/, with any
    pointer left in the keyframe painted out; a crop that repeats an earlier one of the channel
    (pHash) gives no second pair. Table `aligned_pairs`, documented in docs/schema.md.
    """
    layout = paths.layout
    try:
        settings = settings_from(config, PairSettings)
    except ValueError as exc:
        raise dg.Failure(f"aligned_pairs: {exc}") from exc
    detector = (
        models.deferred(
            "cursor_detector",
            "aligned_pairs",
            purpose="the cursor detector to remove pointers",
            alternative=", or set remove_pointers to false",
        )
        if config.remove_pointers
        else None
    )
    channel = context.partition_key
    vocabulary = MedicalVocabulary()
    cache = paths.stage_cache(
        "aligned_pairs",
        channel,
        videos,
        {
            "settings": settings,
            "remove_pointers": config.remove_pointers,
            "vocabulary": vocabulary.fingerprint,
        },
        {"cursor_detector": models.fingerprint("cursor_detector")} if detector is not None else None,
    )
    # A left-out video never reaches pairing: it gives no pair, claims no image in the channel's
    # de-duplication, and its cached candidates stay as they were.
    result = pair_channel(
        layout.data_root,
        layout.channel_path(layout.pairs_dir, channel).relative_to(layout.data_root),
        kept_rows(stable_chunks, video_filter),
        narratives,
        boxes,
        cursor_traces,
        vocabulary,
        settings,
        detector,
        log=context.log.info,
        cache=cache,
    )
    context.log.info(f"channel {channel!r}: {cache.summary()}")
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
            **cache.metadata(),
            "n_skipped": result.skipped.height,
            "n_videos_filtered_out": int((~video_filter["kept"]).sum()),
            "n_pointers_removed": int(pairs["n_pointers_removed"].sum() or 0),
            "domains": {d: int(n) for d, n in pairs["domain"].value_counts(sort=True).iter_rows()},
            "pairs": markdown_preview(
                pairs, ["video_id", "chunk_index", "domain", "n_boxes", "corrected_caption"]
            ),
            "skipped": markdown_preview(result.skipped, list(result.skipped.columns)),
            "images": png_image(sheet, f"aligned pairs of {channel}"),
        },
    )
    yield rows_check("every_pair_has_a_caption", empty, ["pair_id", "video_id", "chunk_index"], "empty")
    yield rows_check("pair_ids_are_unique", repeated, ["pair_id", "video_id"], "repeated")

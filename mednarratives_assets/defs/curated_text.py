from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths, TextCurator
from mednarratives_assets.llm.smollm2 import ModelUnavailable
from mednarratives_assets.stages.curated_text import AnswerCache, curate_channel


@channel_asset("narratives")
def curated_text(
    context: dg.AssetExecutionContext,
    aligned_pairs: pl.DataFrame,
    paths: DataPaths,
    text_curator: TextCurator,
) -> Iterator:
    """Each pair's caption, medical text and ROI text: aligned_pairs' own (backend `rules`), or a
    language model's answer that passed the guards (backend `openai` or `local`, resource
    `text_curator`), else the rules texts with the reason. Answers are cached under
    <cache_dir>/curated_text/. Table `curated_text`, documented in docs/schema.md and
    docs/stages/curated_text.md."""
    layout = paths.layout
    try:
        settings = text_curator.settings()
        result = curate_channel(
            aligned_pairs,
            settings,
            MedicalVocabulary().terms,
            AnswerCache(layout.inside(layout.cache_dir / "curated_text", "the curated_text cache")),
            log=context.log.info,
        )
    except (ValueError, ModelUnavailable) as exc:
        raise dg.Failure(f"curated_text (resource text_curator): {exc}") from exc
    table = result.table
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": table.height,
            "backend": settings.backend,
            **result.counts.metadata(),
            "text_sources": {s: int(n) for s, n in table["text_source"].value_counts(sort=True).iter_rows()},
            "texts": markdown_preview(table, ["chunk_index", "text_source", "caption", "rejected_reason"]),
        },
    )

import dagster as dg
import polars as pl

from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.medical_entities import (
    EntitySettings,
    entity_linker,
    link_entities,
    mentions_per_concept,
)

MedicalEntitiesConfig = config_class(
    EntitySettings,
    "MedicalEntitiesConfig",
    "Which concepts the medical texts are linked to: the project's term list, or a QuickUMLS index.",
)


@channel_asset("narratives")
def medical_entities(
    context: dg.AssetExecutionContext,
    config: MedicalEntitiesConfig,
    curated_text: pl.DataFrame,
    paths: DataPaths,
) -> dg.Output:
    """The medical concepts each pair's medical text (`curated_text.medical_text`) mentions, a row
    per mention: the term list's terms by default, UMLS concepts from a QuickUMLS index when the
    config sets `umls_index`. Table `medical_entities`, documented in docs/schema.md and
    docs/stages/medical_entities.md."""
    try:
        linker = entity_linker(settings_from(config, EntitySettings))
    except ValueError as exc:
        raise dg.Failure(f"medical_entities: {exc}") from exc
    table = link_entities(curated_text, linker)
    concepts = mentions_per_concept(table)
    context.log.info(f"{table.height} mentions of {concepts.height} concepts in {curated_text.height} pairs")
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.height,
            "n_mentions": table.height,
            "n_concepts": concepts.height,
            "n_pairs_with_entities": table["pair_id"].n_unique(),
            "most_frequent_concepts": markdown_preview(concepts, ["concept_name", "concept_id", "mentions"]),
        },
    )

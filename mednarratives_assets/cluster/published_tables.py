"""The cluster profile's publishing asset: the table store gathered into the DuckDB file."""

import dagster as dg

from mednarratives_assets.defs.aligned_pairs import aligned_pairs
from mednarratives_assets.defs.boxes import boxes
from mednarratives_assets.defs.cursor_traces import cursor_traces
from mednarratives_assets.defs.narratives import narratives
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.transcripts import transcripts
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.video_filter import video_filter
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.parquet_tables import publish

CHANNEL_TABLES = [
    video_downloads,
    videos,
    stable_chunks,
    transcripts,
    cursor_traces,
    narratives,
    boxes,
    video_filter,
    aligned_pairs,
]


@dg.asset(group_name="publish", kinds={"duckdb", "parquet"}, deps=CHANNEL_TABLES)
def published_tables(context: dg.AssetExecutionContext, paths: DataPaths) -> dg.MaterializeResult:
    """Every channel table of the Parquet table store, gathered into the DuckDB file with the tables
    and columns of the local profile (`mednarratives publish` does the same from a shell)."""
    counts = publish(paths.tables_url, paths.layout.duckdb_path, log=context.log.info)
    rows = "\n".join(f"| {table} | {n} |" for table, n in counts.items())
    return dg.MaterializeResult(
        metadata={
            "database": dg.MetadataValue.path(str(paths.layout.duckdb_path)),
            "n_rows": sum(counts.values()),
            "tables": dg.MetadataValue.md(f"| table | rows |\n|---|---|\n{rows}"),
        }
    )

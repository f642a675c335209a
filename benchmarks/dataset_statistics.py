"""The dataset's statistics and plots from a materialized data root, as the asset `dataset_statistics`
makes them; the plots in docs/images/dataset-statistics-*.png come from here.

    python benchmarks/dataset_statistics.py DATA_ROOT [--out docs/images]

DATA_ROOT holds `mednarratives.duckdb` (every channel materialized) and the keyframes. A data root
materialized before `video_filter` existed has no such table: each channel's is then made with the
default thresholds, as its next materialization would, and the script says so. Prints the table
as markdown and writes one PNG per plot to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.dataset_statistics import compute_statistics, statistics_plots
from mednarratives_assets.stages.video_filter import VideoFilterSettings, filter_videos
from mednarratives_assets.tables import connect_read_only, table_exists

INPUTS = (
    "videos",
    "transcripts",
    "transcript_words",
    "stable_chunks",
    "narratives",
    "boxes",
    "aligned_pairs",
    "medical_entities",
)


def load_tables(database: Path) -> dict[str, pl.DataFrame]:
    with connect_read_only(database) as con:
        missing = [name for name in INPUTS if not table_exists(con, name)]
        if missing:
            raise SystemExit(f"{database} has no table {', '.join(missing)}: materialize every channel first")
        tables = {name: con.sql(f"FROM {name}").pl() for name in INPUTS}
        if table_exists(con, "video_filter"):
            tables["video_filter"] = con.sql("FROM video_filter").pl()
    return tables


def video_filter_with_defaults(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Every channel's `video_filter` table with the default thresholds."""
    by_channel = []
    for channel in tables["videos"]["channel"].unique().sort():
        of_channel = {
            name: tables[name].filter(pl.col("channel") == channel)
            for name in ("videos", "transcripts", "transcript_words", "stable_chunks")
        }
        by_channel.append(filter_videos(**of_channel, settings=VideoFilterSettings()))
    return pl.concat(by_channel)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    arguments = parser.parse_args()
    layout = DataLayout.at(arguments.data_root)
    tables = load_tables(layout.duckdb_path)
    if "video_filter" not in tables:
        print("no video_filter table: made with the default thresholds")
        tables["video_filter"] = video_filter_with_defaults(tables)
    statistics = compute_statistics(
        **{name: tables[name] for name in INPUTS if name != "transcripts"},
        video_filter=tables["video_filter"],
        keyframe_exists=lambda path: (layout.data_root / path).is_file(),
    )
    print("| statistic | breakdown | value | unit |\n|---|---|---|---|")
    for statistic, breakdown, value, unit in statistics.table.rows():
        print(f"| {statistic} | {breakdown} | {'' if value is None else f'{value:.4g}'} | {unit} |")
    arguments.out.mkdir(parents=True, exist_ok=True)
    for name, png in statistics_plots(statistics).items():
        if png is not None:
            path = arguments.out / f"dataset-statistics-{name.replace('_', '-')}.png"
            path.write_bytes(png)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""The dataset's figures on small tables whose every figure is worked out by hand, and the asset
through Dagster with the DuckDB IO manager."""

from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl
import pytest

from mednarratives_assets.defs.aligned_pairs import aligned_pairs
from mednarratives_assets.defs.boxes import boxes
from mednarratives_assets.defs.curated_text import curated_text
from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.defs.cursor_traces import cursor_traces
from mednarratives_assets.defs.dataset_statistics import dataset_statistics
from mednarratives_assets.defs.frame_classifier import frame_classifier
from mednarratives_assets.defs.medical_entities import medical_entities
from mednarratives_assets.defs.narratives import narratives
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.transcripts import transcripts
from mednarratives_assets.defs.video_filter import video_filter
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.stages.dataset_statistics import (
    STATISTICS_SCHEMA,
    compute_statistics,
    statistics_plots,
)
from mednarratives_tests.conftest import step_failure

MISSING_KEYFRAME = "keyframes/ch1/v1/chunk-003.png"


def chunk(channel: str, video_id: str, index: int, **columns) -> dict:
    return {"channel": channel, "video_id": video_id, "chunk_index": index, **columns}


def entity(channel: str, pair_id: str, concept: str) -> dict:
    return {"channel": channel, "pair_id": pair_id, "concept_id": f"term:{concept}", "concept_name": concept}


def small_dataset() -> dict[str, pl.DataFrame]:
    """Two channels, three videos (2 hours): v2 has no speech and is filtered out. Six medical
    chunks; v1's chunk 3 has no keyframe file and v3's chunk 1 repeats chunk 0, so three pairs.
    Five entity mentions of three concepts in two of the pairs."""
    medical = [("ch1", "v1", 0), ("ch1", "v1", 1), ("ch1", "v1", 3), ("ch1", "v2", 0), ("ch2", "v3", 0)]
    medical.append(("ch2", "v3", 1))
    chunks = [
        chunk(c, v, i, is_medical=True, image_x=0, keyframe_path=f"keyframes/{c}/{v}/chunk-00{i}.png")
        for c, v, i in medical
    ]
    chunks.append(chunk("ch1", "v1", 2, is_medical=False, image_x=None, keyframe_path="title.png"))
    pair_rows = [  # (chunk, caption, domain, trace points, boxes)
        (("ch1", "v1", 0), "a b  c", "CT", 10, 2),
        (("ch1", "v1", 1), "a b c d e", "CT", 0, 0),
        (("ch2", "v3", 0), "one two three four", "MRI", 30, 1),
    ]
    pair_ids = {key: f"{key[0]}-{key[1]}-{key[2]}" for key, *_ in pair_rows}
    entity_rows = [  # ch1-v1-1 has none
        ("ch1", "ch1-v1-0", "ct"),
        ("ch1", "ch1-v1-0", "lesion"),
        ("ch1", "ch1-v1-0", "ct"),
        ("ch2", "ch2-v3-0", "lesion"),
        ("ch2", "ch2-v3-0", "mri"),
    ]
    box_rows = [  # (chunk, x1, y1, x2, y2) normalized: areas 0.25, 0.02, 0.5; and one unpaired
        (("ch1", "v1", 0), 0.0, 0.0, 0.5, 0.5),
        (("ch1", "v1", 0), 0.2, 0.2, 0.3, 0.4),
        (("ch2", "v3", 0), 0.0, 0.5, 1.0, 1.0),
        (("ch2", "v3", 1), 0.0, 0.0, 1.0, 1.0),
    ]
    return {
        "videos": pl.DataFrame(
            {
                "channel": ["ch1", "ch1", "ch2"],
                "video_id": ["v1", "v2", "v3"],
                "duration_s": [1800.0] * 2 + [3600.0],
                "status": ["ok"] * 3,
                "sha256": ["1" * 64, "2" * 64, "3" * 64],
            }
        ),
        "transcript_words": pl.DataFrame(
            {"channel": ["ch1", "ch1", "ch2"], "video_id": ["v1", "v1", "v3"], "probability": [0.5, 1.0, 0.9]}
        ),
        "stable_chunks": pl.DataFrame(chunks),
        "narratives": pl.DataFrame([chunk(c, v, i, caption="words") for c, v, i in medical]),
        "boxes": pl.DataFrame(
            [
                chunk(*key, box_index=n, x1_norm=x1, y1_norm=y1, x2_norm=x2, y2_norm=y2)
                for n, (key, x1, y1, x2, y2) in enumerate(box_rows)
            ]
        ),
        "aligned_pairs": pl.DataFrame(
            [
                chunk(
                    *key,
                    pair_id=pair_ids[key],
                    caption=caption,
                    domain=domain,
                    n_trace_points=points,
                    n_boxes=n_boxes,
                )
                for key, caption, domain, points, n_boxes in pair_rows
            ]
        ),
        "video_filter": pl.DataFrame(
            {
                "channel": ["ch1", "ch1", "ch2"],
                "video_id": ["v1", "v2", "v3"],
                "kept": [True, False, True],
                "filtered_by": [None, "no_speech", None],
                "duration_s": [1800.0] * 2 + [3600.0],
                "speech_s": [1200.0, 0.0, 2400.0],
            }
        ),
        "medical_entities": pl.DataFrame([entity(*row) for row in entity_rows]),
    }


def statistics_of(tables: dict[str, pl.DataFrame]):
    return compute_statistics(**tables, keyframe_exists=lambda path: path != MISSING_KEYFRAME)


def test_every_figure_equals_the_hand_computed_one():
    table = statistics_of(small_dataset()).table
    assert table.schema == pl.Schema(STATISTICS_SCHEMA)
    found = {(s, b): (v, u) for s, b, v, u in table.rows()}
    expected = {
        ("channels", ""): (2, "channels"),
        ("videos", ""): (3, "videos"),
        ("videos_copied", ""): (0, "videos"),
        ("video_hours", ""): (2.0, "hours"),
        ("speech_hours", ""): (1.0, "hours"),
        ("kept_videos", ""): (2, "videos"),
        ("kept_video_hours", ""): (1.5, "hours"),
        ("videos_filtered_out", ""): (1, "videos"),
        ("videos_filtered_out", "no_speech"): (1, "videos"),
        ("medical_chunks", ""): (6, "chunks"),
        ("duplicates_removed", ""): (1, "chunks"),  # v3 chunk 1; v1 chunk 3 lacks its keyframe
        ("pairs", ""): (3, "pairs"),
        ("pairs_per_video_hour", ""): (1.5, "pairs per hour"),
        ("caption_words_mean", ""): (4.0, "words"),  # 3, 5, 4
        ("caption_words_median", ""): (4.0, "words"),
        ("domains", ""): (2, "domains"),
        ("pairs_per_domain", "CT"): (2, "pairs"),
        ("pairs_per_domain", "MRI"): (1, "pairs"),
        ("traced_pairs", ""): (2, "pairs"),
        ("traced_pair_fraction", ""): (2 / 3, "fraction"),
        ("trace_points_per_traced_pair_mean", ""): (20.0, "points"),
        ("boxes", ""): (3, "boxes"),  # the unpaired chunk's box is not the dataset's
        ("pairs_with_boxes", ""): (2, "pairs"),
        ("boxes_per_pair_mean", ""): (1.0, "boxes"),
        ("box_area_mean", ""): ((0.25 + 0.02 + 0.5) / 3, "fraction"),
        ("box_area_median", ""): (0.25, "fraction"),
        ("entity_mentions", ""): (5, "mentions"),
        ("distinct_concepts", ""): (3, "concepts"),
        ("pairs_with_entities", ""): (2, "pairs"),
        ("entities_per_pair_mean", ""): (5 / 3, "mentions"),
        ("entities_per_concept", "ct"): (2, "mentions"),
        ("entities_per_concept", "lesion"): (2, "mentions"),
        ("entities_per_concept", "mri"): (1, "mentions"),
        ("asr_word_probability_mean", ""): (0.8, "probability"),
    }
    assert found.keys() == expected.keys()
    for key, (value, unit) in expected.items():
        assert found[key] == (pytest.approx(value), unit), key
    assert table.filter(pl.col("statistic") == "pairs_per_domain")["breakdown"].to_list() == ["CT", "MRI"]
    most_frequent = table.filter(pl.col("statistic") == "entities_per_concept")["breakdown"].to_list()
    assert most_frequent == ["ct", "lesion", "mri"]  # most first, ties by name


def test_without_pairs_the_averages_are_null_and_there_is_nothing_to_plot():
    tables = small_dataset()
    tables["aligned_pairs"] = tables["aligned_pairs"].clear()
    statistics = statistics_of(tables)
    found = {(s, b): v for s, b, v, _ in statistics.table.rows()}
    assert found[("pairs", "")] == 0 and found[("duplicates_removed", "")] == 4
    assert found[("entity_mentions", "")] == 0  # entities of no pair are not the dataset's
    means = (
        "caption_words_mean",
        "box_area_median",
        "trace_points_per_traced_pair_mean",
        "entities_per_pair_mean",
    )
    for mean in means:
        assert found[(mean, "")] is None
    plots = statistics_plots(statistics)
    assert [name for name, png in plots.items() if png is not None] == ["videos_filtered_out"]


def test_a_video_file_in_two_lectures_counts_once():
    """ch0 holds a copy of ch2's v3 (the same sha256): ch0 comes first by name, so its copy counts
    and ch2's is left out of every figure but `videos_copied`, as the merged export keeps one."""
    tables = small_dataset()
    copied = {
        name: pl.concat(
            [table, table.filter(pl.col("channel") == "ch2").with_columns(channel=pl.lit("ch0"))],
            how="vertical_relaxed",
        )
        for name, table in tables.items()
    }
    found = {(s, b): v for s, b, v, _ in statistics_of(copied).table.rows()}
    assert found.pop(("videos_copied", "")) == 1
    once = {(s, b): v for s, b, v, _ in statistics_of(tables).table.rows()}
    assert found == {key: value for key, value in once.items() if key != ("videos_copied", "")}

    unreadable = copied["videos"].with_columns(
        status=pl.when(pl.col("channel") == "ch0").then(pl.lit("error")).otherwise(pl.col("status"))
    )
    found = {(s, b): v for s, b, v, _ in statistics_of({**copied, "videos": unreadable}).table.rows()}
    assert found[("videos_copied", "")] == 0  # an unreadable file is no copy of anything


def test_a_channel_the_filter_has_not_seen_is_left_out_and_named():
    tables = small_dataset()
    tables["video_filter"] = tables["video_filter"].filter(pl.col("channel") == "ch1")
    statistics = statistics_of(tables)
    assert statistics.channels_left_out == ["ch2"]
    found = {(s, b): v for s, b, v, _ in statistics.table.rows()}
    only_ch1 = {name: table.filter(pl.col("channel") == "ch1") for name, table in tables.items()}
    assert found == {(s, b): v for s, b, v, _ in statistics_of(only_ch1).table.rows()}
    assert found[("channels", "")] == 1

    tables["video_filter"] = tables["video_filter"].clear()
    with pytest.raises(
        ValueError, match=r"video_filter has no row for 3 video\(s\) of channel\(s\) ch1, ch2"
    ):
        statistics_of(tables)


def test_each_plot_is_a_png():
    plots = statistics_plots(statistics_of(small_dataset()))
    assert set(plots) == {
        "pairs_per_domain",
        "caption_words",
        "boxes_per_pair",
        "box_area",
        "videos_filtered_out",
    }
    assert all(png.startswith(b"\x89PNG") for png in plots.values())


UPSTREAM = [
    videos,
    transcripts,
    frame_classifier,
    stable_chunks,
    cursor_detector,
    cursor_traces,
    narratives,
    boxes,
    video_filter,
    aligned_pairs,
    curated_text,
    medical_entities,
]


def store_tables(layout, tables: dict[str, pl.DataFrame]) -> None:
    """The tables as the IO manager would have stored them."""
    with duckdb.connect(str(layout.duckdb_path)) as con:
        for name, frame in tables.items():
            con.register("frame", frame.to_arrow())
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")


def test_the_asset_reads_every_channel_and_stores_the_long_table(layout, resources, instance):
    store_tables(layout, small_dataset())
    (layout.data_root / "keyframes" / "ch2" / "v3").mkdir(parents=True)
    (layout.data_root / "keyframes" / "ch2" / "v3" / "chunk-001.png").write_bytes(b"png")
    instance.add_dynamic_partitions("channel", ["ch1", "ch2"])

    def materialized_metadata() -> dict:
        result = dg.materialize(
            [*UPSTREAM, dataset_statistics],
            selection=[dataset_statistics],
            resources=resources,
            instance=instance,
        )
        [materialization] = result.asset_materializations_for_node("dataset_statistics")
        return materialization.metadata

    metadata = materialized_metadata()
    assert metadata["n_pairs"].value == 3 and metadata["video_hours"].value == 2.0
    assert "| pairs_per_domain | CT | 2.0 | pairs |" in metadata["statistics"].value
    for plot in ("pairs_per_domain", "caption_words", "boxes_per_pair", "box_area", "videos_filtered_out"):
        assert "data:image/png;base64," in metadata[f"plot_{plot}"].value
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        columns = con.sql("DESCRIBE dataset_statistics").fetchall()
        stored = dict(
            con.sql("SELECT statistic, value FROM dataset_statistics WHERE breakdown = ''").fetchall()
        )
    assert [(name, kind) for name, kind, *_ in columns] == [
        ("statistic", "VARCHAR"),
        ("breakdown", "VARCHAR"),
        ("value", "DOUBLE"),
        ("unit", "VARCHAR"),
    ]
    assert stored["duplicates_removed"] == 1 and stored["channels"] == 2  # v1 chunk 3's keyframe is missing
    assert stored["entity_mentions"] == 5

    with duckdb.connect(str(layout.duckdb_path)) as con:
        con.execute("DELETE FROM video_filter WHERE channel = 'ch2'")
    assert materialized_metadata()["channels_left_out"].value == "ch2"


def test_a_data_root_made_before_medical_entities_existed_fails_naming_the_table_and_what_to_run(
    layout, resources, instance
):
    tables = small_dataset()
    del tables["medical_entities"]
    store_tables(layout, tables)
    instance.add_dynamic_partitions("channel", ["ch1", "ch2"])
    result = dg.materialize(
        [*UPSTREAM, dataset_statistics],
        selection=[dataset_statistics],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    error = step_failure(result)
    assert error.startswith(
        "dagster._core.definitions.events.Failure: input medical_entities: table main.medical_entities "
        f"does not exist in {layout.duckdb_path}: asset medical_entities was never materialized there"
    )
    advice = "Materialize it first: `mednarratives run`, or channel_pipeline_job for every channel in the UI"
    assert advice in error

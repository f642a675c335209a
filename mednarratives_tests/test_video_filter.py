"""Videos without enough speech or medical images are kept out of the pairs, each with its reason."""

from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl
import pytest

from mednarratives_assets.defs.aligned_pairs import aligned_pairs
from mednarratives_assets.defs.boxes import boxes
from mednarratives_assets.defs.cursor_traces import cursor_traces
from mednarratives_assets.defs.narratives import narratives
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.transcripts import transcripts
from mednarratives_assets.defs.video_filter import video_filter
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.stages.video_filter import (
    VIDEO_FILTER_SCHEMA,
    VideoFilterSettings,
    filter_videos,
    kept_rows,
)
from mednarratives_tests.conftest import step_failure
from mednarratives_tests.narration_fixtures import narrated_channel

# The fixture's narration: 1 + 8 + 5 + 6 + 2 words in 5 sentences, a word every 0.3 s lasting
# 0.25 s, so the sentences span 0.25 + 2.35 + 1.45 + 1.75 + 0.55 s.
TALK_SPEECH_S = 6.35
TALK_WORDS = 22
SMALL_LECTURES = VideoFilterSettings(min_speech_s=5.0, min_words=20, min_medical_chunks=1)
SILENT_REASON = "silent audio (peak below -60 dBFS)"


def lectures(root, channel: str = "ch") -> dict[str, pl.DataFrame]:
    """talk: the whole narration; silent: no words; brief: its first two sentences only; slides: the
    whole narration over a slide the classifier did not call medical; repeat: the whole narration,
    its one medical chunk shown twice."""
    tables = narrated_channel(root, channel, ("brief", "repeat", "silent", "slides", "talk")).tables
    words = tables["transcript_words"]
    tables["transcript_words"] = words.filter(
        (pl.col("video_id") != "silent") & ((pl.col("video_id") != "brief") | (pl.col("segment_index") < 2))
    )
    tables["transcripts"] = tables["transcripts"].with_columns(
        status=pl.when(pl.col("video_id") == "silent").then(pl.lit("no_speech")).otherwise(pl.col("status")),
        reason=pl.when(pl.col("video_id") == "silent").then(pl.lit(SILENT_REASON)),
    )
    chunks = tables["stable_chunks"].with_columns(
        is_medical=pl.col("is_medical") & (pl.col("video_id") != "slides")
    )
    repeated = chunks.filter((pl.col("video_id") == "repeat") & pl.col("is_medical")).with_columns(
        chunk_index=pl.lit(2, pl.Int32), duplicate_of=pl.lit(1, pl.Int32), start_s=12.0, end_s=14.0
    )
    tables["stable_chunks"] = pl.concat([chunks, repeated])
    return tables


def filtered(tables: dict[str, pl.DataFrame], settings: VideoFilterSettings) -> pl.DataFrame:
    return filter_videos(
        tables["videos"], tables["transcripts"], tables["transcript_words"], tables["stable_chunks"], settings
    )


def test_each_video_is_kept_or_left_out_with_the_measured_value_and_the_threshold(tmp_path):
    table = filtered(lectures(tmp_path), SMALL_LECTURES)
    assert table.columns == list(VIDEO_FILTER_SCHEMA)
    rows = {row["video_id"]: row for row in table.iter_rows(named=True)}
    assert [v for v, row in rows.items() if row["kept"]] == ["repeat", "talk"]
    talk = rows["talk"]
    assert talk["speech_s"] == pytest.approx(TALK_SPEECH_S) and talk["n_words"] == TALK_WORDS
    assert talk["n_medical_chunks"] == 1 and talk["filtered_by"] is None and talk["reason"] is None
    assert rows["repeat"]["n_medical_chunks"] == 1  # a slide shown again is no second image
    assert (rows["silent"]["filtered_by"], rows["silent"]["reason"]) == (
        "no_speech",
        f"no speech: {SILENT_REASON}",
    )
    assert (rows["silent"]["speech_s"], rows["silent"]["n_words"]) == (0.0, 0)
    assert rows["brief"]["filtered_by"] == "too_little_speech"
    assert rows["brief"]["reason"] == (
        "too little speech: 2.6 s, below min_speech_s=5 s; too few words: 9, below min_words=20"
    )
    assert (rows["slides"]["filtered_by"], rows["slides"]["reason"]) == (
        "too_few_medical_chunks",
        "too few medical chunks: 0, below min_medical_chunks=1",
    )


def test_the_thresholds_decide(tmp_path):
    tables = lectures(tmp_path)
    lecture_defaults = filtered(tables, VideoFilterSettings())  # 6 s of speech is no real lecture
    assert not lecture_defaults["kept"].any()
    talk = lecture_defaults.row(by_predicate=pl.col("video_id") == "talk", named=True)
    assert talk["reason"] == (
        "too little speech: 6.4 s, below min_speech_s=20 s; too few words: 22, below min_words=40"
    )

    nothing_asked = VideoFilterSettings(min_speech_s=0.0, min_words=0, min_medical_chunks=0)
    kept = filtered(tables, nothing_asked).filter("kept")["video_id"].to_list()
    assert kept == ["brief", "repeat", "slides", "talk"]  # without words there is still no speech

    two_images = VideoFilterSettings(min_speech_s=0.0, min_words=0, min_medical_chunks=2)
    assert filtered(tables, two_images).filter("kept").is_empty()


def test_kept_rows_leave_out_filtered_and_unknown_videos(tmp_path):
    tables = lectures(tmp_path)
    table = filtered(tables, SMALL_LECTURES).filter(pl.col("video_id") != "talk")
    assert kept_rows(tables["stable_chunks"], table)["video_id"].unique().to_list() == ["repeat"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_speech_s": -1.0}, "min_speech_s=-1.0 must be between 0 and 3600 seconds"),
        ({"min_words": 2.5}, "min_words=2.5 must be an integer between 0 and 100000"),
        ({"min_medical_chunks": -1}, "min_medical_chunks=-1 must be an integer between 0 and 1000"),
    ],
)
def test_a_wrong_threshold_is_named(settings, message):
    with pytest.raises(ValueError, match=message):
        VideoFilterSettings(**settings).validated()


ASSETS = [videos, transcripts, stable_chunks, cursor_traces, narratives, boxes, video_filter, aligned_pairs]
STAGES = [narratives, boxes, video_filter, aligned_pairs]


def seed(layout, tables: dict[str, pl.DataFrame]) -> None:
    """The upstream tables as the IO manager would have written them."""
    with duckdb.connect(str(layout.duckdb_path)) as con:
        for name, frame in tables.items():
            con.register("frame", frame.to_arrow())
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")


def run_config(**thresholds) -> dict:
    return {
        "ops": {
            "aligned_pairs": {"config": {"remove_pointers": False}},
            "video_filter": {"config": thresholds},
        }
    }


def test_left_out_videos_give_no_pairs_and_claim_no_image(layout, resources, instance):
    """Every lecture shows the same image: the first kept one in video order gives the pair."""
    seed(layout, lectures(layout.data_root))
    instance.add_dynamic_partitions("channel", ["ch"])

    def materialize(**thresholds) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ASSETS,
            selection=STAGES,
            partition_key="ch",
            resources=resources,
            instance=instance,
            run_config=run_config(**thresholds),
            raise_on_error=False,
        )

    result = materialize(min_speech_s=5.0, min_words=20)
    assert result.success
    [filtering] = result.asset_materializations_for_node("video_filter")
    assert filtering.metadata["n_videos_filtered_out"].value == 3
    assert filtering.metadata["filtered_by"].value == {
        "no_speech": 1,
        "too_little_speech": 1,
        "too_few_medical_chunks": 1,
    }
    assert "too few medical chunks: 0, below min_medical_chunks=1" in filtering.metadata["filtered_out"].value
    [pairing] = result.asset_materializations_for_node("aligned_pairs")
    assert pairing.metadata["n_videos_filtered_out"].value == 3
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        stored = con.sql("SELECT video_id, kept, reason FROM video_filter ORDER BY video_id").pl()
        paired = [v for (v,) in con.sql("SELECT video_id FROM aligned_pairs").fetchall()]
    assert stored["kept"].to_list() == [False, True, False, False, True]
    assert stored["reason"][2] == f"no speech: {SILENT_REASON}"
    assert paired == ["repeat"]  # brief, the first in order, would have claimed the image

    everyone = materialize(min_speech_s=0.0, min_words=0, min_medical_chunks=0)
    assert everyone.success
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        paired = [v for (v,) in con.sql("SELECT video_id FROM aligned_pairs").fetchall()]
    assert paired == ["brief"]

    bad = materialize(min_words=-3)
    assert "video_filter: min_words=-3 must be an integer between 0 and 100000" in step_failure(bad)

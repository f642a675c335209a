"""A channel grows one lecture at a time: every per-video stage computes only the new or changed
videos, a removed lecture leaves no rows or files behind, a changed setting recomputes what it
affects, and a run with nothing new skips every stage. Through Dagster, with every channel asset
and CI's models, on two demo lectures."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pytest

from mednarratives_assets.definitions import build_definitions

PER_VIDEO_STAGES = ("stable_chunks", "transcripts", "cursor_traces", "narratives", "boxes", "aligned_pairs")
CHANNEL = "growing"


@pytest.fixture
def growing_channel(layout, default_demo_corpus, default_frame_classifier, default_cursor_detector):
    corpus, entries = default_demo_corpus
    lectures = [
        corpus.data_root / entry["video"] for entry in entries if entry["channel"] == entries[0]["channel"]
    ]
    return build_definitions(layout), lectures


def run(defs: dg.Definitions, instance, run_config: dict | None = None) -> dict[str, tuple[int, int]]:
    """Materialize the channel; (computed, reused) videos of each per-video stage."""
    result = defs.resolve_job_def("channel_pipeline_job").execute_in_process(
        partition_key=CHANNEL, instance=instance, run_config=run_config or {}
    )
    assert result.success
    counts = {}
    for stage in PER_VIDEO_STAGES:
        [materialization] = [
            m for m in result.asset_materializations_for_node(stage) if m.asset_key.path == [stage]
        ]
        metadata = materialization.metadata
        counts[stage] = (metadata["n_videos_computed"].value, metadata["n_videos_reused"].value)
    return counts


def video_ids(layout, table: str) -> set[str]:
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        return {v for (v,) in con.execute(f"select distinct video_id from {table}").fetchall()}


def test_a_new_lecture_costs_only_itself_and_a_removed_one_leaves_nothing(layout, instance, growing_channel):
    defs, (first, second) = growing_channel
    folder = layout.channel_dir(CHANNEL)
    folder.mkdir(parents=True)
    instance.add_dynamic_partitions("channel", [CHANNEL])
    shutil.copy(first, folder / "first.mp4")
    assert run(defs, instance) == dict.fromkeys(PER_VIDEO_STAGES, (1, 0))

    shutil.copy(second, folder / "second.mp4")
    assert run(defs, instance) == dict.fromkeys(PER_VIDEO_STAGES, (1, 1))
    pairs_before = video_ids(layout, "aligned_pairs")
    assert pairs_before == {"first", "second"}

    # Nothing new, in a run as the sensor launches it: the channel is current, every stage skipped.
    unchanged = defs.resolve_job_def("channel_pipeline_job").execute_in_process(
        partition_key=CHANNEL,
        instance=instance,
        run_config={"ops": {"videos": {"config": {"skip_if_current": True}}}},
    )
    assert unchanged.success
    assert {e.asset_key.path[0] for e in unchanged.get_asset_materialization_events()} == {"video_downloads"}
    assert set(PER_VIDEO_STAGES) <= {e.step_key for e in unchanged.all_events if e.is_step_skipped}

    # A boxes setting: boxes and the pairs that hold them are made again, nothing before them.
    wider = {"ops": {"boxes": {"config": {"min_side": 0.15}}}}
    counts = run(defs, instance, wider)
    assert counts == dict.fromkeys(PER_VIDEO_STAGES[:4], (0, 2)) | {"boxes": (2, 0)} | {
        "aligned_pairs": counts["aligned_pairs"]
    }
    assert sum(counts["aligned_pairs"]) == 2 and counts["aligned_pairs"][0] >= 1  # where boxes changed

    (folder / "first.mp4").unlink()
    assert run(defs, instance, wider) == dict.fromkeys(PER_VIDEO_STAGES, (0, 1))
    for table in ("videos", "stable_chunks", "transcripts", "cursor_traces", "narratives", "aligned_pairs"):
        assert video_ids(layout, table) == {"second"}, table
    assert not (layout.keyframes_dir / CHANNEL / "first").exists()
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        pair_ids = {p for (p,) in con.execute("select pair_id from aligned_pairs").fetchall()}
    pair_files = {p.stem for p in (layout.pairs_dir / CHANNEL).glob("*.png")}
    exported = {p.stem for p in (layout.exports_dir / CHANNEL / "train").glob("*.png")}
    assert pair_ids and pair_files == pair_ids and exported == pair_ids

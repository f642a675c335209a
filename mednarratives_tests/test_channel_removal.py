"""Removing a channel (`mednarratives remove-channel`, `remove_channel_job`), and one video in two
channels: flagged by the videos asset's check, its pairs once in the merged export."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import polars as pl
import pytest

from mednarratives_assets import cli
from mednarratives_assets.channels import InvalidChannelName
from mednarratives_assets.defs.channel_removal import remove_channel_everywhere, remove_channel_job
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.parquet_tables import table_object, write_table
from mednarratives_assets.stages.channel_removal import RemovalRefused, remove_channel
from mednarratives_assets.stages.dataset_export_all import MergedExportSettings, export_all_channels
from mednarratives_assets.video_cache import StageCache
from mednarratives_tests.conftest import make_video, step_failure
from mednarratives_tests.test_dataset_export import rules_curation
from mednarratives_tests.test_dataset_export_all import STATISTICS, narrative_rows, pairs_and_boxes

SHA = {name: name[0] * 64 for name in ("a-only", "b-only", "shared")}
CHANNELS = ("a", "a.b", "b")  # "a.b": a name that starts as "a" does must lose nothing


def video_rows(channel: str, hashes: list[str]) -> list[dict]:
    return [
        {"channel": channel, "video_id": f"v{i}", "sha256": sha, "size_bytes": 10 + i, "status": "ok"}
        for i, sha in enumerate(hashes)
    ]


def seed_channels(layout) -> None:
    """Rows, files, cache entries and locks of channels a, a.b and b; a's videos folder moved away."""
    rows = (
        video_rows("a", [SHA["a-only"], SHA["shared"]])
        + video_rows("a.b", [SHA["b-only"]])
        + video_rows("b", [SHA["shared"]])
    )
    with duckdb.connect(str(layout.duckdb_path)) as con:
        frame = pl.DataFrame(rows)  # noqa: F841
        con.execute("create table videos as select * from frame")
        con.execute(
            "create table aligned_pairs as select channel, video_id, 'p-' || channel || video_id as pair_id "
            "from videos"
        )
        con.execute("create table benchmark_scores as select 'clip' as model, 0.5 as score")
    for channel in CHANNELS:
        (layout.keyframes_dir / channel / "v0").mkdir(parents=True)
        (layout.keyframes_dir / channel / "v0" / "chunk-000.png").write_bytes(b"png")
        (layout.pairs_dir / channel).mkdir(parents=True)
        (layout.pairs_dir / channel / "p.png").write_bytes(b"png")
        layout.narratives_dir.mkdir(exist_ok=True)
        (layout.narratives_dir / f"{channel}.jsonl").write_text("{}\n")
        (layout.exports_dir / channel / "train").mkdir(parents=True)
        (layout.exports_dir / channel / "README.md").write_text("card")
        for stage in ("videos", "aligned_pairs"):
            (layout.locks_dir / stage).mkdir(parents=True, exist_ok=True)
            (layout.locks_dir / stage / f"{channel}.lock").write_text("")
        cache = StageCache.open(
            layout.cache_dir, "boxes", channel, pl.DataFrame({"video_id": ["v0"], "sha256": ["x"]}), {}
        )
        cache.put(cache.key("v0", {}), {"boxes": pl.DataFrame({"channel": [channel], "n": [1]})})
    # An entry written before entries named their channel: found by its rows.
    old = layout.cache_dir / "narratives" / "ab" / ("ab" * 32)
    old.mkdir(parents=True)
    pl.DataFrame({"channel": ["a"], "x": [1]}).write_parquet(old / "narratives.parquet")
    # A temporary that a writer of a's export left, and one of a.b's.
    (layout.exports_dir / ".a.123-abc.partial").mkdir()
    (layout.exports_dir / ".a.b.123-abc.partial").mkdir()
    for sha in SHA.values():
        (layout.transcripts_cache_dir / "engine").mkdir(parents=True, exist_ok=True)
        (layout.transcripts_cache_dir / "engine" / f"{sha}.json").write_text("{}")
    make_video(layout.channel_dir("b") / "v0.mp4")
    layout.channel_dir("a.b").mkdir()


def channel_rows(layout) -> dict[str, dict[str, int]]:
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        return {
            table: dict(con.execute(f"select channel, count(*) from {table} group by channel").fetchall())
            for table in ("videos", "aligned_pairs")
        }


def test_removal_deletes_exactly_the_channels_rows_files_and_partition(layout, instance):
    seed_channels(layout)
    instance.add_dynamic_partitions("channel", list(CHANNELS))

    removal = remove_channel_everywhere(layout, instance, "a")

    assert removal.partition_deleted
    assert sorted(instance.get_dynamic_partitions("channel")) == ["a.b", "b"]
    assert removal.rows == {"videos": 2, "aligned_pairs": 2}  # benchmark_scores has no channel
    assert channel_rows(layout) == {"videos": {"a.b": 1, "b": 1}, "aligned_pairs": {"a.b": 1, "b": 1}}
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        assert con.execute("select count(*) from benchmark_scores").fetchone()[0] == 1
    assert removal.stage_cache_entries == {"boxes": 1, "narratives": 1}
    for gone in ("keyframes/a", "pairs/a", "narratives/a.jsonl", "exports/a", "exports/.a.123-abc.partial"):
        assert not (layout.data_root / gone).exists(), gone
        assert gone in removal.paths
    for kept in (
        "keyframes/a.b",
        "pairs/b",
        "narratives/a.b.jsonl",
        "exports/a.b",
        "exports/.a.b.123-abc.partial",
    ):
        assert (layout.data_root / kept).exists(), kept
    assert not (layout.locks_dir / "videos" / "a.lock").exists()
    assert (layout.locks_dir / "videos" / "a.b.lock").exists() and (
        layout.locks_dir / "videos" / "b.lock"
    ).exists()
    # a's content alone goes from the transcript cache; content that b has too stays.
    assert [p.split("/")[-1] for p in removal.transcript_cache_entries] == [f"{SHA['a-only']}.json"]
    assert {p.stem for p in layout.transcripts_cache_dir.glob("*/*.json")} == {SHA["shared"], SHA["b-only"]}
    for channel in ("a.b", "b"):
        assert [len(entries) for entries in _cache_entries(layout, channel).values()] == [1]
    report = "\n".join(removal.lines())
    assert "table videos: 2 rows" in report and "exports/a" in report and "run dataset_job again" in report

    again = remove_channel_everywhere(layout, instance, "a")  # nothing left: says so
    assert not again.removed_anything and "nothing" in "\n".join(again.lines())


def _cache_entries(layout, channel):
    from mednarratives_assets.stages.channel_removal import stage_cache_entries

    return stage_cache_entries(layout, channel)


@pytest.mark.parametrize("name", ["../b", "", "a/b", ".hidden", "a..b", "x" * 200, "b\n", "/etc"])
def test_hostile_names_are_refused_and_nothing_is_removed(layout, instance, name):
    seed_channels(layout)
    instance.add_dynamic_partitions("channel", ["b"])
    with pytest.raises(InvalidChannelName):
        remove_channel_everywhere(layout, instance, name)
    assert channel_rows(layout)["videos"] == {"a": 2, "a.b": 1, "b": 1}
    assert all((layout.keyframes_dir / c).is_dir() for c in CHANNELS)
    assert instance.get_dynamic_partitions("channel") == ["b"]


def test_the_ui_job_validates_the_name_and_removes_the_channel(layout, resources, instance):
    seed_channels(layout)
    instance.add_dynamic_partitions("channel", list(CHANNELS))

    def run(channel: str, **config):
        return remove_channel_job.execute_in_process(
            run_config={"ops": {"remove_channel_op": {"config": {"channel": channel, **config}}}},
            resources={"paths": resources["paths"]},
            instance=instance,
            raise_on_error=False,
        )

    hostile = run("../videos")
    assert not hostile.success and "invalid channel name '../videos'" in step_failure(hostile)
    held = run("b")
    assert not held.success and "move the folder out of the videos folder first" in step_failure(held)
    assert (layout.channel_dir("b") / "v0.mp4").is_file() and "b" in instance.get_dynamic_partitions(
        "channel"
    )

    done = run("b", delete_videos=True)
    assert done.success
    assert not layout.channel_dir("b").exists() and not (layout.keyframes_dir / "b").exists()
    assert sorted(instance.get_dynamic_partitions("channel")) == ["a", "a.b"]
    [materialization] = [e for e in done.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.event_specific_data.metadata
    assert metadata["rows_videos"].value == 1 and metadata["videos_folder"].value == "videos/b"
    assert "run dataset_job again" in metadata["report"].value


def test_refused_while_the_videos_folder_or_channels_yaml_would_bring_it_back(layout):
    seed_channels(layout)
    with pytest.raises(RemovalRefused, match="move the folder out"):
        remove_channel(layout, "a.b")  # an empty folder would still come back as a partition
    assert channel_rows(layout)["videos"]["a.b"] == 1
    layout.channels_file.write_text("a:\n  - https://example.org/v\n")
    with pytest.raises(RemovalRefused, match="delete its entry first"):
        remove_channel(layout, "a", delete_videos=True)
    assert channel_rows(layout)["videos"]["a"] == 2
    layout.channels_file.unlink()
    remove_channel(layout, "a.b", delete_videos=True)
    assert not layout.channel_dir("a.b").exists() and layout.channel_dir("b").is_dir()


def test_a_symlinked_videos_folder_goes_as_a_link_only(layout, tmp_path):
    seed_channels(layout)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    make_video(outside / "keep.mp4")
    inside = layout.data_root / "linked"
    inside.symlink_to(outside)
    layout.channel_dir("a.b").rmdir()
    layout.channel_dir("a.b").symlink_to(inside)  # inside the data root, leading out
    with pytest.raises(RemovalRefused):
        remove_channel(layout, "a.b", delete_videos=True)  # it resolves outside: refused
    assert (outside / "keep.mp4").is_file()


def test_the_cli_refuses_then_removes_with_delete_videos(layout, monkeypatch, capsys):
    seed_channels(layout)
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(layout.data_root))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MEDNARRATIVES_PROFILE", raising=False)
    assert cli.main(["remove-channel", "b"]) == 1
    assert "move the folder out of the videos folder first" in capsys.readouterr().err
    assert cli.main(["remove-channel", "../b"]) == 1
    assert "invalid channel name" in capsys.readouterr().err
    assert cli.main(["remove-channel", "b", "--delete-videos"]) == 0
    out = capsys.readouterr().out
    assert "table videos: 1 rows" in out and "videos: videos/b" in out and "dataset_job" in out
    assert channel_rows(layout)["videos"] == {"a": 2, "a.b": 1}


def test_the_cluster_profiles_parquet_objects_of_the_channel_go(layout, tmp_path):
    seed_channels(layout)
    store = str(tmp_path / "store")
    for channel in CHANNELS:
        rows = pl.DataFrame(video_rows(channel, [SHA["shared"]]))
        write_table(rows, table_object(store, "videos", channel))
        write_table(pl.DataFrame({"channel": [channel]}), table_object(store, "aligned_pairs", channel))
    removal = remove_channel(layout, "a", tables_url=store)
    assert removal.objects == {"aligned_pairs/a.parquet": 1, "videos/a.parquet": 1}
    assert not table_object(store, "videos", "a").exists()
    assert (
        table_object(store, "videos", "a.b").exists() and table_object(store, "aligned_pairs", "b").exists()
    )


def test_a_video_in_two_channels_gives_its_pairs_once_and_is_flagged(layout, resources, instance, tmp_path):
    # The merged export: b's lecture-0 is a copy of a's lecture-0 (one sha256); b runs first.
    parts = [
        pairs_and_boxes(tmp_path, n=8, channel=c, lecture_size=4, seed=s) for c, s in (("b", 2), ("a", 1))
    ]
    pairs = pl.concat([p for p, _ in parts])
    boxes = pl.concat([b for _, b in parts])
    hashes = pl.DataFrame(
        {
            "channel": ["a", "a", "b", "b"],
            "video_id": ["lecture-0", "lecture-1", "lecture-0", "lecture-1"],
            "sha256": ["same", "a1", "same", "b1"],
        }
    )
    summary = export_all_channels(
        tmp_path,
        tmp_path / "dataset",
        pairs,
        rules_curation(pairs),
        narrative_rows(pairs),
        boxes,
        STATISTICS,
        MergedExportSettings(),
        hashes,
    )
    exported = pl.concat(
        [
            pl.read_parquet(tmp_path / "dataset" / s / "metadata.parquet")
            for s, x in summary.splits.items()
            if x.n_pairs
        ]
    )
    assert exported.height == 12 and exported["pair_id"].n_unique() == 12
    assert exported.filter((pl.col("channel") == "b") & (pl.col("video_id") == "lecture-0")).is_empty()
    assert exported.filter((pl.col("channel") == "a") & (pl.col("video_id") == "lecture-0")).height == 4
    assert summary.duplicate_lectures.rows() == [("b", "lecture-0", "a", "lecture-0", 4)]
    assert (
        "1 lectures are copies of another lecture's video file"
        in (tmp_path / "dataset" / "README.md").read_text()
    )

    # The flag: the videos asset's check warns in the channel that holds a copy.
    make_video(layout.channel_dir("a") / "x.mp4", seconds=1.0)
    make_video(layout.channel_dir("a") / "own.mp4", seconds=1.5)
    layout.channel_dir("b").mkdir()
    shutil.copyfile(layout.channel_dir("a") / "x.mp4", layout.channel_dir("b") / "copy.mp4")
    instance.add_dynamic_partitions("channel", ["a", "b"])
    first = dg.materialize([videos], partition_key="a", resources=resources, instance=instance)
    assert {c.check_name: c.passed for c in first.get_asset_check_evaluations()}[
        "no_video_in_another_channel"
    ]
    second = dg.materialize([videos], partition_key="b", resources=resources, instance=instance)
    [check] = [
        c for c in second.get_asset_check_evaluations() if c.check_name == "no_video_in_another_channel"
    ]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN and check.partition == "b"
    assert check.metadata["n_videos_in_another_channel"].value == 1
    preview = check.metadata["videos_in_another_channel"].value
    assert "| copy | " in preview and "| a | x | a |" in preview  # kept in a, the first by name
    [materialization] = second.asset_materializations_for_node("videos")
    assert materialization.metadata["n_videos_in_another_channel"].value == 1

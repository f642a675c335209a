"""The merged export of every channel: loaded back by split, with its narratives and statistics,
and each pair's texts from curated_text."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import duckdb
import polars as pl
import pytest

from mednarratives_assets.defs.dataset_export_all import dataset_export_all
from mednarratives_assets.image_hashing import hash_distance
from mednarratives_assets.stages.dataset_export_all import (
    SPLITS,
    MergedExportSettings,
    export_all_channels,
    statistics_table,
)
from mednarratives_tests.clip_fixtures import SIDE, synthetic_pairs
from mednarratives_tests.conftest import step_failure
from mednarratives_tests.test_dataset_export import ASSETS, model_answered, model_rejected, rules_curation
from mednarratives_tests.test_narratives import LocalizedNarrative, TimedPoint, TimedUtterance

STATISTICS = pl.DataFrame(
    {
        "statistic": ["n_pairs", "mean_caption_words", "n_pairs", "n_chunks_skipped"],
        "breakdown": ["", "", "CT", "no words | silent"],
        "value": [33.0, 7.25, 17.0, 12345.0],
        "unit": ["pairs", "words", "pairs", "chunks"],
    },
    schema={"statistic": pl.Utf8, "breakdown": pl.Utf8, "value": pl.Float64, "unit": pl.Utf8},
)


@pytest.fixture
def offline_hf(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def narrative_rows(pairs: pl.DataFrame) -> pl.DataFrame:
    """A narratives row per pair (image_id = pair_id), plus one of a chunk that gave no pair."""
    rows = [
        {
            "channel": channel,
            "video_id": video_id,
            "chunk_index": chunk_index,
            "dataset_id": f"mednarratives/{channel}",
            "image_id": image_id,
            "annotator_id": 7,
            "caption": "here it is",
            "timed_caption": [{"utterance": "here", "start_time": 0.0, "end_time": 0.3}],
            "traces": [[{"x": 0.5, "y": 0.5, "t": 0.1}]],
            "voice_recording": f"videos/{channel}/{video_id}.mp4#t=0.000,1.000",
        }
        for channel, video_id, chunk_index, image_id in pairs.select(
            "channel", "video_id", "chunk_index", "pair_id"
        ).iter_rows()
    ]
    orphan = rows[0] | {"chunk_index": 999, "image_id": "no-pair"}
    return pl.DataFrame([*rows, orphan])


def pairs_and_boxes(data_root, **synthetic) -> tuple[pl.DataFrame, pl.DataFrame]:
    """synthetic_pairs, the boxes with their dwell's times, as aligned_pairs and the boxes table
    have them."""
    pairs, boxes = synthetic_pairs(data_root, **synthetic)
    return pairs, boxes.with_columns(start_s=pl.lit(1.0), end_s=pl.lit(2.0))


def corpus(data_root):
    """(pairs, boxes) of three channels: 5, 3 and 2 lectures of 4 pairs, the last pair of channel
    c showing again the first picture of channel a (a copy of its file: the same pHash)."""
    parts = [
        pairs_and_boxes(data_root, n=n, channel=channel, lecture_size=4, seed=seed)
        for channel, n, seed in (("a", 20, 1), ("b", 12, 2), ("c", 8, 3))
    ]
    pairs = pl.concat([part[0] for part in parts])
    boxes = pl.concat([part[1] for part in parts])
    original = pairs.row(0, named=True)
    copy = pairs.filter(pl.col("channel") == "c").row(-1, named=True)
    shutil.copyfile(data_root / original["image_path"], data_root / copy["image_path"])
    pairs = pairs.with_columns(
        phash=pl.when(pl.col("pair_id") == copy["pair_id"]).then(pl.lit(original["phash"])).otherwise("phash")
    )
    return pairs, boxes, (original, copy)


def lecture_of(row) -> tuple[str, str]:
    return row["channel"], row["video_id"]


def test_the_merged_export_loads_back_by_split_with_narratives_and_statistics(tmp_path, offline_hf):
    import datasets

    pairs, boxes, (original, copy) = corpus(tmp_path)
    folder = tmp_path / "dataset"
    summary = export_all_channels(
        tmp_path,
        folder,
        pairs,
        rules_curation(pairs),
        narrative_rows(pairs),
        boxes,
        STATISTICS,
        MergedExportSettings(),
    )
    assert not summary.dropped_pair_ids
    assert sum(s.n_lectures for s in summary.splits.values()) == 10

    loaded = datasets.load_dataset(str(folder))
    assert list(loaded) == list(SPLITS)  # 10 lectures: every split has one at least
    assert {name: loaded[name].num_rows for name in SPLITS} == {
        name: s.n_pairs for name, s in summary.splits.items()
    }
    assert sum(loaded[name].num_rows for name in SPLITS) == pairs.height  # no pair lost
    rows = {name: list(loaded[name]) for name in SPLITS}
    every_row = [row for split in rows.values() for row in split]
    assert all(row["image"].size == (SIDE, SIDE) for row in every_row)
    assert all(len(row["boxes"]) == 1 and row["boxes"][0]["phrase"] for row in every_row)

    lectures = {name: {lecture_of(row) for row in split} for name, split in rows.items()}
    for first, second in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert lectures[first].isdisjoint(lectures[second])
        assert all(hash_distance(a["phash"], b["phash"]) > 6 for a in rows[first] for b in rows[second]), (
            f"a picture in both {first} and {second}"
        )
    # The lectures that share a picture are in one split.
    [shared] = [name for name, found in lectures.items() if lecture_of(original) in found]
    assert lecture_of(copy) in lectures[shared]

    for name in SPLITS:
        lines = (folder / "narratives" / f"{name}.jsonl").read_text().splitlines()
        narratives = [LocalizedNarrative(**json.loads(line)) for line in lines]
        assert sorted(n.image_id for n in narratives) == sorted(row["pair_id"] for row in rows[name])
        for narrative in narratives:
            [TimedUtterance(**u) for u in narrative.timed_caption]
            [[TimedPoint(**p) for p in trace] for trace in narrative.traces]

    card = (folder / "README.md").read_text()
    assert "| n_pairs | overall | 33 | pairs |" in card
    assert "| mean_caption_words | overall | 7.25 | words |" in card
    assert "| n_pairs | CT | 17 | pairs |" in card
    assert "| n_chunks_skipped | no words \\| silent | 12,345 | chunks |" in card
    assert f"| train | {summary.splits['train'].n_lectures} | {len(rows['train'])} |" in card


def test_a_split_without_pairs_is_left_out_of_the_card_so_the_rest_still_loads(tmp_path, offline_hf):
    import datasets

    pairs, boxes = pairs_and_boxes(tmp_path, n=8, lecture_size=4)  # 2 lectures for 3 splits
    folder = tmp_path / "dataset"
    settings = MergedExportSettings()
    curated = rules_curation(pairs)
    summary = export_all_channels(
        tmp_path, folder, pairs, curated, narrative_rows(pairs), boxes, STATISTICS, settings
    )
    filled = [name for name, split in summary.splits.items() if split.n_pairs]
    assert len(filled) == 2
    loaded = datasets.load_dataset(str(folder))
    assert list(loaded) == filled and sum(split.num_rows for split in loaded.values()) == 8


def test_a_new_export_in_the_same_folder_is_read_anew_not_from_the_cache(tmp_path, offline_hf):
    import datasets

    pairs, boxes = pairs_and_boxes(tmp_path, n=8, lecture_size=4)
    folder = tmp_path / "dataset"
    narratives = narrative_rows(pairs)
    for caption in ("as first exported", "corrected since"):  # same files, same counts
        curated = rules_curation(pairs).with_columns(caption=pl.lit(caption))
        settings = MergedExportSettings()
        export_all_channels(tmp_path, folder, pairs, curated, narratives, boxes, STATISTICS, settings)
        loaded = datasets.load_dataset(str(folder))
        assert {row["corrected_caption"] for split in loaded.values() for row in split} == {caption}


def test_bad_input_is_named_and_the_stored_dataset_is_kept(tmp_path):
    pairs, boxes = pairs_and_boxes(tmp_path, n=8, lecture_size=4)
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "README.md").write_text("the stored dataset")

    narratives = narrative_rows(pairs)

    def export(statistics=STATISTICS, settings=None, pairs=pairs):
        settings = settings or MergedExportSettings()
        curated = rules_curation(pairs)
        export_all_channels(tmp_path, folder, pairs, curated, narratives, boxes, statistics, settings)

    with pytest.raises(ValueError, match="dataset_statistics lacks the column.s. breakdown, unit"):
        export(statistics=STATISTICS.drop("breakdown", "unit"))
    with pytest.raises(ValueError, match="must add up to 1, got 1.1"):
        export(settings=MergedExportSettings(validation_fraction=0.2))
    with pytest.raises(ValueError, match="test_fraction must lie in .0, 1., got -0.1"):
        export(settings=MergedExportSettings(train_fraction=1.0, validation_fraction=0.1, test_fraction=-0.1))
    with pytest.raises(ValueError, match="aligned_pairs holds no pairs"):
        export(pairs=pairs.head(0))
    (tmp_path / pairs["image_path"][-1]).unlink()
    with pytest.raises(FileNotFoundError, match=f"pair {pairs['pair_id'][-1]}: image .* is missing"):
        export()
    assert (folder / "README.md").read_text() == "the stored dataset"


def exported_rows(folder) -> pl.DataFrame:
    """Every split's metadata.parquet rows."""
    return pl.concat([pl.read_parquet(path) for path in sorted(folder.glob("*/metadata.parquet"))])


def test_each_pair_carries_its_curated_texts_and_a_stale_channel_is_named(tmp_path):
    pairs, boxes, _ = corpus(tmp_path)
    answered, rejected = pairs.filter(pl.col("channel") == "a")["pair_id"][0], pairs["pair_id"][-1]
    texts = {
        "caption": "A bright circle on CT.",
        "medical_text": "A bright circle on CT.",
        "roi_text": "this circle",
    }
    curated = model_answered(rules_curation(pairs), answered, **texts)
    curated = model_rejected(curated, rejected, "dropped heard terms: ct (1 of 1)")
    folder = tmp_path / "dataset"
    narratives, settings = narrative_rows(pairs), MergedExportSettings()
    export_all_channels(tmp_path, folder, pairs, curated, narratives, boxes, STATISTICS, settings)

    exported = exported_rows(folder)
    assert exported.height == pairs.height
    by_pair = {row["pair_id"]: row for row in exported.iter_rows(named=True)}
    model_row = by_pair[answered]
    assert [model_row[c] for c in ("corrected_caption", "medical_text", "roi_text")] == list(texts.values())
    assert model_row["text_source"] == "openai" and model_row["rejected_reason"] is None
    assert by_pair[rejected]["corrected_caption"] == pairs["corrected_caption"][-1]
    assert by_pair[rejected]["text_source"] == "rules"
    assert by_pair[rejected]["rejected_reason"] == "dropped heard terms: ct (1 of 1)"
    others = exported.filter(~pl.col("pair_id").is_in([answered, rejected]))
    assert set(others["text_source"]) == {"rules"} and others["rejected_reason"].is_null().all()
    assert others.sort("pair_id")["corrected_caption"].to_list() == (
        pairs.filter(~pl.col("pair_id").is_in([answered, rejected]))
        .sort("pair_id")["corrected_caption"]
        .to_list()
    )

    # curated_text older than the pairs: every channel lacking some is named, and nothing is written.
    stale = curated.filter((pl.col("channel") != "b") & (pl.col("pair_id") != rejected))
    with pytest.raises(ValueError) as raised:
        export_all_channels(tmp_path, folder, pairs, stale, narratives, boxes, STATISTICS, settings)
    b_ids = pairs.filter(pl.col("channel") == "b")["pair_id"].sort().to_list()
    assert str(raised.value) == (
        f"curated_text has no row for 12 pair(s) of channel 'b' ({', '.join(b_ids[:5])} and 7 more); "
        f"1 pair(s) of channel 'c' ({rejected}): it is older than aligned_pairs there. "
        "Materialize curated_text for channel(s) b, c, then export again"
    )
    assert exported_rows(folder).equals(exported)

    # Only the pairs exported need curated texts: not those of a copy of another lecture's video.
    videos = pairs.select("channel", "video_id").unique()
    videos = videos.with_columns(
        sha256=pl.when(pl.col("channel") == "b")
        .then(pl.concat_str(pl.lit("a/"), "video_id"))
        .otherwise(pl.concat_str("channel", pl.lit("/"), "video_id"))
    )
    without_b = curated.filter(pl.col("channel") != "b")
    export_all_channels(tmp_path, folder, pairs, without_b, narratives, boxes, STATISTICS, settings, videos)
    assert set(exported_rows(folder)["channel"]) == {"a", "c"}


def test_statistics_render_in_their_order_and_an_empty_table_says_so():
    table = statistics_table(STATISTICS)
    assert table.splitlines()[2] == "| n_pairs | overall | 33 | pairs |"
    assert statistics_table(STATISTICS.head(0)) == "No statistics were computed."


def test_one_picture_in_every_lecture_is_kept_in_one_split_and_the_card_says_so(tmp_path, offline_hf):
    import datasets

    pairs, boxes = pairs_and_boxes(tmp_path, n=12, lecture_size=4)  # 3 lectures
    first = pairs.row(0, named=True)
    shown_again = pairs.filter(pl.col("chunk_index").is_in([4, 8]))  # the first pair of the others
    for path in shown_again["image_path"]:
        shutil.copyfile(tmp_path / first["image_path"], tmp_path / path)
    pairs = pairs.with_columns(
        phash=pl.when(pl.col("chunk_index").is_in([0, 4, 8])).then(pl.lit(first["phash"])).otherwise("phash")
    )
    folder = tmp_path / "dataset"
    settings = MergedExportSettings()
    curated = rules_curation(pairs)
    summary = export_all_channels(
        tmp_path, folder, pairs, curated, narrative_rows(pairs), boxes, STATISTICS, settings
    )
    assert len(summary.dropped_pair_ids) == 2  # the copies outside the split that keeps the picture
    loaded = datasets.load_dataset(str(folder))
    assert list(loaded) == list(SPLITS) and sum(split.num_rows for split in loaded.values()) == 10
    card = (folder / "README.md").read_text()
    assert "so 2 pairs repeating a picture of an earlier split were left out" in card


def test_dagster_materializes_the_merged_export_from_every_channels_tables(
    layout, resources, instance, offline_hf
):
    import datasets

    pairs, boxes, _ = corpus(layout.data_root)
    tables = {
        "aligned_pairs": pairs,
        "curated_text": rules_curation(pairs),
        "narratives": narrative_rows(pairs),
        "boxes": boxes,
        "dataset_statistics": STATISTICS,
        # Every lecture its own video file: nothing is left out as a copy.
        "videos": pairs.select("channel", "video_id")
        .unique()
        .with_columns(sha256=pl.concat_str("channel", "video_id", separator="/")),
    }
    with duckdb.connect(str(layout.duckdb_path)) as con:  # as the IO manager would have stored them
        for name, frame in tables.items():
            con.register("frame", frame.to_arrow())
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    instance.add_dynamic_partitions("channel", ["a", "b", "c"])
    # The table dataset_statistics is made by its own asset; here it stands as a spec.
    assets = [*ASSETS, dg.AssetSpec("dataset_statistics"), dataset_export_all]

    result = dg.materialize(assets, selection=[dataset_export_all], resources=resources, instance=instance)
    [materialization] = result.asset_materializations_for_node("dataset_export_all")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    folder = layout.merged_dataset_dir
    assert metadata["folder"] == str(folder) and str(folder) in metadata["load_with"]
    assert sum(metadata[f"n_lectures_{name}"] for name in SPLITS) == 10
    assert metadata["n_dropped_as_duplicates"] == 0
    assert metadata["n_duplicate_lectures"] == 0 and metadata["n_pairs_of_duplicate_lectures"] == 0
    loaded = datasets.load_dataset(str(folder))
    assert {name: split.num_rows for name, split in loaded.items()} == {
        name: metadata[f"n_pairs_{name}"] for name in SPLITS
    }
    assert "| n_pairs | CT | 17 | pairs |" in (folder / "README.md").read_text()

    bad = dg.materialize(
        assets,
        selection=[dataset_export_all],
        resources=resources,
        instance=instance,
        run_config={"ops": {"dataset_export_all": {"config": {"test_fraction": 0.3}}}},
        raise_on_error=False,
    )
    assert "dataset_export_all config: train_fraction, validation_fraction and test_fraction must add up" in (
        step_failure(bad)
    )
    assert datasets.load_dataset(str(folder))["train"].num_rows == metadata["n_pairs_train"]

    # A dataset folder that is a link leading out of the data root is refused, and left alone.
    outside = layout.data_root.parent / "elsewhere"
    folder.rename(outside)
    folder.symlink_to(outside, target_is_directory=True)
    escaped = dg.materialize(
        assets, selection=[dataset_export_all], resources=resources, instance=instance, raise_on_error=False
    )
    assert "dataset_export_all: the merged dataset folder: " in step_failure(escaped)
    assert "outside the data root" in step_failure(escaped) and (outside / "README.md").is_file()
    folder.unlink()
    outside.rename(folder)

    # A channel whose curated_text is older than its pairs fails the export, named; the stored one stays.
    with duckdb.connect(str(layout.duckdb_path)) as con:
        con.execute("DELETE FROM curated_text WHERE channel = 'b'")
    stale = dg.materialize(
        assets, selection=[dataset_export_all], resources=resources, instance=instance, raise_on_error=False
    )
    error = step_failure(stale)
    assert "dataset_export_all: curated_text has no row for 12 pair(s) of channel 'b' (" in error
    assert "Materialize curated_text for channel(s) b, then export again" in error
    assert datasets.load_dataset(str(folder))["train"].num_rows == metadata["n_pairs_train"]

    # No pair in any channel (as the automation may find after a channel's run): nothing, and no failure.
    with duckdb.connect(str(layout.duckdb_path)) as con:
        con.execute("DELETE FROM aligned_pairs")
    empty = dg.materialize(assets, selection=[dataset_export_all], resources=resources, instance=instance)
    assert empty.success and not empty.asset_materializations_for_node("dataset_export_all")
    assert datasets.load_dataset(str(folder))["train"].num_rows == metadata["n_pairs_train"]

    # A data root without the table dataset_statistics: the step names it and what to run.
    with duckdb.connect(str(layout.duckdb_path)) as con:
        con.execute("DROP TABLE dataset_statistics")
    missing = dg.materialize(
        assets, selection=[dataset_export_all], resources=resources, instance=instance, raise_on_error=False
    )
    error = step_failure(missing)
    assert "input dataset_statistics: table main.dataset_statistics does not exist in " in error
    assert "Materialize it first: `mednarratives run`, or materialize dataset_statistics in the UI" in error

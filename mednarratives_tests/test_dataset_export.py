"""The narratives group through Dagster, from upstream tables to the exported dataset loaded back,
with each pair's texts from curated_text."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.defs.aligned_pairs import aligned_pairs
from mednarratives_assets.defs.boxes import boxes
from mednarratives_assets.defs.curated_text import curated_text
from mednarratives_assets.defs.cursor_traces import cursor_traces
from mednarratives_assets.defs.dataset_export import dataset_export
from mednarratives_assets.defs.narratives import narratives
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.transcripts import transcripts
from mednarratives_assets.defs.video_filter import video_filter
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.stages.curated_text import (
    PROMPT_VERSION,
    AnswerCache,
    CurationSettings,
    curate_channel,
)
from mednarratives_assets.stages.dataset_export import export_dataset
from mednarratives_tests.conftest import step_failure
from mednarratives_tests.narration_fixtures import REGION, box, narrate, narrated_channel

ASSETS = [
    videos,
    transcripts,
    stable_chunks,
    cursor_traces,
    narratives,
    boxes,
    video_filter,
    aligned_pairs,
    curated_text,
    dataset_export,
]
NARRATIVE_ASSETS = [narratives, boxes, video_filter, aligned_pairs, curated_text, dataset_export]
# The fixture's lectures last 14 s with 6 s of speech: real lectures say more.
SHORT_LECTURES = {"video_filter": {"config": {"min_speech_s": 5.0, "min_words": 20}}}


@pytest.fixture
def offline_hf(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def seed_upstream(layout, channels: dict[str, tuple[str, ...]]) -> None:
    """Write the upstream tables as the IO manager would have, one channel per partition."""
    frames: dict[str, list[pl.DataFrame]] = {}
    for channel, video_ids in channels.items():
        for name, frame in narrated_channel(layout.data_root, channel, video_ids).tables.items():
            frames.setdefault(name, []).append(frame)
    with duckdb.connect(str(layout.duckdb_path)) as con:
        for name, parts in frames.items():
            con.register("frame", pl.concat(parts).to_arrow())
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")


def rules_curation(pairs: pl.DataFrame) -> pl.DataFrame:
    """The curated_text rows of `pairs` (aligned_pairs) that the default backend, rules, gives."""
    return curate_channel(pairs, CurationSettings(), frozenset(), AnswerCache(None)).table


def with_curation(curated: pl.DataFrame, pair_id: str, **columns: str) -> pl.DataFrame:
    """`curated` with `columns` set in the pair's row."""
    chosen = pl.col("pair_id") == pair_id
    return curated.with_columns(
        pl.when(chosen).then(pl.lit(value)).otherwise(name).alias(name) for name, value in columns.items()
    )


def model_answered(curated: pl.DataFrame, pair_id: str, **texts: str) -> pl.DataFrame:
    """`curated` with the pair's caption, medical_text and roi_text a model's accepted answer."""
    asked = {"model": "gpt-4o-mini", "prompt_version": PROMPT_VERSION}
    return with_curation(curated, pair_id, **texts, text_source="openai", **asked)


def model_rejected(curated: pl.DataFrame, pair_id: str, reason: str) -> pl.DataFrame:
    """`curated` with the pair's model answer refused by a guard: the rules texts and the reason."""
    asked = {"model": "gpt-4o-mini", "prompt_version": PROMPT_VERSION}
    return with_curation(curated, pair_id, rejected_reason=reason, **asked)


def channel_pairs(data_root: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The pairs, narratives and boxes of the fixture's channel "ch" with one lecture."""
    from mednarratives_assets.asr.vocabulary import MedicalVocabulary
    from mednarratives_assets.stages.aligned_pairs import PairSettings, pair_channel

    tables = narrated_channel(data_root, "ch", ("a",)).tables
    told = narrate(tables)
    found = box(data_root, tables)
    pairs = pair_channel(
        data_root,
        data_root / "pairs",
        tables["stable_chunks"],
        told,
        found,
        tables["cursor_traces"],
        MedicalVocabulary(),
        PairSettings(),
        None,
    ).pairs
    return pairs, told, found


def test_the_export_loads_back_with_hugging_face_datasets(tmp_path, offline_hf):
    import datasets

    pairs, told, found = channel_pairs(tmp_path)
    summary = export_dataset(tmp_path, tmp_path / "export", "test", pairs, rules_curation(pairs), told, found)
    assert (summary.n_pairs, summary.n_boxes, summary.n_narratives) == (1, 3, 1)

    loaded = datasets.load_dataset(str(tmp_path / "export"), split="train")
    assert loaded.num_rows == 1
    row = loaded[0]
    assert row["image"].size == REGION[2:] and row["pair_id"] == pairs["pair_id"][0]
    assert row["caption"] == pairs["caption"][0] and row["domain"] == "CT"
    assert row["corrected_caption"] == pairs["corrected_caption"][0] and row["text_source"] == "rules"
    assert [b["phrase"] for b in row["boxes"]] == found["phrase"].to_list()
    assert np.allclose([b["x1"] for b in row["boxes"]], found["x1_norm"].to_list())
    [line] = (tmp_path / "export" / "narratives.jsonl").read_text().splitlines()
    assert json.loads(line)["image_id"] == row["pair_id"]
    assert (
        pl.read_parquet(tmp_path / "export" / "train" / "metadata.parquet")["file_name"][0]
        == f"{row['pair_id']}.png"
    )


def test_a_new_export_in_the_same_folder_is_read_anew_not_from_the_cache(tmp_path, offline_hf):
    import datasets

    pairs, told, found = channel_pairs(tmp_path)
    folder = tmp_path / "export"
    # datasets reads HF_HOME once, on import: a cache of this test's own keeps other tests' out.
    cache = tmp_path / "datasets-cache"
    for caption in ("as first exported", "corrected since"):  # same files, same counts
        curated = rules_curation(pairs).with_columns(caption=pl.lit(caption))
        export_dataset(tmp_path, folder, "test", pairs, curated, told, found)
        loaded = datasets.load_dataset(str(folder), split="train", cache_dir=str(cache))
        assert loaded["corrected_caption"] == [caption]


def test_a_missing_pair_image_is_named_and_the_stored_export_is_kept(tmp_path):
    tables = narrated_channel(tmp_path, "ch", ("a",)).tables
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "README.md").write_text("the stored export")
    pairs = pl.DataFrame(
        {"channel": "ch", "pair_id": "p1", "video_id": "a", "chunk_index": 0, "image_path": "pairs/ch/p1.png"}
    ).with_columns(corrected_caption=pl.lit("a cyst"), medical_text=pl.lit("a cyst"), roi_text=pl.lit(""))
    curated = rules_curation(pairs)
    with pytest.raises(FileNotFoundError, match=r"pair p1: image .*pairs/ch/p1.png is missing"):
        export_dataset(
            tmp_path, tmp_path / "export", "test", pairs, curated, pl.DataFrame(), tables["cursor_traces"]
        )
    assert (tmp_path / "export" / "README.md").read_text() == "the stored export"
    assert not (tmp_path / "export.partial").exists()


def exported_row(folder: Path) -> dict:
    [row] = pl.read_parquet(folder / "train" / "metadata.parquet").to_dicts()
    return row


def test_a_models_curated_texts_are_exported_beside_the_caption_as_heard(tmp_path):
    pairs, told, found = channel_pairs(tmp_path)
    texts = {
        "caption": "A hypodense lesion.",
        "medical_text": "A hypodense lesion.",
        "roi_text": "this lesion",
    }
    curated = model_answered(rules_curation(pairs), pairs["pair_id"][0], **texts)
    export_dataset(tmp_path, tmp_path / "export", "test", pairs, curated, told, found)
    row = exported_row(tmp_path / "export")
    assert row["caption"] == pairs["caption"][0]  # as heard
    assert (row["corrected_caption"], row["medical_text"], row["roi_text"]) == tuple(texts.values())
    assert row["text_source"] == "openai" and row["rejected_reason"] is None
    assert "`text_source` says which" in (tmp_path / "export" / "README.md").read_text()


def test_a_rejected_answer_is_exported_with_the_rules_texts_and_the_reason(tmp_path):
    pairs, told, found = channel_pairs(tmp_path)
    curated = model_rejected(rules_curation(pairs), pairs["pair_id"][0], "invented terms: glioma")
    export_dataset(tmp_path, tmp_path / "export", "test", pairs, curated, told, found)
    row = exported_row(tmp_path / "export")
    rules = pairs.row(0, named=True)
    assert [row[c] for c in ("corrected_caption", "medical_text", "roi_text")] == [
        rules[c] for c in ("corrected_caption", "medical_text", "roi_text")
    ]
    assert row["text_source"] == "rules" and row["rejected_reason"] == "invented terms: glioma"


def test_a_pair_curated_text_lacks_is_named_with_its_channel_and_the_stored_export_is_kept(tmp_path):
    pairs, told, found = channel_pairs(tmp_path)
    folder = tmp_path / "export"
    export_dataset(tmp_path, folder, "test", pairs, rules_curation(pairs), told, found)
    stored = (folder / "README.md").read_text()
    stale = rules_curation(pairs).head(0)  # curated_text not materialized since the pair was made
    with pytest.raises(ValueError) as raised:
        export_dataset(tmp_path, folder, "test", pairs, stale, told, found)
    assert str(raised.value) == (
        f"curated_text has no row for 1 pair(s) of channel 'ch' ({pairs['pair_id'][0]}): it is older "
        "than aligned_pairs there. Materialize curated_text for channel(s) ch, then export again"
    )
    assert (folder / "README.md").read_text() == stored and exported_row(folder)["text_source"] == "rules"


def test_the_narratives_group_materializes_its_tables_files_and_checks(
    layout, resources, instance, offline_hf
):
    import datasets

    seed_upstream(layout, {"ch": ("a", "b"), "other": ("c",)})
    instance.add_dynamic_partitions("channel", ["ch", "other"])
    without_removal = {"ops": {"aligned_pairs": {"config": {"remove_pointers": False}}, **SHORT_LECTURES}}
    for channel in ("ch", "other"):
        result = dg.materialize(
            ASSETS,
            selection=NARRATIVE_ASSETS,
            partition_key=channel,
            resources=resources,
            instance=instance,
            run_config=without_removal,
        )
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {
            "trace_times_inside_their_chunk": True,
            "boxes_inside_the_image": True,
            "every_pair_has_a_caption": True,
            "pair_ids_are_unique": True,
        }
    [materialization] = result.asset_materializations_for_node("boxes")
    assert "data:image/png;base64," in materialization.metadata["boxes c #1"].value
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        counts = dict(con.sql("SELECT channel, count(*) FROM aligned_pairs GROUP BY ALL").fetchall())
        n_boxes = con.sql("SELECT count(*) FROM boxes WHERE channel = 'ch'").fetchone()[0]
        n_narratives = con.sql("SELECT count(*) FROM narratives").fetchone()[0]
    assert counts == {"ch": 1, "other": 1}  # video b repeats a's image
    assert n_boxes == 6 and n_narratives == 3
    assert len((layout.narratives_dir / "ch.jsonl").read_text().splitlines()) == 2
    assert datasets.load_dataset(str(layout.exports_dir / "other"), split="train").num_rows == 1
    # The default backend, rules: the exported texts are aligned_pairs' own, from curated_text.
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        rules_texts = con.sql(
            "SELECT pair_id, corrected_caption, medical_text, roi_text FROM aligned_pairs "
            "WHERE channel = 'ch'"
        ).fetchall()
    exported = pl.read_parquet(layout.exports_dir / "ch" / "train" / "metadata.parquet")
    assert exported.select("pair_id", "corrected_caption", "medical_text", "roi_text").rows() == rules_texts
    assert exported["text_source"].to_list() == ["rules"]

    bad = dg.materialize(
        ASSETS,
        selection=[narratives],
        partition_key="ch",
        resources=resources,
        instance=instance,
        run_config={"ops": {"narratives": {"config": {"padding_s": -1.0}}}},
        raise_on_error=False,
    )
    error = step_failure(bad)
    assert "narratives: padding_s=-1.0 must be between 0 and 5 seconds" in error
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM narratives").fetchone()[0] == 3
    assert len((layout.narratives_dir / "ch.jsonl").read_text().splitlines()) == 2

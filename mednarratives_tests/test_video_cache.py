"""The per-video cache: keys, damaged entries, the machine's faults, and the stages after the traces
recomputing only the videos whose inputs changed."""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.stages.aligned_pairs import PairSettings, pair_channel
from mednarratives_assets.stages.boxes import BoxSettings, box_channel
from mednarratives_assets.stages.narratives import NarrativeSettings, narrate_channel
from mednarratives_assets.video_cache import StageCache, content_key
from mednarratives_tests.narration_fixtures import narrated_channel

ROWS = pl.DataFrame({"video_id": ["a", "a"], "t_s": [0.1, 0.2]})


def test_the_key_changes_with_every_part_it_covers():
    base = {"stage": "boxes", "settings": BoxSettings(), "models": {"detector": "f1"}, "inputs": ROWS}
    key = content_key(**base)
    assert content_key(**base) == key
    changed = [
        base | {"settings": replace(BoxSettings(), min_dwell_s=0.7)},
        base | {"models": {"detector": "f2"}},
        base | {"inputs": ROWS.with_columns(t_s=pl.Series([0.1, 0.25]))},
        base | {"stage": "narratives"},
    ]
    assert len({content_key(**parts) for parts in changed} | {key}) == len(changed) + 1


def test_a_damaged_entry_is_computed_again(tmp_path):
    cache = StageCache.open(tmp_path, "stage", "ch", pl.DataFrame({"video_id": ["a"], "sha256": ["s"]}), {})
    calls = []

    def compute():
        calls.append(1)
        return {"rows": ROWS}

    cache.cached("a", {}, ("rows",), compute)
    [entry] = (tmp_path / "stage").glob("*/*/rows.parquet")
    entry.write_bytes(b"not parquet")
    frames, from_cache = cache.cached("a", {}, ("rows",), compute)
    assert not from_cache and len(calls) == 2 and frames["rows"].equals(ROWS)
    assert cache.cached("a", {}, ("rows",), compute)[1]


def test_a_full_disk_while_storing_propagates_and_leaves_no_entry(tmp_path, monkeypatch):
    cache = StageCache.open(tmp_path, "stage", "ch", pl.DataFrame({"video_id": ["a"], "sha256": ["s"]}), {})

    def disk_full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pl.DataFrame, "write_parquet", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        cache.cached("a", {}, ("rows",), lambda: {"rows": ROWS})
    assert not list((tmp_path / "stage").glob("*/*/rows.parquet"))
    assert cache.computed == []


class Downstream:
    """narratives, boxes and aligned_pairs of a channel, each through its own per-video cache."""

    def __init__(self, root: Path, tables: dict[str, pl.DataFrame]):
        self.root, self.tables = root, tables

    def run(self, boxes_settings: BoxSettings | None = None) -> dict:
        t, root = self.tables, self.root
        boxes_settings = boxes_settings or BoxSettings()

        def cache(stage: str, settings) -> StageCache:
            return StageCache.open(root / "cache", stage, "ch", t["videos"], settings)

        caches = {
            "narratives": cache("narratives", NarrativeSettings()),
            "boxes": cache("boxes", boxes_settings),
            "aligned_pairs": cache("aligned_pairs", PairSettings()),
        }
        narratives = narrate_channel(
            t["videos"],
            t["stable_chunks"],
            t["cursor_traces"],
            t["transcript_words"],
            NarrativeSettings(),
            caches["narratives"],
        )
        boxes = box_channel(
            root,
            t["stable_chunks"],
            t["cursor_traces"],
            t["transcript_words"],
            boxes_settings,
            log=pytest.fail,
            cache=caches["boxes"],
        )
        pairs = pair_channel(
            root,
            Path("pairs/ch"),
            t["stable_chunks"],
            narratives,
            boxes,
            t["cursor_traces"],
            MedicalVocabulary(),
            PairSettings(duplicate_distance=0),
            None,
            log=pytest.fail,
            cache=caches["aligned_pairs"],
        ).pairs
        return {
            "tables": {"narratives": narratives, "boxes": boxes, "aligned_pairs": pairs},
            "computed": {stage: sorted(c.computed) for stage, c in caches.items()},
            "reused": {stage: sorted(c.reused) for stage, c in caches.items()},
        }


def every_stage(videos: list[str]) -> dict[str, list[str]]:
    return dict.fromkeys(("narratives", "boxes", "aligned_pairs"), videos)


def test_after_the_traces_only_new_or_changed_videos_are_computed_and_removed_ones_vanish(tmp_path):
    channel = narrated_channel(tmp_path, video_ids=("a", "b", "c"))
    tables = channel.tables | {
        "videos": channel.tables["videos"].with_columns(sha256=pl.col("video_id") + "-sha")
    }
    downstream = Downstream(tmp_path, tables)
    first = downstream.run()
    assert first["computed"] == every_stage(["a", "b", "c"])
    pairs = first["tables"]["aligned_pairs"]
    # The three videos show one slide: with no pHash slack it is still one image, kept once.
    assert pairs["video_id"].to_list() == ["a"]

    again = downstream.run()
    assert again["computed"] == every_stage([]) and again["reused"] == every_stage(["a", "b", "c"])
    for name, table in first["tables"].items():
        assert table.equals(again["tables"][name]), name

    # Video b's pointer moved one pixel: its narrative, boxes and pair are made again, no others.
    traces = tables["cursor_traces"]
    downstream.tables = tables | {
        "cursor_traces": traces.with_columns(
            pl.when(pl.col("video_id") == "b")
            .then(pl.col("x_px") + 1)
            .otherwise(pl.col("x_px"))
            .alias("x_px")
        )
    }
    moved = downstream.run()
    assert moved["computed"] == every_stage(["b"]) and moved["reused"] == every_stage(["a", "c"])

    # A boxes setting changes boxes and what reads them; narratives stay.
    wider = downstream.run(replace(BoxSettings(), min_side=0.15))
    assert wider["computed"] == {"narratives": [], "boxes": ["a", "b", "c"], "aligned_pairs": ["a", "b", "c"]}

    # Video a is removed: its rows go, and b's pair (a duplicate until now) takes its place.
    downstream.tables = {
        name: table.filter(pl.col("video_id") != "a") for name, table in downstream.tables.items()
    }
    removed = downstream.run()
    assert removed["computed"] == every_stage([])
    for name, table in removed["tables"].items():
        assert "a" not in table["video_id"].to_list(), name
    [pair] = removed["tables"]["aligned_pairs"].iter_rows(named=True)
    assert pair["video_id"] == "b"
    assert [p.name for p in (tmp_path / "pairs" / "ch").iterdir()] == [f"{pair['pair_id']}.png"]


def test_a_stage_cache_that_leads_out_of_the_data_root_is_refused(layout, tmp_path):
    from mednarratives_assets.defs.resources import DataPaths
    from mednarratives_assets.settings import OutsideDataRoot

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    layout.cache_dir.mkdir(parents=True)
    (layout.cache_dir / "boxes").symlink_to(elsewhere)
    paths = DataPaths(data_root=str(layout.data_root), duckdb_path=str(layout.duckdb_path))
    videos = pl.DataFrame({"video_id": ["a"], "sha256": ["s"]})
    with pytest.raises(OutsideDataRoot, match="the boxes cache"):
        paths.stage_cache("boxes", "ch", videos, BoxSettings())
    assert (
        paths.stage_cache("narratives", "ch", videos, NarrativeSettings()).folder
        == layout.cache_dir / "narratives"
    )

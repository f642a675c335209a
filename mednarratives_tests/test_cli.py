"""`mednarratives ingest`: every channel on disk, in-process, with a summary."""

from __future__ import annotations

import pytest

from mednarratives_assets import cli
from mednarratives_assets.tables import table_counts
from mednarratives_tests.conftest import make_video


def test_ingest_adds_partitions_and_materializes_every_channel(layout, instance):
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    make_video(layout.channel_dir("chest") / "cxr.mp4")
    (layout.channel_dir("chest") / "broken.mp4").write_bytes(b"\x00" * 100)

    assert cli.ingest(layout, instance) == {"chest": True, "neuro": True}
    assert sorted(instance.get_dynamic_partitions("channel")) == ["chest", "neuro"]
    assert table_counts(layout.duckdb_path) == {"videos": 3}
    assert cli.ingest(layout, instance, ["neuro"]) == {"neuro": True}
    assert table_counts(layout.duckdb_path) == {"videos": 3}


def test_unknown_channel_is_named(layout, instance):
    with pytest.raises(SystemExit, match=r"no such channel .*\['nope'\]"):
        cli.ingest(layout, instance, ["nope"])


def test_main_prints_the_summary(layout, monkeypatch, capsys):
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(layout.data_root))
    monkeypatch.delenv("MEDNARRATIVES_DUCKDB", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["ingest"]) == 0
    out = capsys.readouterr().out
    assert "neuro: ok" in out and "videos: 1 rows" in out and str(layout.duckdb_path) in out

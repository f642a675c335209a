"""Partition writes replace rows in one transaction, and writers wait for, then name, another process
holding DuckDB's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import dagster as dg
import duckdb
import polars as pl
import pytest

from mednarratives_assets.defs.duckdb_tables import DuckDBTablesIOManager
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.tables import table_counts
from mednarratives_tests.conftest import make_video, step_failure


def video_counts(layout) -> dict[str, int]:
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        return dict(con.sql("SELECT channel, count(*) FROM main.videos GROUP BY channel").fetchall())


def test_rematerializing_a_partition_replaces_its_rows(layout, resources, instance):
    for channel, n in (("neuro", 2), ("chest", 3)):
        for i in range(n):
            make_video(layout.channel_dir(channel) / f"{channel}_{i}.mp4", seconds=0.5)
    instance.add_dynamic_partitions("channel", ["neuro", "chest"])

    for _ in range(2):
        for channel in ("neuro", "chest"):
            assert dg.materialize(
                [videos], partition_key=channel, resources=resources, instance=instance
            ).success
    assert video_counts(layout) == {"neuro": 2, "chest": 3}

    (layout.channel_dir("chest") / "chest_0.mp4").unlink()
    dg.materialize([videos], partition_key="chest", resources=resources, instance=instance)
    assert video_counts(layout) == {"neuro": 2, "chest": 2}

    for path in layout.channel_dir("neuro").iterdir():
        path.unlink()
    dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance)
    assert video_counts(layout) == {"chest": 2}


HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS lock_probe AS SELECT 1 AS x")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_write_waits_for_another_process_holding_the_lock(layout, resources, instance):
    make_video(layout.channel_dir("neuro") / "mri.mp4", seconds=0.5)
    instance.add_dynamic_partitions("channel", ["neuro"])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(layout.duckdb_path), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert holder.poll() is None, "the holder should still hold the write lock"
        result = dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance)
    finally:
        holder.wait(timeout=30)
    assert result.success
    assert holder.returncode == 0
    assert video_counts(layout) == {"neuro": 1}


def test_runs_in_separate_processes_at_once_all_land(layout):
    """Three processes ingest three channels at the same moment, with no pool to serialize them."""
    channels = {"neuro": 3, "chest": 4, "msk": 2}
    for channel, n in channels.items():
        for i in range(n):
            make_video(layout.channel_dir(channel) / f"{channel}_{i}.mp4", seconds=0.5)
    env = {**os.environ, "MEDNARRATIVES_DATA_ROOT": str(layout.data_root)}
    env.pop("DAGSTER_HOME", None)
    env.pop("MEDNARRATIVES_DUCKDB", None)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mednarratives_assets.cli", "ingest", "--channel", channel],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for channel in channels
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    assert video_counts(layout) == channels


def test_readers_wait_for_a_writer_then_read(layout):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(layout.duckdb_path), "2"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert holder.poll() is None
        assert table_counts(layout.duckdb_path) == {"lock_probe": 1}
    finally:
        holder.wait(timeout=30)


def test_an_asset_without_rows_still_creates_its_table_for_the_assets_that_read_it(
    resources, instance, layout
):
    @dg.asset
    def nothing_yet() -> pl.DataFrame:
        return pl.DataFrame(schema={"video_id": pl.Utf8, "score": pl.Float32})

    @dg.asset
    def reader(nothing_yet: pl.DataFrame) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"columns": nothing_yet.columns, "rows": nothing_yet.height})

    result = dg.materialize([nothing_yet, reader], resources=resources, instance=instance)
    metadata = result.asset_materializations_for_node("reader")[0].metadata
    assert metadata["columns"].value == ["video_id", "score"] and metadata["rows"].value == 0
    assert table_counts(layout.duckdb_path)["nothing_yet"] == 0


def test_a_new_column_joins_the_table_and_the_rows_already_stored_keep_theirs(resources, instance, layout):
    partitions = dg.StaticPartitionsDefinition(["old", "new"])

    @dg.asset(partitions_def=partitions, metadata={"partition_expr": "channel"})
    def evolving(context) -> pl.DataFrame:
        rows = {"channel": [context.partition_key], "score": [1.0]}
        if context.partition_key == "new":  # a later version of the asset adds a column before `score`
            rows = {"channel": ["new"], "n_items": [3], "score": [2.0]}
        return pl.DataFrame(rows)

    for key in ("old", "new", "new"):
        dg.materialize([evolving], partition_key=key, resources=resources, instance=instance)
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        rows = con.sql("SELECT channel, score, n_items FROM evolving ORDER BY channel").fetchall()
    assert rows == [("new", 2.0, 3), ("old", 1.0, None)]


KILLED_BETWEEN_DELETE_AND_INSERT = """
import os, signal, sys
from pathlib import Path

import dagster as dg
import dagster_duckdb_polars

from mednarratives_assets.defs import duckdb_tables
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.settings import DataLayout

root = Path(sys.argv[1])
resources = build_resources(DataLayout.at(root))
if sys.argv[2] == "stock":  # dagster-duckdb-polars as shipped: each statement commits on its own
    resources["io_manager"] = dagster_duckdb_polars.DuckDBPolarsIOManager(
        database=str(root / "mednarratives.duckdb"), schema="main"
    )


def killed(*args, **kwargs):  # the rows were deleted; the insert never happens
    os.kill(os.getpid(), signal.SIGKILL)


duckdb_tables.DuckDBTablesPolarsTypeHandler.handle_output = killed
dagster_duckdb_polars.DuckDBPolarsTypeHandler.handle_output = killed
with dg.DagsterInstance.ephemeral() as instance:
    instance.add_dynamic_partitions("channel", ["neuro"])
    dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance)
"""


@pytest.mark.parametrize("io_manager, rows_after_the_kill", [("ours", 2), ("stock", 0)])
def test_a_writer_killed_between_delete_and_insert_leaves_the_old_rows(
    layout, resources, instance, io_manager, rows_after_the_kill
):
    """Ours commits delete and insert together; the stock client shows what the test would catch."""
    for name in ("mri", "ct"):
        make_video(layout.channel_dir("neuro") / f"{name}.mp4", seconds=0.5)
    instance.add_dynamic_partitions("channel", ["neuro"])
    assert dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance).success
    make_video(layout.channel_dir("neuro") / "xray.mp4", seconds=0.5)

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BETWEEN_DELETE_AND_INSERT, str(layout.data_root), io_manager],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert video_counts(layout).get("neuro", 0) == rows_after_the_kill


def test_a_reader_holding_the_file_gets_a_message_naming_it_and_what_to_close(layout, instance):
    make_video(layout.channel_dir("neuro") / "mri.mp4", seconds=0.5)
    instance.add_dynamic_partitions("channel", ["neuro"])
    resources = build_resources(layout) | {
        "io_manager": DuckDBTablesIOManager(database=str(layout.duckdb_path), schema="main", lock_wait_s=1.0)
    }
    # Held until killed: the step's reads of the stored tables wait for the lock first (about 60 s
    # in all), so a holder that let go after 60 s raced the write this test is about.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(layout.duckdb_path), "600"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = dg.materialize(
            [videos], partition_key="neuro", resources=resources, instance=instance, raise_on_error=False
        )
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not result.success
    message = step_failure(result)
    assert str(layout.duckdb_path) in message and f"process {holder.pid}" in message
    assert "Close that connection" in message
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(f"process {holder.pid}" in line and "waiting" in line for line in logged)

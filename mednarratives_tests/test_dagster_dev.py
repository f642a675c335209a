"""End to end through `dagster dev`: the UI serves the asset graph, and a backfill over four
channels runs beside the sensor's own runs, two at a time, without tripping over DuckDB's
single-writer lock; then the automation sensor brings every asset in sync with the backfill."""

from __future__ import annotations

import os
import shutil
import sys
import time

import dagster as dg
import duckdb
import pytest
import requests

from mednarratives_assets.evaluation.automation_replay import unsynced
from mednarratives_assets.settings import INSTANCE_CONFIG
from mednarratives_tests.conftest import make_video
from mednarratives_tests.servers import running_server, wait_until

pytestmark = pytest.mark.integration

CHANNELS = {"neuro_rounds": 2, "chest_imaging": 3, "msk_review": 1, "abdomen_cases": 2}

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}"""
ASSET_NODES = "{ assetNodes { assetKey { path } isPartitioned } }"
# The automation sensor ticks every 30 s; this long without a new run, it has nothing left to do.
QUIET_S = 90


@pytest.fixture
def dagster_dev(tmp_path, layout, default_frame_classifier, default_cursor_detector):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    # stable_chunks and cursor_traces in the sensor's runs need them
    for channel, n in CHANNELS.items():
        for i in range(n):
            make_video(layout.channel_dir(channel) / f"lecture_{i}.mp4", seconds=0.5)
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEDNARRATIVES_DATA_ROOT": str(layout.data_root)}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        "workspace.yaml",
        "-h",
        "127.0.0.1",
        "-p",
        "{port}",
    ]

    def up(url: str) -> bool:
        try:
            return requests.get(f"{url}/server_info", timeout=2).ok
        except requests.ConnectionError:
            return False

    with running_server(command, env, tmp_path / "dagster_dev.log", up) as url:
        yield url, home


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def most_at_once(records) -> int:
    """The largest number of runs that were running at one moment."""
    events = sorted(
        [(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records], key=lambda e: (e[0], e[1])
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_ui_graph_and_backfill_over_four_channels_two_at_a_time(dagster_dev, layout):
    url, home = dagster_dev
    assert "<html" in requests.get(url, timeout=10).text.lower()
    nodes = {tuple(n["assetKey"]["path"]): n for n in graphql(url, ASSET_NODES)["assetNodes"]}
    assert nodes[("videos",)]["isPartitioned"] and nodes[("video_downloads",)]["isPartitioned"]

    # The sensor's first tick adds the channels; the backfill targets those partitions.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        wait_until(
            lambda: set(instance.get_dynamic_partitions("channel")) == set(CHANNELS),
            120,
            "channel partitions",
        )
    params = {
        "partitionNames": sorted(CHANNELS),
        "assetSelection": [
            {"path": [asset]} for asset in ("video_downloads", "videos", "stable_chunks", "cursor_traces")
        ],
        "title": "all channels",
    }
    launched = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def backfill_done():
        status = graphql(url, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        return status if status not in ("REQUESTED", "CANCELING") else None

    assert wait_until(backfill_done, 420, "the backfill", poll_s=2) in ("COMPLETED", "COMPLETED_SUCCESS")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The automation sensor (every 30 s) follows the backfill with the channels' later assets
        # and the dataset: quiet once a minute and a half passes with every run finished.
        quiet_since: dict[frozenset, float] = {}

        def all_runs_finished_and_quiet():
            records = instance.get_run_records()
            if not records or not all(r.dagster_run.is_finished for r in records):
                return None
            since = quiet_since.setdefault(frozenset(r.dagster_run.run_id for r in records), time.monotonic())
            return records if time.monotonic() - since > QUIET_S else None

        records = wait_until(all_runs_finished_and_quiet, 600, "every run to finish", poll_s=2)
        from mednarratives_assets.definitions import defs

        stale = unsynced(defs, instance, CHANNELS)
    statuses = {r.dagster_run.run_id: r.dagster_run.status for r in records}
    assert all(s == dg.DagsterRunStatus.SUCCESS for s in statuses.values()), statuses
    backfill_runs = [r for r in records if r.dagster_run.tags.get("dagster/backfill") == backfill_id]
    assert len(backfill_runs) == len(CHANNELS)
    # No pool serializes the steps: channels compute at once, up to max_concurrent_runs (2).
    assert most_at_once(records) == 2
    sensor_runs = [r for r in records if r.dagster_run.tags.get("dagster/sensor_name") == "new_video_sensor"]
    assert {r.dagster_run.tags["dagster/partition"] for r in sensor_runs} == set(CHANNELS)
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        counts = dict(con.sql("SELECT channel, count(*) FROM main.videos GROUP BY channel").fetchall())
        duplicates = con.sql(
            "SELECT count(*) FROM"
            " (SELECT channel, video_id FROM main.videos GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
    assert counts == CHANNELS
    assert duplicates == 0
    assert stale == [], "the automation left these unsynced"

"""The cluster profile's parts on one machine: channel tables as Parquet objects on an S3 server
(moto, on 127.0.0.1), published into DuckDB with the local profile's tables and columns, the
profile's settings and their errors, the Celery executor and the GPU queue tag."""

import json
import os
import subprocess
import sys

import boto3
import dagster as dg
import duckdb
import polars as pl
import pytest
from upath import UPath

from mednarratives_assets.channels import InvalidChannelName
from mednarratives_assets.cli import main as cli_main
from mednarratives_assets.cluster.celery_settings import celery_settings
from mednarratives_assets.definitions import build_definitions
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.deployment import Deployment, DeploymentError
from mednarratives_assets.parquet_tables import publish, stored_table, table_object, write_table
from mednarratives_tests.conftest import make_video
from mednarratives_tests.servers import answers_http, running_server

BUCKET = "mednarratives-test"
CHANNELS = ("radiology", "pathology")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A moto S3 server on a free loopback port, with one bucket; the AWS_* environment points at it."""
    keys = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"]
    with running_server(command, {**os.environ, **keys}, log, answers_http, poll_s=0.2) as url:
        saved = {name: os.environ.get(name) for name in [*keys, "AWS_ENDPOINT_URL"]}
        os.environ.update(keys, AWS_ENDPOINT_URL=url)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        try:
            yield url
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture
def tables_url(s3_server, request):
    return f"s3://{BUCKET}/{request.node.name.replace('[', '-').replace(']', '')}"


def cluster(tables_url: str) -> Deployment:
    return Deployment(profile="cluster", tables_url=tables_url, celery_broker="redis://127.0.0.1:1/0")


def test_an_object_round_trips_and_names_are_checked(tables_url):
    frame = pl.DataFrame({"channel": ["radiology"], "video_id": ["chest"], "n": [3]})
    write_table(frame, table_object(tables_url, "videos", "radiology"))
    assert stored_table(tables_url, "videos", "radiology").equals(frame)
    assert stored_table(tables_url, "videos", "pathology") is None
    assert UPath(tables_url).joinpath("videos", "radiology.parquet").exists()
    with pytest.raises(InvalidChannelName):
        table_object(tables_url, "videos", "../outside")


def test_an_asset_that_reads_every_channel_gets_their_rows_in_one_frame(layout, instance, tables_url):
    """As dataset_statistics and the CLIP models read a channel table from the Parquet store."""
    partitions = dg.DynamicPartitionsDefinition(name="channel")
    instance.add_dynamic_partitions("channel", list(CHANNELS))

    @dg.asset(partitions_def=partitions)
    def rows(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return pl.DataFrame({"channel": [context.partition_key], "n": [len(context.partition_key)]})

    @dg.asset
    def every_channel(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.sort("channel")

    io_manager = build_resources(layout, cluster(tables_url))["io_manager"]
    for channel in CHANNELS:
        dg.materialize([rows], partition_key=channel, resources={"io_manager": io_manager}, instance=instance)
    result = dg.materialize(
        [rows, every_channel],
        selection=[every_channel],
        resources={"io_manager": io_manager},
        instance=instance,
    )
    assert result.output_for_node("every_channel").to_dicts() == [
        {"channel": "pathology", "n": 9},
        {"channel": "radiology", "n": 9},
    ]


def materialize(
    layout, instance, deployment: Deployment | None, channel: str, **run
) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [video_downloads, videos],
        partition_key=channel,
        resources=build_resources(layout, deployment),
        instance=instance,
        **run,
    )
    assert result.success
    return result


def test_tables_on_s3_publish_into_duckdb_as_the_local_profile_writes_them(tmp_path, s3_server, tables_url):
    layouts = {}
    for profile in ("local", "cluster"):
        from mednarratives_assets.settings import DataLayout

        layout = DataLayout.at(tmp_path / profile)
        for channel in CHANNELS:
            make_video(layout.channel_dir(channel) / "lecture_one.mp4")
        make_video(layout.channel_dir("radiology") / "lecture_two.mp4", seconds=2.0)
        (layout.channel_dir("pathology") / "broken.mp4").write_bytes(b"not a video")
        deployment = cluster(tables_url) if profile == "cluster" else None
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("channel", list(CHANNELS))
            for channel in CHANNELS:
                materialize(layout, instance, deployment, channel)
            if profile == "cluster":
                assert not layout.duckdb_path.exists()  # no step opened it
                again = materialize(
                    layout,
                    instance,
                    deployment,
                    "radiology",
                    run_config={"ops": {"videos": {"config": {"skip_if_current": True}}}},
                )
                # the channel is current: the run's table objects count as present
                assert {e.asset_key.path[0] for e in again.get_asset_materialization_events()} == {
                    "video_downloads"
                }
        layouts[profile] = layout
    counts = publish(tables_url, layouts["cluster"].duckdb_path, log=lambda _: None)
    assert counts == {"video_downloads": 0, "videos": 4}

    def table(profile: str, name: str):
        with duckdb.connect(str(layouts[profile].duckdb_path), read_only=True) as con:
            columns = [(c, t) for c, t, *_ in con.execute(f"describe {name}").fetchall()]
            rows = con.execute(
                f"select channel, video_id, status, sha256 from {name} order by all"
            ).fetchall()
            return columns, rows

    local_columns, local_rows = table("local", "videos")
    cluster_columns, cluster_rows = table("cluster", "videos")
    assert cluster_columns == local_columns
    assert [r[:3] for r in cluster_rows] == [r[:3] for r in local_rows]
    assert ("pathology", "broken", "error") in [r[:3] for r in cluster_rows]
    # publishing again replaces the tables rather than adding rows
    assert publish(tables_url, layouts["cluster"].duckdb_path, log=lambda _: None)["videos"] == 4


def test_settings_and_their_errors():
    assert Deployment.from_env({}) == Deployment()
    with pytest.raises(DeploymentError, match="MEDNARRATIVES_PROFILE='k8s'"):
        Deployment.from_env({"MEDNARRATIVES_PROFILE": "k8s"})
    with pytest.raises(DeploymentError, match="MEDNARRATIVES_TABLES_URL and MEDNARRATIVES_CELERY_BROKER"):
        Deployment.from_env({"MEDNARRATIVES_PROFILE": "cluster"})
    deployment = Deployment.from_env(
        {
            "MEDNARRATIVES_PROFILE": "cluster",
            "MEDNARRATIVES_TABLES_URL": "s3://b/t",
            "MEDNARRATIVES_CELERY_BROKER": "redis://h:6379/0",
            "MEDNARRATIVES_GPU_QUEUE": "gpu",
        }
    )
    assert deployment.celery_backend == "redis://h:6379/0"
    assert deployment.visibility_timeout_s == 3600
    with pytest.raises(DeploymentError, match="MEDNARRATIVES_CELERY_VISIBILITY_TIMEOUT_S='soon'"):
        Deployment.from_env(
            {
                "MEDNARRATIVES_PROFILE": "cluster",
                "MEDNARRATIVES_TABLES_URL": "s3://b/t",
                "MEDNARRATIVES_CELERY_BROKER": "redis://h:6379/0",
                "MEDNARRATIVES_CELERY_VISIBILITY_TIMEOUT_S": "soon",
            }
        )
    assert deployment.queue_tags(gpu_heavy=True) == {"dagster-celery/queue": "gpu"}
    assert deployment.queue_tags(gpu_heavy=False) == {}
    assert Deployment().queue_tags(gpu_heavy=True) == {}


def test_the_cluster_definitions_use_celery_and_publish(layout):
    defs = build_definitions(layout, cluster("s3://bucket/tables"))
    job = defs.resolve_job_def("channel_pipeline_job")
    assert job.executor_def.name == "celery"
    settings = celery_settings(cluster("s3://bucket/tables"))
    assert settings["task_acks_late"] and settings["broker_transport_options"]["visibility_timeout"] == 3600
    assert "published_tables" not in {key.path[0] for key in job.asset_layer.executable_asset_keys}
    assert defs.resolve_assets_def("published_tables") is not None
    local = build_definitions(layout, Deployment())
    assert local.resolve_job_def("channel_pipeline_job").executor_def.name == "in_process"
    with pytest.raises(Exception, match="published_tables"):
        local.resolve_assets_def("published_tables")


def test_gpu_heavy_steps_carry_the_queue_tag():
    script = (
        "import json; from mednarratives_assets.definitions import defs; "
        "job = defs.resolve_job_def('channel_pipeline_job'); "
        "print(json.dumps({n.name: dict(n.definition.tags) for n in job.graph.node_dict.values()}))"
    )
    env = {
        **os.environ,
        "MEDNARRATIVES_PROFILE": "cluster",
        "MEDNARRATIVES_TABLES_URL": "s3://bucket/tables",
        "MEDNARRATIVES_CELERY_BROKER": "redis://127.0.0.1:1/0",
        "MEDNARRATIVES_GPU_QUEUE": "gpu",
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    tags = json.loads(out.stdout.strip().splitlines()[-1])
    assert tags["transcripts"] == tags["cursor_traces"] == {"dagster-celery/queue": "gpu"}
    assert tags["videos"] == tags["stable_chunks"] == {}


def test_publish_command(monkeypatch, tmp_path, tables_url, capsys):
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("MEDNARRATIVES_PROFILE", raising=False)
    with pytest.raises(SystemExit, match="publish gathers the cluster profile"):
        cli_main(["publish"])
    write_table(
        pl.DataFrame({"channel": ["radiology"], "n": [1]}), table_object(tables_url, "videos", "radiology")
    )
    monkeypatch.setenv("MEDNARRATIVES_PROFILE", "cluster")
    monkeypatch.setenv("MEDNARRATIVES_TABLES_URL", tables_url)
    monkeypatch.setenv("MEDNARRATIVES_CELERY_BROKER", "redis://127.0.0.1:1/0")
    assert cli_main(["publish"]) == 0
    assert "1 tables, 1 rows" in capsys.readouterr().out
    with duckdb.connect(str(tmp_path / "data" / "mednarratives.duckdb"), read_only=True) as con:
        assert con.execute("select n from videos").fetchall() == [(1,)]


def test_workers_meet_runs_on_the_executors_broker():
    script = (
        "from mednarratives_assets.cluster.celery_worker import app, execute_plan; "
        "from dagster_celery.config import TASK_EXECUTE_PLAN_NAME; "
        "print(app.conf.broker_url, app.conf.result_backend, execute_plan.name == TASK_EXECUTE_PLAN_NAME, "
        "app.conf.task_acks_late, app.conf.task_reject_on_worker_lost, "
        "app.conf.broker_transport_options['visibility_timeout'])"
    )
    env = {
        **os.environ,
        "MEDNARRATIVES_PROFILE": "cluster",
        "MEDNARRATIVES_TABLES_URL": "s3://bucket/tables",
        "MEDNARRATIVES_CELERY_BROKER": "redis://127.0.0.1:6390/0",
        "MEDNARRATIVES_CELERY_BACKEND": "redis://127.0.0.1:6390/1",
        "MEDNARRATIVES_CELERY_VISIBILITY_TIMEOUT_S": "7200",
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    broker, backend, *settings = out.stdout.split()
    assert (broker, backend) == ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/1")
    assert settings == ["True", "True", "True", "7200"]  # a dead worker's task goes to another one

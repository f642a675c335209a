"""The cluster profile end to end, on 127.0.0.1 only: PostgreSQL (run and event storage), Redis
(Celery's broker), a moto S3 server (tables and step logs), dagster-daemon and two Celery workers.
A backfill of `channel_pipeline_job` over three channels succeeds with steps on both workers, one
Parquet object per asset and channel, and published DuckDB tables equal to a local-profile run
on the same corpus, although one worker is killed with SIGKILL in the middle of a step: that step
runs again on the other worker, and no row is stored twice. Every server stops at the end, pass
or fail."""

import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import boto3
import dagster as dg
import duckdb
import pytest
import torch

from mednarratives_assets.definitions import build_definitions
from mednarratives_assets.deployment import Deployment
from mednarratives_assets.parquet_tables import publish
from mednarratives_assets.settings import REPO_ROOT, DataLayout
from mednarratives_assets.stages.frame_classifier import FrameClassifier, _FrameNet
from mednarratives_assets.synthetic.speech import PiperNarrator
from mednarratives_tests.asr_fixtures import write_narrated_video
from mednarratives_tests.conftest import make_video
from mednarratives_tests.servers import (
    answers_http,
    running_postgres,
    running_redis,
    running_server,
    wait_until,
)

pytestmark = pytest.mark.integration

CHANNELS = ("radiology", "pathology", "cardiology")
BUCKET = "mednarratives-cluster"
WORKERS = ("worker_a", "worker_b")
# The step during which a worker is killed: it loads the ASR model first, so it is still running.
STEP = "transcripts"
NARRATION = "This chest radiograph shows a right lower lobe consolidation."
# Tables whose rows the two profiles must agree on: (table, key columns).
KEYED_TABLES = {
    "videos": ["channel", "video_id", "status", "sha256"],
    "stable_chunks": ["channel", "video_id", "chunk_index"],
    "transcripts": ["channel", "video_id", "status"],
    "transcript_words": ["channel", "video_id", "word_index", "word"],
    "cursor_traces": ["channel", "video_id"],
    "narratives": ["channel", "video_id"],
    "boxes": ["channel", "video_id"],
    "aligned_pairs": ["channel", "video_id"],
}


def make_corpus(folder: Path) -> Path:
    """Three small channels of moving-square clips, one narrated lecture, one unreadable upload."""
    for n, channel in enumerate(CHANNELS):
        make_video(folder / channel / "lecture_one.mp4", seconds=1.0 + n)
        make_video(folder / channel / "lecture_two.mp4", seconds=2.0, audio=False)
    (folder / "pathology" / "broken.mp4").write_bytes(b"not a video")
    write_narrated_video(folder / "radiology" / "chest.mp4", PiperNarrator(), [NARRATION])
    return folder


def place_corpus(corpus: Path, classifier: Path, layout: DataLayout) -> None:
    """The same files in both profiles' data roots (an encode is not byte-identical twice), and
    the same frame classifier: the narrated lecture's still frame makes a stable chunk to score."""
    shutil.copytree(corpus, layout.videos_dir, dirs_exist_ok=True)
    layout.frame_classifier_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(classifier, layout.frame_classifier_path)


def untrained_classifier(path: Path) -> Path:
    """The frame classifier's network with seeded random weights: any scores do, if both profiles
    see the same."""
    torch.manual_seed(0)
    FrameClassifier(_FrameNet()).save(path)
    return path


def started(stack: ExitStack, command: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A long-running process of the cluster, stopped by its pid (its process group) at the end."""
    handle = log.open("w")
    stack.callback(handle.close)
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )

    def stop():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    stack.callback(stop)
    return process


def kill_a_worker_mid_step(workers: dict[str, subprocess.Popen], logs: Path) -> tuple[str, str]:
    """SIGKILL, with its pool process, the first worker seen starting STEP; (its name, the run id)."""
    started_step = re.compile(rf" - ([0-9a-f-]{{36}}) - \d+ - {STEP} - STEP_START")

    def starting():
        for name in workers:
            found = started_step.search((logs / f"{name}.log").read_text())
            if found:
                return name, found.group(1)
        return None

    name, run_id = wait_until(starting, 600, f"a worker to start {STEP}", poll_s=0.1)
    os.killpg(workers[name].pid, signal.SIGKILL)
    workers[name].wait()
    return name, run_id


def rows(database: Path, table: str, columns: list[str]) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        present = {c for (c, *_) in con.execute(f"describe {table}").fetchall()}
        chosen = [c for c in columns if c in present]
        return con.execute(f"select {', '.join(chosen)} from {table} order by all").fetchall()


def test_a_backfill_on_celery_workers_matches_the_local_profile(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus")
    classifier = untrained_classifier(tmp_path / "frame_classifier.pt")
    cluster_root = DataLayout.at(tmp_path / "cluster" / "data")
    place_corpus(corpus, classifier, cluster_root)
    home = tmp_path / "cluster" / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "cluster" / "dagster.yaml", home / "dagster.yaml")

    with ExitStack() as stack:
        postgres_url = stack.enter_context(running_postgres("dagster"))
        broker = stack.enter_context(running_redis(tmp_path / "redis.log"))
        keys = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3_url = stack.enter_context(
            running_server(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
                {**os.environ, **keys},
                tmp_path / "moto.log",
                answers_http,
                poll_s=0.2,
            )
        )
        tables_url = f"s3://{BUCKET}/tables"
        settings = {
            **keys,
            "AWS_ENDPOINT_URL": s3_url,
            "DAGSTER_HOME": str(home),
            "MEDNARRATIVES_DATA_ROOT": str(cluster_root.data_root),
            "MEDNARRATIVES_PROFILE": "cluster",
            "MEDNARRATIVES_TABLES_URL": tables_url,
            "MEDNARRATIVES_CELERY_BROKER": broker,
            "MEDNARRATIVES_POSTGRES_URL": postgres_url,
            "MEDNARRATIVES_LOGS_BUCKET": BUCKET,
            # A task whose worker died goes to the other worker after this long.
            "MEDNARRATIVES_CELERY_VISIBILITY_TIMEOUT_S": "15",
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("MEDNARRATIVES_DUCKDB", raising=False)
        env = dict(os.environ)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        bin_dir = Path(sys.executable).parent
        worker = [str(bin_dir / "celery"), "-A", "mednarratives_assets.cluster.celery_worker", "worker"]
        options = ["-Q", "dagster", "--concurrency", "1", "-l", "info"]
        workers = {
            name: started(stack, [*worker, *options, "-n", f"{name}@%h"], env, tmp_path / f"{name}.log")
            for name in WORKERS
        }
        started(
            stack,
            [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            env,
            tmp_path / "daemon.log",
        )
        with dg.DagsterInstance.get() as instance:
            # The sensor adds these partitions at its first tick; a backfill needs them now.
            instance.add_dynamic_partitions("channel", list(CHANNELS))
            backfill = [str(bin_dir / "dagster"), "job", "backfill", "-j", "channel_pipeline_job"]
            partitions = ["-w", "workspace.yaml", "--partitions", ",".join(CHANNELS), "--noprompt"]
            launched = subprocess.run(
                [*backfill, *partitions], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-2000:]
            # The new-video sensor launches runs of its own for the three new channels meanwhile.
            [backfill] = instance.get_backfills()
            killed, run_id = kill_a_worker_mid_step(workers, tmp_path)

            def finished():
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
                everything_done = all(r.is_finished for r in instance.get_runs())
                return runs if len(runs) == len(CHANNELS) and everything_done else None

            runs = wait_until(finished, 900, "the backfill's three runs", poll_s=3)
            failed = [r.run_id for r in instance.get_runs() if r.status != dg.DagsterRunStatus.SUCCESS]
            assert not failed, (tmp_path / "daemon.log").read_text()[-3000:]
            assert {r.tags["dagster/partition"] for r in runs} == set(CHANNELS)
        for name in WORKERS:
            assert "succeeded in" in (tmp_path / f"{name}.log").read_text(), f"{name} ran no step"
        # The step that died with its worker ran again, on the other one.
        [survivor] = [name for name in WORKERS if name != killed]
        rerun = re.compile(rf"{run_id} - \d+ - {STEP} - STEP_SUCCESS")
        assert rerun.search((tmp_path / f"{survivor}.log").read_text()), f"{STEP} of {run_id} never ran again"

        listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="tables/")["Contents"]
        stored = {o["Key"] for o in listed}
        for table in [*KEYED_TABLES, "video_downloads", "transcript_segments"]:
            assert {f"tables/{table}/{c}.parquet" for c in CHANNELS} <= stored, table
        published = tmp_path / "cluster" / "published.duckdb"
        publish(tables_url, published, log=lambda _: None)

    local = DataLayout.at(tmp_path / "local" / "data")
    place_corpus(corpus, classifier, local)
    defs = build_definitions(local, Deployment())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("channel", list(CHANNELS))
        for channel in CHANNELS:
            result = defs.resolve_job_def("channel_pipeline_job").execute_in_process(
                partition_key=channel, instance=instance
            )
            assert result.success
    for table, columns in KEYED_TABLES.items():
        assert rows(published, table, columns) == rows(local.duckdb_path, table, columns), table
    words = rows(published, "transcript_words", ["word"])
    assert "consolidation" in " ".join(w for (w,) in words).lower()  # speech went through a worker

"""Deployment profiles: the same assets on one machine or on Celery workers, chosen by the environment.

`local` (the default): runs and events in SQLite under DAGSTER_HOME, each run in one process, every
table in one DuckDB file (the instance file dagster.yaml).

`cluster`: Postgres run, event-log and schedule storage, the queued run coordinator and compute logs
on S3 (the instance file deploy/cluster/dagster.yaml); steps as Celery tasks on any number of
workers (dagster-celery); every channel table as one Parquet object per asset and channel
(parquet_tables.py), which `mednarratives publish` gathers into the DuckDB file. Videos, keyframes,
pair images, models and caches stay under MEDNARRATIVES_DATA_ROOT, which every host mounts at the
same path. docs/cluster.md lists the services and mounts.

Settings, from the environment:
  MEDNARRATIVES_PROFILE          local (default) or cluster
  MEDNARRATIVES_TABLES_URL       cluster: the table store, s3://bucket/prefix or a shared folder
  MEDNARRATIVES_CELERY_BROKER    cluster: Celery's broker, e.g. redis://host:6379/0
  MEDNARRATIVES_CELERY_BACKEND   cluster: Celery's result backend (default: the broker)
  MEDNARRATIVES_GPU_QUEUE        cluster, optional: the Celery queue of the GPU-heavy steps
  MEDNARRATIVES_CELERY_VISIBILITY_TIMEOUT_S  cluster: seconds before a task whose worker vanished
                                 goes to another worker (default 3600; must outlast any step)
S3 endpoint and keys come from the AWS_* variables that boto3 and s3fs read (AWS_ENDPOINT_URL for
an S3-compatible server).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PROFILE_ENV = "MEDNARRATIVES_PROFILE"
TABLES_URL_ENV = "MEDNARRATIVES_TABLES_URL"
BROKER_ENV = "MEDNARRATIVES_CELERY_BROKER"
BACKEND_ENV = "MEDNARRATIVES_CELERY_BACKEND"
GPU_QUEUE_ENV = "MEDNARRATIVES_GPU_QUEUE"
VISIBILITY_ENV = "MEDNARRATIVES_CELERY_VISIBILITY_TIMEOUT_S"
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
PROFILES = ("local", "cluster")
# The Celery queue that dagster-celery workers listen on unless told otherwise.
DEFAULT_QUEUE = "dagster"


class DeploymentError(ValueError):
    """A deployment setting is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class Deployment:
    profile: str = "local"
    tables_url: str = ""
    celery_broker: str = ""
    celery_backend: str = ""
    gpu_queue: str = ""
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S

    @property
    def is_cluster(self) -> bool:
        return self.profile == "cluster"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Deployment:
        profile = environ.get(PROFILE_ENV, "").strip() or "local"
        if profile not in PROFILES:
            raise DeploymentError(f"{PROFILE_ENV}={profile!r}: choose one of {', '.join(PROFILES)}")
        if profile == "local":
            return cls()
        missing = [name for name in (TABLES_URL_ENV, BROKER_ENV) if not environ.get(name, "").strip()]
        if missing:
            raise DeploymentError(f"{PROFILE_ENV}=cluster needs {' and '.join(missing)} set")
        broker = environ[BROKER_ENV].strip()
        timeout = environ.get(VISIBILITY_ENV, "").strip() or str(DEFAULT_VISIBILITY_TIMEOUT_S)
        if not timeout.isdigit() or int(timeout) < 1:
            raise DeploymentError(f"{VISIBILITY_ENV}={timeout!r}: a whole number of seconds, 1 or more")
        return cls(
            profile=profile,
            tables_url=environ[TABLES_URL_ENV].strip(),
            celery_broker=broker,
            celery_backend=environ.get(BACKEND_ENV, "").strip() or broker,
            gpu_queue=environ.get(GPU_QUEUE_ENV, "").strip(),
            visibility_timeout_s=int(timeout),
        )

    def queue_tags(self, gpu_heavy: bool) -> dict[str, str]:
        """Op tags that send a GPU-heavy step to the GPU queue, where one is set."""
        if gpu_heavy and self.is_cluster and self.gpu_queue:
            return {"dagster-celery/queue": self.gpu_queue}
        return {}

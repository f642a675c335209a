"""The Dagster code location: `mednarratives ui` loads `defs` from here (through workspace.yaml).

Assets, checks, jobs and sensors are found in the `defs` package by Dagster's own loader; the
resources bind them to one data root, and the deployment profile (deployment.py: local, or cluster
on Celery workers) picks the executor and where tables are stored.
"""

import warnings

import dagster as dg

from mednarratives_assets import defs as defs_package
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.deployment import Deployment
from mednarratives_assets.settings import DataLayout


def build_definitions(layout: DataLayout, deployment: Deployment | None = None) -> dg.Definitions:
    """Everything Dagster shows, bound to one data root and a deployment profile (default: the
    environment's).

    local: a run executes its steps one after another in its own process. A channel's stages form
    a chain, and a process per step would import torch, ultralytics and the ASR engine again,
    about 2 s a step, which a run that reuses every cached video would spend on nothing else.
    Channels run in parallel as separate runs (`max_concurrent_runs` in dagster.yaml).
    cluster: each step is a Celery task that any worker may take (dagster-celery)."""
    deployment = deployment or Deployment.from_env()
    with warnings.catch_warnings():  # the loader is a preview in dagster 1.13, pinned exactly
        warnings.simplefilter("ignore", dg.PreviewWarning)
        found = dg.load_definitions_from_package_module(defs_package)
    if deployment.is_cluster:
        from mednarratives_assets.cluster.published_tables import published_tables

        found = dg.Definitions.merge(found, dg.Definitions(assets=[published_tables]))
    return dg.Definitions.merge(
        found,
        dg.Definitions(resources=build_resources(layout, deployment), executor=executor_for(deployment)),
    )


def executor_for(deployment: Deployment) -> dg.ExecutorDefinition:
    if not deployment.is_cluster:
        return dg.in_process_executor
    from dagster_celery import celery_executor

    from mednarratives_assets.cluster.celery_settings import celery_settings

    return celery_executor.configured(
        {
            "broker": deployment.celery_broker,
            "backend": deployment.celery_backend,
            "config_source": celery_settings(deployment),
        }
    )


defs = build_definitions(DataLayout.from_env())

"""The Dagster code location: `mednarratives ui` (or `dagster dev -w workspace.yaml`) loads `defs` from here.

Assets, checks, jobs and sensors are found in the `defs` package by Dagster's own loader; the
resources bind them to one data root.
"""

import warnings

import dagster as dg

from mednarratives_assets import defs as defs_package
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.settings import DataLayout


def build_definitions(layout: DataLayout) -> dg.Definitions:
    """Everything Dagster shows, bound to one data root.

    A run executes its steps one after another in its own process: a channel's stages form a
    chain, and a process per step would import torch, ultralytics and the ASR engine again, about
    2 s a step, which a run that reuses every cached video would spend on nothing else. Channels
    run in parallel as separate runs (`max_concurrent_runs` in dagster.yaml)."""
    with warnings.catch_warnings():  # the loader is a preview in dagster 1.13, pinned exactly
        warnings.simplefilter("ignore", dg.PreviewWarning)
        found = dg.load_definitions_from_package_module(defs_package)
    return dg.Definitions.merge(
        found, dg.Definitions(resources=build_resources(layout), executor=dg.in_process_executor)
    )


defs = build_definitions(DataLayout.from_env())

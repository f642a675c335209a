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
    """Everything Dagster shows, bound to one data root."""
    with warnings.catch_warnings():  # the loader is a preview in dagster 1.13, pinned exactly
        warnings.simplefilter("ignore", dg.PreviewWarning)
        found = dg.load_definitions_from_package_module(defs_package)
    return dg.Definitions.merge(found, dg.Definitions(resources=build_resources(layout)))


defs = build_definitions(DataLayout.from_env())

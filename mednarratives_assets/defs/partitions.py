"""Channel partitions, and the header that every channel-partitioned asset shares."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import dagster as dg

from mednarratives_assets.defs.resources import DUCKDB_POOL

# One partition per channel (one video source); the new-video sensor adds them as folders appear.
channel_partitions = dg.DynamicPartitionsDefinition(name="channel")

TABLE_KINDS = frozenset({"duckdb", "polars"})


def channel_check(asset: str, name: str, description: str | None = None) -> dg.AssetCheckSpec:
    """A check evaluated with each channel's materialization of `asset`: one channel's pass never
    hides another's failure. A preview feature in dagster 1.13, which pyproject.toml pins exactly,
    so its warning says nothing new."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, partitions_def=channel_partitions, description=description
        )


def channel_asset(
    group: str,
    *,
    checks: Mapping[str, str | None] | None = None,
    deps: Sequence = (),
    kinds: frozenset[str] = TABLE_KINDS,
) -> Callable:
    """@dg.asset for a table with one partition per channel, written to DuckDB by the IO manager.

    Every such asset writes through the `duckdb` pool (DuckDB admits one writing process) and is
    stored by its `channel` column. checks: name -> description of the asset's per-channel checks.
    Inputs come from the function's parameter names.
    """

    def decorate(compute: Callable) -> dg.AssetsDefinition:
        name = compute.__name__
        return dg.asset(
            name=name,
            partitions_def=channel_partitions,
            metadata={"partition_expr": "channel"},
            pool=DUCKDB_POOL,
            kinds=set(kinds),
            group_name=group,
            deps=list(deps),
            check_specs=[
                channel_check(compute.__name__, name, description)
                for name, description in (checks or {}).items()
            ],
        )(compute)

    return decorate

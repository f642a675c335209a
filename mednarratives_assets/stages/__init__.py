"""Pipeline stages as plain functions on paths, arrays and polars frames: no Dagster here."""

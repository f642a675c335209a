"""Dagster wiring: assets, resources, partitions, jobs, sensors and checks over `stages/`."""

"""Dagster wiring that only the cluster profile has (deployment.py): the publishing asset, and the
Celery app that workers run."""

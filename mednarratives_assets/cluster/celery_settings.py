"""Celery settings that the executor and the workers share (deployment.py, docs/cluster.md)."""

from dagster_celery.defaults import broker_transport_options

from mednarratives_assets.deployment import Deployment


def celery_settings(deployment: Deployment) -> dict:
    """A step's task is acknowledged when it is done, not when it starts, so one whose worker dies
    goes back to the queue: at once when only the worker's pool process died (the worker rejects
    it), after the visibility timeout when the whole worker did (Redis then hands unacknowledged
    tasks out again). A step running longer than that timeout would be handed out twice."""
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            **broker_transport_options,
            "visibility_timeout": deployment.visibility_timeout_s,
        },
    }

"""The Celery app of the cluster profile's workers (deployment.py, docs/cluster.md):

    celery -A mednarratives_assets.cluster.celery_worker worker -Q dagster --concurrency 1

It is dagster-celery's own app and task, made with the broker, backend and settings of the
executor (MEDNARRATIVES_CELERY_BROKER and _BACKEND, celery_settings.py), so workers and runs meet
on the same queues.
"""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from mednarratives_assets.cluster.celery_settings import celery_settings
from mednarratives_assets.deployment import Deployment

_deployment = Deployment.from_env()
app = make_app(
    CeleryExecutor.for_cli(
        broker=_deployment.celery_broker,
        backend=_deployment.celery_backend,
        config_source=celery_settings(_deployment),
    ).app_args()
)
execute_plan = create_task(app)

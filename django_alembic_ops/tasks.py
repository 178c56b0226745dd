"""The Celery task of ``opsmigrate --executor celery``.

A Django project's Celery app finds it with ``app.autodiscover_tasks()``
(``django_alembic_ops`` is an installed app), so the project's ordinary workers
run it. This module imports Celery: nothing else in the package imports it.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from .fleet.celery import TASK_NAME, run_task


# ignore_result=False: the sender reads the result, whatever the project's
# task_ignore_result says. Acknowledged when it starts (Celery's default): a
# task lost with its worker is not run again later behind the sender's back.
@shared_task(name=TASK_NAME, bind=True, ignore_result=False, acks_late=False)  # type: ignore[untyped-decorator]
def migrate_target(self: Task, target: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Migrate one fleet target, as a local worker process would.

    :param target: a :class:`~django_alembic_ops.fleet.FleetTarget`'s fields
        (``alias``, ``schema``, ``kind``, ``label``).
    :param job: a :class:`~django_alembic_ops.fleet.FleetJob`'s fields
        (``app_label``, ``migration``, ``fake``).
    :returns: a :class:`~django_alembic_ops.fleet.TargetResult`'s fields but
        the target (``status``, ``done``, ``error``, ``elapsed``, ...). A
        failed migration is a result, not an exception. The target's lock keeps
        one run per target, whoever runs it: a repeated task finds it at head.
    """
    return run_task(self, target, job)

"""``manage.py migrate`` integration through Django's ``post_migrate`` signal.

The signal fires after ``migrate``, during test database creation (also with
pytest-django's ``--nomigrations``) and after every ``TransactionTestCase``
flush, so the up-to-date case must be cheap: it is answered from cached script
headers and the version table (:func:`.state.up_to_date`), importing no
script. Alembic and SQLAlchemy are imported only when something is pending.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from django.apps import AppConfig
from django.core.management.base import CommandError, OutputWrapper
from django.core.management.color import color_style

from . import conf, discovery, state
from .errors import OpsError
from .report import RunReporter


def run_after_migrate(sender: AppConfig, *, using: str, verbosity: int = 1, **kwargs: Any) -> None:
    """Apply pending ops migrations on ``using`` after Django's migrations."""
    if not conf.get().RUN_WITH_MIGRATE or not discovery.ops_apps():
        return
    try:
        if state.up_to_date(using):
            return  # the common case, e.g. after every TransactionTestCase flush
    except OpsError as exc:
        raise CommandError(str(exc)) from exc
    # Alembic and SQLAlchemy are imported only now, when there is work.
    from . import executor
    from .errors import DjangoDependencyNotApplied

    stream: TextIO = kwargs.get("stdout") or sys.stdout
    stdout = stream if isinstance(stream, OutputWrapper) else OutputWrapper(stream)
    style = color_style()
    target = executor.Target()
    try:
        scripts = executor.load_scripts(target)
        pending = executor.plan(using, scripts, target, state.read_heads(using))
        if not pending:
            return
        try:
            executor.check_django_dependencies(using, pending)
        except DjangoDependencyNotApplied as exc:
            # A partial "migrate app 0003" is legitimate; say why ops wait.
            if verbosity >= 1:
                stdout.write(style.WARNING(f"Ops migrations not applied: {exc}"))
            return

        reporter = RunReporter(stdout, style, verbosity)
        try:
            executor.migrate(
                target,
                database=using,
                progress=reporter.progress,
                on_plan=lambda steps: reporter.running(steps, say_when_empty=False),
                on_wait=lambda: reporter.waiting(using),
            )
        finally:
            reporter.end_line()
    except OpsError as exc:
        raise CommandError(str(exc)) from exc

"""``manage.py migrate`` integration through Django's ``post_migrate`` signal.

The signal fires after ``migrate``, during test database creation (also with
pytest-django's ``--nomigrations``) and after every ``TransactionTestCase``
flush, so the up-to-date case must be cheap: it is answered from cached script
headers and the version table (:func:`.state.up_to_date`), importing no
script. Alembic and SQLAlchemy are imported only when something is pending.

The package's own ``migrate`` command (``EXTEND_MIGRATE``) asks :func:`pending`
for its ``--check`` and ``--plan`` and runs Django's command inside
:func:`migrate_options`, which tells the receiver to fake (``--fake``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO

from django.apps import AppConfig
from django.core.management.base import CommandError, OutputWrapper
from django.core.management.color import color_style

from . import conf, discovery, state
from .errors import OpsError
from .report import RunReporter

if TYPE_CHECKING:
    from .executor import Target
    from .runner import Step

# Set by the migrate command around Django's own handle(); post_migrate
# carries no command options.
_fake: ContextVar[bool] = ContextVar("django_alembic_ops_fake", default=False)


@contextmanager
def migrate_options(*, fake: bool) -> Iterator[None]:
    """While the block runs, ``post_migrate`` only records ops migrations when ``fake``."""
    token = _fake.set(fake)
    try:
        yield
    finally:
        _fake.reset(token)


def pending(database: str) -> list[Step]:
    """The ops migrations ``migrate`` would apply on ``database``.

    None with ``RUN_WITH_MIGRATE`` off: ``migrate`` does not touch them then.

    Raises :class:`~django_alembic_ops.errors.OpsError` when one cannot be
    placed: a ``django_dependencies`` entry naming no existing Django
    migration, a recorded revision with no script. Dependencies that exist but
    are not applied yet are fine here: Django's migrations run first.
    """
    if not conf.get().RUN_WITH_MIGRATE or not discovery.ops_apps():
        return []
    if state.up_to_date(database):
        return []
    from . import executor

    target = executor.Target()
    steps = executor.plan(
        database, executor.load_scripts(target), target, state.read_heads(database)
    )
    executor.check_django_dependencies(database, steps, unapplied_ok=True)
    return steps


def run_after_migrate(sender: AppConfig, *, using: str, verbosity: int = 1, **kwargs: Any) -> None:
    """Apply pending ops migrations on ``using`` after Django's migrations.

    Those whose ``django_dependencies`` (or an earlier ops migration's) are not
    applied yet — after a partial ``migrate app 0001`` — wait for a later
    ``migrate``; every other one runs. A dependency that can never be met
    raises ``CommandError`` before anything runs.
    """
    if getattr(sender, "name", None) != __package__:
        # Connected for an app registry that override_settings(INSTALLED_APPS)
        # has replaced since: Django keys the sender by id(), which another
        # app's config may now have. One run per migrate, never two.
        return
    if not conf.get().RUN_WITH_MIGRATE or not discovery.ops_apps():
        return
    try:
        if state.up_to_date(using):
            return  # the common case, e.g. after every TransactionTestCase flush
    except OpsError as exc:
        raise CommandError(str(exc)) from exc
    # Alembic and SQLAlchemy are imported only now, when there is work.
    from . import executor

    stream: TextIO = kwargs.get("stdout") or sys.stdout
    stdout = stream if isinstance(stream, OutputWrapper) else OutputWrapper(stream)
    style = color_style()
    try:
        target = executor.Target()
        steps = executor.plan(using, executor.load_scripts(target), target, state.read_heads(using))
        if not steps:
            return
        unapplied = executor.check_django_dependencies(using, steps, unapplied_ok=True)
        targets, waiting = _split(steps, unapplied) if unapplied else ([target], {})

        reporter = RunReporter(stdout, style, verbosity)
        said: list[bool] = []

        def running(run_steps: list[Step]) -> None:
            if run_steps and not said:  # one heading for all the runs below
                reporter.running(run_steps)
                said.append(True)

        try:
            for run_target in targets:
                executor.migrate(
                    run_target,
                    database=using,
                    fake=_fake.get(),
                    progress=reporter.progress,
                    on_plan=running,
                    on_wait=lambda: reporter.waiting(using),
                )
        finally:
            reporter.end_line()
    except OpsError as exc:
        raise CommandError(str(exc)) from exc
    if waiting and verbosity >= 1:
        stdout.write(style.WARNING("Ops migrations waiting for Django migrations:"))
        for full_name, needs in sorted(waiting.items()):
            stdout.write(f"  {full_name} needs " + ", ".join(f"{a}.{n}" for a, n in needs))


def _split(
    steps: list[Step], unapplied: dict[str, list[tuple[str, str]]]
) -> tuple[list[Target], dict[str, list[tuple[str, str]]]]:
    """What can run now, as targets, and what waits: ``{full_name: Django migrations}``.

    A step waits for its own unapplied Django dependencies and for those of
    every pending step it builds on (``down_revision`` and ``depends_on``).
    """
    from .executor import Target

    needs: dict[str, list[tuple[str, str]]] = {}
    for step in steps:  # plan order: a step comes after everything it builds on
        revision = step.migration.revision
        own = list(unapplied.get(revision, []))
        for parent in step.migration.script._all_down_revisions:
            own += [dep for dep in needs.get(parent, []) if dep not in own]
        if own:
            needs[revision] = own
    runnable = [step for step in steps if step.migration.revision not in needs]
    built_on = {parent for step in runnable for parent in step.migration.script._all_down_revisions}
    targets = [
        # at_least: the step and what it builds on, never unapplying anything.
        Target(step.migration.app_label, step.migration.revision, at_least=True)
        for step in runnable
        if step.migration.revision not in built_on
    ]
    waiting = {
        step.migration.full_name: needs[step.migration.revision]
        for step in steps
        if step.migration.revision in needs
    }
    return targets, waiting

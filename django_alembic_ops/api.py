"""Public Python API: one function per management command.

Commands only parse options and print; tests and deploy scripts can call these
directly. Every user mistake raises an :class:`~django_alembic_ops.errors.OpsError`.

Example::

    from django_alembic_ops import api

    api.migrate("shop", "0002")          # like: manage.py opsmigrate shop 0002
    api.showmigrations(["shop"])         # {"shop": [("0001_initial", True), ...]}
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from alembic.runtime.migration import MigrationStep
from django.db import DEFAULT_DB_ALIAS

from . import discovery, executor, naming, runner, state, writer
from .errors import OfflineNotSupported, OpsError
from .executor import Target
from .runner import Progress, Step
from .scripts import OpsMigration, OpsScripts

__all__ = [
    "Target",
    "validate",
    "up_to_date",
    "migrate",
    "plan",
    "sql",
    "sqlmigrate",
    "showmigrations",
    "showplan",
    "unapplied",
    "makemigration",
    "autogenerate",
    "autogenerate_apps",
    "has_autogenerate_target",
    "merge",
]


def migrate(
    app_label: str | None = None,
    migration: str | None = None,
    *,
    database: str = DEFAULT_DB_ALIAS,
    fake: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[], None] | None = None,
    on_plan: Callable[[list[Step]], None] | None = None,
) -> list[Step]:
    """Apply or unapply ops migrations, like ``manage.py opsmigrate``.

    :param app_label: only this app (and what it depends on); ``None`` for all.
    :param migration: exactly this migration of ``app_label`` (name prefix,
        full name, revision id, or ``"zero"``); ``None`` for the app's head.
    :param database: the Django database alias.
    :param fake: record the result without running any migration code.
    :returns: the steps that ran, in order.
    """
    return executor.migrate(
        Target(app_label, migration),
        database=database,
        fake=fake,
        progress=progress,
        on_wait=on_wait,
        on_plan=on_plan,
    )


def validate(app_label: str | None = None, migration: str | None = None) -> list[str]:
    """Check that the target names real things; return the labels of apps with ops migrations.

    Raises the same errors :func:`migrate` would, before anything is printed or run.
    """
    scripts = executor.load_scripts(Target(app_label, migration))
    for label in [app_label] if app_label is not None else list(scripts.apps):
        scripts.app_head(label)  # several heads: say so before printing anything
    if app_label is not None and migration is not None:
        naming.resolve(scripts, app_label, migration)
    return list(scripts.apps)


def up_to_date(app_label: str | None = None, *, database: str = DEFAULT_DB_ALIAS) -> bool:
    """``True`` when every ops migration (of ``app_label``) is applied on ``database``.

    Fast: no script is imported. ``False`` also when it cannot tell cheaply;
    :func:`plan` then gives the exact answer.
    """
    return state.up_to_date(database, app_label)


def plan(
    app_label: str | None = None,
    migration: str | None = None,
    *,
    database: str = DEFAULT_DB_ALIAS,
) -> list[Step]:
    """What :func:`migrate` would run, without running it (no lock is taken)."""
    target = Target(app_label, migration)
    scripts = executor.load_scripts(target)
    return executor.plan(database, scripts, target, executor.read_heads(database))


def unapplied(*, database: str = DEFAULT_DB_ALIAS) -> list[OpsMigration]:
    """Ops migrations that ``opsmigrate`` with no arguments would apply."""
    return [step.migration for step in plan(database=database)]


def sql(
    app_label: str | None = None,
    migration: str | None = None,
    *,
    database: str = DEFAULT_DB_ALIAS,
    output: TextIO,
) -> None:
    """Write the SQL that takes an empty database to the target (offline)."""
    target = Target(app_label, migration)
    if migration == naming.ZERO:
        raise OfflineNotSupported(
            "--sql renders upgrades from an empty database; for the SQL that unapplies one "
            "migration use 'python manage.py opssqlmigrate <app_label> <migration> --backwards'."
        )
    scripts = executor.load_scripts(target)
    steps = executor.plan(database, scripts, target, ())
    runner.render_sql(database, scripts, steps, (), output)


def sqlmigrate(
    app_label: str,
    migration: str,
    *,
    backwards: bool = False,
    database: str = DEFAULT_DB_ALIAS,
    output: TextIO,
) -> None:
    """Write the SQL of one migration (or of its downgrade) to ``output``."""
    discovery.require_ops_app(app_label)
    scripts = executor.load_scripts()
    found = naming.resolve(scripts, app_label, migration)
    if found is None:
        raise OpsError("'zero' is not a migration; name one, e.g. 0001.")
    revision_map = scripts.directory.revision_map
    if backwards:
        alembic_step = MigrationStep.downgrade_from_script(revision_map, found.script)
        starting: tuple[str, ...] = (found.revision,)
    else:
        alembic_step = MigrationStep.upgrade_from_script(revision_map, found.script)
        starting = tuple(found.script._versioned_down_revisions)
    runner.render_sql(database, scripts, [Step(found, alembic_step)], starting, output)


def _labels(scripts: OpsScripts, app_labels: Sequence[str] | None) -> list[str]:
    if not app_labels:
        return list(scripts.apps)
    for label in app_labels:
        discovery.get_app_config(label)
    return list(app_labels)


def showmigrations(
    app_labels: Sequence[str] | None = None, *, database: str = DEFAULT_DB_ALIAS
) -> dict[str, list[tuple[str, bool]]]:
    """Per app, ``(name, applied)`` for each ops migration, in file order."""
    scripts = executor.load_scripts()
    labels = _labels(scripts, app_labels)
    applied = scripts.applied(executor.read_heads(database))
    return {
        label: [(m.name, m.revision in applied) for m in scripts.by_app.get(label, [])]
        for label in labels
    }


@dataclass(frozen=True)
class PlanEntry:
    """One line of ``opsshowmigrations --plan``."""

    migration: OpsMigration
    applied: bool
    depends_on: list[str]  # full names of the migrations it needs (down and depends_on)


def showplan(
    app_labels: Sequence[str] | None = None, *, database: str = DEFAULT_DB_ALIAS
) -> list[PlanEntry]:
    """Every ops migration in the global order ``opsmigrate`` applies them."""
    scripts = executor.load_scripts()
    labels = set(_labels(scripts, app_labels))
    applied = scripts.applied(executor.read_heads(database))
    return [
        PlanEntry(
            m,
            m.revision in applied,
            [scripts.migration(rev).full_name for rev in m.script._all_down_revisions],
        )
        for m in scripts.upgrade_order()
        if m.app_label in labels
    ]


@dataclass(frozen=True)
class Written:
    """A migration file written (or, on a dry run, only rendered)."""

    app_label: str
    path: str
    source: str


def makemigration(
    app_label: str,
    *,
    message: str | None = None,
    depends_on: Sequence[str] = (),
    dry_run: bool = False,
    upgrade: str = "pass",
    downgrade: str = "pass",
    imports: str = writer.DEFAULT_IMPORTS,
    name: str | None = None,
    format_code: bool = False,
    django_dependencies: Sequence[tuple[str, str]] = (),
) -> Written:
    """Write the next numbered ops migration of ``app_label``.

    :param message: the description; becomes the file name's identifier.
    :param depends_on: migrations of other apps that must run first, as
        ``"app_label.0002"`` or revision ids.
    :param dry_run: render only; write nothing.
    :param upgrade: the body of ``upgrade()``; ``downgrade`` likewise.
    :param imports: the script's import lines.
    :param name: the file name's identifier when there is no ``message``
        (the first script is always ``initial``).
    :param format_code: format the script with ``ruff format`` or ``black``
        when one is installed.
    :param django_dependencies: ``(app_label, migration_name)`` of Django
        migrations that must be applied first.
    """
    app = discovery.app_folder(app_label)
    scripts = executor.load_scripts()
    head = scripts.app_head(app_label) if app_label in scripts.by_app else None
    dependencies = list(
        dict.fromkeys(naming.resolve_reference(scripts, ref).revision for ref in depends_on)
    )
    new = writer.render(
        app,
        message=message,
        down_revision=head.revision if head else None,
        depends_on=dependencies,
        upgrade=upgrade,
        downgrade=downgrade,
        imports=imports,
        name=name if head else None,
        django_dependencies=django_dependencies,
    )
    if format_code:
        new = dataclasses.replace(new, source=writer.format_source(new.source, new.path))
    if not dry_run:
        writer.write(new)
    return Written(app_label, str(new.path), new.source)


@dataclass(frozen=True)
class Autogenerated:
    """What autogenerate found for one app, and the script it wrote (if any)."""

    app_label: str
    changes: list[str]  # one line per change; empty: "No changes detected"
    notes: list[str]  # what autogenerate left out, and why
    written: Written | None  # None when nothing changed, or with check=True


def autogenerate_apps(*, database: str | None = None) -> list[str]:
    """Apps that ``opsmakemigration`` with no labels autogenerates for.

    Those that have a ``migrations_ops`` package and a target:
    ``target_metadata`` in that package, or else models with
    ``Meta.managed = False``. (Like ``makemigrations``, an app's first
    migration needs its label.)

    :param database: only apps the database routers allow on this alias.
    """
    from django.db import router

    from .autogenerate import target

    labels = target.target_apps()
    if database is not None:
        labels = [label for label in labels if router.allow_migrate(database, label)]
    return labels


def has_autogenerate_target(app_label: str) -> bool:
    """Whether :func:`autogenerate` can compare ``app_label`` (see :func:`autogenerate_apps`)."""
    from .autogenerate import target

    discovery.get_app_config(app_label)
    return target.has_target(app_label)


def autogenerate(
    app_label: str,
    *,
    database: str = DEFAULT_DB_ALIAS,
    message: str | None = None,
    depends_on: Sequence[str] = (),
    dry_run: bool = False,
    check: bool = False,
) -> Autogenerated:
    """Compare ``database`` with the app's target and write the ops migration, like
    ``manage.py opsmakemigration app_label``.

    :param database: the alias compared against; the app's ops migrations must
        all be applied there.
    :param message: the description; becomes the file name's identifier.
    :param depends_on: as for :func:`makemigration`.
    :param dry_run: render the script (``written.source``) but write nothing.
    :param check: only compare: ``changes`` says whether a script is needed.
    :raises ~django_alembic_ops.autogenerate.NoTarget: the app has no target.
    :raises ~django_alembic_ops.autogenerate.DatabaseNotAtHead: run ``opsmigrate`` first.

    Example::

        result = api.autogenerate("shop", check=True)
        for change in result.changes:
            print(change)
    """
    from .autogenerate.compare import compare

    discovery.get_app_config(app_label)
    comparison = compare(app_label, database=database)
    written = None
    if comparison.has_changes and not check:
        written = makemigration(
            app_label,
            message=message,
            depends_on=list(dict.fromkeys([*depends_on, *comparison.depends_on])),
            dry_run=dry_run,
            upgrade=comparison.upgrade,
            downgrade=comparison.downgrade,
            imports=comparison.imports,
            name=comparison.name,
            format_code=True,
            django_dependencies=comparison.django_dependencies,
        )
    return Autogenerated(app_label, comparison.changes, comparison.notes, written)


def merge(app_label: str, *, message: str | None = None, dry_run: bool = False) -> Written | None:
    """Write a merge script when ``app_label`` has several heads; ``None`` otherwise."""
    app = discovery.require_ops_app(app_label)
    scripts = executor.load_scripts()
    heads = scripts.app_heads(app_label)
    if len(heads) < 2:
        return None
    heads.sort(key=lambda m: m.name)
    # Like makemigrations --merge: named after the migrations it merges.
    name = "merge_" + "_".join(m.name for m in heads)
    if len(name) > 60:
        name = "merge_" + datetime.datetime.now().strftime("%Y%m%d_%H%M")
    new = writer.render(
        app,
        message=message,
        name=name,
        down_revision=tuple(m.revision for m in heads),
    )
    if not dry_run:
        writer.write(new)
    return Written(app_label, str(new.path), new.source)

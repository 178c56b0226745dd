"""Plan and apply ops migrations for one database alias.

Alembic computes every plan (``ScriptDirectory._upgrade_revs`` /
``_downgrade_revs``, exactly what ``alembic upgrade``/``downgrade`` use);
this module chooses the destination the way ``manage.py migrate`` reads its
arguments, checks what must hold before anything runs, and hands the steps to
:mod:`.runner`. It never prints: progress goes through a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from alembic.runtime.migration import MigrationStep
from alembic.script.revision import RevisionError
from alembic.util import CommandError as AlembicCommandError
from django.apps import apps as django_apps
from django.db import DEFAULT_DB_ALIAS, connections, router

from . import discovery, naming, testdb
from . import scripts as scripts_module
from .errors import (
    DjangoDependencyNotApplied,
    NoOpsMigrations,
    ScriptError,
    UnknownMigration,
    UnknownRecordedRevision,
)
from .lock import migration_lock
from .runner import Progress, Step, run
from .scripts import OpsMigration, OpsScripts
from .state import forget_revisions, read_heads


@dataclass(frozen=True)
class Target:
    """What ``opsmigrate [app_label] [migration]`` was asked for.

    ``app_label=None``: every app to its head. ``migration=None``: the app to
    its head. Otherwise exactly that migration (``"zero"`` for none of them).
    ``at_least``: apply up to the migration but never unapply anything (what
    :class:`~django_alembic_ops.operations.RunOpsMigrations` needs when the
    database is already further on).
    """

    app_label: str | None = None
    migration: str | None = None
    at_least: bool = False


def allowed_apps(alias: str, scripts: OpsScripts) -> list[str]:
    """Apps whose ops migrations the database routers allow on ``alias``."""
    return [label for label in scripts.apps if router.allow_migrate(alias, label)]


def load_scripts(target: Target | None = None) -> OpsScripts:
    """Load every app's scripts, validating the app named by ``target``."""
    if target is None or target.app_label is None:
        return scripts_module.load()
    app = discovery.require_ops_app(target.app_label)
    scripts = scripts_module.load()
    if not scripts.by_app.get(app.label):
        raise NoOpsMigrations(
            f"App '{app.label}' has no ops migrations yet (its {app.module} package is empty). "
            f"Create one with 'python manage.py opsmakemigration {app.label}'."
        )
    return scripts


def check_recorded(alias: str, scripts: OpsScripts, heads: Sequence[str]) -> None:
    """Refuse to plan from recorded ``heads`` that a script is missing for.

    After a branch switch the version table may hold a revision whose file is
    not there: nothing can be planned from it, nor said about what it needed.
    The way out is to record the real state (:func:`migrate` with ``fake``).
    """
    unknown = scripts.unknown(heads)
    if not unknown:
        return
    revisions = ", ".join(f"'{revision}'" for revision in unknown)
    noun = "revision" if len(unknown) == 1 else "revisions"
    if testdb.reusing_test_database(alias):
        # A kept test database is disposable: rebuilt, not repaired.
        raise UnknownRecordedRevision(testdb.kept_database_message(alias, revisions, noun))
    database = "" if alias == DEFAULT_DB_ALIAS else f" --database {alias}"
    raise UnknownRecordedRevision(
        f"Database '{alias}' records ops {noun} {revisions}, which no script defines "
        "(a branch switch or a deleted file?). Record the state the database is really in "
        f"with 'python manage.py opsmigrate <app_label> <migration> --fake{database}'."
    )


def plan(
    alias: str,
    scripts: OpsScripts,
    target: Target,
    heads: Sequence[str],
    *,
    apps: Collection[str] | None = None,
    phase: str | None = None,
) -> list[Step]:
    """The ordered steps that take the database from ``heads`` to ``target``.

    :param apps: only these apps' migrations (a fleet's tenant schemas hold
        some apps, the database the others); ``None``: every app.
    :param phase: ``"pre"``: only the pre-deploy migrations (see
        :func:`_phase_steps`); ``"post"`` or ``None``: every step.
    :raises UnknownRecordedRevision: ``heads`` holds a revision no script defines.
    """
    check_recorded(alias, scripts, heads)
    directory = scripts.directory
    current = tuple(heads)
    allowed = allowed_apps(alias, scripts)
    if apps is not None:
        allowed = [label for label in allowed if label in apps]
    try:
        if target.app_label is None:
            destinations = _independent(
                scripts,
                [head.revision for label in allowed if (head := scripts.app_head(label))],
            )
            alembic_steps = directory._upgrade_revs(destinations, current) if destinations else []  # type: ignore[arg-type]
        elif target.app_label not in allowed:
            return []
        elif target.migration is None:
            head = scripts.app_head(target.app_label)
            alembic_steps = directory._upgrade_revs(head.revision, current) if head else []  # type: ignore[arg-type]
        else:
            migration = naming.resolve(scripts, target.app_label, target.migration)
            applied = scripts.applied(current)
            if target.at_least and (migration is None or migration.revision in applied):
                alembic_steps = []
            elif migration is None:
                roots = [
                    m
                    for m in scripts.by_app[target.app_label]
                    if not m.script._versioned_down_revisions and m.revision in applied
                ]
                alembic_steps = []
                for root in roots:
                    # "<rev>@base" is the base of the branch holding <rev>.
                    now = _heads_after(scripts, current, alembic_steps)
                    alembic_steps += directory._downgrade_revs(f"{root.revision}@base", now)  # type: ignore[arg-type]
            elif migration.revision in applied:
                later = [
                    m.revision
                    for m in scripts.by_app[target.app_label]
                    if m.revision in applied
                    and m.revision != migration.revision
                    and migration.revision in scripts.applied((m.revision,))
                ]
                # Alembic refuses a downgrade "to" a revision nothing follows.
                alembic_steps = (
                    directory._downgrade_revs(migration.revision, current)  # type: ignore[arg-type]
                    if later
                    else []
                )
            else:
                alembic_steps = directory._upgrade_revs(migration.revision, current)  # type: ignore[arg-type]
    except (RevisionError, AlembicCommandError) as exc:
        raise ScriptError(
            f"Cannot plan ops migrations on database '{alias}': {' '.join(str(exc).split())}. "
            "Check the version table against the scripts with 'python manage.py "
            "opsshowmigrations'."
        ) from None
    steps = [Step(scripts.migration(s.revision.revision), s) for s in alembic_steps]
    for step in steps:
        if apps is not None and step.migration.app_label not in apps:
            raise ScriptError(
                f"{step.migration.full_name} would run here, but its app is not migrated here "
                f"(only {', '.join(sorted(apps)) or 'none'}); a tenant app's migration cannot "
                "depend on a shared app's, nor the other way round: check depends_on."
            )
        if step.migration.app_label not in allowed:
            raise ScriptError(
                f"{step.migration.full_name} would run on database '{alias}', but the database "
                f"routers do not allow app '{step.migration.app_label}' there; check depends_on "
                "and allow_migrate()."
            )
    if phase is not None:
        steps = _phase_steps(steps, phase)
    return steps


def _phase_steps(steps: list[Step], phase: str) -> list[Step]:
    """The ``steps`` that ``opsmigrate --phase`` runs.

    ``"post"`` runs whatever is pending (post migrations and any pre one left).
    ``"pre"`` runs the pending pre migrations and holds back the post ones; a
    pre migration that builds on a held-back one is refused: it would need a
    schema the old code, still serving, may not work with.
    """
    if phase not in scripts_module.PHASES:
        raise ScriptError(f"Unknown deploy phase '{phase}'; use --phase pre or --phase post.")
    if any(not step.forward for step in steps):
        raise ScriptError(
            "--phase applies migrations and this target unapplies some; run it without --phase."
        )
    if phase == "post":
        return steps
    held: dict[str, OpsMigration] = {}  # revision -> the post migration holding it back
    kept: list[Step] = []
    for step in steps:
        migration = step.migration
        if migration.phase == "post":
            held[migration.revision] = migration
            continue
        for down in migration.script._all_down_revisions:
            if down in held:
                raise ScriptError(
                    f"Pre-deploy migration {migration.full_name} needs post-deploy migration "
                    f"{held[down].full_name}, which is not applied: run 'python manage.py "
                    "opsmigrate --phase post' first (once the old code is gone)."
                )
        kept.append(step)
    return kept


def _independent(scripts: OpsScripts, revisions: list[str]) -> tuple[str, ...]:
    """Drop revisions another one already needs: Alembic refuses overlapping targets."""
    needed: set[str] = set()
    for rev in revisions:
        needed |= scripts.applied((rev,)) - {rev}
    return tuple(rev for rev in revisions if rev not in needed)


def _heads_after(
    scripts: OpsScripts, heads: tuple[str, ...], steps: Sequence[object]
) -> tuple[str, ...]:
    if not steps:
        return heads
    applied = scripts.applied(heads)
    for step in steps:
        applied.discard(step.revision.revision)  # type: ignore[attr-defined]
    # Recompute heads: applied revisions that no applied revision builds on.
    parents = {
        down for rev in applied for down in scripts.migration(rev).script._all_down_revisions
    }
    return tuple(sorted(applied - parents))


def check_django_dependencies(
    alias: str, steps: Sequence[Step], *, unapplied_ok: bool = False
) -> dict[str, list[tuple[str, str]]]:
    """Refuse to start when a step needs a Django migration that is not applied.

    Applied means what Django's :class:`~django.db.migrations.loader.MigrationLoader`
    says, which knows squashed migrations: a squashed migration's name and the
    names it replaces count as applied together (while ``migrate`` runs, Django
    records only the replaced names; the squashed one comes at its end).

    An entry naming no installed app or no existing Django migration is always
    refused: such an ops migration can never be placed. With ``unapplied_ok``
    (a partial ``migrate app 0001`` may legitimately leave dependencies
    unapplied), the steps whose dependencies exist but are not applied yet are
    returned instead, as ``{revision: [(app_label, name), ...]}``.
    """
    needed = [
        (step, dependency)
        for step in steps
        if step.forward
        for dependency in step.migration.django_dependencies
    ]
    if not needed:
        return {}
    # Imported here: most runs (and every --sql run) need no Django migrations.
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connections[alias], ignore_no_migrations=True)
    applied = loader.applied_migrations
    # Built from the models, recording no migration: its tables are complete.
    from_models = testdb.built_without_migrations(alias)
    replaced = {key for migration in loader.replacements.values() for key in migration.replaces}
    unapplied: dict[str, list[tuple[str, str]]] = {}
    for step, (app_label, name) in needed:
        where = f"Ops migration {step.migration.full_name} depends on Django migration"
        if app_label not in django_apps.app_configs:
            raise DjangoDependencyNotApplied(
                f"{where} {app_label}.{name}, but no installed app has the label "
                f"'{app_label}'. Fix django_dependencies in {step.migration.name}.py."
            )
        if from_models or app_label not in loader.migrated_apps or (app_label, name) in applied:
            # An app without migrations (TEST["MIGRATE"] = False, pytest
            # --nomigrations) has its tables from syncdb, which has run.
            continue
        if (app_label, name) not in loader.disk_migrations and (app_label, name) not in replaced:
            raise DjangoDependencyNotApplied(
                f"{where} {app_label}.{name}, which does not exist. "
                f"Fix django_dependencies in {step.migration.name}.py."
            )
        if not unapplied_ok:
            raise DjangoDependencyNotApplied(
                f"{where} {app_label}.{name}, which is not applied on database '{alias}'. "
                f"Run 'python manage.py migrate {app_label} {name}' first."
            )
        unapplied.setdefault(step.migration.revision, []).append((app_label, name))
    return unapplied


def migrate(
    target: Target = Target(),
    *,
    database: str = DEFAULT_DB_ALIAS,
    fake: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[], None] | None = None,
    on_plan: Callable[[list[Step]], None] | None = None,
    on_forget: Callable[[list[str]], None] | None = None,
    phase: str | None = None,
) -> list[Step]:
    """Take ``database`` to ``target``; return the steps that ran.

    ``phase``: ``"pre"`` runs only the pre-deploy migrations, ``"post"``
    (like ``None``) the rest (see :func:`plan`).

    The lock is held from before the version table is read until the last
    step is committed, so concurrent runs each see what the other applied.

    ``fake`` with an app and a migration records that migration as the app's
    state even when the version table holds revisions no script defines
    (Alembic's ``stamp --purge``, but other apps' heads stay): every such
    revision is removed first — no file says which app it belonged to — and
    reported through ``on_forget``; not on a database where the routers keep
    that app off.
    """
    scripts = load_scripts(target)
    with migration_lock(database, on_wait):  # connects, with a one-line error
        heads = read_heads(database)
        forget: list[str] = []
        if (
            fake
            and target.migration is not None
            and target.app_label in allowed_apps(database, scripts)
        ):
            forget = scripts.unknown(heads)
            heads = tuple(head for head in heads if head not in forget)
        steps = plan(database, scripts, target, heads, phase=phase)
        if not fake:
            check_django_dependencies(database, steps)
        if forget:
            # Its own transaction, like each step: what is recorded after it
            # is consistent whether or not the fake steps all get recorded.
            forget_revisions(database, forget)
            if on_forget is not None:
                on_forget(forget)
        if on_plan is not None:
            on_plan(steps)
        run(database, scripts, steps, heads, fake=fake, progress=progress)
    return steps


def unapply(
    app_label: str,
    migration: str,
    *,
    database: str = DEFAULT_DB_ALIAS,
    progress: Progress | None = None,
) -> Step:
    """Unapply exactly one migration, which must be a head of the database.

    Unlike ``migrate(app, previous)``, which also unapplies whatever was
    applied after it (a sibling branch, say), this runs only the downgrade of
    that one migration — what a stairway test needs.
    """
    scripts = load_scripts(Target(app_label, migration))
    found = naming.resolve(scripts, app_label, migration)
    if found is None:
        raise UnknownMigration("'zero' is not a migration; name one, e.g. 0001.")
    with migration_lock(database):
        heads = read_heads(database)
        if found.revision not in heads:
            raise ScriptError(
                f"{found.full_name} is not a head on database '{database}': it is not applied, "
                "or later migrations build on it; unapply those first."
            )
        alembic_step = MigrationStep.downgrade_from_script(
            scripts.directory.revision_map, found.script
        )
        step = Step(found, alembic_step)
        run(database, scripts, [step], heads, progress=progress)
    return step

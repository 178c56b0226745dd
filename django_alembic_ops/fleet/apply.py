"""Migrate one fleet target: what a worker runs, wherever it runs.

The steps are the plain run's (:mod:`..executor`): the target's lock, its
recorded heads, Alembic's plan, Django's dependencies, the runner; with, for a
tenant schema, its own lock, version table and ``search_path``, and the schema
created when it does not exist yet. Every failure becomes the target's result,
never an exception: one tenant's bad data must not stop a worker that has
others to migrate.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, router

from .. import conf, executor, state, tenants
from ..errors import OpsError
from ..executor import Target
from ..lock import migration_lock
from ..runner import Step, describe_error, run
from ..scripts import OpsMigration, OpsScripts
from .targets import SHARED, TENANT, FleetJob, FleetTarget

#: Targets a process migrates between two full garbage collections.
COLLECT_EVERY = 100

AT_HEAD = "at head"
MIGRATED = "migrated"
FAILED = "failed"
NOT_STARTED = "not started"


@dataclass(frozen=True)
class TargetResult:
    """What happened to one target of a fleet run.

    ``status`` is ``"at head"`` (nothing to do), ``"migrated"``, ``"failed"``
    or ``"not started"`` (after ``--max-failures`` failures, a failed canary,
    or a failed shared target of its database). ``done`` names the
    migrations applied (or unapplied) in this run, in order, also when a later
    one failed; ``failed_migration`` the one that failed, if a migration did.
    """

    target: FleetTarget
    status: str
    done: list[str] = field(default_factory=list)
    forward: bool = True
    fake: bool = False
    failed_migration: str | None = None
    error: str | None = None
    elapsed: float = 0.0


def target_apps(target: FleetTarget, labels: Iterable[str]) -> set[str]:
    """The apps of ``labels`` whose ops migrations run in ``target``.

    A tenant schema holds the ``TENANT_APPS``, its database's shared target
    the others; the database routers have the last word (call this inside
    :func:`..tenants.activated`, which some routers read).
    """
    tenant_apps = set(conf.get().TENANT_APPS)
    if target.kind == TENANT:
        chosen = [label for label in labels if label in tenant_apps]
    elif target.kind == SHARED:
        chosen = [label for label in labels if label not in tenant_apps]
    else:
        chosen = list(labels)
    return {label for label in chosen if router.allow_migrate(target.alias, label)}


class _Progress:
    """Follows a target's run through the runner's progress callback."""

    def __init__(self, target: FleetTarget, job: FleetJob) -> None:
        self.target = target
        self.job = job
        self.started = time.perf_counter()
        self.done: list[str] = []
        self.running: OpsMigration | None = None
        self.forward = True

    def __call__(
        self, event: str, migration: OpsMigration, fake: bool, elapsed: float | None
    ) -> None:
        self.forward = event.startswith("apply")
        if event.endswith("_retry"):
            return  # the same migration runs again (DDL_RETRIES)
        if event.endswith("_start"):
            self.running = migration
        else:
            self.running = None
            self.done.append(migration.full_name)

    def result(self, status: str, error: str | None = None) -> TargetResult:
        failed_migration = None
        if error is not None and self.running is not None:
            failed_migration = self.running.full_name
            # The runner's message starts "Applying <name> failed and was ...";
            # the output line names the migration already.
            verb = "Applying" if self.forward else "Unapplying"
            prefix = f"{verb} {failed_migration} failed and was "
            if error.startswith(prefix):
                error = error[len(prefix) :]
        return TargetResult(
            self.target,
            status,
            self.done,
            self.forward,
            self.job.fake,
            failed_migration,
            error,
            time.perf_counter() - self.started,
        )


def migrate_target(target: FleetTarget, job: FleetJob) -> TargetResult:
    """Take ``target`` to the job's destination; the result, never an exception."""
    progress = _Progress(target, job)
    try:
        ran = _migrate(target, job, progress)
    except OpsError as exc:
        return progress.result(FAILED, str(exc))
    except Exception as exc:  # a bug, a lost connection: this target's failure only
        return progress.result(FAILED, describe_error(exc))
    finally:
        _collect_now_and_then()
    return progress.result(MIGRATED if ran else AT_HEAD)


_migrated_since_collect = 0


def _collect_now_and_then() -> None:
    """A full garbage collection every :data:`COLLECT_EVERY` targets.

    Each migration leaves SQLAlchemy's ``Table``/``MetaData`` objects (Alembic
    builds them per operation) in reference cycles, which only a collection of
    the oldest generation frees; Python starts one only when that generation
    has grown by a quarter, and after Django, SQLAlchemy and Alembic are
    imported it holds hundreds of thousands of objects. Left alone, a process
    migrating tenant after tenant grew by about 120 KB a tenant (measured: 200
    MB after 1,000 tenants of 20 migrations) and stayed flat when collected.
    One collection costs 30-50 ms here: every 100 targets, under half a
    millisecond a target (a target of 20 migrations takes about 30 ms of
    CPU), for at most about 12 MB collected at a time.

    Freezing the heap between collections (``gc.freeze()``, so that each
    walks only what the targets made) measured slower, not faster (in one
    process, 100 tenants, three alternating runs: 35-44 ms a tenant frozen,
    26-38 ms not), probably because Python's own oldest-generation
    collections, which compare against what is not frozen, then start far
    more often.
    """
    global _migrated_since_collect
    _migrated_since_collect += 1
    if _migrated_since_collect >= COLLECT_EVERY:
        _migrated_since_collect = 0
        gc.collect()


def _migrate(target: FleetTarget, job: FleetJob, progress: _Progress) -> bool:
    alias, schema = target.alias, target.schema
    plan_target = Target(job.app_label, job.migration)
    scripts = executor.load_scripts(plan_target)
    with tenants.activated(alias, schema), migration_lock(alias, schema=schema):
        heads = state.read_heads(alias, schema)
        apps = target_apps(target, scripts.apps)
        steps = _plan(alias, scripts, plan_target, heads, apps)
        if not steps:
            return False
        if schema is not None and not heads:
            _create_schema(alias, schema)
        if not job.fake:
            executor.check_django_dependencies(alias, steps)
        run(alias, scripts, steps, heads, fake=job.fake, progress=progress, schema=schema)
    return True


#: This process's plans for the scripts it loaded last, by what a plan depends
#: on besides the scripts: a fleet's tenants mostly start from the same heads,
#: and planning walks Alembic's revision map again each time (about a
#: twentieth of a tenant's CPU for 20 migrations, by profile).
_plans: tuple[OpsScripts | None, dict[tuple[Any, ...], list[Step]]] = (None, {})


def _plan(
    alias: str, scripts: OpsScripts, plan_target: Target, heads: Sequence[str], apps: set[str]
) -> list[Step]:
    """:func:`..executor.plan` for a target, made once per distinct starting point.

    The plan is a function of the scripts, the destination, the recorded heads
    and the apps migrated here (the routers' answers for the target, already in
    ``apps``); a plan that cannot be made raises each time, and is not kept.
    """
    global _plans
    planned_for, plans = _plans
    if planned_for is not scripts:  # new scripts (reloaded): earlier plans are stale
        plans = {}
        _plans = (scripts, plans)
    key = (alias, plan_target, tuple(heads), frozenset(apps))
    steps = plans.get(key)
    if steps is None:
        steps = plans[key] = executor.plan(alias, scripts, plan_target, heads, apps=apps)
    return list(steps)


def _create_schema(alias: str, schema: str) -> None:
    """A tenant listed before its schema exists gets it (under the schema's lock)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {state.quote_pg_identifier(schema)}")

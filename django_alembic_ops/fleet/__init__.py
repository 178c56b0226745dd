"""Fleets: the same ops migrations in many tenant schemas and databases.

:func:`migrate_fleet` resolves the targets (:mod:`.targets`), finds those
already at head before any worker starts (:mod:`.scan`), then runs the others
— each database's shared target first, then ``canary`` targets alone, then
the rest — on an executor (:mod:`.local`: this process or a pool of worker
processes; :mod:`.celery`: Celery workers), starting no new target after
``max_failures`` failures. A re-run does only what is still behind.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import DEFAULT_DB_ALIAS

from .. import discovery, executor, naming
from .. import tenants as tenancy
from ..errors import FleetError, OpsError
from ..executor import Target
from .apply import AT_HEAD, FAILED, MIGRATED, NOT_STARTED, TargetResult, target_apps
from .local import LocalExecutor
from .scan import HeadCheck, recorded_heads
from .targets import DATABASE, SHARED, TENANT, FleetJob, FleetTarget, resolve

if TYPE_CHECKING:
    from .celery import CeleryExecutor

#: The executors ``--executor`` names.
EXECUTORS = ("local", "celery")

__all__ = [
    "AT_HEAD",
    "DATABASE",
    "FAILED",
    "MIGRATED",
    "NOT_STARTED",
    "SHARED",
    "TENANT",
    "FleetJob",
    "FleetTarget",
    "TargetResult",
    "TargetState",
    "migrate_fleet",
    "show_fleet",
]


def migrate_fleet(
    job: FleetJob,
    *,
    tenants: bool = False,
    names: Sequence[str] = (),
    all_databases: bool = False,
    database: str = DEFAULT_DB_ALIAS,
    jobs: int | None = None,
    canary: int = 0,
    max_failures: int = 1,
    executor: str = "local",
    on_result: Callable[[TargetResult], None] | None = None,
    on_targets: Callable[[list[FleetTarget]], None] | None = None,
) -> list[TargetResult]:
    """Run ``job`` in every target; one result per target, in target order.

    See :func:`django_alembic_ops.api.migrate_fleet` for the parameters;
    ``on_targets`` gets the targets once they are known, before any starts.
    """
    if (jobs is not None and jobs < 1) or canary < 0 or max_failures < 1:
        raise FleetError("--jobs and --max-failures must be at least 1, --canary at least 0.")
    if executor not in EXECUTORS:
        raise FleetError(f"Unknown fleet executor {executor!r}; use 'local' or 'celery'.")
    # A missing Celery or a wrong CELERY_APP: said before anything starts.
    celery = _celery_executor(jobs) if executor == "celery" else None
    if job.app_label is not None:
        discovery.require_ops_app(job.app_label)
    targets = resolve(tenants=tenants, names=names, all_databases=all_databases, database=database)
    if on_targets is not None:
        on_targets(targets)
    results: dict[FleetTarget, TargetResult] = {}

    def report(result: TargetResult) -> None:
        results[result.target] = result
        if on_result is not None:
            on_result(result)

    check = HeadCheck(job)
    heads = recorded_heads(targets)
    behind = []
    for target in targets:
        if check.at_head(target, heads[target]):
            report(TargetResult(target, AT_HEAD, fake=job.fake))
        else:
            behind.append(target)
    if behind:
        _validate(job)  # bad names or scripts: one line, before any target starts
        _run(
            behind,
            job,
            celery or LocalExecutor(min(jobs or 1, len(behind)), len(behind)),
            canary,
            max_failures,
            results,
            report,
        )
    for target in targets:
        if target not in results:
            report(TargetResult(target, NOT_STARTED, fake=job.fake))
    return [results[target] for target in targets]


def _validate(job: FleetJob) -> None:
    scripts = executor.load_scripts(Target(job.app_label, job.migration))
    for label in [job.app_label] if job.app_label is not None else list(scripts.apps):
        scripts.app_head(label)  # several heads: say so before anything runs
    if job.app_label is not None and job.migration is not None:
        naming.resolve(scripts, job.app_label, job.migration)


def _celery_executor(jobs: int | None) -> CeleryExecutor:
    if importlib.util.find_spec("celery") is None:
        raise FleetError(
            "--executor celery needs Celery: pip install 'django-alembic-ops[celery]' "
            "(or use --executor local)."
        )
    from .celery import CeleryExecutor

    return CeleryExecutor(jobs)


def _run(
    behind: list[FleetTarget],
    job: FleetJob,
    runner: LocalExecutor | CeleryExecutor,
    canary: int,
    max_failures: int,
    results: dict[FleetTarget, TargetResult],
    report: Callable[[TargetResult], None],
) -> None:
    failures = 0

    def counted(result: TargetResult) -> None:
        nonlocal failures
        failures += result.status == FAILED
        report(result)

    def keep_going() -> bool:
        return failures < max_failures

    shared = [target for target in behind if target.kind == SHARED]
    rest = [target for target in behind if target.kind != SHARED]
    with runner as workers:
        # Each database's shared apps first: its tenants' tables may refer to them.
        workers.run(shared, job, keep_going=keep_going, on_result=counted)
        # A database whose shared apps failed gets no tenant started.
        blocked = {target.alias for target in shared if not _succeeded(results, target)}
        rest = [target for target in rest if target.alias not in blocked]
        canaries, others = rest[:canary], rest[canary:]
        workers.run(canaries, job, keep_going=keep_going, on_result=counted)
        if not all(_succeeded(results, target) for target in canaries):
            return  # a canary failed (or was not started): touch no other target
        workers.run(others, job, keep_going=keep_going, on_result=counted)


def _succeeded(results: dict[FleetTarget, TargetResult], target: FleetTarget) -> bool:
    result = results.get(target)
    return result is not None and result.status in (AT_HEAD, MIGRATED)


@dataclass(frozen=True)
class TargetState:
    """Where one target stands (``opsshowmigrations --tenants``).

    ``pending``: the full names of the migrations ``opsmigrate`` would run
    there, in order (empty at head); ``error``: why that cannot be planned
    (a recorded revision no script defines, ...).
    """

    target: FleetTarget
    heads: tuple[str, ...]
    pending: list[str]
    error: str | None = None


def show_fleet(
    app_label: str | None = None,
    *,
    tenants: bool = False,
    names: Sequence[str] = (),
    all_databases: bool = False,
    database: str = DEFAULT_DB_ALIAS,
) -> list[TargetState]:
    """Where every target stands, one entry per target, in target order."""
    job = FleetJob(app_label)
    if app_label is not None:
        discovery.require_ops_app(app_label)
    targets = resolve(tenants=tenants, names=names, all_databases=all_databases, database=database)
    check = HeadCheck(job)
    heads = recorded_heads(targets)
    states = []
    plans: dict[tuple[str, str, tuple[str, ...]], TargetState] = {}
    for target in targets:
        if check.at_head(target, heads[target]):
            states.append(TargetState(target, heads[target], []))
            continue
        # Most targets behind are behind by the same migrations: plan once per
        # (database, kind, heads).
        key = (target.alias, target.kind, heads[target])
        if key not in plans:
            plans[key] = _pending(target, heads[target], job)
        found = plans[key]
        states.append(TargetState(target, heads[target], found.pending, found.error))
    return states


def _pending(target: FleetTarget, heads: tuple[str, ...], job: FleetJob) -> TargetState:
    plan_target = Target(job.app_label)
    try:
        scripts = executor.load_scripts(plan_target)
        with tenancy.activated(target.alias, target.schema):
            steps = executor.plan(
                target.alias, scripts, plan_target, heads, apps=target_apps(target, scripts.apps)
            )
    except OpsError as exc:
        return TargetState(target, heads, [], str(exc))
    return TargetState(target, heads, [step.migration.full_name for step in steps])

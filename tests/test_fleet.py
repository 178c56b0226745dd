"""Fleets: the same ops migrations in many tenant schemas (PostgreSQL) and databases.

In-process tests drive ``opsmigrate --tenants`` against schemas they create on
the PostgreSQL test database (and drop afterwards); ``TENANTS`` points at
:func:`tenant_list`, which returns what the test put in :data:`TENANTS`.
Subprocess tests (SIGKILL, concurrent deploys, django-tenants) run a small
project on a database of their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import CaptureQueriesContext, override_settings

from django_alembic_ops import api

from .conftest import (
    Project,
    drop_server_databases,
    one_table,
    pg_execute,
    query,
    run,
    server_database,
)
from .test_reliability import read_until

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

#: What ``TENANTS`` returns in the in-process tests.
TENANTS: list[Any] = []


def tenant_list() -> list[Any]:
    """The ``TENANTS`` callable of these tests."""
    return list(TENANTS)


class Fleet:
    """Tenant schemas on the PostgreSQL test database, listed by ``TENANTS``."""

    def __init__(self, alias: str, project: Project) -> None:
        self.alias = alias
        self.project = project

    def tenants(self, *names: str) -> None:
        TENANTS[:] = [(self.alias, name) for name in names]

    def execute(self, sql: str) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(sql)

    def heads(self, schema: str) -> list[str]:
        return [
            row[0]
            for row in query(self.alias, f'SELECT version_num FROM "{schema}".alembic_ops_version')
        ]

    def tables(self, *names: str) -> set[tuple[str, str]]:
        """``(schema, table)`` of every table called one of ``names``."""
        rows = query(
            self.alias,
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_name = ANY(%s)",
            [list(names)],
        )
        return {(schema, table) for schema, table in rows}

    def drop_schemas(self) -> None:
        rows = query(
            self.alias,
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'fleet\\_%%'",
        )
        for (schema,) in rows:
            self.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def fleet_settings() -> Iterator[None]:
    """``ALEMBIC_OPS`` of a fleet, set before ``project`` and restored after it.

    override_settings restores the settings it found: the project's own
    override (INSTALLED_APPS, re-entered at each ``project.app()``) must be
    entered and left inside this one, or leaving it brings these back for
    every later test.
    """
    settings = {"TENANTS": "tests.test_fleet.tenant_list", "TENANT_APPS": ["billing"]}
    with override_settings(ALEMBIC_OPS=settings):
        yield


@pytest.fixture
def fleet(fleet_settings: None, project: Project, pg_alias: str) -> Iterator[Fleet]:
    """A PostgreSQL fleet: ``TENANT_APPS = ["billing"]``; every other app is shared."""
    fleet = Fleet(pg_alias, project)
    try:
        yield fleet
    finally:
        TENANTS.clear()
        fleet.drop_schemas()


def run_fleet(*args: str, **options: Any) -> tuple[str, str | None]:
    """``opsmigrate <args>``: what it printed, and its CommandError (``None`` if none)."""
    out = StringIO()
    try:
        call_command("opsmigrate", *args, stdout=out, stderr=out, no_color=True, **options)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def lines(output: str) -> list[str]:
    """Output lines with the timings ``(0.31s)`` replaced by ``(T)``."""
    import re

    return [re.sub(r"\(\d+\.\d+s\)", "(T)", line) for line in output.splitlines()]


def shop_and_billing(project: Project) -> None:
    """A shared app (``shop``) and a tenant app (``billing``) whose table refers to shop's."""
    project.app("shop")
    project.script("shop", "0001_initial", revision="s0001", **one_table("shop_item"))
    project.app("billing")
    project.script(
        "billing",
        "0001_initial",
        revision="b0001",
        # No schema=: the tenant's own schema; shop_item is found in public.
        upgrade="""
            op.create_table(
                "billing_invoice",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("amount", sa.Integer, nullable=False, server_default="1"),
                sa.Column("item_id", sa.Integer, sa.ForeignKey("shop_item.id")),
            )
        """,
        downgrade='op.drop_table("billing_invoice")',
    )


def add_check(project: Project) -> None:
    """billing.0002: amounts must be positive (fails where a tenant has bad data)."""
    project.script(
        "billing",
        "0002_positive",
        revision="b0002",
        down="b0001",
        upgrade='op.create_check_constraint("positive", "billing_invoice", "amount > 0")',
        downgrade='op.drop_constraint("positive", "billing_invoice")',
    )


def test_tenant_migrations_land_in_each_schema_and_shared_apps_once(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    fleet.tenants("fleet_one", "fleet_two")  # the schemas do not exist yet
    search_path = query(fleet.alias, "SHOW search_path")

    out, error = run_fleet("--tenants", "--database", fleet.alias)

    assert error is None, out
    assert lines(out) == [
        "  postgres: applied 1 (T)",
        "  fleet_one: applied 1 (T)",
        "  fleet_two: applied 1 (T)",
        "Fleet: 3 targets: 0 at head, 3 migrated, 0 failed, 0 not started (T)",
    ]
    assert fleet.tables("shop_item", "billing_invoice") == {
        ("public", "shop_item"),
        ("fleet_one", "billing_invoice"),
        ("fleet_two", "billing_invoice"),
    }
    # Each schema records its own apps' heads; the database its shared apps'.
    assert fleet.heads("public") == ["s0001"]
    assert fleet.heads("fleet_one") == fleet.heads("fleet_two") == ["b0001"]
    # The tenant's foreign key refers to the shared table in public.
    assert query(
        fleet.alias,
        "SELECT confrelid::regclass::text FROM pg_constraint "
        "WHERE conrelid = 'fleet_one.billing_invoice'::regclass AND contype = 'f'",
    ) == [("shop_item",)]
    # Django's connection got its search_path back.
    assert query(fleet.alias, "SHOW search_path") == search_path

    again, error = run_fleet("--tenants", "--database", fleet.alias, verbosity=2)
    assert error is None
    assert lines(again) == [
        "  postgres: at head",
        "  fleet_one: at head",
        "  fleet_two: at head",
        "Fleet: 3 targets: 3 at head, 0 migrated, 0 failed, 0 not started (T)",
    ]


def test_each_tenant_schema_keeps_the_history_of_its_own_migrations(fleet: Fleet) -> None:
    """alembic_ops_history lives next to each version table: a tenant's applied and
    unapplied events in its schema, the shared apps' in the database's."""
    shop_and_billing(fleet.project)
    fleet.tenants("fleet_one", "fleet_two")
    out, error = run_fleet("--tenants", "--database", fleet.alias)
    assert error is None, out
    assert fleet.tables("alembic_ops_history") == {
        ("public", "alembic_ops_history"),
        ("fleet_one", "alembic_ops_history"),
        ("fleet_two", "alembic_ops_history"),
    }

    def events(schema: str) -> list[tuple[str, str, str]]:
        return query(
            fleet.alias,
            f'SELECT event, app, revision FROM "{schema}".alembic_ops_history ORDER BY id',
        )

    assert events("public") == [("apply", "shop", "s0001")]
    assert events("fleet_one") == events("fleet_two") == [("apply", "billing", "b0001")]
    out, error = run_fleet("billing", "zero", "--tenant", "fleet_one", "--database", fleet.alias)
    assert error is None, out
    assert events("fleet_one") == [
        ("apply", "billing", "b0001"),
        ("unapply", "billing", "b0001"),
    ]
    assert events("fleet_two") == [("apply", "billing", "b0001")]


def create_tenants_at(fleet: Fleet, prefix: str, count: int, revision: str) -> list[str]:
    """``count`` schemas, each with a version table at ``revision``, in one statement."""
    fleet.execute(
        f"""
        DO $$ BEGIN
        FOR i IN 1..{count} LOOP
            EXECUTE format('CREATE SCHEMA %I', '{prefix}' || i);
            EXECUTE format('CREATE TABLE %I.alembic_ops_version '
                           '(version_num varchar(32) PRIMARY KEY)', '{prefix}' || i);
            EXECUTE format('INSERT INTO %I.alembic_ops_version VALUES (%L)',
                           '{prefix}' || i, '{revision}');
        END LOOP;
        END $$
        """
    )
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def test_targets_at_head_are_found_with_the_same_few_queries_for_50_or_500(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    fleet.tenants()
    api.migrate_fleet(tenants=True, database=fleet.alias)  # the shared target
    counts = []
    for count in (50, 500):
        fleet.tenants(*create_tenants_at(fleet, f"fleet_{count}_", count, "b0001"))
        with CaptureQueriesContext(connections[fleet.alias]) as queries:
            results = api.migrate_fleet(tenants=True, database=fleet.alias, jobs=2)
        assert [result.status for result in results] == ["at head"] * (count + 1)
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 4, counts
    # Not a query per schema: one statement asks the catalog and reads every version table.
    assert sum("query_to_xml" in q["sql"] for q in queries.captured_queries) == 1
    # A tenant behind among the 500 is found, and only it is migrated.
    fleet.execute('TRUNCATE "fleet_500_7".alembic_ops_version')
    results = api.migrate_fleet(tenants=True, database=fleet.alias)
    assert [r.target.label for r in results if r.status == "migrated"] == ["fleet_500_7"]
    assert fleet.tables("billing_invoice") == {("fleet_500_7", "billing_invoice")}


def test_a_failed_tenant_stops_the_fleet_and_a_rerun_does_the_rest(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    names = ["fleet_a", "fleet_b", "fleet_c", "fleet_d"]
    fleet.tenants(*names)
    assert run_fleet("--tenants", "--database", fleet.alias)[1] is None
    fleet.execute("INSERT INTO fleet_b.billing_invoice (amount) VALUES (-5)")  # bad data
    add_check(fleet.project)

    out, error = run_fleet("--tenants", "--database", fleet.alias)

    assert lines(out) == [
        "  fleet_a: applied 1 (T)",
        "  fleet_b: FAILED billing.0002_positive: rolled back: CheckViolation: check constraint "
        '"positive" of relation "billing_invoice" is violated by some row; statement: '
        "ALTER TABLE billing_invoice ADD CONSTRAINT positive CHECK (amount > 0)",
        "Fleet: 5 targets: 1 at head, 1 migrated, 1 failed, 2 not started (T)",
    ]
    assert error == (
        "The fleet is not done: 1 failed, 2 not started. Fix the failure and run the same "
        "command again: it migrates only the targets still behind."
    )
    assert [fleet.heads(name) for name in names] == [["b0002"], ["b0001"], ["b0001"], ["b0001"]]
    assert query(fleet.alias, "SHOW search_path") == [('"$user", public',)]

    fleet.execute("UPDATE fleet_b.billing_invoice SET amount = 5")
    out, error = run_fleet("--tenants", "--database", fleet.alias)

    assert error is None
    assert lines(out) == [
        "  fleet_b: applied 1 (T)",
        "  fleet_c: applied 1 (T)",
        "  fleet_d: applied 1 (T)",
        "Fleet: 5 targets: 2 at head, 3 migrated, 0 failed, 0 not started (T)",
    ]
    assert [fleet.heads(name) for name in names] == [["b0002"]] * 4


def test_failed_canaries_leave_every_other_target_untouched(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    names = ["fleet_a", "fleet_b", "fleet_c", "fleet_d"]
    fleet.tenants(*names)
    assert run_fleet("--tenants", "--database", fleet.alias)[1] is None
    fleet.execute("INSERT INTO fleet_a.billing_invoice (amount) VALUES (-5)")
    add_check(fleet.project)

    out, error = run_fleet(
        "--tenants", "--database", fleet.alias, "--canary", "2", "--max-failures", "10"
    )

    assert error is not None
    assert lines(out)[0].startswith("  fleet_a: FAILED billing.0002_positive: rolled back:")
    assert lines(out)[1:] == [
        "  fleet_b: applied 1 (T)",  # the other canary
        "Fleet: 5 targets: 1 at head, 1 migrated, 1 failed, 2 not started (T)",
    ]
    assert [fleet.heads(name) for name in names] == [["b0001"], ["b0002"], ["b0001"], ["b0001"]]


def test_canaries_that_succeed_let_the_others_start(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    fleet.tenants("fleet_a", "fleet_b", "fleet_c")
    out, error = run_fleet("--tenants", "--database", fleet.alias, "--canary", "1")
    assert error is None
    assert lines(out)[-1] == "Fleet: 4 targets: 0 at head, 4 migrated, 0 failed, 0 not started (T)"


def four_tenants_recording_a_pid(
    fleet: Fleet, *, header: str, pid: str, then: str = ""
) -> list[str]:
    """Four tenants whose billing.0002 writes ``pid`` (an expression) into billing_invoice."""
    shop_and_billing(fleet.project)
    fleet.project.script(
        "billing",
        "0002_pid",
        revision="b0002",
        down="b0001",
        header=header,
        upgrade=f"""
            op.execute(f"INSERT INTO billing_invoice (amount) VALUES ({{{pid}}})")
            {then}
        """,
    )
    names = [f"fleet_{i}" for i in range(4)]
    fleet.tenants(*names)
    return names


def recorded_pids(fleet: Fleet, names: list[str]) -> list[int]:
    return [
        query(fleet.alias, f"SELECT amount FROM {name}.billing_invoice")[0][0] for name in names
    ]


def test_jobs_run_targets_in_worker_processes(fleet: Fleet) -> None:
    names = four_tenants_recording_a_pid(
        fleet,
        header="import os, time",
        pid="os.getpid()",
        then="time.sleep(1)",
    )

    out, error = run_fleet("--tenants", "--database", fleet.alias, "--jobs", "2")

    assert error is None, out
    assert lines(out)[-1] == "Fleet: 5 targets: 0 at head, 5 migrated, 0 failed, 0 not started (T)"
    pids = set(recorded_pids(fleet, names))
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, none of them this process
    assert [fleet.heads(name) for name in names] == [["b0002"]] * 4


def test_workers_are_spawned_and_replaced_after_their_share_of_targets(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked pool inherits the parent's memory and grows with each tenant (django-tenants
    #1228): workers are spawned, so they see nothing of the parent's module state, and
    from Python 3.11 each is replaced after TASKS_PER_WORKER targets (here, with 4
    tenants for 2 workers: every piece of a worker's share is one target)."""
    from django_alembic_ops.fleet import local

    monkeypatch.setattr(local, "TASKS_PER_WORKER", 1)
    monkeypatch.setattr(local, "_set_in_the_parent_only", True, raising=False)
    names = four_tenants_recording_a_pid(
        fleet,
        header="import os, sys",
        # Negative in a forked worker: the parent's module state is there.
        pid="-os.getpid() if hasattr(sys.modules['django_alembic_ops.fleet.local'], "
        "'_set_in_the_parent_only') else os.getpid()",
    )

    out, error = run_fleet("--tenants", "--database", fleet.alias, "--jobs", "2")

    assert error is None, out
    assert lines(out)[-1] == "Fleet: 5 targets: 0 at head, 5 migrated, 0 failed, 0 not started (T)"
    pids = recorded_pids(fleet, names)
    assert all(pid > 0 for pid in pids), pids  # spawned: the parent's state is not there
    assert os.getpid() not in pids
    # One target per worker from Python 3.11 (max_tasks_per_child). Before, the pool's
    # workers are never replaced: at most its two (one of them may take all four
    # targets while the other is still starting, as CI saw on 3.10).
    if sys.version_info >= (3, 11):
        assert len(set(pids)) == 4, pids
    else:
        assert 1 <= len(set(pids)) <= 2, pids


def test_workers_are_not_replaced_just_as_the_run_ends() -> None:
    """ProcessPoolExecutor replaces a worker that reached its bound even with nothing
    left to do: a worker's start-up for nothing. The bound splits each worker's share
    evenly, so a share within 1 % of the expected one never ends on a multiple of it."""
    from django_alembic_ops.fleet.local import TASKS_PER_WORKER, tasks_per_worker

    assert tasks_per_worker(1000, 2) > 500 + 5  # 2 jobs of 1,000: no replacement at all
    assert tasks_per_worker(4, 2) > 4  # a small fleet's uneven shares: none either
    for jobs in (1, 2, 3, 4, 8):
        for targets in range(1, 10 * TASKS_PER_WORKER * jobs + 1, 3):
            bound = tasks_per_worker(targets, jobs)
            assert 1 <= bound <= TASKS_PER_WORKER * 21 // 20
            share = -(-targets // jobs)
            if share >= 20:
                near = range(share - share // 100, share + share // 100 + 1)
                assert all(done % bound for done in near), (targets, jobs, bound)


def test_showmigrations_lists_the_targets_behind_head(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    fleet.tenants("fleet_a", "fleet_b")
    run_fleet("--tenants", "--database", fleet.alias)
    add_check(fleet.project)
    fleet.project.script(
        "billing", "0003_more", revision="b0003", down="b0002", **one_table("billing_more")
    )
    run_fleet("--tenants", "--tenant", "fleet_b", "--database", fleet.alias)

    out = run("opsshowmigrations", "--tenants", "--database", fleet.alias)

    assert lines(out) == [
        "  fleet_a: 2 pending: billing.0002_positive, billing.0003_more",
        "Fleet: 3 targets: 2 at head, 1 behind (T)",
    ]
    verbose = run("opsshowmigrations", "--tenants", "--database", fleet.alias, verbosity=2)
    assert lines(verbose) == [
        "  postgres: at head",
        "  fleet_a: 2 pending: billing.0002_positive, billing.0003_more",
        "  fleet_b: at head",
        "Fleet: 3 targets: 2 at head, 1 behind (T)",
    ]
    states = api.show_fleet(tenants=True, database=fleet.alias)
    assert [(s.target.label, s.heads, s.pending) for s in states] == [
        ("postgres", ("s0001",), []),
        ("fleet_a", ("b0001",), ["billing.0002_positive", "billing.0003_more"]),
        ("fleet_b", ("b0003",), []),
    ]
    # opsmigrate --check, for a fleet: the same lines, exit status 1.
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("opsmigrate", "--tenants", "--check", "--database", fleet.alias, stdout=out)
    assert exit_info.value.code == 1
    assert out.getvalue() == "  fleet_a: 2 pending: billing.0002_positive, billing.0003_more\n"
    run_fleet("--tenants", "--database", fleet.alias)
    assert run("opsmigrate", "--tenants", "--check", "--database", fleet.alias) == ""


def test_tenants_share_their_version_and_history_statements_compiled_once(
    fleet: Fleet,
) -> None:
    """Every tenant's version and history tables are one ``Table`` object each, mapped
    to the tenant's schema by the connection: SQLAlchemy compiles their statements for
    the first tenant and finds them in its cache for the others (it caches per object;
    a ``Table`` per schema meant a compilation per tenant and migration)."""
    from sqlalchemy import event

    from django_alembic_ops import bridge

    shop_and_billing(fleet.project)
    add_check(fleet.project)
    engine = bridge._engine_for(fleet.alias)
    seen: list[tuple[str, str]] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "alembic_ops_" in statement:
            context = args[1]
            seen.append((" ".join(statement.split()[:3]), str(context.cache_hit)))

    fleet.tenants("fleet_one")
    out, error = run_fleet("--tenants", "--database", fleet.alias)
    assert error is None, out
    event.listen(engine, "after_cursor_execute", executed)
    try:
        fleet.tenants("fleet_one", "fleet_two", "fleet_three")
        out, error = run_fleet("--tenants", "--database", fleet.alias)
    finally:
        event.remove(engine, "after_cursor_execute", executed)

    assert error is None, out
    verbs = {statement.split()[0] for statement, _ in seen}
    assert {"INSERT", "UPDATE", "CREATE"} <= verbs, seen
    assert [(statement, hit) for statement, hit in seen if hit.endswith("CACHE_MISS")] == []
    # Each tenant's rows are in its own schema, none in a schema named after the stand-in.
    assert fleet.heads("fleet_two") == fleet.heads("fleet_three") == ["b0002"]
    assert query(fleet.alias, 'SELECT count(*) FROM "fleet_three".alembic_ops_history') == [(2,)]
    assert query(
        fleet.alias, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%%django_alembic%%'"
    ) == [(0,)]


def test_tenants_starting_from_the_same_heads_share_one_plan(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process plans once per starting point, not once per tenant (planning walks
    Alembic's revision map); each tenant still gets the plan for its own heads."""
    from django_alembic_ops import executor

    shop_and_billing(fleet.project)
    fleet.tenants("fleet_one")
    out, error = run_fleet("--tenants", "--database", fleet.alias)
    assert error is None, out
    add_check(fleet.project)  # fleet_one is one migration behind, new tenants two
    planned: list[tuple[str, ...]] = []
    real_plan = executor.plan

    def counted(alias: str, scripts: Any, target: Any, heads: Any, **options: Any) -> Any:
        planned.append(tuple(heads))
        return real_plan(alias, scripts, target, heads, **options)

    monkeypatch.setattr(executor, "plan", counted)
    fleet.tenants("fleet_one", "fleet_two", "fleet_three", "fleet_four")

    out, error = run_fleet("--tenants", "--database", fleet.alias)

    assert error is None, out
    tenant_plans = sorted(heads for heads in planned if "s0001" not in heads)
    assert tenant_plans == [(), ("b0001",)]  # three empty tenants, one plan; fleet_one its own
    assert "  fleet_one: applied 1 (T)" in lines(out)
    assert "  fleet_four: applied 2 (T)" in lines(out)
    for schema in ("fleet_one", "fleet_two", "fleet_three", "fleet_four"):
        assert fleet.heads(schema) == ["b0002"]
        history = query(
            fleet.alias, f'SELECT revision FROM "{schema}".alembic_ops_history ORDER BY id'
        )
        assert history == [("b0001",), ("b0002",)]


def test_migrate_fleet_returns_one_result_per_target(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    fleet.tenants("fleet_a", "fleet_b")
    seen: list[str] = []

    results = api.migrate_fleet(
        tenants=True, database=fleet.alias, on_result=lambda r: seen.append(r.target.label)
    )

    assert [(r.target.label, r.target.schema, r.status, r.done) for r in results] == [
        ("postgres", None, "migrated", ["shop.0001_initial"]),
        ("fleet_a", "fleet_a", "migrated", ["billing.0001_initial"]),
        ("fleet_b", "fleet_b", "migrated", ["billing.0001_initial"]),
    ]
    assert seen == ["postgres", "fleet_a", "fleet_b"]
    again = api.migrate_fleet("billing", tenant=["fleet_b"], database=fleet.alias)
    assert [(r.target.label, r.status) for r in again] == [("fleet_b", "at head")]


def test_each_tenant_schema_has_a_lock_of_its_own(fleet: Fleet) -> None:
    from django_alembic_ops import lock

    from .conftest import pg_connect

    shop_and_billing(fleet.project)
    fleet.tenants("fleet_a", "fleet_b")
    holder = pg_connect(dbname=connections[fleet.alias].settings_dict["NAME"])
    try:
        holder.autocommit = True
        with holder.cursor() as cursor:  # another run, in the middle of fleet_a
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock._pg_key("fleet_a")])
        ops = {"TENANTS": tenant_list, "TENANT_APPS": ["billing"], "LOCK_TIMEOUT": 0.3}
        with override_settings(ALEMBIC_OPS=ops):
            out, error = run_fleet("--tenants", "--database", fleet.alias, "--max-failures", "2")
    finally:
        holder.close()

    assert lines(out) == [
        "  postgres: applied 1 (T)",
        "  fleet_a: FAILED: Another opsmigrate run held the lock on database 'postgres' for "
        "more than 0.3 seconds; try again later or raise ALEMBIC_OPS['LOCK_TIMEOUT'].",
        "  fleet_b: applied 1 (T)",
        "Fleet: 3 targets: 0 at head, 2 migrated, 1 failed, 0 not started (T)",
    ]
    assert error is not None
    assert fleet.tables("billing_invoice") == {("fleet_b", "billing_invoice")}


def test_fake_records_in_every_tenant_without_running(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    fleet.tenants("fleet_a")
    out, error = run_fleet("--tenants", "--database", fleet.alias, "--fake")
    assert error is None
    assert lines(out) == [
        "  postgres: faked 1 (T)",
        "  fleet_a: faked 1 (T)",
        "Fleet: 2 targets: 0 at head, 2 migrated, 0 failed, 0 not started (T)",
    ]
    assert fleet.heads("fleet_a") == ["b0001"]
    assert fleet.tables("shop_item", "billing_invoice") == set()


def test_a_terminal_gets_a_progress_bar() -> None:
    from django.core.management.base import OutputWrapper
    from django.core.management.color import no_style

    from django_alembic_ops.fleet import FleetTarget, TargetResult
    from django_alembic_ops.management.fleet import FleetPrinter

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    printer = FleetPrinter(OutputWrapper(terminal), no_style(), 1)
    targets = [FleetTarget("default", f"t{i}", "tenant", f"t{i}") for i in range(2)]
    printer.targets(targets)
    printer.result(TargetResult(targets[0], "at head"))
    printer.result(TargetResult(targets[1], "migrated", ["billing.0001_x"], elapsed=0.5))
    printer.summary([TargetResult(targets[0], "at head"), TargetResult(targets[1], "migrated")])
    clear = "\r\x1b[K"
    assert terminal.getvalue().startswith(
        f"{clear}[###############...............] 1/2"
        f"{clear}  t1: applied 1 (0.50s)\n[##############################] 2/2"
        f"{clear}Fleet: 2 targets: 1 at head, 1 migrated, 0 failed, 0 not started ("
    )
    plain = StringIO()  # not a terminal: no bar
    printer = FleetPrinter(OutputWrapper(plain), no_style(), 1)
    printer.targets(targets)
    printer.result(TargetResult(targets[1], "migrated", ["billing.0001_x"], elapsed=0.5))
    assert plain.getvalue() == "  t1: applied 1 (0.50s)\n"


class NoShopOnOther:
    """A router that keeps app ``shop`` off the ``other`` database."""

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if (db, app_label) == ("other", "shop") else None


def test_all_databases_migrates_each_database_whole(project: Project) -> None:
    project.app("shop")
    project.script("shop", "0001_initial", revision="s0001", **one_table("shop_item"))
    project.app("billing")
    project.script("billing", "0001_initial", revision="b0001", **one_table("billing_invoice"))

    with override_settings(DATABASE_ROUTERS=[f"{__name__}.NoShopOnOther"]):
        out, error = run_fleet("--all-databases")

    assert error is None, out
    aliases = list(connections)
    assert lines(out) == [
        *(f"  {alias}: applied {1 if alias == 'other' else 2} (T)" for alias in aliases),
        f"Fleet: {len(aliases)} targets: 0 at head, {len(aliases)} migrated, 0 failed, "
        "0 not started (T)",
    ]
    for alias in aliases:
        tables = {"billing_invoice"} if alias == "other" else {"shop_item", "billing_invoice"}
        assert tables <= set(connections[alias].introspection.table_names()), alias
    assert "shop_item" not in connections["other"].introspection.table_names()


def test_tenants_may_be_whole_databases_on_any_backend(project: Project) -> None:
    """``(alias, None)`` pairs: a database per tenant; SQLite has no schemas."""
    project.app("shop")
    project.script("shop", "0001_initial", revision="s0001", **one_table("shop_item"))
    project.app("billing")
    project.script("billing", "0001_initial", revision="b0001", **one_table("billing_invoice"))
    TENANTS[:] = [("default", None), ("other", None)]
    settings = {"TENANTS": tenant_list, "TENANT_APPS": ["billing"]}
    try:
        with override_settings(ALEMBIC_OPS=settings):
            out, error = run_fleet("--tenant", "other", "--database", "other", verbosity=2)
            results = api.migrate_fleet(tenants=True)
    finally:
        TENANTS.clear()

    assert error is None, out
    assert lines(out) == [
        "  other: applied 2 (T)",
        "Fleet: 1 target: 0 at head, 1 migrated, 0 failed, 0 not started (T)",
    ]
    assert [(r.target.alias, r.target.schema, r.target.kind, r.status) for r in results] == [
        ("default", None, "database", "migrated")
    ]
    for alias in ("default", "other"):
        assert {"shop_item", "billing_invoice"} <= set(
            connections[alias].introspection.table_names()
        )


@pytest.mark.parametrize(
    "ops_settings, args, message",
    [
        (
            {},
            ["--tenants"],
            "--tenants needs ALEMBIC_OPS['TENANTS']: a function that lists the tenant schemas "
            "(for django-tenants: 'django_alembic_ops.tenants.django_tenants_schemas').",
        ),
        (
            {"TENANTS": "tests.test_fleet.no_such_function", "TENANT_APPS": ["shop"]},
            ["--tenants"],
            "ALEMBIC_OPS['TENANTS'] cannot be imported: Module \"tests.test_fleet\" does not "
            'define a "no_such_function" attribute/class.',
        ),
        (
            {"TENANTS": lambda: ["acme"], "TENANT_APPS": ["shop"]},
            ["--tenants"],
            "ALEMBIC_OPS['TENANTS'] lists schema 'acme' on database 'default' (sqlite); tenant "
            "schemas need PostgreSQL: list ('default', None) to migrate that whole database "
            "instead.",
        ),
        (
            {"TENANTS": lambda: [("nowhere", "acme")], "TENANT_APPS": ["shop"]},
            ["--tenants"],
            "ALEMBIC_OPS['TENANTS'] lists database 'nowhere', which is not in DATABASES.",
        ),
        (
            {"TENANTS": lambda: [("default", None)]},
            ["--tenant", "acme"],
            "ALEMBIC_OPS['TENANTS'] lists no tenant 'acme' on database 'default'; "
            "'python manage.py opsshowmigrations --tenants -v 2' lists them.",
        ),
        (
            {},
            ["--jobs", "2"],
            "--jobs, --canary and --max-failures run a fleet: add --tenants, --tenant NAME or "
            "--all-databases.",
        ),
        (
            {},
            ["--all-databases", "--max-failures", "0"],
            "--jobs and --max-failures must be at least 1, --canary at least 0.",
        ),
        (
            {},
            ["--all-databases", "--plan"],
            "--plan and --sql show one database; for a fleet run 'python manage.py "
            "opsshowmigrations --tenants' (or with --all-databases).",
        ),
    ],
)
def test_fleet_mistakes_are_one_line_errors(
    project: Project, ops_settings: dict[str, Any], args: list[str], message: str
) -> None:
    project.app("shop")
    project.script("shop", "0001_initial", revision="s0001", **one_table("shop_item"))
    with override_settings(ALEMBIC_OPS=ops_settings):
        out, error = run_fleet(*args)
    assert error == message
    assert out == ""
    assert "shop_item" not in connections["default"].introspection.table_names()


def test_tenants_on_postgresql_need_tenant_apps(fleet: Fleet) -> None:
    fleet.tenants("fleet_a")
    with override_settings(ALEMBIC_OPS={"TENANTS": tenant_list}):
        out, error = run_fleet("--tenants", "--database", fleet.alias)
    assert error == (
        "ALEMBIC_OPS['TENANT_APPS'] is empty, so no app's ops migrations run in tenant "
        "schemas; list the apps whose tables every tenant has."
    )


def test_tenants_settings_checks_accept_a_path_or_a_callable() -> None:
    from django.core.checks import run_checks

    for value in ("tests.test_fleet.tenant_list", tenant_list):
        with override_settings(ALEMBIC_OPS={"TENANTS": value, "TENANT_APPS": ["auth"]}):
            assert [m for m in run_checks() if m.id.startswith("django_alembic_ops")] == []
    with override_settings(ALEMBIC_OPS={"TENANTS": "tests.test_fleet.TENANTS"}):
        assert [m.msg for m in run_checks() if m.id == "django_alembic_ops.E004"] == [
            "ALEMBIC_OPS['TENANTS'] 'tests.test_fleet.TENANTS' is not callable."
        ]


def test_a_process_migrating_target_after_target_frees_its_garbage_every_few(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alembic's per-operation ``Table`` objects die in reference cycles; Python's own
    collector reaches them rarely once Django and SQLAlchemy are loaded, so a long fleet
    run grew by about 120 KB a tenant. Every ``COLLECT_EVERY`` targets one is collected."""
    import gc
    import weakref

    from django_alembic_ops.fleet import apply

    class Node:
        pass

    def garbage_cycle() -> weakref.ref[Node]:
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        return weakref.ref(node)

    monkeypatch.setattr(apply, "_migrated_since_collect", 0)  # other tests ran targets
    was_enabled = gc.isenabled()
    gc.disable()  # only the fleet's own collection may free the cycle
    try:
        cycle = garbage_cycle()
        for _ in range(apply.COLLECT_EVERY - 1):
            apply._collect_now_and_then()
        assert cycle() is not None
        apply._collect_now_and_then()
        assert cycle() is None
    finally:
        if was_enabled:
            gc.enable()


# -- real processes: a project on disk, its own database ---------------------------------

REPO = Path(__file__).resolve().parent.parent

DEPLOY_SETTINGS = """
import json, os
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                  "django_alembic_ops", "shop", "billing"]
DATABASES = {"default": json.loads(os.environ["OPS_DB"])}
ALEMBIC_OPS = {"TENANTS": "settings.tenants", "TENANT_APPS": ["billing"]}

def tenants():
    return os.environ["OPS_TENANTS"].split(",")
"""

RUNS_TABLE = """
from alembic import op
import sqlalchemy as sa

revision = "{revision}"
down_revision = None
branch_labels = ("{app}",)

def upgrade():
    op.create_table("{app}_runs", sa.Column("rev", sa.String(10), nullable=False))
    op.execute("INSERT INTO {app}_runs (rev) VALUES ('{revision}')")

def downgrade():
    op.drop_table("{app}_runs")
"""

SLOW_STEP = """
import time
from alembic import op
import sqlalchemy as sa

revision = "b0002"
down_revision = "b0001"

def upgrade():
    op.create_table("billing_two", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO billing_runs (rev) VALUES ('b0002')")
    time.sleep({sleep})

def downgrade():
    op.drop_table("billing_two")
"""


class FleetDeploy:
    """A project with a shared app (shop) and a tenant app (billing), and its database."""

    def __init__(self, root: Path, database: dict[str, Any], tenants: list[str]) -> None:
        self.root = root
        self.database = database
        self.tenants = tenants
        (root / "settings.py").write_text(textwrap.dedent(DEPLOY_SETTINGS))
        for app, revision in (("shop", "s0001"), ("billing", "b0001")):
            (root / app / "migrations_ops").mkdir(parents=True)
            (root / app / "__init__.py").write_text("")
            (root / app / "models.py").write_text("")
            (root / app / "migrations_ops" / "__init__.py").write_text("")
            self.script(app, "0001_initial", RUNS_TABLE.format(app=app, revision=revision))

    def script(self, app: str, name: str, source: str) -> None:
        (self.root / app / "migrations_ops" / f"{name}.py").write_text(textwrap.dedent(source))

    def start(self, *args: str) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{REPO}{os.pathsep}{self.root}",
            "DJANGO_SETTINGS_MODULE": "settings",
            "OPS_DB": json.dumps(self.database),
            "OPS_TENANTS": ",".join(self.tenants),
        }
        return subprocess.Popen(
            [sys.executable, "-u", "-m", "django", "opsmigrate", "--tenants", *args],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        process = self.start(*args)
        out, err = process.communicate(timeout=180)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return pg_execute(sql, dbname=self.database["NAME"])

    def heads(self, schema: str) -> list[str]:
        return [
            row[0] for row in self.query(f"SELECT version_num FROM {schema}.alembic_ops_version")
        ]

    def runs(self, schema: str, app: str = "billing") -> list[str]:
        return [row[0] for row in self.query(f"SELECT rev FROM {schema}.{app}_runs ORDER BY rev")]

    def has_table(self, schema: str, table: str) -> bool:
        return self.query(f"SELECT to_regclass('{schema}.{table}') IS NOT NULL")[0][0]

    def sessions(self) -> int:
        """Connections to the project's database (other than this query's)."""
        return self.query(
            "SELECT count(*) FROM pg_stat_activity "
            f"WHERE datname = '{self.database['NAME']}' AND pid <> pg_backend_pid()"
        )[0][0]


@pytest.fixture
def deploy(tmp_path: Path, pg_alias: str) -> Iterator[FleetDeploy]:
    name = f"ops_fleet_{uuid.uuid4().hex[:8]}"
    pg_execute(f"CREATE DATABASE {name}")
    try:
        yield FleetDeploy(
            tmp_path, server_database(pg_alias, name), [f"fleet_{i}" for i in range(1, 7)]
        )
    finally:
        drop_server_databases(pg_alias, name)


def test_sigkill_of_a_fleet_run_leaves_every_tenant_at_its_old_or_new_head(
    deploy: FleetDeploy,
) -> None:
    first = deploy.run()
    assert first.returncode == 0, first.stdout + first.stderr
    deploy.script("billing", "0002_slow", SLOW_STEP.format(sleep=1.5))
    process = deploy.start("--jobs", "2")
    read_until(process, ": applied 1")  # one tenant done, others in flight or waiting
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # The workers notice that their parent is gone and exit; their open
    # transactions are rolled back by the server.
    deadline = time.monotonic() + 30
    while deploy.sessions() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deploy.sessions() == 0

    states = []
    for schema in deploy.tenants:
        heads = deploy.heads(schema)
        assert heads in (["b0001"], ["b0002"]), (schema, heads)
        new = heads == ["b0002"]
        # No half-applied migration: its table and its row exactly when recorded.
        assert deploy.has_table(schema, "billing_two") is new
        assert deploy.runs(schema) == (["b0001", "b0002"] if new else ["b0001"])
        states.append(new)
    assert any(states) and not all(states), states

    deploy.script("billing", "0002_slow", SLOW_STEP.format(sleep=0))
    rerun = deploy.run("--jobs", "2")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.stdout.count(": applied 1") == states.count(False)
    for schema in deploy.tenants:
        assert deploy.heads(schema) == ["b0002"]
        assert deploy.runs(schema) == ["b0001", "b0002"]


def test_concurrent_fleet_runs_apply_each_migration_once_per_tenant(
    deploy: FleetDeploy,
) -> None:
    deploy.script("billing", "0002_slow", SLOW_STEP.format(sleep=0.3))
    processes = [deploy.start("--jobs", "2"), deploy.start()]
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    for code, out, err in results:
        assert code == 0, out + err
    assert deploy.runs("public", "shop") == ["s0001"]
    for schema in deploy.tenants:
        assert deploy.heads(schema) == ["b0002"]
        assert deploy.runs(schema) == ["b0001", "b0002"]
        # Each tenant was migrated by one of the two runs; the other found it at head.
        assert sum(f"  {schema}: applied 2 " in out for _, out, _ in results) == 1


# -- django-tenants -------------------------------------------------------------------

TENANTS_SETTINGS = """
import json, os
SECRET_KEY = "x"
USE_TZ = True
SHARED_APPS = ["django_tenants", "customers", "django.contrib.contenttypes",
               "django.contrib.auth", "django_alembic_ops", "shop"]
TENANT_APPS = ["django.contrib.contenttypes", "billing"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
DATABASES = {"default": {**json.loads(os.environ["OPS_DB"]),
                         "ENGINE": "django_tenants.postgresql_backend"}}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
ALEMBIC_OPS = {
    "TENANTS": "django_alembic_ops.tenants.django_tenants_schemas",
    "TENANT_APPS": ["billing"],
    # django-tenants runs migrate once per schema: ops migrations run with
    # opsmigrate --tenants instead.
    "RUN_WITH_MIGRATE": False,
}
"""

TENANT_MODELS = """
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
    auto_create_schema = True


class Domain(DomainMixin):
    pass


# The recipe of docs/fleets.rst: a new tenant gets its ops migrations at once.
from django.dispatch import receiver
from django_tenants.signals import post_schema_sync
from django_tenants.utils import get_public_schema_name


@receiver(post_schema_sync, sender=TenantMixin)
def migrate_new_tenant(sender, tenant, **kwargs):
    from django_alembic_ops import api

    if tenant.schema_name != get_public_schema_name():
        results = api.migrate_fleet(tenant=[tenant.schema_name])
        failed = [r.error for r in results if r.status == "failed"]
        if failed:
            raise RuntimeError(failed[0])
"""

CREATE_CLIENTS = """
from customers.models import Client
for name in ("public", "acme", "globex"):
    Client(schema_name=name, name=name.title()).save()
"""


def test_django_tenants_schemas_lists_a_django_tenants_projects_tenants(
    deploy: FleetDeploy,
) -> None:
    pytest.importorskip("django_tenants")
    root = deploy.root
    (root / "settings.py").write_text(textwrap.dedent(TENANTS_SETTINGS))
    (root / "customers").mkdir()
    (root / "customers" / "__init__.py").write_text("")
    (root / "customers" / "models.py").write_text(textwrap.dedent(TENANT_MODELS))
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{root}",
        "DJANGO_SETTINGS_MODULE": "settings",
        "OPS_DB": json.dumps(deploy.database),
    }

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    manage("makemigrations", "customers")
    manage("migrate_schemas", "--shared")
    # django-tenants creates and migrates the schemas; the receiver runs billing there.
    manage("shell", "-c", CREATE_CLIENTS)
    for schema in ("acme", "globex"):
        assert deploy.heads(schema) == ["b0001"]

    out = manage("opsmigrate", "--tenants", "-v", "2")

    assert lines(out) == [  # targets at head are known (and shown) first
        "  acme: at head",
        "  globex: at head",
        "  default: applied 1 (T)",
        "Fleet: 3 targets: 2 at head, 1 migrated, 0 failed, 0 not started (T)",
    ]
    deploy.script("billing", "0002_slow", SLOW_STEP.format(sleep=0))
    assert lines(manage("opsshowmigrations", "--tenants")) == [
        "  acme: 1 pending: billing.0002_slow",
        "  globex: 1 pending: billing.0002_slow",
        "Fleet: 3 targets: 1 at head, 2 behind (T)",
    ]
    assert lines(manage("opsmigrate", "--tenants")) == [
        "  acme: applied 1 (T)",
        "  globex: applied 1 (T)",
        "Fleet: 3 targets: 1 at head, 2 migrated, 0 failed, 0 not started (T)",
    ]
    # shop (a shared app) once, in public; billing in each tenant's schema only.
    assert deploy.runs("public", "shop") == ["s0001"]
    assert deploy.heads("public") == ["s0001"]
    for schema in ("acme", "globex"):
        assert deploy.runs(schema) == ["b0001", "b0002"]
        assert deploy.heads(schema) == ["b0002"]
        assert not deploy.has_table(schema, "shop_runs")
    assert not deploy.has_table("public", "billing_runs")
    assert lines(manage("opsshowmigrations", "--tenants")) == [
        "Fleet: 3 targets: 3 at head, 0 behind (T)"
    ]

"""Fleets: the same ops migrations in many tenant schemas (PostgreSQL) and databases.

In-process tests drive ``opsmigrate --tenants`` against schemas they create on
the PostgreSQL test database (and drop afterwards); ``TENANTS`` points at
:func:`tenant_list`, which returns what the test put in :data:`TENANTS`.
Subprocess tests (SIGKILL, concurrent deploys, django-tenants) run a small
project on a database of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import CaptureQueriesContext, override_settings

from django_alembic_ops import api

from .conftest import Project, one_table, query, run

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
def fleet(project: Project, pg_alias: str) -> Iterator[Fleet]:
    """A PostgreSQL fleet: ``TENANT_APPS = ["billing"]``; every other app is shared."""
    fleet = Fleet(pg_alias, project)
    settings = {"TENANTS": "tests.test_fleet.tenant_list", "TENANT_APPS": ["billing"]}
    with override_settings(ALEMBIC_OPS=settings):
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
    # Not a query per schema: one catalog lookup, one read of every version table.
    assert sum("UNION ALL" in q["sql"] for q in queries.captured_queries) == 1


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


def test_jobs_run_targets_in_worker_processes(fleet: Fleet) -> None:
    shop_and_billing(fleet.project)
    fleet.project.script(
        "billing",
        "0002_pid",
        revision="b0002",
        down="b0001",
        header="import os, time",
        upgrade="""
            op.execute(f"INSERT INTO billing_invoice (amount) VALUES ({os.getpid()})")
            time.sleep(1)
        """,
    )
    names = [f"fleet_{i}" for i in range(4)]
    fleet.tenants(*names)

    out, error = run_fleet("--tenants", "--database", fleet.alias, "--jobs", "2")

    assert error is None, out
    assert lines(out)[-1] == "Fleet: 5 targets: 0 at head, 5 migrated, 0 failed, 0 not started (T)"
    pids = {
        query(fleet.alias, f"SELECT amount FROM {name}.billing_invoice")[0][0] for name in names
    }
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, none of them this process
    assert [fleet.heads(name) for name in names] == [["b0002"]] * 4


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

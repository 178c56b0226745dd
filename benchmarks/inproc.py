"""In-process timings: the "is everything applied?" check, and a test teardown's flush.

``python benchmarks/inproc.py TOOL N CALLS PROJECT_DIR`` (the ``post_migrate``
case) runs against a database that is already fully upgraded by TOOL; prints
one JSON object: ``cold_ms`` (first call: loads whatever the tool caches),
``median_ms`` over CALLS further calls, and ``cpu_median_ms``, the median of
the process's CPU time per call.

- ``ops``: ``django_alembic_ops.integration.run_after_migrate(sender=<the app
  config>, using="default", verbosity=0)`` — what Django's ``post_migrate``
  signal calls after ``migrate``, after test database creation and after every
  ``TransactionTestCase`` flush.
- ``django``: what ``manage.py migrate`` does to decide there is nothing to do:
  ``MigrationExecutor(connection).migration_plan(leaf nodes)``.
- ``alembic``: a ``ScriptDirectory`` kept across calls (as ops caches its
  scripts), and per call ``MigrationContext.get_current_heads()`` on a pooled
  engine, compared with the script heads.
- ``floor``: ``SELECT version_num`` on an open DBAPI connection, compared with
  the known head.

``python benchmarks/inproc.py flush N CALLS PROJECT_DIR`` (the flush case)
builds a test database as Django's test runners do (``setup_test_environment``,
``create_test_db``: Django's migrations of ``contenttypes`` and ``auth`` plus
the N ops migrations, settings ``benchflushsettings``), then times, in CALLS
rounds, the flush a ``TransactionTestCase`` teardown runs, with the package's
``flush`` command and with Django's own command class (no ops additions), in
alternating order, each after one row was written to an ops table. It also
times the flush SQL alone (``django.core.management.sql.sql_flush``, what
both commands execute) with and without ``including_ops_tables``: the lookup
of the ops tables and the statement building, without running anything.
Prints one JSON object of medians; ``added_ms`` and ``lookup_ms`` are medians
of the per-round differences.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable


def _django_setup(project: str) -> None:
    sys.path.insert(0, project)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsettings")
    import django

    django.setup()


def _ops(project: str, n: int) -> Callable[[], None]:
    _django_setup(project)
    from django.apps import apps
    from django.db import connection

    import django_alembic_ops
    from django_alembic_ops.integration import run_after_migrate

    connection.ensure_connection()
    sender = apps.get_app_config("django_alembic_ops")
    where = os.path.dirname(django_alembic_ops.__file__)
    print(f"django_alembic_ops from {where}", file=sys.stderr)

    def call() -> None:
        run_after_migrate(sender=sender, using="default", verbosity=0)

    return call


def _django(project: str, n: int) -> Callable[[], None]:
    _django_setup(project)
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    connection.ensure_connection()

    def call() -> None:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise SystemExit(f"django: {len(plan)} migrations pending")

    return call


def _alembic(project: str, n: int) -> Callable[[], None]:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    engine = create_engine(os.environ["BENCH_ALEMBIC_URL"])
    state: dict[str, ScriptDirectory] = {}

    def call() -> None:
        script = state.get("script")
        if script is None:
            script = state["script"] = ScriptDirectory.from_config(
                Config(os.path.join(project, "alembic.ini"))
            )
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
        if set(current) != set(script.get_heads()):
            raise SystemExit("alembic: not up to date")

    return call


def _floor(project: str, n: int) -> Callable[[], None]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import floor

    connection = floor.connect(os.environ.get("BENCH_DB_BACKEND", "sqlite"))
    head = floor.revision(n)

    def call() -> None:
        cursor = connection.cursor()
        cursor.execute(f"SELECT version_num FROM {floor.VERSION_TABLE}")
        heads = {row[0] for row in cursor.fetchall()}
        connection.commit()  # psycopg: do not stay "idle in transaction"
        if heads != {head}:
            raise SystemExit("floor: not up to date")

    return call


#: What ``TransactionTestCase._fixture_teardown`` passes to ``flush`` (without
#: ``available_apps``, ``reset_sequences`` or ``serialized_rollback``).
FLUSH_OPTIONS = {
    "verbosity": 0,
    "interactive": False,
    "reset_sequences": False,
    "allow_cascade": False,
    "inhibit_post_migrate": False,
}


def _count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
        return int(cursor.fetchone()[0])


def _write_row(table: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {connection.ops.quote_name(table)} (name, value) VALUES (%s, %s)",
            ["row", 1],
        )


def flush_rounds(n: int, calls: int) -> dict[str, float | int]:
    """Time both flushes and both statement builds ``calls`` times each (see the docstring)."""
    from django.core.management import call_command, get_commands
    from django.core.management.color import no_style
    from django.core.management.commands.flush import Command as DjangoFlush
    from django.core.management.sql import sql_flush
    from django.db import connection

    from django_alembic_ops.flush import including_ops_tables, ops_tables

    if get_commands()["flush"] != "django_alembic_ops":
        raise SystemExit("flush: the flush command is not the package's")
    django_tables = connection.introspection.django_table_names(
        only_existing=True, include_views=False
    )
    extra = ops_tables(connection, django_tables)
    if len(extra) != n:
        raise SystemExit(f"flush: {len(extra)} ops tables in the test database, expected {n}")
    probe = extra[0]
    flushes = {"ops": lambda: call_command("flush", **FLUSH_OPTIONS)}
    flushes["django"] = lambda: call_command(DjangoFlush(), **FLUSH_OPTIONS)

    def ops_sql() -> list[str]:
        with including_ops_tables(connection):
            return sql_flush(no_style(), connection, reset_sequences=False)

    def django_sql() -> list[str]:
        return sql_flush(no_style(), connection, reset_sequences=False)

    builds = {"ops": ops_sql, "django": django_sql}
    for build in builds.values():  # warm: imports and first use are not a teardown's cost
        build()
    for flush in flushes.values():
        flush()

    timings: dict[str, list[float]] = {key: [] for key in ("ops", "django", "ops_sql", "dj_sql")}
    for i in range(calls):
        order = ["ops", "django"] if i % 2 == 0 else ["django", "ops"]
        for tool in order:
            _write_row(probe)
            started = time.perf_counter()
            flushes[tool]()
            timings[tool].append(time.perf_counter() - started)
            left = _count(probe)
            if tool == "ops" and left:
                raise SystemExit(f"flush: the package's flush left {left} rows in {probe}")
            if tool == "django":
                if not left:
                    raise SystemExit(f"flush: Django's own flush emptied {probe}")
                with connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {connection.ops.quote_name(probe)}")
        # As at a teardown: the test wrote a row (the package names the ops
        # tables that have rows, and those referencing them, on PostgreSQL).
        _write_row(probe)
        for tool in order:
            started = time.perf_counter()
            statements = builds[tool]()
            timings["ops_sql" if tool == "ops" else "dj_sql"].append(time.perf_counter() - started)
            if tool == "ops" and probe not in "".join(statements):
                raise SystemExit(f"flush: the package's flush SQL leaves out {probe}")
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(probe)}")

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    pairs = zip(timings["ops"], timings["django"], strict=True)
    sql_pairs = zip(timings["ops_sql"], timings["dj_sql"], strict=True)
    return {
        "ops_ms": ms(timings["ops"]),
        "django_ms": ms(timings["django"]),
        "added_ms": ms([a - b for a, b in pairs]),
        "ops_sql_ms": ms(timings["ops_sql"]),
        "django_sql_ms": ms(timings["dj_sql"]),
        "lookup_ms": ms([a - b for a, b in sql_pairs]),
        "ops_tables": len(extra),
        "django_tables": len(django_tables),
        "calls": calls,
    }


def flush_main(n: int, calls: int, project: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchflushsettings"
    _django_setup(project)
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        result = flush_rounds(n, calls)
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
        teardown_test_environment()
    print(json.dumps(result))


def main(argv: list[str]) -> None:
    if argv[0] == "flush":
        flush_main(int(argv[1]), int(argv[2]), argv[3])
        return
    tool, n, calls, project = argv[0], int(argv[1]), int(argv[2]), argv[3]
    factory = {"ops": _ops, "django": _django, "alembic": _alembic, "floor": _floor}[tool]
    call = factory(project, n)
    started = time.perf_counter()
    call()
    cold = time.perf_counter() - started
    samples, cpu = [], []
    for _ in range(calls):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        samples.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(
        json.dumps(
            {
                "cold_ms": cold * 1000,
                "median_ms": statistics.median(samples) * 1000,
                "min_ms": min(samples) * 1000,
                # This process's CPU time: steadier than wall time on a loaded machine.
                "cpu_median_ms": statistics.median(cpu) * 1000,
                "calls": calls,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

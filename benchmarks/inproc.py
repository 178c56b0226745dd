"""In-process timing of the "is everything applied?" check (the ``post_migrate`` case).

Run by the harness as ``python benchmarks/inproc.py TOOL N CALLS PROJECT_DIR``
against a database that is already fully upgraded by TOOL; prints one JSON
object: ``cold_ms`` (first call: loads whatever the tool caches) and
``median_ms`` over CALLS further calls.

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


def main(argv: list[str]) -> None:
    tool, n, calls, project = argv[0], int(argv[1]), int(argv[2]), argv[3]
    factory = {"ops": _ops, "django": _django, "alembic": _alembic, "floor": _floor}[tool]
    call = factory(project, n)
    started = time.perf_counter()
    call()
    cold = time.perf_counter() - started
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "cold_ms": cold * 1000,
                "median_ms": statistics.median(samples) * 1000,
                "min_ms": min(samples) * 1000,
                "calls": calls,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

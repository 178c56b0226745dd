"""The Python API from several threads at once (SPEC, Reliability promises).

Django's connections are per thread; Alembic's module-level ``op`` and
``context`` proxies are not. Different aliases must migrate in parallel, each
thread on its own connection and its own proxies; the same alias from several
threads is serialised by the migration lock, so each migration runs once.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import op
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from django.db import connections

from django_alembic_ops import api
from django_alembic_ops.errors import DatabaseUnavailable

from .conftest import (
    Project,
    drop_server_databases,
    extra_database,
    query,
    server_database,
    server_execute,
    table_names,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

THREADS = 4
MIGRATIONS = 10
ROUNDS = 3


# Alembic's own function, as a script that imported it by name before any run
# holds it: it reads the module's process-wide proxy.
CAPTURED = """
from alembic import context
from alembic.op import execute
run_sql = getattr(execute, "__wrapped__", execute)
"""

LOOKED_UP = """
from alembic import context


def run_sql(sql):
    op.execute(sql)
"""


def write_history(project: Project, *, captured: bool = True) -> None:
    """App ``thr``: a log table, then one table per migration, each logging its run.

    The log shows how often each migration ran; ``context.config``,
    ``op.get_context()`` and ``run_sql`` are what two threads overwrote in
    Alembic's proxies.
    """
    project.app("thr")
    project.script(
        "thr",
        "0001_log",
        revision="thr01",
        upgrade="""
            op.create_table("thr_log", sa.Column("rev", sa.String(10), nullable=False))
            op.execute("INSERT INTO thr_log (rev) VALUES ('thr01')")
        """,
        downgrade='op.drop_table("thr_log")',
    )
    for n in range(2, MIGRATIONS + 1):
        project.script(
            "thr",
            f"{n:04d}_t{n}",
            revision=f"thr{n:02d}",
            down=f"thr{n - 1:02d}",
            header=CAPTURED if captured else LOOKED_UP,
            upgrade=f"""
                assert context.config is not None
                assert op.get_context() is context.get_context()
                op.create_table("thr_t{n}", sa.Column("id", sa.Integer, primary_key=True))
                op.create_index("ix_thr_t{n}", "thr_t{n}", ["id"])
                run_sql("INSERT INTO thr_log (rev) VALUES ('thr{n:02d}')")
            """,
            downgrade=f'op.drop_table("thr_t{n}")',
        )


EXPECTED_TABLES = {"thr_log", *(f"thr_t{n}" for n in range(2, MIGRATIONS + 1))}
HEAD = f"thr{MIGRATIONS:02d}"


def migrate_in_threads(aliases: Sequence[str]) -> list[Any]:
    """``api.migrate(database=alias)`` in one thread per entry, started together.

    Returns what each thread got: its list of steps, or the exception it raised.
    Each thread closes its own connection (Django's are per thread).
    """
    results: list[Any] = [None] * len(aliases)
    barrier = threading.Barrier(len(aliases))

    def work(index: int, alias: str) -> None:
        try:
            barrier.wait()
            results[index] = api.migrate(database=alias)
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[index] = exc
        finally:
            connections[alias].close()

    threads = [
        threading.Thread(target=work, args=(i, alias), name=f"ops-{i}")
        for i, alias in enumerate(aliases)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a thread hung"
    return results


def assert_no_errors(results: list[Any]) -> None:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"threads failed: {[f'{type(e).__name__}: {e}' for e in errors]}"


def assert_at_head(alias: str) -> None:
    assert table_names(alias) >= EXPECTED_TABLES
    assert query(alias, "SELECT version_num FROM alembic_ops_version") == [(HEAD,)]
    logged = query(alias, "SELECT rev, COUNT(*) FROM thr_log GROUP BY rev ORDER BY rev")
    assert logged == [(f"thr{n:02d}", 1) for n in range(1, MIGRATIONS + 1)]


@contextmanager
def databases(settings_dicts: dict[str, dict[str, Any]], django_db_blocker: Any) -> Iterator[None]:
    with ExitStack() as stack:
        for alias, settings_dict in settings_dicts.items():
            stack.enter_context(extra_database(alias, settings_dict, django_db_blocker))
        yield


def sqlite_file(path: Path) -> dict[str, Any]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}


@contextmanager
def server_databases(alias: str, count: int) -> Iterator[dict[str, dict[str, Any]]]:
    """``count`` fresh databases on the test server of ``alias``, dropped afterwards."""
    names = [f"ops_thr_{os.getpid()}_{i}" for i in range(count)]
    drop_server_databases(alias, *names)
    for name in names:
        server_execute(alias, f"CREATE DATABASE {name}")
    try:
        yield {
            f"thr_{alias}{i}": server_database(alias, name, TEST={"NAME": name})
            for i, name in enumerate(names)
        }
    finally:
        drop_server_databases(alias, *names)


def test_four_sqlite_aliases_in_parallel(
    project: Project, tmp_path: Path, django_db_blocker: Any
) -> None:
    write_history(project)
    for round_ in range(ROUNDS):
        aliases = {
            f"thr{i}": sqlite_file(tmp_path / f"r{round_}_db{i}.sqlite3") for i in range(THREADS)
        }
        with databases(aliases, django_db_blocker):
            results = migrate_in_threads(list(aliases))
            assert_no_errors(results)
            assert [len(steps) for steps in results] == [MIGRATIONS] * THREADS
            for alias in aliases:
                assert_at_head(alias)


def test_four_server_databases_in_parallel(
    project: Project, server_alias: str, django_db_blocker: Any
) -> None:
    """Four PostgreSQL (or MariaDB) databases on one server, one thread each."""
    write_history(project)
    for _ in range(ROUNDS):
        with (
            server_databases(server_alias, THREADS) as aliases,
            databases(aliases, django_db_blocker),
        ):
            results = migrate_in_threads(list(aliases))
            assert_no_errors(results)
            for alias in aliases:
                assert_at_head(alias)


@pytest.mark.parametrize("backend", ["sqlite_file", "sqlite_memory", "postgresql", "mysql"])
def test_one_alias_from_four_threads_applies_each_migration_once(
    project: Project, tmp_path: Path, django_db_blocker: Any, backend: str, request: Any
) -> None:
    write_history(project)
    settings_dicts: dict[str, dict[str, Any]] = {}
    if backend in ("postgresql", "mysql"):
        alias = request.getfixturevalue("pg_alias" if backend == "postgresql" else "mysql_alias")
    elif backend == "sqlite_memory":
        # Django's in-memory test database: one shared-cache database that every
        # thread's connection opens; no lock file, so the lock is in-process only.
        alias = "default"
        assert connections[alias].is_in_memory_db()
    else:
        alias = "thr_file"
        settings_dicts = {alias: sqlite_file(tmp_path / "shared.sqlite3")}
    with databases(settings_dicts, django_db_blocker):
        for _ in range(ROUNDS):
            api.migrate("thr", "zero", database=alias)
            results = migrate_in_threads([alias] * THREADS)
            assert_no_errors(results)
            # Exactly one thread ran the migrations; the others found them applied.
            assert sorted(len(steps) for steps in results) == [0] * (THREADS - 1) + [MIGRATIONS]
            assert_at_head(alias)


def test_plain_alembic_keeps_its_process_wide_proxy(
    project: Project, tmp_path: Path, django_db_blocker: Any
) -> None:
    """``Operations.context()`` (a plain env.py in the same process) works before,
    during and after ops runs; a thread running ops migrations meanwhile uses its own.

    (Not for a function imported by name from ``alembic.op`` before any run:
    that one reads the process-wide proxy, which the plain env.py holds here.)
    """
    write_history(project, captured=False)
    buffer = io.StringIO()
    plain = MigrationContext.configure(
        dialect_name="sqlite", opts={"as_sql": True, "output_buffer": buffer}
    )
    aliases = {"thr_plain": sqlite_file(tmp_path / "plain.sqlite3")}
    with databases(aliases, django_db_blocker), Operations.context(plain):
        op.create_table("plain_before", sa.Column("id", sa.Integer))
        assert_no_errors(migrate_in_threads(["thr_plain"]))
        op.create_table("plain_after", sa.Column("id", sa.Integer))
        assert_at_head("thr_plain")
    rendered = buffer.getvalue()
    assert "CREATE TABLE plain_before" in rendered and "CREATE TABLE plain_after" in rendered
    assert "thr_" not in rendered  # nothing of the thread's run went to the plain proxy


def test_sqlite_file_that_cannot_be_opened_is_one_line(
    project: Project, tmp_path: Path, django_db_blocker: Any
) -> None:
    """The lock connects first: its side file must not fail with a raw sqlite3 error."""
    write_history(project)
    aliases = {"thr_nowhere": sqlite_file(tmp_path / "missing" / "db.sqlite3")}
    with databases(aliases, django_db_blocker), pytest.raises(DatabaseUnavailable) as info:
        api.migrate(database="thr_nowhere")
    assert str(info.value).startswith(
        "Cannot connect to database 'thr_nowhere' (sqlite): unable to open database file."
    )

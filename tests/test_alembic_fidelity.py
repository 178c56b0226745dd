"""Inside a script, ops behaves like plain Alembic with ``transaction_per_migration=True``.

SPEC, "Adopting an existing Alembic history": ``op.get_bind().commit()`` commits
what ran so far; offline SQL renders bound values inline (``literal_binds``);
a script's session settings do not outlive the run. And a failure after
something committed says so ("not rolled back") and names what committed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.db import connections, transaction

from .conftest import Project, pg_execute, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def table(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))'


CREATE_FID_B_ON_MYSQL = (
    "CREATE TABLE fid_b ( id INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (id) )"
)


def versions(alias: str) -> list[str]:
    if "alembic_ops_version" not in table_names(alias):
        return []
    return [row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version")]


# -- op.get_bind().commit() -------------------------------------------------------


def test_commit_keeps_what_ran_before_a_failure(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_batches",
        revision="f1",
        upgrade=f"""
            {table("fid_a")}
            op.execute("INSERT INTO fid_a (id) VALUES (1)")
            op.get_bind().commit()
            {table("fid_b")}
            raise RuntimeError("boom")
        """,
    )
    message = run_error("opsmigrate", database=alias)
    assert message.startswith(
        "Applying shop.0001_batches failed and was not rolled back: RuntimeError: boom; "
        "these statements had committed: CREATE TABLE fid_a ( id "
    )
    if connections[alias].vendor == "mysql":
        # MySQL commits DDL at once: fid_b stayed too, and is named.
        assert message.endswith(f"; INSERT INTO fid_a (id) VALUES (1); {CREATE_FID_B_ON_MYSQL}")
        assert {"fid_a", "fid_b"} <= table_names(alias)
    else:
        assert message.endswith("; INSERT INTO fid_a (id) VALUES (1)")
        assert "fid_b" not in message
        assert "fid_a" in table_names(alias) and "fid_b" not in table_names(alias)
    assert query(alias, "SELECT id FROM fid_a") == [(1,)]
    assert versions(alias) == []  # what committed is not the migration: not recorded


def test_commit_then_success_records_the_migration(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_batches",
        revision="f1",
        upgrade=f"""
            {table("fid_a")}
            op.get_bind().commit()
            op.get_bind().commit()  # nothing ran since: nothing to commit
            {table("fid_b")}
        """,
    )
    project.script(
        "shop", "0002_broken", revision="f2", down="f1", upgrade='raise RuntimeError("later")'
    )
    message = run_error("opsmigrate", database=alias)
    assert message == ("Applying shop.0002_broken failed and was rolled back: RuntimeError: later")
    assert {"fid_a", "fid_b"} <= table_names(alias)
    assert versions(alias) == ["f1"]
    assert not connections[alias].in_atomic_block
    assert connections[alias].get_autocommit() is True


def test_commit_inside_an_enclosing_atomic_is_refused(project: Project, pg_alias: str) -> None:
    """Leaving ops' block would only release a savepoint: nothing would commit."""
    project.app("shop")
    project.script(
        "shop",
        "0001_batches",
        revision="f1",
        upgrade=f"""
            {table("fid_a")}
            op.get_bind().commit()
            {table("fid_b")}
        """,
    )
    with transaction.atomic(using=pg_alias):
        message = run_error("opsmigrate", database=pg_alias)
        assert message == (
            "Applying shop.0001_batches failed and was rolled back: TransactionError: "
            "op.get_bind().commit() cannot run inside an enclosing atomic() block; run the "
            "migration outside atomic() (from RunOpsMigrations: set atomic = False on its "
            "Django migration)."
        )
    assert not {"fid_a", "fid_b"} & table_names(pg_alias)


def test_autocommit_block_then_failure_is_not_rolled_back(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_index",
        revision="f1",
        upgrade=f"""
            {table("fid_a")}
            with op.get_context().autocommit_block():
                op.create_index("ix_fid_a", "fid_a", ["id"], postgresql_concurrently=True)
            {table("fid_b")}
            raise RuntimeError("boom")
        """,
    )
    message = run_error("opsmigrate", database=alias)
    concurrently = "CONCURRENTLY " if alias == "postgres" else ""
    assert message.startswith(
        "Applying shop.0001_index failed and was not rolled back: RuntimeError: boom; "
        "these statements had committed: CREATE TABLE fid_a ( id "
    )
    if connections[alias].vendor == "mysql":
        # MySQL commits DDL at once: fid_b stayed too, and is named.
        assert message.endswith(f"; CREATE INDEX ix_fid_a ON fid_a (id); {CREATE_FID_B_ON_MYSQL}")
        assert {"fid_a", "fid_b"} <= table_names(alias)
    else:
        assert message.endswith(f"; CREATE INDEX {concurrently}ix_fid_a ON fid_a (id)")
        assert "fid_b" not in message
        assert "fid_a" in table_names(alias) and "fid_b" not in table_names(alias)
    assert versions(alias) == []


def test_failure_names_a_few_committed_statements(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_rows",
        revision="f1",
        upgrade=f"""
            {table("fid_a")}
            for n in range(1, 31):  # not 0: MySQL reads 0 as "next AUTO_INCREMENT value"
                op.execute(f"INSERT INTO fid_a (id) VALUES ({{n}})")
            op.get_bind().commit()
            raise RuntimeError("boom")
        """,
    )
    message = run_error("opsmigrate", database=alias)
    assert message.endswith("INSERT INTO fid_a (id) VALUES (9); and 21 more"), message
    assert query(alias, "SELECT COUNT(*) FROM fid_a") == [(30,)]


# -- offline SQL renders bound values inline ---------------------------------------


def test_offline_sql_renders_literal_binds(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_statuses",
        revision="f1",
        upgrade="""
            t = sa.table("fid_t", sa.column("status", sa.String))
            op.execute(
                t.update().where(t.c.status.in_(["a", "b"])).values(status="c")
            )
        """,
    )
    out = run("opsmigrate", "--sql", database=alias)
    assert "UPDATE fid_t SET status='c' WHERE fid_t.status IN ('a', 'b');" in out
    assert "POSTCOMPILE" not in out


# -- session settings are handed back ----------------------------------------------


@pytest.fixture
def pg_role(pg_alias: str) -> Iterator[str]:
    """A role the test's scripts SET ROLE to (superuser: it may write the version table)."""
    name = f"ops_fid_{os.getpid()}"
    pg_execute(f"DROP ROLE IF EXISTS {name}")
    pg_execute(f"CREATE ROLE {name} SUPERUSER")
    try:
        yield name
    finally:
        connections[pg_alias].close()  # a session may still be SET ROLE to it
        pg_execute(f"DROP ROLE IF EXISTS {name}")


SESSION_SHOWN = ["statement_timeout", "lock_timeout", "search_path", "TimeZone", "role"]


def session_settings(alias: str) -> dict[str, str]:
    values = {name: query(alias, f"SHOW {name}")[0][0] for name in SESSION_SHOWN}
    values["current_user"] = query(alias, "SELECT current_user")[0][0]
    return values


def settings_script(role: str, *, fail: bool) -> str:
    return f"""
        {table("fid_a")}
        op.execute("SET statement_timeout = '2min'")
        op.execute("SET lock_timeout = '3s'")
        op.execute("SET search_path TO public, information_schema")
        op.execute("SET TIME ZONE 'Europe/Paris'")
        op.execute("SET LOCAL work_mem = '7MB'")
        op.execute("SET ROLE {role}")
        {"op.get_bind().commit()" if fail else ""}
        {'raise RuntimeError("boom")' if fail else ""}
    """


@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
def test_session_settings_are_handed_back(
    project: Project, pg_alias: str, pg_role: str, fail: bool
) -> None:
    project.app("shop")
    project.script(
        "shop", "0001_settings", revision="f1", upgrade=settings_script(pg_role, fail=fail)
    )
    before = session_settings(pg_alias)
    assert before["TimeZone"] == "UTC"  # what Django set when it connected (USE_TZ)
    assert before["role"] == "none"
    if fail:
        # Committed first: a rolled-back transaction would undo the SETs itself.
        message = run_error("opsmigrate", database=pg_alias)
        assert message.startswith("Applying shop.0001_settings failed and was not rolled back")
        assert message.endswith(f"SET ROLE {pg_role}")
        assert versions(pg_alias) == []
    else:
        run("opsmigrate", database=pg_alias)
        assert versions(pg_alias) == ["f1"]
    assert session_settings(pg_alias) == before


def test_session_settings_are_handed_back_after_migrate(
    project: Project, pg_alias: str, pg_role: str
) -> None:
    """``manage.py migrate`` runs ops migrations too (post_migrate)."""
    project.app("shop")
    project.script(
        "shop", "0001_settings", revision="f1", upgrade=settings_script(pg_role, fail=False)
    )
    before = session_settings(pg_alias)
    run("migrate", database=pg_alias, verbosity=0)
    assert versions(pg_alias) == ["f1"]
    assert session_settings(pg_alias) == before


def test_settings_django_or_the_caller_set_are_kept(project: Project, pg_alias: str) -> None:
    """Only what the run changed is put back: a caller's own SET stays."""
    project.app("shop")
    project.script(
        "shop",
        "0001_settings",
        revision="f1",
        upgrade="""op.execute("SET statement_timeout = '2min'")""",
    )
    query(pg_alias, "SELECT set_config('lock_timeout', '5s', false)")
    query(pg_alias, "SELECT set_config('statement_timeout', '9s', false)")
    run("opsmigrate", database=pg_alias)
    assert query(pg_alias, "SHOW lock_timeout") == [("5s",)]
    assert query(pg_alias, "SHOW statement_timeout") == [("9s",)]
    query(pg_alias, "SELECT set_config('lock_timeout', '0', false)")
    query(pg_alias, "SELECT set_config('statement_timeout', '0', false)")

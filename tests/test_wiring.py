"""Django's connection handed to SQLAlchemy/Alembic: every trap in SPEC/TRAPS."""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connections, transaction
from django.test.utils import override_settings

from django_alembic_ops import bridge

from .conftest import (
    Project,
    extra_database,
    inspect_db,
    pg_connect,
    query,
    run,
    run_error,
    table_names,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def one_table(project: Project, table: str = "ops_thing") -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="w1",
        upgrade=f'op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))',
        downgrade=f'op.drop_table("{table}")',
    )


def test_rows_in_enclosing_atomic_survive_and_stay_djangos(project: Project, pg_alias: str) -> None:
    one_table(project)
    with transaction.atomic(using=pg_alias):
        Group.objects.using(pg_alias).create(name="written-before")
        run("opsmigrate", database=pg_alias)
        # Same transaction: the row is still there (SQLAlchemy did not roll back).
        assert Group.objects.using(pg_alias).filter(name="written-before").exists()
        assert "ops_thing" in table_names(pg_alias)
    assert Group.objects.using(pg_alias).filter(name="written-before").exists()


def test_enclosing_atomic_rollback_undoes_everything(project: Project, pg_alias: str) -> None:
    """Nothing was committed behind Django's back: rolling back the block undoes the run."""
    one_table(project)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic(using=pg_alias):
        Group.objects.using(pg_alias).create(name="rolled-back")
        run("opsmigrate", database=pg_alias)
        raise Abort
    assert not Group.objects.using(pg_alias).filter(name="rolled-back").exists()
    assert "ops_thing" not in table_names(pg_alias)


def test_sqlite_refuses_inside_atomic(project: Project) -> None:
    one_table(project)
    with transaction.atomic():
        Group.objects.create(name="kept")
        message = run_error("opsmigrate")
        assert "inside an enclosing atomic() block" in message
        assert "transactional_db" in message
        assert Group.objects.filter(name="kept").exists()
    assert "ops_thing" not in table_names("default")


def test_sqlite_in_memory_test_database_survives(project: Project) -> None:
    one_table(project)
    assert connections["default"].is_in_memory_db()
    Group.objects.create(name="in-memory")
    run("opsmigrate")
    bridge._engine_for("default").dispose()  # must not close Django's connection
    assert Group.objects.filter(name="in-memory").exists()
    assert "ops_thing" in table_names("default")


def test_settings_read_at_run_time(project: Project) -> None:
    """The test runner renamed NAME; ops migrations follow it, the real file stays untouched."""
    one_table(project)
    real_name = "ops_tests.sqlite3"  # tests/settings.py; the runner renamed it in place
    assert connections["default"].settings_dict["NAME"] != real_name
    run("opsmigrate")
    assert "ops_thing" in table_names("default")
    assert not os.path.exists(real_name)


def test_sqlite_regexp_still_works(project: Project) -> None:
    one_table(project)
    run("opsmigrate")
    Group.objects.create(name="abc")
    assert Group.objects.filter(name__regex=r"^a.c$").count() == 1
    assert query("default", "SELECT 'abc' REGEXP 'a.c'") == [(1,)]


def test_autocommit_state_after_autocommit_block(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="w1",
        upgrade="""
            op.create_table("ops_thing", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("n", sa.Integer))
            with op.get_context().autocommit_block():
                op.create_index("ix_ops_thing_n", "ops_thing", ["n"],
                                postgresql_concurrently=True)
            op.execute("INSERT INTO ops_thing (id, n) VALUES (1, 2)")
        """,
        downgrade='op.drop_table("ops_thing")',
    )
    run("opsmigrate", database=alias)
    connection = connections[alias]
    assert connection.get_autocommit() is True
    assert not connection.in_atomic_block
    with inspect_db(alias) as insp:
        assert [ix["name"] for ix in insp.get_indexes("ops_thing")] == ["ix_ops_thing_n"]
    assert query(alias, "SELECT id, n FROM ops_thing") == [(1, 2)]


CASCADE_PARENT = """
    op.create_table("ops_parent", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(20)))
    op.create_table("ops_child", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("parent_id", sa.Integer,
                              sa.ForeignKey("ops_parent.id", ondelete="CASCADE")))
    op.execute("INSERT INTO ops_parent (id, name) VALUES (1, 'p')")
    op.execute("INSERT INTO ops_child (id, parent_id) VALUES (10, 1), (11, 1)")
"""


def test_batch_rebuild_keeps_cascading_children(project: Project, alias: str) -> None:
    """batch_alter_table recreates the parent (copy, DROP, rename) on SQLite."""
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="c1",
        upgrade=CASCADE_PARENT,
        downgrade='op.drop_table("ops_child")\nop.drop_table("ops_parent")',
    )
    project.script(
        "shop",
        "0002_alter_parent",
        revision="c2",
        down="c1",
        # SQLite rebuilds the table; PostgreSQL alters it in place.
        header=(
            "def recreate():\n"
            '    return "always" if op.get_context().dialect.name == "sqlite" else "auto"'
        ),
        upgrade="""
            with op.batch_alter_table("ops_parent", recreate=recreate()) as batch:
                batch.alter_column("name", existing_type=sa.String(20), nullable=False)
        """,
        downgrade="""
            with op.batch_alter_table("ops_parent", recreate=recreate()) as batch:
                batch.alter_column("name", existing_type=sa.String(20), nullable=True)
        """,
    )
    run("opsmigrate", database=alias)
    assert query(alias, "SELECT id FROM ops_child ORDER BY id") == [(10,), (11,)]
    with inspect_db(alias) as insp:
        name = {c["name"]: c for c in insp.get_columns("ops_parent")}["name"]
        assert name["nullable"] is False
    run("opsmigrate", "shop", "0001", database=alias)
    assert query(alias, "SELECT id FROM ops_child ORDER BY id") == [(10,), (11,)]
    if connections[alias].vendor == "sqlite":
        assert query(alias, "PRAGMA foreign_keys") == [(1,)]


def test_foreign_key_violation_fails_and_rolls_back(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="f1",
        upgrade=CASCADE_PARENT,
        downgrade='op.drop_table("ops_child")\nop.drop_table("ops_parent")',
    )
    project.script(
        "shop",
        "0002_orphan",
        revision="f2",
        down="f1",
        upgrade="""
            op.create_table("ops_extra", sa.Column("id", sa.Integer, primary_key=True))
            op.execute("INSERT INTO ops_child (id, parent_id) VALUES (12, 999)")
        """,
        downgrade='op.drop_table("ops_extra")',
    )
    message = run_error("opsmigrate", database=alias)
    assert "\n" not in message
    if connections[alias].vendor == "mysql":
        # MySQL commits DDL at once: the new table stays, and the error says so.
        assert message.startswith("Applying shop.0002_orphan failed and was not rolled back:")
        assert message.endswith(f"; these statements had committed: {CREATE_EXTRA_ON_MYSQL}")
        assert "ops_extra" in table_names(alias)
    else:
        assert message.startswith("Applying shop.0002_orphan failed and was rolled back:")
        assert "ops_extra" not in table_names(alias)
    assert query(alias, "SELECT id FROM ops_child ORDER BY id") == [(10,), (11,)]
    assert query(alias, "SELECT version_num FROM alembic_ops_version") == [("f1",)]


CREATE_EXTRA_ON_MYSQL = (
    "CREATE TABLE ops_extra ( id INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (id) )"
)
CREATE_HALF_ON_MYSQL = (
    "CREATE TABLE ops_half ( id INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (id) )"
)

FAILING = {
    "upgrade": """
        op.create_table("ops_half", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO no_such_table VALUES (1)")
    """,
    "downgrade": 'op.drop_table("ops_half")',
}


def test_failing_migration_rolled_back_whole_and_rerun_continues(
    project: Project, alias: str
) -> None:
    one_table(project)
    path = project.script("shop", "0002_half", revision="w2", down="w1", **FAILING)
    message = run_error("opsmigrate", database=alias)
    assert "INSERT INTO no_such_table VALUES (1)" in message
    assert "ops_thing" in table_names(alias)  # 0001 stays applied
    assert query(alias, "SELECT version_num FROM alembic_ops_version") == [("w1",)]
    if connections[alias].vendor == "mysql":
        # DDL commits at once there: the table stays, named; the user drops it.
        assert message.startswith("Applying shop.0002_half failed and was not rolled back:")
        assert message.endswith(f"; these statements had committed: {CREATE_HALF_ON_MYSQL}")
        assert "ops_half" in table_names(alias)
        query(alias, "DROP TABLE ops_half")
    else:
        assert message.startswith("Applying shop.0002_half failed and was rolled back:")
        assert "ops_half" not in table_names(alias)
    path.write_text(path.read_text().replace("no_such_table", "ops_half"))
    out = run("opsmigrate", database=alias)
    assert "  Applying shop.0002_half... OK" in out
    assert "Applying shop.0001_initial" not in out
    assert query(alias, "SELECT id FROM ops_half") == [(1,)]


def test_transaction_per_migration_off_rolls_back_the_run(project: Project, alias: str) -> None:
    one_table(project)
    project.script("shop", "0002_half", revision="w2", down="w1", **FAILING)
    with override_settings(ALEMBIC_OPS={"TRANSACTION_PER_MIGRATION": False}):
        message = run_error("opsmigrate", database=alias)
        if connections[alias].vendor != "mysql":
            # One transaction for the run: even the version table's creation is undone.
            assert not {"ops_thing", "alembic_ops_version"} & table_names(alias)
            return
        # MySQL: 0002's CREATE TABLE committed the run so far, 0001's version row
        # with it: 0001 is applied, and the error is 0002's alone.
        assert message.startswith(
            "Applying shop.0002_half failed and was not rolled back: ProgrammingError: (1146, "
        )
        assert message.endswith(f"; these statements had committed: {CREATE_HALF_ON_MYSQL}")
        assert query(alias, "SELECT version_num FROM alembic_ops_version") == [("w1",)]
        assert {"ops_thing", "ops_half"} <= table_names(alias)


def test_run_leaves_the_garbage_collector_as_found(project: Project, alias: str) -> None:
    # Runs freeze the already-loaded heap for speed; the caller's GC state
    # must be the same afterwards, whether or not it had frozen objects itself.
    # Relative counts: some interpreters (Python 3.12.1) start with frozen
    # objects, and a frozen object that dies during the run leaves the count.
    one_table(project)
    before = gc.get_freeze_count()
    run("opsmigrate", database=alias)
    run("opsmigrate", "--sql", database=alias)
    assert gc.get_freeze_count() <= before  # nothing left frozen by the runs
    assert "ops_thing" in table_names(alias)
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        run("opsmigrate", "shop", "zero", database=alias)
        # Still the caller's frozen heap (not unfrozen), and nothing more frozen.
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
    assert "ops_thing" not in table_names(alias)


def test_version_table_setting(project: Project, alias: str) -> None:
    one_table(project)
    with override_settings(ALEMBIC_OPS={"VERSION_TABLE": "my_ops_versions"}):
        run("opsmigrate", database=alias)
        assert query(alias, "SELECT version_num FROM my_ops_versions") == [("w1",)]
    assert "alembic_ops_version" not in table_names(alias)


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_unreachable_database_is_one_line_without_password(
    project: Project, django_db_blocker: Any
) -> None:
    one_table(project)
    broken = {
        **settings.DATABASES["default"],
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "nope",
        "HOST": "127.0.0.1",
        "PORT": "1",
        "USER": "someone",
        "PASSWORD": "s3cr3t-pass",
    }
    with extra_database("broken", broken, django_db_blocker):
        message = run_error("opsmigrate", database="broken")
        # Offline SQL takes the dialect from ENGINE and never connects.
        offline = run("opsmigrate", "--sql", database="broken")
        single = run("opssqlmigrate", "shop", "0001", database="broken")
    assert message.startswith("Cannot connect to database 'broken' (postgresql):")
    assert "Connection refused" in message  # the driver's reason, not a test-runner guard
    assert "s3cr3t-pass" not in message
    assert "\n" not in message
    assert "CREATE TABLE ops_thing" in offline and "SERIAL" in offline  # PostgreSQL DDL
    assert "CREATE TABLE ops_thing" in single


PASSWORD_ROLE = "ops_password_check"  # scripts/start-postgres.sh makes the server ask it for one


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_rejected_password_is_one_line_without_the_password(
    project: Project, pg_alias: str, django_db_blocker: Any
) -> None:
    one_table(project)
    with connections[pg_alias].cursor() as cursor:
        # Roles are per server: tolerate a parallel test process creating it too.
        cursor.execute(
            f"DO $$ BEGIN CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'the-right-one'; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
    if _password_accepted(pg_alias, "wr0ng-s3cret-pw"):
        reason = f"this PostgreSQL server does not ask {PASSWORD_ROLE} for a password"
        if os.environ.get("OPS_REQUIRE_POSTGRES"):
            pytest.fail(f"{reason} (start it with scripts/start-postgres.sh)")
        pytest.skip(reason)
    wrong = {
        **settings.DATABASES[pg_alias],
        "NAME": connections[pg_alias].settings_dict["NAME"],
        "USER": PASSWORD_ROLE,
        "PASSWORD": "wr0ng-s3cret-pw",
    }
    with extra_database("wrongpw", wrong, django_db_blocker):
        messages = [
            run_error("opsmigrate", database="wrongpw"),
            run_error("opsshowmigrations", database="wrongpw"),
        ]
    for message in messages:
        assert message.startswith("Cannot connect to database 'wrongpw' (postgresql):")
        assert "password authentication failed" in message
        assert "wr0ng-s3cret-pw" not in message
        assert "\n" not in message


def _password_accepted(alias: str, password: str) -> bool:
    from django.db.backends.postgresql.base import Database  # the driver Django chose

    try:
        pg_connect(
            dbname=connections[alias].settings_dict["NAME"], user=PASSWORD_ROLE, password=password
        ).close()
    except Database.OperationalError:
        return False
    return True

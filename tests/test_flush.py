"""Django's flush empties ops-owned tables with Django's own (SPEC: Testing helpers).

In-process: ``call_command("flush")`` as ``TransactionTestCase`` calls it,
``sqlflush``'s single statement, a test case's ``available_apps``. In real
subprocesses: pytest with transactional tests, ``serialized_rollback`` and
``--reuse-db``; ``manage.py flush`` on a database that is not a test
database; the example project on PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management.color import no_style
from django.core.management.sql import sql_flush
from django.db import connections
from django.test.utils import override_settings
from django.utils import timezone

from django_alembic_ops import flush

from .conftest import (
    Project,
    drop_server_databases,
    query,
    run,
    server_database,
    server_execute,
    write_project,
)
from .test_test_databases import run_in

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REPO = Path(__file__).resolve().parent.parent

#: An ops table whose foreign key points at a Django table (auth_user), and
#: one without a model whose first row the migration inserts.
NOTE_SCRIPT = {
    "revision": "n1",
    "upgrade": """
        op.create_table(
            "shop_note",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("auth_user.id"), nullable=False),
        )
        code = op.create_table("shop_code", sa.Column("code", sa.String(10), primary_key=True))
        op.bulk_insert(code, [{"code": "T1W"}])
    """,
    "downgrade": 'op.drop_table("shop_code")\nop.drop_table("shop_note")',
}


def with_notes(project: Project, alias: str, models: str = "") -> None:
    project.app("shop", models=models)
    project.script("shop", "0001_initial", **NOTE_SCRIPT)
    run("opsmigrate", database=alias)
    user_id = insert_user(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("INSERT INTO shop_note (user_id) VALUES (%s)", [user_id])


def insert_user(alias: str) -> int:
    from django.contrib.auth.models import User

    return int(User.objects.using(alias).create(username=f"u{uuid.uuid4().hex[:8]}").pk)


def count(alias: str, table: str) -> int:
    return int(query(alias, f"SELECT COUNT(*) FROM {table}")[0][0])


def test_flush_empties_ops_tables_with_djangos(project: Project, alias: str) -> None:
    """A foreign key from an ops table to a Django table used to stop the flush
    ("Database ... couldn't be flushed") on both backends."""
    with_notes(project, alias)
    run("flush", interactive=False, database=alias, verbosity=0)
    assert count(alias, "auth_user") == 0
    assert count(alias, "shop_note") == 0
    # Like a RunPython migration's rows: gone after a flush.
    assert count(alias, "shop_code") == 0
    # The version tables are kept, like django_migrations.
    assert query(alias, "SELECT version_num FROM alembic_ops_version") == [("n1",)]
    assert count(alias, "django_migrations") > 0


def test_sqlflush_shows_one_statement(project: Project, alias: str) -> None:
    with_notes(project, alias)
    sql = run("sqlflush", database=alias)
    lines = sql.splitlines()
    if connections[alias].vendor == "postgresql":
        (truncate,) = [line for line in lines if line.startswith("TRUNCATE")]
        assert all(f'"{t}"' in truncate for t in ("shop_note", "shop_code", "auth_user"))
    elif connections[alias].vendor == "sqlite":
        assert "PRAGMA defer_foreign_keys = ON;" in lines
        for table in ("shop_note", "shop_code", "auth_user"):
            assert f'DELETE FROM "{table}";' in lines
    else:  # MySQL: foreign-key checks off around one statement per table
        assert "SET FOREIGN_KEY_CHECKS = 0;" in lines
        for table in ("shop_note", "shop_code", "auth_user"):
            assert any(f"`{table}`" in line for line in lines)
    assert "alembic_ops_version" not in sql and "django_migrations" not in sql


def test_postgresql_truncates_only_ops_tables_with_rows_and_their_referrers(
    project: Project, pg_alias: str
) -> None:
    """TRUNCATE costs ~1.5 ms a table even when it is empty: an empty ops table is
    named only when it references a truncated table (PostgreSQL refuses otherwise)."""
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="e1",
        upgrade="""
            op.create_table("shop_full", sa.Column("id", sa.Integer, primary_key=True))
            op.create_table(
                "shop_to_full",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("full_id", sa.Integer, sa.ForeignKey("shop_full.id")),
            )
            op.create_table(
                "shop_to_to_full",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("to_full_id", sa.Integer, sa.ForeignKey("shop_to_full.id")),
            )
            op.create_table(
                "shop_to_user",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("user_id", sa.Integer, sa.ForeignKey("auth_user.id")),
            )
            op.create_table("shop_alone", sa.Column("id", sa.Integer, primary_key=True))
        """,
    )
    run("opsmigrate", database=pg_alias)
    query(pg_alias, "INSERT INTO shop_full (id) VALUES (1) RETURNING id")
    # As TransactionTestCase flushes: no sequence reset (with one, every table
    # is named, as RESTART IDENTITY needs).
    connection = connections[pg_alias]
    with flush.including_ops_tables(connection):
        (truncate,) = sql_flush(no_style(), connection, reset_sequences=False)
    for table in ("shop_full", "shop_to_full", "shop_to_to_full", "shop_to_user", "auth_user"):
        assert f'"{table}"' in truncate, table
    assert '"shop_alone"' not in truncate  # empty, references nothing truncated
    run("flush", interactive=False, database=pg_alias, verbosity=0)
    assert count(pg_alias, "shop_full") == 0


def test_postgresql_deletes_from_ops_tables_with_no_trigger(
    project: Project, pg_alias: str, request: pytest.FixtureRequest
) -> None:
    """A table with rows and no trigger or rule (so no foreign key either way) is
    emptied by DELETE, a fraction of TRUNCATE's cost; one with a trigger, or a
    foreign key, is truncated (a DELETE would fire the trigger)."""
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="e1",
        upgrade="""
            op.create_table("shop_alone", sa.Column("id", sa.Integer, primary_key=True))
            op.create_table("shop_watched", sa.Column("id", sa.Integer, primary_key=True))
            op.create_table("shop_log", sa.Column("id", sa.Integer))
            op.execute(
                "CREATE FUNCTION shop_log_delete() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO shop_log VALUES (OLD.id); RETURN OLD; END $$"
            )
            op.execute(
                "CREATE TRIGGER shop_watched_delete AFTER DELETE ON shop_watched "
                "FOR EACH ROW EXECUTE FUNCTION shop_log_delete()"
            )
        """,
    )

    def drop_function() -> None:
        # A function outlives the test's tables, and other tests list the functions.
        with connections[pg_alias].cursor() as cursor:
            cursor.execute("DROP FUNCTION IF EXISTS shop_log_delete() CASCADE")

    request.addfinalizer(drop_function)
    run("opsmigrate", database=pg_alias)
    for table in ("shop_alone", "shop_watched"):
        query(pg_alias, f"INSERT INTO {table} (id) VALUES (1) RETURNING id")
    connection = connections[pg_alias]
    with flush.including_ops_tables(connection):
        statements = sql_flush(no_style(), connection, reset_sequences=False)
    truncate = next(s for s in statements if s.startswith("TRUNCATE"))
    assert '"shop_watched"' in truncate and '"shop_alone"' not in truncate
    assert 'DELETE FROM "shop_alone";' in statements
    assert '"shop_log"' not in " ".join(statements)  # empty: left alone
    run("flush", interactive=False, database=pg_alias, verbosity=0)
    assert [count(pg_alias, t) for t in ("shop_alone", "shop_watched", "shop_log")] == [0, 0, 0]
    with flush.including_ops_tables(connection):
        statements = sql_flush(no_style(), connection, reset_sequences=True)
    assert not any(s.startswith("DELETE") for s in statements)  # RESTART IDENTITY: all truncated


def test_deletes_only_from_ops_tables_with_rows(project: Project, alias: str) -> None:
    """Each DELETE costs even on an empty table (SQLite ~50 us, MariaDB ~80 us: 50 and
    80 ms a flush with 1,000 ops tables): between tests, only the ops tables that have
    a row are named, on SQLite and MySQL."""
    if connections[alias].vendor == "postgresql":
        pytest.skip("PostgreSQL decides by file size and foreign keys: the test above")
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="e1",
        upgrade="""
            op.create_table("shop_full", sa.Column("id", sa.Integer, primary_key=True))
            op.create_table(
                "shop_to_full",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("full_id", sa.Integer, sa.ForeignKey("shop_full.id")),
            )
            op.create_table("shop_empty", sa.Column("id", sa.Integer, primary_key=True))
        """,
    )
    run("opsmigrate", database=alias)
    query(alias, "INSERT INTO shop_full (id) VALUES (1)")
    query(alias, "INSERT INTO shop_to_full (id, full_id) VALUES (1, 1)")
    connection = connections[alias]
    quote = connection.ops.quote_name
    with flush.including_ops_tables(connection):
        statements = sql_flush(no_style(), connection, reset_sequences=False)
    assert f"DELETE FROM {quote('shop_full')};" in statements
    assert f"DELETE FROM {quote('shop_to_full')};" in statements
    assert not any("shop_empty" in s for s in statements)
    run("flush", interactive=False, database=alias, verbosity=0)
    assert [count(alias, t) for t in ("shop_full", "shop_to_full")] == [0, 0]
    with flush.including_ops_tables(connection):
        statements = sql_flush(no_style(), connection, reset_sequences=True)
    assert any(quote("shop_empty") in s for s in statements)  # sequences reset: every table


def test_flush_leaves_extension_and_foreign_tables_alone(project: Project, pg_alias: str) -> None:
    """In a PostgreSQL test database, a table an extension owns (PostGIS's
    spatial_ref_sys) and a foreign table did not come from the migrations."""
    with_notes(project, pg_alias)
    statements = [
        "CREATE EXTENSION IF NOT EXISTS hstore",
        "CREATE TABLE ext_owned (id integer PRIMARY KEY)",
        "INSERT INTO ext_owned VALUES (1)",
        "ALTER EXTENSION hstore ADD TABLE ext_owned",
        "CREATE EXTENSION IF NOT EXISTS file_fdw",
        "CREATE SERVER ops_files FOREIGN DATA WRAPPER file_fdw",
        "CREATE FOREIGN TABLE ops_remote (line text) SERVER ops_files "
        "OPTIONS (filename '/dev/null')",
    ]
    try:
        with connections[pg_alias].cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        sql = run("sqlflush", database=pg_alias)
        assert "ext_owned" not in sql and "ops_remote" not in sql
        run("flush", interactive=False, database=pg_alias, verbosity=0)
        assert count(pg_alias, "shop_note") == 0
        assert count(pg_alias, "ext_owned") == 1
    finally:
        with connections[pg_alias].cursor() as cursor:
            cursor.execute("DROP EXTENSION IF EXISTS hstore CASCADE")  # and ext_owned
            cursor.execute("DROP EXTENSION IF EXISTS file_fdw CASCADE")  # server, table


def test_flush_keeps_database_cache_tables(project: Project, alias: str) -> None:
    """createcachetable's tables did not come from the migrations; Django keeps them."""
    caches = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                          "LOCATION": "ops_cache"}}  # fmt: skip
    with_notes(project, alias)
    with override_settings(CACHES=caches):
        run("createcachetable", database=alias)
        with connections[alias].cursor() as cursor:
            cursor.execute("INSERT INTO ops_cache VALUES ('k', 'v', %s)", [timezone.now()])
        assert "ops_cache" not in run("sqlflush", database=alias)
        run("flush", interactive=False, database=alias, verbosity=0)
    assert count(alias, "ops_cache") == 1
    assert count(alias, "shop_note") == 0


CODE_MODEL = """
from django.db import models

class Code(models.Model):
    code = models.CharField(max_length=10, primary_key=True)

    class Meta:
        managed = False
        db_table = "shop_code"
"""


def test_flush_of_available_apps_empties_their_target_tables(project: Project, alias: str) -> None:
    """A test case's ``available_apps`` flushes only those apps: the tables of
    their targets (unmanaged models) go with them, other apps' tables stay."""
    with_notes(project, alias, models=CODE_MODEL)
    content_types = count(alias, "django_content_type")
    apps.set_available_apps(["django.contrib.auth", "shop"])
    try:
        # What TransactionTestCase passes when it has available_apps.
        run("flush", interactive=False, database=alias, verbosity=0, allow_cascade=True)
    finally:
        apps.unset_available_apps()
    assert count(alias, "shop_code") == 0
    assert count(alias, "auth_user") == 0
    assert count(alias, "django_content_type") == content_types > 0


# -- real subprocesses ------------------------------------------------------------------

SETTINGS = """
SECRET_KEY = "x"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                  "django_alembic_ops", "shop"]
DATABASES = {DATABASES}
"""

MODELS = """
from django.db import models

class Thing(models.Model):
    owner = models.ForeignKey("auth.User", on_delete=models.DO_NOTHING)
    code = models.CharField(max_length=10, unique=True)

    class Meta:
        managed = False
        db_table = "shop_thing"
"""

SCRIPT = """
from alembic import op
import sqlalchemy as sa

revision = "t1"
down_revision = None
branch_labels = ("shop",)
depends_on = None
django_dependencies = [("auth", "0001_initial")]


def upgrade():
    op.create_table(
        "shop_thing",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("auth_user.id"), nullable=False),
        sa.Column("code", sa.String(10), nullable=False, unique=True),
    )
    code = op.create_table("shop_code", sa.Column("code", sa.String(10), primary_key=True))
    op.bulk_insert(code, [{"code": "T1W"}])


def downgrade():
    op.drop_table("shop_code")
    op.drop_table("shop_thing")
"""

#: Run in file order (pytest-django puts transactional tests after the others).
#: The serialized_rollback tests come first: a flush that fires post_migrate
#: (after a plain transactional test) recreates Django's content types under
#: new ids, which Django's own deserialization then collides with.
PYTEST_TESTS = """
import pytest
from django.contrib.auth.models import User
from django.db import connection
from shop.models import Thing


def codes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT code FROM shop_code ORDER BY code")
        return [row[0] for row in cursor.fetchall()]


def write_rows():
    owner = User.objects.create(username="owner")
    # Unique: a row left over from a previous --reuse-db run collides.
    Thing.objects.create(owner=owner, code="T2X")
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO shop_code (code) VALUES ('X1')")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_1_serialized_rollback_over_the_first_rows():
    assert codes() == ["T1W"]
    write_rows()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_2_serialized_rollback_brings_back_migration_rows():
    assert codes() == ["T1W"]
    assert not Thing.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_3_writes_rows():
    assert codes() == []
    write_rows()


@pytest.mark.django_db(transaction=True)
def test_4_flushed():
    assert not Thing.objects.exists()
    assert not User.objects.exists()
    assert codes() == []
"""

#: For manage.py test (classes in name order, then methods): the serialized
#: tests first, for the reason above.
DJANGO_TESTS = """
from django.contrib.auth.models import User
from django.db import connection
from django.test import TransactionTestCase
from shop.models import Thing


def codes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT code FROM shop_code ORDER BY code")
        return [row[0] for row in cursor.fetchall()]


class ASerializedTests(TransactionTestCase):
    serialized_rollback = True

    def test_1_first_rows(self):
        self.assertEqual(codes(), ["T1W"])
        Thing.objects.create(owner=User.objects.create(username="owner"), code="T2X")

    def test_2_migration_rows_are_back(self):
        self.assertEqual(codes(), ["T1W"])
        self.assertFalse(Thing.objects.exists())


class FlushTests(TransactionTestCase):
    def test_1_writes_rows(self):
        self.assertEqual(codes(), [])
        Thing.objects.create(owner=User.objects.create(username="owner"), code="T2X")

    def test_2_flushed(self):
        self.assertFalse(Thing.objects.exists())
        self.assertEqual(codes(), [])
"""


def make_project(root: Path, databases: str) -> Path:
    files = {
        "settings.py": SETTINGS.replace("{DATABASES}", databases),
        "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = settings\n",
        "shop/__init__.py": "",
        "shop/models.py": MODELS,
        "shop/migrations_ops/__init__.py": "",
        "shop/migrations_ops/0001_initial.py": SCRIPT,
        "shop/tests.py": DJANGO_TESTS,
        "test_flush_between_tests.py": PYTEST_TESTS,
    }
    return write_project(root, files)


def pytest_in(root: Path, *args: str) -> Any:
    return run_in(root, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args)


@pytest.fixture
def databases(request: pytest.FixtureRequest, alias: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(alias, DATABASES["default"])`` of a subprocess project, per backend.

    SQLite: a file test database (``--reuse-db`` keeps it); PostgreSQL and
    MariaDB: names of their own, dropped afterwards.
    """
    if alias == "default":
        yield (
            alias,
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "db.sqlite3",
                "TEST": {"NAME": "test_db.sqlite3"},
            },
        )
        return
    name = f"ops_flush_{uuid.uuid4().hex[:8]}"
    try:
        yield alias, server_database(alias, name)
    finally:
        drop_server_databases(alias, name, f"test_{name}")


def test_pytest_transactional_tests_and_reuse_db(
    tmp_path: Path, databases: tuple[str, dict[str, Any]]
) -> None:
    """Rows in ops tables are flushed between transactional tests and never
    reach the next --reuse-db run; serialized_rollback brings back the row
    the ops migration inserted."""
    root = make_project(tmp_path, repr({"default": databases[1]}))
    first = pytest_in(root, "--create-db", "--reuse-db", "test_flush_between_tests.py")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 passed" in first.stdout
    # Django serializes a kept database as it finds it (flushed): as for its
    # own RunPython rows, serialized_rollback is for a database built this run.
    again = pytest_in(root, "--reuse-db", "-k", "not serialized", "test_flush_between_tests.py")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 passed" in again.stdout


def test_manage_py_test(tmp_path: Path, databases: tuple[str, dict[str, Any]]) -> None:
    root = make_project(tmp_path, repr({"default": databases[1]}))
    result = run_in(root, "manage.py", "test", "shop", "--noinput")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 4 tests" in result.stderr


SHELL_SETUP = """
from django.contrib.auth.models import User
from django.db import connection
from shop.models import Thing

Thing.objects.create(owner=User.objects.create(username="owner"), code="T2X")
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE legacy_ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
    cursor.execute("INSERT INTO legacy_ledger VALUES (1, 100)")
"""

SHELL_COUNTS = """
from django.db import connection

with connection.cursor() as cursor:
    for table in ("auth_user", "shop_thing", "shop_code", "legacy_ledger", "alembic_ops_version"):
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        print("count", table, cursor.fetchone()[0])
"""


def test_manage_py_flush_outside_tests(
    tmp_path: Path, databases: tuple[str, dict[str, Any]]
) -> None:
    """Outside tests only the tables ops owns by definition (the app's target:
    its unmanaged models) are emptied; another service's table is untouched."""
    alias, database = databases
    if alias != "default":
        quote = connections[alias].ops.quote_name
        server_execute(alias, f"CREATE DATABASE {quote(database['NAME'])}")
    root = make_project(tmp_path, repr({"default": database}))
    for argv in (["migrate"], ["shell", "-c", SHELL_SETUP], ["flush", "--noinput"]):
        result = run_in(root, "manage.py", *argv)
        assert result.returncode == 0, result.stdout + result.stderr
    result = run_in(root, "manage.py", "shell", "-c", SHELL_COUNTS)
    assert result.returncode == 0, result.stdout + result.stderr
    # (Django's shell may print more, e.g. what it imported.)
    counts = dict(
        line.split()[1:] for line in result.stdout.splitlines() if line.startswith("count ")
    )
    assert counts == {
        "auth_user": "0",
        "shop_thing": "0",
        # No model, no target_metadata: not known as ops-owned outside tests.
        "shop_code": "1",
        "legacy_ledger": "1",
        "alembic_ops_version": "1",
    }


def test_example_project_transaction_test_case(tmp_path: Path, alias: str) -> None:
    """The example project (an ops table and a Django table referencing each
    other) passes its tests, TransactionTestCase included, on each backend."""
    if alias not in ("default", "postgres"):
        pytest.skip("the example project runs on SQLite and PostgreSQL")
    root = tmp_path / "example_project"
    shutil.copytree(
        REPO / "example_project",
        root,
        ignore=shutil.ignore_patterns("db.sqlite3*", "__pycache__"),
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    name = f"ops_example_{uuid.uuid4().hex[:8]}"
    if alias != "default":
        pg = settings.DATABASES[alias]
        env.update(
            EXAMPLE_PG_NAME=name,
            PGHOST=pg["HOST"],
            PGPORT=str(pg["PORT"]),
            PGUSER=pg["USER"],
            PGPASSWORD=pg["PASSWORD"],
        )
    try:
        result = subprocess.run(
            [sys.executable, "manage.py", "test", "--noinput"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        if alias != "default":
            drop_server_databases(alias, f"test_{name}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 5 tests" in result.stderr

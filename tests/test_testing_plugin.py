"""The pytest plugin and the manage.py test helpers, in real subprocesses.

Each test copies the example project of ``docs/testing.rst`` (apps ``shop``
and ``billing``, the latter depending on ``shop``'s second migration, with
the documented tests), adds settings and tests of its own, and runs pytest or
``manage.py test`` in it, as a user would: the plugin is found through its
``pytest11`` entry point; nothing in the project names it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from .conftest import pg_execute

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _installed() -> None:
    """These tests need the package installed (its pytest11 entry point) and pytest-xdist."""
    plugins = {entry.name for entry in importlib.metadata.entry_points(group="pytest11")}
    if "django_alembic_ops" not in plugins or "xdist" not in plugins:
        pytest.fail(
            "The plugin's entry point or pytest-xdist is not installed in this environment: "
            "run pip install -e '.[dev]' (scripts/test.sh does).",
            pytrace=False,
        )


SETTINGS = """
SECRET_KEY = "x"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_alembic_ops", "shop", "billing"]
DATABASES = {DATABASES}
"""

MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


#: The example of docs/testing.rst: apps shop and billing, with their tests.
EXAMPLE = REPO / "docs" / "examples" / "testing"

#: Runs in the project under pytest (pytest-django reorders: db first, then transactional).
PYTEST_TESTS = """
import pytest
from django.db import connection

from django_alembic_ops.errors import TransactionError
from django_alembic_ops.testing import stairway

SHOP = ["shop.0001_initial", "shop.0002_add_status", "shop.0003_totals_view"]


def tables():
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def columns(table):
    with connection.cursor() as cursor:
        return [c.name for c in connection.introspection.get_table_description(cursor, table)]


def test_in_db_transaction(ops_migrator, db):
    if connection.vendor == "sqlite":
        with pytest.raises(TransactionError, match="Use the transactional_db fixture"):
            ops_migrator.migrate("shop", "0001")
    else:  # PostgreSQL: transactional DDL, rolled back with the test
        unapplied = ops_migrator.migrate("shop", "0001")
        assert sorted(unapplied) == [
            "billing.0001_initial", "shop.0002_add_status", "shop.0003_totals_view"]
        assert "status" not in columns("shop_order")


def test_migrate_down_and_up(ops_migrator, transactional_db):
    assert ops_migrator.applied("shop") == SHOP
    ops_migrator.migrate("shop", "0001")
    assert ops_migrator.applied("shop") == SHOP[:1]
    assert ops_migrator.applied("billing") == []
    assert "status" not in columns("shop_order")
    ops_migrator.migrate("shop", "0002_add_status")
    assert "status" in columns("shop_order")
    ops_migrator.migrate("shop", "zero")
    assert ops_migrator.applied("shop") == []
    assert "shop_order" not in tables()


def test_back_at_heads_after_the_previous_test(transactional_db):
    assert "status" in columns("shop_order")
    assert {"billing_invoice", "shop_order"} <= tables()


@pytest.mark.django_db(transaction=True)
def test_stairway():
    assert stairway() == [*SHOP[:2], "billing.0001_initial", SHOP[2]]
"""

NEEDS_DB = """
def test_without_database(ops_migrator):
    pass
"""

#: Runs in the project under manage.py test, next to the example's shop/tests.py.
DJANGO_TESTS = """
from django.db import connection
from django.test import TestCase

from django_alembic_ops.errors import TransactionError
from django_alembic_ops.testing import OpsMigrationsTestMixin, OpsMigratorTestCase

SHOP = ["shop.0001_initial", "shop.0002_add_status", "shop.0003_totals_view"]


class MigratorTests(OpsMigratorTestCase):
    def test_down_and_up(self):
        self.assertEqual(self.ops_migrator.applied("shop"), SHOP)
        self.ops_migrator.migrate("shop", "zero")
        self.assertEqual(self.ops_migrator.applied("billing"), [])

    def test_stairway(self):
        self.assertEqual(self.assertOpsStairway(["shop"]), SHOP)


class InTransactionTests(OpsMigrationsTestMixin, TestCase):
    def test_migrate(self):
        if connection.vendor == "sqlite":
            with self.assertRaisesMessage(TransactionError, "Use a TransactionTestCase"):
                self.ops_migrator.migrate("shop", "0001")
        else:
            self.ops_migrator.migrate("shop", "0001")
"""

#: Tests of the example (docs) and of this suite, as manage.py test counts them.
DJANGO_TEST_COUNT = 6 + 3

FILES = {
    "manage.py": MANAGE,
    "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = settings\n",
    "shop/test_suite.py": DJANGO_TESTS,
    "test_ops.py": PYTEST_TESTS,
    "test_needs_db.py": NEEDS_DB,
}

SQLITE_MEMORY = '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}'
SQLITE_FILE = (
    '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3",'
    ' "TEST": {"NAME": "test_db.sqlite3"}}}'
)


def make_project(root: Path, databases: str) -> Path:
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in {**FILES, "settings.py": SETTINGS.replace("{DATABASES}", databases)}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # COLUMNS: pytest's short summary lines are cut to the terminal's width.
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{root}", "COLUMNS": "250"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )


#: Plugins of this machine that the projects do not use, and that are slow to import.
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in(root, "-m", "pytest", *FAST, "-rA", *args)


def counts(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """``{"passed": 10, "skipped": 2}`` from pytest's last line."""
    last = result.stdout.strip().splitlines()[-1]
    # (Warnings aside: without squawk, test_ops_lint warns on PostgreSQL.)
    return {
        word: int(n)
        for n, word in re.findall(r"(\d+) (\w+)", last)
        if word not in ("in", "warning", "warnings")
    }


def passed(result: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"^PASSED (\S+)", result.stdout, re.MULTILINE))


def check_items(apps: tuple[str, ...] = ("billing", "shop")) -> set[str]:
    return {
        f"django_alembic_ops::{check}[{app}]"
        for check in (
            "test_ops_single_head",
            "test_ops_upgrade",
            "test_ops_stairway",
            "test_ops_lint",
        )
        for app in apps
    }


def assert_checks_ran(result: subprocess.CompletedProcess[str], tests: int = 4) -> None:
    """The 10 checks of --ops-checks (2 skipped) and ``tests`` tests passed."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert counts(result) == {"passed": 8 + tests, "skipped": 2}, output
    assert check_items() <= passed(result), output
    # No target in either app (or no autogenerate at all): skipped, saying why.
    skipped = re.findall(r"^SKIPPED \[\d+\] .*$", result.stdout, re.MULTILINE)
    assert skipped and all("autogenerate" in line for line in skipped), output


def test_checks_and_example_sqlite_in_memory(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_MEMORY)
    result = pytest_in(root, "--ops-checks", "test_ops.py", "test_migrations.py")
    assert_checks_ran(result, tests=6)
    assert {
        "test_ops.py::test_back_at_heads_after_the_previous_test",
        "test_migrations.py::test_migrations_undo_cleanly",
        "test_migrations.py::test_0002_marks_shipped_orders",
    } <= passed(result)


def test_stairway_option_and_selection(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_MEMORY)
    result = pytest_in(root, "--ops-stairway", "-k", "shop", "test_ops.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert passed(result) == {"django_alembic_ops::test_ops_stairway[shop]"}, result.stdout
    result = pytest_in(root, "--ops-checks", "--collect-only", "-q", "test_ops.py")
    assert "django_alembic_ops::test_ops_models_match_ddl[billing]" in result.stdout
    assert "14 tests collected" in result.stdout, result.stdout


ROUTED = """
class OpsAppsOnOther:
    def allow_migrate(self, db, app_label, **hints):
        if app_label in ("shop", "billing"):
            return db == "other"
        return None
"""


def test_checks_on_another_database(tmp_path: Path) -> None:
    databases = (
        '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"},'
        ' "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": "other.sqlite3"}}'
    )
    root = make_project(tmp_path, databases)
    (root / "routers.py").write_text(textwrap.dedent(ROUTED))
    with (root / "settings.py").open("a") as settings_file:
        settings_file.write('DATABASE_ROUTERS = ["routers.OpsAppsOnOther"]\n')
    (root / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    # On default the routers keep both apps off: only the head checks run.
    result = pytest_in(root, "--ops-checks", "test_nothing.py")
    assert counts(result) == {"passed": 3, "skipped": 8}, result.stdout + result.stderr
    assert "routers" in result.stdout
    result = pytest_in(root, "--ops-checks", "--ops-database", "other", "test_nothing.py")
    assert_checks_ran(result, tests=1)
    result = pytest_in(root, "--ops-stairway", "--ops-database", "nope", "test_nothing.py")
    assert result.returncode == 4, result.stdout + result.stderr
    assert (
        "ERROR: --ops-database: no database 'nope' in DATABASES (known: default, other)."
        in result.stderr
    )


def test_ops_migrator_needs_a_database(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_MEMORY)
    result = pytest_in(root, "test_needs_db.py")
    assert counts(result) == {"error": 1}, result.stdout
    assert (
        "ERROR test_needs_db.py::test_without_database - Failed: The ops_migrator fixture "
        "needs database access: request the transactional_db fixture"
    ) in result.stdout


def test_plugin_stays_out_of_the_way(tmp_path: Path) -> None:
    # A project without Django settings: the plugin is loaded, and harmless.
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (plain / "pytest.ini").write_text("[pytest]\n")
    result = pytest_in(plain)
    assert counts(result) == {"passed": 1}, result.stdout + result.stderr
    # Asking for the checks there is a usage error that says why.
    result = pytest_in(plain, "--ops-checks")
    assert result.returncode == 4
    assert "--ops-checks needs Django: Django settings are not configured" in result.stderr
    result = pytest_in(plain, "-p", "no:django", "--ops-stairway")
    assert result.returncode == 4
    assert "--ops-stairway needs Django: pytest-django is not installed" in result.stderr
    # A Django project whose apps have no ops migrations: nothing is added.
    root = make_project(tmp_path / "django", SQLITE_MEMORY)
    for app in ("shop", "billing"):
        shutil.rmtree(root / app / "migrations_ops")
    (root / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    result = pytest_in(root, "--ops-checks", "test_plain.py")
    assert counts(result) == {"passed": 1}, result.stdout + result.stderr


def test_create_db_and_reuse_db(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_FILE)
    result = pytest_in(root, "--create-db", "--reuse-db", "--ops-checks", "test_ops.py")
    assert_checks_ran(result)
    assert (root / "test_db.sqlite3").exists()
    # The kept database was left at the heads: test_migrate_down_and_up starts from them.
    result = pytest_in(root, "--reuse-db", "test_ops.py")
    assert counts(result) == {"passed": 4}, result.stdout + result.stderr


def test_xdist_nomigrations(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_MEMORY)
    args = ("-n", "2", "--nomigrations", "--ops-checks", "test_ops.py", "test_migrations.py")
    result = pytest_in(root, *args)
    assert_checks_ran(result, tests=6)
    assert "2 workers" in result.stdout, result.stdout


BAD_0004 = """
import sqlalchemy as sa
from alembic import op

revision = "s4"
down_revision = "9b0f1d8c4e23"


def upgrade():
    op.add_column("shop_order", sa.Column("note", sa.Text))


def downgrade():
    pass
"""


def test_failing_stairway_says_which_migration_and_what(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_MEMORY)
    (root / "shop/migrations_ops/0004_note.py").write_text(BAD_0004)
    result = pytest_in(root, "--ops-stairway", "-k", "stairway and shop", "test_ops.py")
    assert result.returncode == 1
    assert "FAILED django_alembic_ops::test_ops_stairway[shop]" in result.stdout
    # The message, not a traceback through the plugin.
    assert (
        "shop.0004_note: downgrade did not restore the schema on database 'default':\n"
        "  - table shop_order: column note was left behind (TEXT)\n"
    ) in result.stdout, result.stdout
    assert "testing.py:" not in result.stdout


def test_failing_check_is_one_failure(project_on: Path) -> None:
    """No ERROR at teardown: the stairway puts the database back at the heads, so
    the flush after the test (which applies pending ops migrations) has nothing to do."""
    (project_on / "shop/migrations_ops/0004_note.py").write_text(BAD_0004)
    (project_on / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    result = pytest_in(project_on, "--ops-checks", "test_nothing.py")
    output = result.stdout + result.stderr
    # The stairway of billing runs after shop's, on the same database: it passes.
    assert counts(result) == {"failed": 1, "passed": 8, "skipped": 2}, output
    assert re.findall(r"^(?:FAILED|ERROR) \S+", result.stdout, re.MULTILINE) == [
        "FAILED django_alembic_ops::test_ops_stairway[shop]"
    ], output


def test_manage_py_test_parallel_keepdb(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_FILE)
    for _ in range(2):
        result = run_in(root, "manage.py", "test", "shop", "--parallel", "2", "--keepdb")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Ran {DJANGO_TEST_COUNT} tests" in result.stderr, result.stderr
        assert "OK" in result.stderr
        # Kept: the database and one clone per worker.
        kept = {"test_db.sqlite3", "test_db_1.sqlite3", "test_db_2.sqlite3"}
        assert kept <= {path.name for path in root.iterdir()}


def drop_databases(prefix: str) -> None:
    names = pg_execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{prefix}%"])
    for (name,) in names:
        pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_project(tmp_path: Path, pg_alias: str) -> Iterator[Path]:
    """The project on PostgreSQL, with its own database names (dropped afterwards)."""
    pg = settings.DATABASES[pg_alias]
    name = f"ops_testing_{uuid.uuid4().hex[:8]}"
    databases = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "HOST": pg["HOST"],
            "PORT": pg["PORT"],
            "USER": pg["USER"],
            "PASSWORD": pg["PASSWORD"],
        }
    }
    try:
        yield make_project(tmp_path, repr(databases))
    finally:
        drop_databases(f"test_{name}")


@pytest.fixture(params=["sqlite", "postgresql"])
def project_on(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The project on SQLite (in memory), then on PostgreSQL."""
    if request.param == "sqlite":
        return make_project(tmp_path, SQLITE_MEMORY)
    project: Path = request.getfixturevalue("pg_project")
    return project


def test_postgresql_pytest(pg_project: Path) -> None:
    args = ("--create-db", "--reuse-db", "--ops-checks", "test_ops.py", "test_migrations.py")
    assert_checks_ran(pytest_in(pg_project, *args), tests=6)
    result = pytest_in(pg_project, "--reuse-db", "-n", "2", "--ops-stairway", "test_ops.py")
    assert counts(result) == {"passed": 6}, result.stdout + result.stderr


def test_postgresql_manage_py_test_parallel_keepdb(pg_project: Path) -> None:
    for _ in range(2):
        result = run_in(pg_project, "manage.py", "test", "shop", "--parallel", "2", "--keepdb")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Ran {DJANGO_TEST_COUNT} tests" in result.stderr, result.stderr


def test_ops_checks_on_example_project_postgresql(tmp_path: Path, pg_alias: str) -> None:
    """The example project on PostgreSQL: Django's reports_salesnote references
    the ops table reports_daily_sales, so the checks that unapply reports' ops
    migrations skip, saying why, instead of failing; the others pass."""
    root = tmp_path / "example_project"
    shutil.copytree(
        REPO / "example_project", root, ignore=shutil.ignore_patterns("db.sqlite3*", "__pycache__")
    )
    pg = settings.DATABASES[pg_alias]
    name = f"ops_example_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{root}",
        "COLUMNS": "250",
        "EXAMPLE_PG_NAME": name,
        "PGHOST": pg["HOST"],
        "PGPORT": str(pg["PORT"]),
        "PGUSER": pg["USER"],
        "PGPASSWORD": pg["PASSWORD"],
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # models_match_ddl: the example's hand-written names differ from Django's.
    args = ("--ds", "config.settings", "--ops-checks", "-k", "not models_match")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *FAST, "-rA", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        drop_databases(f"test_{name}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert counts(result) == {"passed": 6, "skipped": 2, "deselected": 2}, output
    assert {
        "django_alembic_ops::test_ops_upgrade[shop]",
        "django_alembic_ops::test_ops_stairway[shop]",
    } <= passed(result), output
    assert (
        "Django's tables reference tables of the ops migrations by foreign key "
        "(reports_salesnote -> reports_daily_sales), so on postgresql the ops migrations of "
        "'reports' cannot be unapplied while those tables exist"
    ) in output

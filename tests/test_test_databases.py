"""Test databases get the ops schema with no extra step (real subprocesses).

pytest-django (default, ``--nomigrations``, ``--reuse-db``, SQLite in-memory,
PostgreSQL and MariaDB) and ``manage.py test`` all create the test database through
``migrate``, whose ``post_migrate`` signal applies the ops migrations.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from .conftest import drop_server_databases, server_database, write_project

REPO = Path(__file__).resolve().parent.parent

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
    name = models.CharField(max_length=20)

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

def upgrade():
    op.create_table("shop_thing", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(20), nullable=False))

def downgrade():
    op.drop_table("shop_thing")
"""

PYTEST_TEST = """
import pytest
from shop.models import Thing

@pytest.mark.django_db
def test_ops_table_exists():
    thing = Thing.objects.create(name="x")
    assert Thing.objects.get(pk=thing.pk).name == "x"

@pytest.mark.django_db(transaction=True)
def test_ops_table_after_flush():
    Thing.objects.create(name="y")
    assert Thing.objects.filter(name="y").exists()
"""

DJANGO_TEST = """
from django.test import TestCase, TransactionTestCase
from shop.models import Thing

class ThingTests(TestCase):
    def test_ops_table_exists(self):
        thing = Thing.objects.create(name="x")
        self.assertEqual(Thing.objects.get(pk=thing.pk).name, "x")

class ThingTransactionTests(TransactionTestCase):
    def test_ops_table_exists(self):
        thing = Thing.objects.create(name="y")
        self.assertEqual(Thing.objects.get(pk=thing.pk).name, "y")
"""


def make_project(root: Path, databases: str, extra: dict[str, str] | None = None) -> Path:
    """The project; ``extra`` adds or replaces files, by path."""
    files = {
        "settings.py": SETTINGS.replace("{DATABASES}", databases),
        "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = settings\n",
        "shop/__init__.py": "",
        "shop/models.py": MODELS,
        "shop/migrations_ops/__init__.py": "",
        "shop/migrations_ops/0001_initial.py": SCRIPT,
        "shop/tests.py": DJANGO_TEST,
        "test_things.py": PYTEST_TEST,
        **(extra or {}),
    }
    return write_project(root, files)


def run_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{root}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in(root, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args)


SQLITE_MEMORY = '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}'
SQLITE_FILE = (
    '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3",'
    ' "TEST": {"NAME": "test_db.sqlite3"}}}'
)


@pytest.mark.parametrize("extra", [[], ["--nomigrations"]], ids=["migrations", "nomigrations"])
def test_pytest_django_sqlite_in_memory(tmp_path: Path, extra: list[str]) -> None:
    root = make_project(tmp_path, SQLITE_MEMORY)
    result = pytest_in(root, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_pytest_django_reuse_db(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_FILE)
    for _ in range(2):
        result = pytest_in(root, "--reuse-db")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
    assert (root / "test_db.sqlite3").exists()


def test_manage_py_test(tmp_path: Path) -> None:
    root = make_project(tmp_path, SQLITE_MEMORY)
    result = run_in(root, "manage.py", "test", "shop", "-v", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr
    assert "OK" in result.stderr


def test_pytest_django_on_a_server(tmp_path: Path, server_alias: str) -> None:
    """pytest-django (created, reused, --nomigrations) and manage.py test on a server."""
    name = f"ops_subprocess_{uuid.uuid4().hex[:8]}"
    root = make_project(tmp_path, repr({"default": server_database(server_alias, name)}))
    try:
        for args in (["--create-db", "--reuse-db"], ["--reuse-db"], ["--nomigrations"]):
            result = pytest_in(root, *args)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "2 passed" in result.stdout
        result = run_in(root, "manage.py", "test", "shop", "--noinput")
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        drop_server_databases(server_alias, name, f"test_{name}")


ROUTER = """
class ShopOnOther:
    def allow_migrate(self, db, app_label, **hints):
        if app_label == "shop":
            return db == "other"
        return None
"""


def test_router_two_sqlite_files(tmp_path: Path) -> None:
    """Issue 5: with two SQLite database files, ops migrations run and are
    recorded only where the router allows the app."""
    databases = (
        '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "default.sqlite3"},'
        ' "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": "other.sqlite3"}}\n'
        'DATABASE_ROUTERS = ["routers.ShopOnOther"]'
    )
    root = make_project(tmp_path, databases)
    (root / "routers.py").write_text(textwrap.dedent(ROUTER))
    for args in (["opsmigrate"], ["opsmigrate", "--database", "other"]):
        result = run_in(root, "manage.py", *args)
        assert result.returncode == 0, result.stdout + result.stderr

    def tables(name: str) -> set[str]:
        with sqlite3.connect(root / name) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {row[0] for row in rows}

    def versions(name: str) -> list[str]:
        with sqlite3.connect(root / name) as connection:
            if "alembic_ops_version" not in tables(name):
                return []
            return [r[0] for r in connection.execute("SELECT version_num FROM alembic_ops_version")]

    assert "shop_thing" in tables("other.sqlite3")
    assert versions("other.sqlite3") == ["t1"]
    assert "shop_thing" not in tables("default.sqlite3")
    assert versions("default.sqlite3") == []


# -- TEST["MIGRATE"] = False -----------------------------------------------------------

#: The ops migration needs a Django migration; the test database built from
#: the models records none.
SCRIPT_WITH_DEPENDENCY = SCRIPT.replace(
    "depends_on = None", 'depends_on = None\ndjango_dependencies = [("auth", "0001_initial")]'
)

PYTEST_HELPERS = """
import pytest
from django_alembic_ops.testing import stairway


@pytest.mark.django_db(transaction=True)
def test_ops_migrator(ops_migrator):
    ops_migrator.migrate("shop", "zero")
    assert ops_migrator.applied("shop") == []
    ops_migrator.migrate("shop", "0001")
    assert ops_migrator.applied("shop") == ["shop.0001_initial"]


@pytest.mark.django_db(transaction=True)
def test_stairway():
    assert stairway(["shop"]) == ["shop.0001_initial"]
"""

DJANGO_HELPERS = """
from django_alembic_ops.testing import OpsMigratorTestCase


class HelperTests(OpsMigratorTestCase):
    def test_migrator(self):
        self.ops_migrator.migrate("shop", "zero")
        self.assertEqual(self.ops_migrator.applied("shop"), [])

    def test_stairway(self):
        self.assertEqual(self.assertOpsStairway(["shop"]), ["shop.0001_initial"])
"""


@pytest.fixture
def default_database(alias: str) -> Iterator[dict[str, object]]:
    """``DATABASES["default"]`` of a subprocess project, per backend: a SQLite
    file test database (kept by ``--reuse-db``), or PostgreSQL or MariaDB with
    names of its own (dropped afterwards)."""
    if alias == "default":
        yield {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "db.sqlite3",
            "TEST": {"NAME": "test_db.sqlite3"},
        }
        return
    name = f"ops_testdb_{uuid.uuid4().hex[:8]}"
    try:
        yield server_database(alias, name)
    finally:
        drop_server_databases(alias, name, f"test_{name}")


def test_test_migrate_false(tmp_path: Path, default_database: dict[str, object]) -> None:
    """TEST["MIGRATE"] = False builds the test database from the models and
    records no Django migration: django_dependencies count as satisfied there,
    as under --nomigrations, for ops_migrator, stairway, the checks and the
    TestCase helpers."""
    database = {**default_database, "TEST": {**default_database.get("TEST", {}), "MIGRATE": False}}
    extra = {
        "shop/migrations_ops/0001_initial.py": SCRIPT_WITH_DEPENDENCY,
        "test_helpers.py": PYTEST_HELPERS,
        "shop/tests.py": DJANGO_HELPERS,
    }
    root = make_project(tmp_path, repr({"default": database}), extra)
    # (models_match_ddl compares the model, which has nothing to do with this.)
    checks = ("--ops-checks", "-k", "not models_match")
    result = pytest_in(root, "--create-db", *checks, "test_helpers.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
    result = run_in(root, "manage.py", "test", "shop", "--noinput")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr


# -- a kept test database after a branch switch -------------------------------------------

SECOND_SCRIPT = """
from alembic import op
import sqlalchemy as sa

revision = "t2"
down_revision = "t1"
branch_labels = None
depends_on = None

def upgrade():
    op.create_table("shop_extra", sa.Column("id", sa.Integer, primary_key=True))

def downgrade():
    op.drop_table("shop_extra")
"""


def test_kept_test_database_after_a_branch_switch(
    tmp_path: Path, default_database: dict[str, object]
) -> None:
    """A kept test database records a revision whose script is gone: one line
    says how to rebuild it, never a command for the development database."""
    extra = {"shop/migrations_ops/0002_extra.py": SECOND_SCRIPT}
    root = make_project(tmp_path, repr({"default": default_database}), extra)
    result = pytest_in(root, "--create-db", "--reuse-db", "test_things.py")
    assert result.returncode == 0, result.stdout + result.stderr
    (root / "shop/migrations_ops/0002_extra.py").unlink()  # back on the other branch
    test_settings = cast(dict[str, object], default_database.get("TEST", {}))
    name = test_settings.get("NAME") or f"test_{default_database['NAME']}"
    expected = (
        f"The test database '{name}' (alias 'default') was kept from an earlier run and "
        "records ops revision 't2', which no script defines (a branch switch?). It is "
        "disposable: recreate it with 'pytest --create-db', or run 'manage.py test' without "
        "'--keepdb'."
    )
    for argv in (
        ["-m", "pytest", "-p", "no:cacheprovider", "-q", "--reuse-db", "test_things.py"],
        ["manage.py", "test", "shop", "--keepdb", "--noinput"],
    ):
        result = run_in(root, *argv)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert expected in output, output
        assert "opsshowmigrations" not in output and "--fake" not in output, output
    result = pytest_in(root, "--create-db", "test_things.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout

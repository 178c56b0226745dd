"""Test databases get the ops schema with no extra step (real subprocesses).

pytest-django (default, ``--nomigrations``, ``--reuse-db``, SQLite in-memory
and PostgreSQL) and ``manage.py test`` all create the test database through
``migrate``, whose ``post_migrate`` signal applies the ops migrations.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings

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


def make_project(root: Path, databases: str) -> Path:
    files = {
        "settings.py": SETTINGS.replace("{DATABASES}", databases),
        "manage.py": (
            "import os, sys\n"
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
            "from django.core.management import execute_from_command_line\n"
            "execute_from_command_line(sys.argv)\n"
        ),
        "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = settings\n",
        "shop/__init__.py": "",
        "shop/models.py": MODELS,
        "shop/migrations_ops/__init__.py": "",
        "shop/migrations_ops/0001_initial.py": SCRIPT,
        "shop/tests.py": DJANGO_TEST,
        "test_things.py": PYTEST_TEST,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


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


def test_pytest_django_postgresql(tmp_path: Path, pg_alias: str) -> None:
    pg = settings.DATABASES[pg_alias]
    databases = repr(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "ops_subprocess",
                "HOST": pg["HOST"],
                "PORT": pg["PORT"],
                "USER": pg["USER"],
                "PASSWORD": pg["PASSWORD"],
            }
        }
    )
    root = make_project(tmp_path, databases)
    for args in (["--create-db", "--reuse-db"], ["--reuse-db"], ["--nomigrations"]):
        result = pytest_in(root, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
    result = run_in(root, "manage.py", "test", "shop", "--noinput")
    assert result.returncode == 0, result.stdout + result.stderr


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

"""Inputs Django accepts work here too (issue 19, item 6).

- a SQLite ``NAME`` that is a ``file:`` URI (Django always connects with
  ``uri=True``): the lock's side file sits next to the file the URI names;
- the online SQLAlchemy dialect follows the driver Django loaded: with
  psycopg installed but unusable, Django runs on psycopg2, and so do we;
- commands that only write a script never connect to a database.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core import checks
from django.core.checks.registry import Tags, registry
from django.core.management.base import BaseCommand
from django.db import connections

from django_alembic_ops import lock

from .conftest import Project, extra_database, one_table, pg_execute, run
from .test_reliability import Deploy

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("db.sqlite3", "db.sqlite3"),
        ("/srv/app/db.sqlite3", "/srv/app/db.sqlite3"),
        (Path("/srv/app/db.sqlite3"), "/srv/app/db.sqlite3"),
        ("file:/srv/app/db.sqlite3?mode=rwc", "/srv/app/db.sqlite3"),
        ("file:///srv/my%20app/db.sqlite3?cache=shared#x", "/srv/my app/db.sqlite3"),
        ("file://localhost/srv/app/db.sqlite3", "/srv/app/db.sqlite3"),
        ("file:data/db.sqlite3?mode=ro", "data/db.sqlite3"),
        ("file:db%3f.sqlite3", "db?.sqlite3"),  # an encoded "?" is part of the path
        ("file:db.sqlite3#?mode=memory", "db.sqlite3"),  # a fragment is no query
        ("file:db.sqlite3?mode%3dmemory", "db.sqlite3"),  # nor an encoded "="
        ("FILE:db.sqlite3", "FILE:db.sqlite3"),  # SQLite reads only "file:" as a URI
        (":memory:", None),
        ("", None),
        ("file::memory:", None),
        ("file::memory:?cache=shared", None),
        ("file:db.sqlite3?mode=memory", None),
        ("file:db.sqlite3?cache=shared&mode=mem%6fry", None),
        ("file:memorydb_default?mode=memory&cache=shared", None),  # Django's test database
        ("file:db.sqlite3?vfs=memdb", None),
        ("file:?mode=rwc", None),  # a temporary database
    ],
)
def test_the_file_a_sqlite_name_opens(name: Any, path: str | None) -> None:
    assert lock.sqlite_database_file(name) == path
    assert lock.sqlite_side_file(name) == (None if path is None else f"{path}.opslock")


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize("command", ["opsmigrate", "migrate"])
def test_sqlite_file_uri_name(
    project: Project, tmp_path: Path, django_db_blocker: Any, command: str
) -> None:
    project.app("shop")
    project.script("shop", "0001_initial", revision="u1", **one_table("shop_uri"))
    folder = tmp_path / "my data"
    folder.mkdir()
    database = folder / "db.sqlite3"
    name = f"file:{str(database).replace(' ', '%20')}?mode=rwc"
    uri = {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    with extra_database("uri", uri, django_db_blocker):
        out = run(command, database="uri")
    assert "Applying shop.0001_initial... OK" in out
    # The database the URI names holds the ops table and its version; the
    # lock's side file sits next to it, and nowhere else.
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version_num FROM alembic_ops_version").fetchall() == [
            ("u1",)
        ]
        assert connection.execute("SELECT count(*) FROM shop_uri").fetchone() == (0,)
    assert sorted(p.name for p in folder.iterdir()) == ["db.sqlite3", "db.sqlite3.opslock"]
    assert not [p for p in Path.cwd().iterdir() if p.name.startswith("file:")]


BROKEN_PSYCOPG = """
# psycopg installed, but its C library (libpq) cannot be loaded.
raise ImportError("no pq wrapper available.")
"""


@pytest.fixture
def pg_deploy(tmp_path: Path, pg_alias: str) -> Iterator[Deploy]:
    """A project on disk with a database of its own on the PostgreSQL test server."""
    base = settings.DATABASES[pg_alias]
    name = f"ops_inputs_{uuid.uuid4().hex[:8]}"
    server = {key: base[key] for key in ("HOST", "PORT", "USER", "PASSWORD")}
    pg_execute(f"CREATE DATABASE {name}")
    try:
        yield Deploy(tmp_path, {"ENGINE": "django.db.backends.postgresql", "NAME": name, **server})
    finally:
        pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_online_dialect_follows_the_driver_django_loaded(pg_deploy: Deploy) -> None:
    """psycopg installed but unusable, psycopg2 present: Django runs on psycopg2, so do we."""
    pytest.importorskip("psycopg2")  # in the 'test' extra
    shadow = pg_deploy.root / "shadow"
    (shadow / "psycopg").mkdir(parents=True)
    (shadow / "psycopg" / "__init__.py").write_text(BROKEN_PSYCOPG)
    env = pg_deploy.env()
    env["PYTHONPATH"] = f"{shadow}{os.pathsep}{env['PYTHONPATH']}"

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=pg_deploy.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    loaded = manage("shell", "-c", "from django.db import connection; print(connection.Database)")
    assert "psycopg2" in loaded.stdout, loaded.stdout + loaded.stderr
    result = manage("opsmigrate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Applying shop.0001_step... OK" in result.stdout
    assert pg_deploy.query("SELECT rev FROM ops_runs") == [("m0001",)]
    offline = manage("opsmigrate", "--sql")  # from ENGINE alone, as before
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "CREATE TABLE ops_runs" in offline.stdout


def test_online_dialect_is_the_driver_of_the_connection(
    pg_alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, in process, for each PostgreSQL driver that is installed."""
    from django_alembic_ops import bridge

    connection = connections[pg_alias]
    tried = []
    for module_name in ("psycopg", "psycopg2"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        monkeypatch.setattr(connection, "Database", module)
        assert bridge._driver_for(connection) == f"postgresql+{module_name}"
        tried.append(module_name)
    assert tried  # Django's own driver at least


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    "args",
    [["opsmigrate", "--plan"], ["opsmigrate", "--check"], ["opsshowmigrations"]],
    ids=["plan", "check", "show"],
)
def test_checks_ask_only_the_commands_database(
    project: Project,
    tmp_path: Path,
    django_db_blocker: Any,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    """As Django's migrate: another alias (unreachable, say) is never connected."""
    if django.VERSION < (6, 1) and hasattr(BaseCommand, "get_check_kwargs"):
        monkeypatch.setattr(checks, "run_checks", _run_checks_like_django_61)
    project.app(
        "shop",
        models="""
        from django.db import models

        class Event(models.Model):  # managed: Django's checks ask each database about it
            data = models.JSONField(default=dict)
        """,
    )
    project.script("shop", "0001_initial", revision="e1")
    missing = tmp_path / "elsewhere.sqlite3"
    elsewhere = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(missing)}
    with extra_database("elsewhere", elsewhere, django_db_blocker):
        # skip_checks=False: system checks run, as from manage.py.
        with contextlib.suppress(SystemExit):  # --check: a migration is pending
            run(*args, skip_checks=False)
        assert not connections["elsewhere"].connection
    assert not missing.exists()


def test_online_dialect_on_mysql_is_mysqlclients(mysql_alias: str) -> None:
    """MariaDB through mysqlclient (Django's MySQLdb): SQLAlchemy's mysql+mysqldb,
    on Django's own DBAPI connection."""
    from django_alembic_ops import bridge

    connection = connections[mysql_alias]
    assert connection.Database.__name__ == "MySQLdb"
    assert bridge._driver_for(connection) == "mysql+mysqldb"
    with bridge.sqlalchemy_connection(mysql_alias) as sa_connection:
        assert (sa_connection.dialect.name, sa_connection.dialect.driver) == ("mysql", "mysqldb")
        assert sa_connection.connection.dbapi_connection is connection.connection
        assert (
            sa_connection.exec_driver_sql("SELECT DATABASE()").scalar()
            == (connection.settings_dict["NAME"])
        )


def _run_checks_like_django_61(
    app_configs: Any = None,
    tags: Any = None,
    include_deployment_checks: bool = False,
    databases: Any = None,
) -> list[Any]:
    """``run_checks`` as Django 6.1 has it, on older Django: when a command
    names no databases, checks not tagged ``database`` get every alias (and
    the model checks connect to each: a JSONField asks the backend)."""
    if databases is not None or tags is not None:
        return registry.run_checks(app_configs, tags, include_deployment_checks, databases)
    errors: list[Any] = []
    for check in registry.get_checks(include_deployment_checks):
        if Tags.database not in check.tags:
            errors.extend(check(app_configs=app_configs, databases=list(connections)))
    return errors


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    "args",
    [["--empty"], ["--empty", "-m", "add view"], ["--empty", "--dry-run"], ["--merge"]],
    ids=["empty", "empty-name", "dry-run", "merge"],
)
def test_writing_a_script_touches_no_database(
    project: Project,
    tmp_path: Path,
    django_db_blocker: Any,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    if django.VERSION < (6, 1) and hasattr(BaseCommand, "get_check_kwargs"):
        # Django 5.2 and 6.0 pass no databases to checks; 4.2 (no such hook) neither.
        monkeypatch.setattr(checks, "run_checks", _run_checks_like_django_61)
    project.app(
        "shop",
        models="""
        from django.db import models

        class Event(models.Model):  # managed: Django's checks ask each database about it
            data = models.JSONField(default=dict)
        """,
    )
    project.script("shop", "0001_initial", revision="e1")
    if "--merge" in args:  # two heads to merge
        project.script("shop", "0002_a", revision="e2a", down="e1")
        project.script("shop", "0002_b", revision="e2b", down="e1")
    missing = tmp_path / "not_yet.sqlite3"
    fresh = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(missing)}
    with extra_database("fresh", fresh, django_db_blocker):
        # skip_checks=False: system checks run, as from manage.py.
        out = run("opsmakemigration", "shop", *args, skip_checks=False)
        assert not connections["fresh"].connection  # never connected
    assert "Ops migrations for 'shop':" in out
    assert not missing.exists()

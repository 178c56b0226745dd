"""The migration lock (issue 19, item 7).

- MySQL/MariaDB: ``GET_LOCK`` names are server-wide, so the name holds the
  database name; two databases on one server never wait for each other.
- "Waiting for another opsmigrate run…" is output like any other: silent at ``-v 0``.
- The SQLite side file (``<test db>.opslock``) goes away with the test
  database: ``manage.py test`` (also ``--parallel`` clones) and pytest-xdist.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from django_alembic_ops import lock

from .conftest import pg_execute
from .test_reliability import STEP, Deploy, read_until
from .test_test_databases import SQLITE_FILE, make_project, pytest_in, run_in


def test_mysql_lock_name_holds_the_database_name() -> None:
    shop = lock.mysql_lock_name("shop", "alembic_ops_version")
    billing = lock.mysql_lock_name("billing", "alembic_ops_version")
    assert shop == "django_alembic_ops:shop:alembic_ops_version"
    assert billing != shop
    assert lock.mysql_lock_name("shop", "other_versions") != shop
    # GET_LOCK refuses names over 64 characters: long ones become a digest,
    # still one per database.
    long_a = lock.mysql_lock_name("a" * 64, "alembic_ops_version")
    long_b = lock.mysql_lock_name("a" * 63 + "b", "alembic_ops_version")
    assert len(long_a) <= 64 and len(long_b) <= 64
    assert long_a != long_b
    assert long_a == lock.mysql_lock_name("a" * 64, "alembic_ops_version")


def _mariadb_server() -> dict[str, str]:
    """The test MariaDB server's settings, from the environment scripts/test.sh sets."""
    port = os.environ.get("OPS_TEST_MYSQL_PORT")
    if not port:
        reason = "MariaDB not configured (set OPS_TEST_MYSQL_PORT, or run 'bash scripts/test.sh')"
        if os.environ.get("OPS_REQUIRE_MYSQL"):
            pytest.fail(f"{reason}; OPS_REQUIRE_MYSQL is set, so this is an error.")
        pytest.skip(reason)
    return {
        "HOST": os.environ.get("OPS_TEST_MYSQL_HOST", "127.0.0.1"),
        "PORT": port,
        "USER": os.environ.get("OPS_TEST_MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("OPS_TEST_MYSQL_PASSWORD", ""),
    }


def _mariadb_execute(server: dict[str, str], sql: str) -> None:
    import MySQLdb

    connection = MySQLdb.connect(
        host=server["HOST"],
        port=int(server["PORT"]),
        user=server["USER"],
        password=server["PASSWORD"],
    )
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


@contextmanager
def _mariadb_database(server: dict[str, str]) -> Iterator[dict[str, Any]]:
    name = f"ops_locks_{uuid.uuid4().hex[:8]}"
    _mariadb_execute(server, f"CREATE DATABASE {name}")
    try:
        yield {"ENGINE": "django.db.backends.mysql", "NAME": name, **server}
    finally:
        _mariadb_execute(server, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def deploy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deploy]:
    """As in test_reliability: a project on disk and a database of its own."""
    if request.param == "sqlite":
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}
        yield Deploy(tmp_path, database)
        return
    if request.param == "mysql":
        with _mariadb_database(_mariadb_server()) as database:
            yield Deploy(tmp_path, database)
        return
    base = settings.DATABASES[request.getfixturevalue("pg_alias")]
    name = f"ops_locks_{uuid.uuid4().hex[:8]}"
    server = {key: base[key] for key in ("HOST", "PORT", "USER", "PASSWORD")}
    pg_execute(f"CREATE DATABASE {name}")
    try:
        yield Deploy(tmp_path, {"ENGINE": "django.db.backends.postgresql", "NAME": name, **server})
    finally:
        pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_mariadb_databases_on_one_server_do_not_wait_for_each_other(tmp_path: Path) -> None:
    server = _mariadb_server()
    with _mariadb_database(server) as first, _mariadb_database(server) as second:
        busy = Deploy(tmp_path / "busy", first)
        busy.script(2, STEP.format(n=2, prev=1, sleep=60))
        other = Deploy(tmp_path / "other", second)
        holder = busy.start()
        read_until(holder, "Applying shop.0002_step...")  # it holds the lock of `first`
        try:
            same = busy.run(LOCK_TIMEOUT=1)
            unrelated = other.run(LOCK_TIMEOUT=1)
        finally:
            holder.kill()
            holder.communicate()
    assert same.returncode == 1
    assert "Waiting for another opsmigrate run" in same.stdout
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr
    assert "Waiting" not in unrelated.stdout
    assert "Applying shop.0001_step... OK" in unrelated.stdout


def test_waiting_is_silent_at_verbosity_0(deploy: Deploy) -> None:
    deploy.script(2, STEP.format(n=2, prev=1, sleep=60))
    holder = deploy.start()
    read_until(holder, "Applying shop.0002_step...")  # it holds the lock now
    try:
        waiter = deploy.run("-v", "0", LOCK_TIMEOUT=1)
    finally:
        holder.kill()
        holder.communicate()
    # It did wait (and gave up after LOCK_TIMEOUT), saying nothing but the error.
    assert waiter.returncode == 1
    assert waiter.stdout == ""
    assert waiter.stderr.startswith("CommandError: Another opsmigrate run held the lock")


# Each test takes the lock on its worker's database, as ops_migrator or a test
# calling opsmigrate does: the clones of --parallel get side files of their own.
DJANGO_TESTS = """
import os
from django.core.management import call_command
from django.db import connection
from django.test import TransactionTestCase

class LockTestsA(TransactionTestCase):
    def test_opsmigrate(self):
        call_command("opsmigrate", "shop", "zero", verbosity=0)  # takes the lock
        call_command("opsmigrate", verbosity=0)
        self.assertTrue(os.path.exists(connection.settings_dict["NAME"] + ".opslock"))

class LockTestsB(TransactionTestCase):
    def test_opsmigrate(self):
        call_command("opsmigrate", "shop", "zero", verbosity=0)  # takes the lock
        call_command("opsmigrate", verbosity=0)
        self.assertTrue(os.path.exists(connection.settings_dict["NAME"] + ".opslock"))
"""

PYTEST_TESTS = """
import os
import pytest
from django.core.management import call_command
from django.db import connection

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("n", range(4))
def test_opsmigrate(n):
    call_command("opsmigrate", "shop", "zero", verbosity=0)  # takes the lock
    call_command("opsmigrate", verbosity=0)
    assert os.path.exists(connection.settings_dict["NAME"] + ".opslock")
"""


def _project(root: Path) -> Path:
    make_project(root, SQLITE_FILE)  # TEST NAME "test_db.sqlite3"
    (root / "shop" / "tests.py").write_text(DJANGO_TESTS)
    (root / "test_things.py").write_text(PYTEST_TESTS)
    return root


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("test_db"))


@pytest.mark.parametrize("parallel", [[], ["--parallel", "2"]], ids=["serial", "parallel"])
def test_manage_py_test_removes_side_files(tmp_path: Path, parallel: list[str]) -> None:
    root = _project(tmp_path)
    result = run_in(root, "manage.py", "test", "shop", "--noinput", *parallel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr
    if parallel:
        assert "Cloning test database" in result.stderr
    assert _leftovers(root) == []


def test_pytest_xdist_removes_side_files(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = pytest_in(root, "-n", "2", "--create-db", "test_things.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    assert _leftovers(root) == []

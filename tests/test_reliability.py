"""Deploy-time reliability with real processes: concurrency, SIGKILL, lock timeout.

Each test builds a small project on disk and runs ``manage.py opsmigrate`` in
subprocesses against a real database file (SQLite) or a database of its own
on the PostgreSQL or MariaDB test server.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    BACKENDS,
    drop_server_databases,
    mysql_execute,
    pg_execute,
    server_database,
    server_execute,
)

REPO = Path(__file__).resolve().parent.parent

SETTINGS = """
import json, os
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                  "django_alembic_ops", "shop"]
DATABASES = {"default": json.loads(os.environ["OPS_DB"])}
ALEMBIC_OPS = json.loads(os.environ.get("OPS_SETTINGS", "{}"))
"""

FIRST = """
from alembic import op
import sqlalchemy as sa

revision = "m0001"
down_revision = None
branch_labels = ("shop",)

def upgrade():
    op.create_table("ops_runs", sa.Column("rev", sa.String(10), nullable=False))
    op.execute("INSERT INTO ops_runs (rev) VALUES ('m0001')")

def downgrade():
    op.drop_table("ops_runs")
"""

STEP = """
import time
from alembic import op
import sqlalchemy as sa

revision = "m{n:04d}"
down_revision = "m{prev:04d}"

def upgrade():
    op.create_table("t{n:04d}", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO ops_runs (rev) VALUES ('m{n:04d}')")
    if not op.get_context().as_sql:  # --sql runs upgrade() too
        time.sleep({sleep})

def downgrade():
    op.drop_table("t{n:04d}")
"""


class Deploy:
    """A project on disk plus the database it deploys to."""

    def __init__(self, root: Path, database: dict[str, Any]) -> None:
        self.root = root
        self.database = database
        (root / "shop" / "migrations_ops").mkdir(parents=True)
        (root / "shop" / "__init__.py").write_text("")
        (root / "shop" / "models.py").write_text("")
        (root / "shop" / "migrations_ops" / "__init__.py").write_text("")
        (root / "settings.py").write_text(textwrap.dedent(SETTINGS))
        self.script(1, FIRST)

    def script(self, n: int, source: str) -> Path:
        path = self.root / "shop" / "migrations_ops" / f"{n:04d}_step.py"
        path.write_text(textwrap.dedent(source))
        return path

    def steps(self, count: int, sleep: float = 0.0) -> None:
        for n in range(2, count + 1):
            self.script(n, STEP.format(n=n, prev=n - 1, sleep=sleep))

    def env(self, **ops_settings: Any) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": f"{REPO}{os.pathsep}{self.root}",
            "DJANGO_SETTINGS_MODULE": "settings",
            "OPS_DB": json.dumps(self.database),
            "OPS_SETTINGS": json.dumps(ops_settings),
        }

    def start(self, *args: str, **ops_settings: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-u", "-m", "django", "opsmigrate", *args],
            cwd=self.root,
            env=self.env(**ops_settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, **ops_settings: Any) -> subprocess.CompletedProcess[str]:
        process = self.start(*args, **ops_settings)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.database["ENGINE"].endswith("sqlite3"):
            with sqlite3.connect(self.database["NAME"]) as connection:
                return connection.execute(sql).fetchall()
        if self.database["ENGINE"].endswith("mysql"):
            return mysql_execute(sql, database=self.database["NAME"])
        return pg_execute(sql, dbname=self.database["NAME"])


def read_until(process: subprocess.Popen[str], text: str, timeout: float = 60) -> None:
    """Read the process's output until ``text`` appears (it is then mid-run)."""
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        char = process.stdout.read(1)
        if not char:  # the process ended without printing it
            break
        seen += char
    assert text in seen, seen


@pytest.fixture(params=list(BACKENDS))
def deploy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deploy]:
    if request.param == "sqlite":
        yield Deploy(
            tmp_path, {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}
        )
        return
    alias = request.getfixturevalue("pg_alias" if request.param == "postgresql" else "mysql_alias")
    name = f"ops_deploy_{uuid.uuid4().hex[:8]}"
    server_execute(alias, f"CREATE DATABASE {name}")
    try:
        yield Deploy(tmp_path, server_database(alias, name))
    finally:
        drop_server_databases(alias, name)


def test_concurrent_deploys_apply_each_migration_once(deploy: Deploy) -> None:
    deploy.steps(20, sleep=0.15)  # the lock is held ~3 s: others start meanwhile
    processes = [deploy.start() for _ in range(6)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    for code, out, err in results:
        assert code == 0, out + err
    runs = deploy.query("SELECT rev FROM ops_runs ORDER BY rev")
    assert runs == [(f"m{n:04d}",) for n in range(1, 21)]
    assert deploy.query("SELECT version_num FROM alembic_ops_version") == [("m0020",)]
    outputs = [out for _, out, _ in results]
    assert sum("Applying shop.0020_step... OK" in out for out in outputs) == 1
    assert any(
        "Waiting for another opsmigrate run on database 'default'..." in out for out in outputs
    )


def test_sigkill_leaves_a_consistent_recorded_state(deploy: Deploy) -> None:
    deploy.steps(2)
    slow = deploy.script(3, STEP.format(n=3, prev=2, sleep=60))
    process = deploy.start()
    read_until(process, "Applying shop.0003_step...")
    time.sleep(0.5)  # inside migration 0003: its table exists, uncommitted
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert deploy.query("SELECT version_num FROM alembic_ops_version") == [("m0002",)]
    assert deploy.query("SELECT rev FROM ops_runs ORDER BY rev") == [("m0001",), ("m0002",)]
    if deploy.database["ENGINE"].endswith("mysql"):
        # MySQL had committed 0003's CREATE TABLE (not its row, not its record):
        # the recovery docs/failures.rst describes, by hand.
        deploy.query("DROP TABLE t0003")
    slow.write_text(STEP.format(n=3, prev=2, sleep=0))
    result = deploy.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Applying shop.0003_step... OK" in result.stdout
    assert "0002" not in result.stdout
    assert deploy.query("SELECT version_num FROM alembic_ops_version") == [("m0003",)]


def test_lock_timeout_says_it_waited_and_gives_up(deploy: Deploy) -> None:
    deploy.steps(2, sleep=60)
    holder = deploy.start()
    # Wait for the holder to be inside migration 0002, holding the lock: a
    # fixed sleep raced the start-up of both processes on a loaded machine.
    read_until(holder, "Applying shop.0002_step...")
    waiter = deploy.run(LOCK_TIMEOUT=1)
    holder.kill()
    holder.communicate()
    assert waiter.returncode == 1
    assert "Waiting for another opsmigrate run on database 'default'..." in waiter.stdout
    assert waiter.stderr.strip() == (
        "CommandError: Another opsmigrate run held the lock on database 'default' for more "
        "than 1 seconds; try again later or raise ALEMBIC_OPS['LOCK_TIMEOUT']."
    )


def test_plan_and_sql_take_no_lock(deploy: Deploy) -> None:
    deploy.steps(2, sleep=120)
    holder = deploy.start()
    assert holder.stdout is not None
    seen = ""
    while "Applying shop.0002_step..." not in seen and holder.poll() is None:
        seen += holder.stdout.read(1)
    try:
        plan = deploy.run("--plan", LOCK_TIMEOUT=300)
        sql = deploy.run("--sql", LOCK_TIMEOUT=300)
        # Both finished while the holder was still inside 0002, holding the lock.
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.communicate()
    assert plan.returncode == 0 and "Planned operations:" in plan.stdout
    assert sql.returncode == 0 and "CREATE TABLE t0002" in sql.stdout

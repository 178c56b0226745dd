"""opsshowmigrations, opssqlmigrate, offline --sql, system checks, the real CLI."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO, cast
from unittest import mock

import pytest
from django.core import checks
from django.db import connections
from django.db.utils import ConnectionDoesNotExist, ConnectionHandler
from django.test.utils import override_settings

from django_alembic_ops import state

from .conftest import Project, one_table, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def apps2(project: Project) -> Project:
    project.app("shop")
    project.app("orders")
    project.app("empty")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script("shop", "0002_b", revision="s2", down="s1", **one_table("shop_b"))
    project.script(
        "orders", "0001_initial", revision="o1", depends_on="s2", **one_table("orders_a")
    )
    return project


def test_showmigrations(apps2: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0001", database=alias)
    out = run("opsshowmigrations", database=alias)
    assert out.splitlines() == [
        "shop",
        " [X] 0001_initial",
        " [ ] 0002_b",
        "orders",
        " [ ] 0001_initial",
        "empty",
        " (no ops migrations)",
    ]
    assert run("opsshowmigrations", "orders", database=alias).splitlines() == [
        "orders",
        " [ ] 0001_initial",
    ]
    assert (
        run_error("opsshowmigrations", "nope")
        == "No installed app with label 'nope'; check INSTALLED_APPS."
    )


def test_showmigrations_plan(apps2: Project, alias: str) -> None:
    run("opsmigrate", "shop", database=alias)
    out = run("opsshowmigrations", "--plan", database=alias, verbosity=2)
    assert out.splitlines() == [
        "[X]  shop.0001_initial",
        "[X]  shop.0002_b ... (depends on shop.0001_initial)",
        "[ ]  orders.0001_initial ... (depends on shop.0002_b)",
    ]


def test_sqlmigrate_forwards_and_backwards(apps2: Project, alias: str) -> None:
    out = run("opssqlmigrate", "shop", "0002", database=alias)
    assert "-- Running upgrade s1 -> s2" in out
    assert "CREATE TABLE shop_b" in out
    assert "UPDATE alembic_ops_version SET version_num='s2'" in out
    # MySQL commits DDL at once: Alembic writes no BEGIN/COMMIT around it there.
    transactional = connections[alias].vendor != "mysql"
    assert ("BEGIN;" in out and "COMMIT;" in out) is transactional
    back = run("opssqlmigrate", "shop", "0002", "--backwards", database=alias)
    assert "-- Running downgrade s2 -> s1" in back
    assert "DROP TABLE shop_b" in back
    assert "CREATE TABLE" not in back
    assert "alembic_ops_version" not in table_names(alias)
    assert "Cannot find an ops migration" in run_error("opssqlmigrate", "shop", "0009")


def test_sql_full_range_in_order(apps2: Project, alias: str) -> None:
    out = run("opsmigrate", "--sql", database=alias)
    assert out.index("CREATE TABLE shop_a") < out.index("CREATE TABLE shop_b")
    assert out.index("CREATE TABLE shop_b") < out.index("CREATE TABLE orders_a")
    assert "--backwards" in run_error("opsmigrate", "shop", "zero", "--sql", database=alias)


def rebuild_in_batch(project: Project, copy_from: str = "") -> None:
    """App shop: a table, then a batch that must rebuild it on SQLite (a column rename)."""
    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script(
        "shop",
        "0002_alter",
        revision="s2",
        down="s1",
        upgrade=f"""
            table = sa.Table("shop_a", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
            with op.batch_alter_table("shop_a"{copy_from}) as batch:
                batch.alter_column("id", new_column_name="pk")
        """,
    )


def test_sql_sqlite_batch_rebuild_says_why(project: Project) -> None:
    rebuild_in_batch(project)
    message = run_error("opsmigrate", "--sql")
    assert "\n" not in message
    assert message.startswith("shop.0002_alter: This operation cannot proceed in --sql mode")
    assert "copy_from" in message


def test_sql_sqlite_batch_rebuild_with_copy_from(project: Project) -> None:
    # The rebuild's rename runs in SQLite's legacy mode (views that read the
    # table survive it); the offline script must do the same.
    rebuild_in_batch(project, copy_from=", copy_from=table")
    out = run("opssqlmigrate", "shop", "0002")
    statements = [line for line in out.splitlines() if line.endswith(";")]
    rename = statements.index("ALTER TABLE _alembic_tmp_shop_a RENAME TO shop_a;")
    assert statements[rename - 2 : rename + 2] == [
        "DROP TABLE shop_a;",
        "PRAGMA legacy_alter_table = ON;",
        "ALTER TABLE _alembic_tmp_shop_a RENAME TO shop_a;",
        "PRAGMA legacy_alter_table = OFF;",
    ]


def test_sql_postgresql_offline_from_engine(apps2: Project, pg_alias: str) -> None:
    out = run("opsmigrate", "--sql", database=pg_alias)
    assert "CREATE TABLE alembic_ops_version" in out
    assert "SERIAL" in out  # PostgreSQL DDL, rendered without connecting


def test_sql_is_written_whole_in_chunks() -> None:
    # Offline SQL goes to Django's OutputWrapper in newline-ended pieces:
    # joined, they must be the text itself (no line ending added per piece).
    from django.core.management.base import OutputWrapper

    from django_alembic_ops.runner import _write_in_chunks

    text = "".join(f"CREATE TABLE t{i} (id INTEGER);\n\n" for i in range(50)) + "COMMIT;"
    sink = io.StringIO()
    _write_in_chunks(text, cast(TextIO, OutputWrapper(sink)), size=40)
    assert sink.getvalue() == text + "\n"


def test_vendor_known_without_importing_the_backend() -> None:
    # --sql needs only the vendor; built-in engines are known by name, others
    # (and unknown aliases) go through Django's connection handler.
    for alias in connections:
        assert state.vendor(alias) == connections[alias].vendor
    custom = {"ENGINE": "tests.custom_backend", "NAME": ":memory:"}
    handler = ConnectionHandler({"default": custom, "custom": custom})
    with mock.patch.object(state, "connections", handler):
        assert state.vendor("custom") == "sqlite"
        with pytest.raises(ConnectionDoesNotExist):
            state.vendor("nope")


@pytest.mark.parametrize(
    "value, ids",
    [
        ([], ["django_alembic_ops.E001"]),
        ({"VERSION_TABLE": 3}, ["django_alembic_ops.E002"]),
        ({"RUN_WITH_MIGRATE": "yes"}, ["django_alembic_ops.E002"]),
        ({"LOCK_TIMEOUT": True}, ["django_alembic_ops.E002"]),
        ({"MODULE_NAME": "not-valid"}, ["django_alembic_ops.E003"]),
        ({"TYPO": 1}, ["django_alembic_ops.W001"]),
        ({"LOCK_TIMEOUT": 2.5, "MODULE_NAME": "ops"}, []),
    ],
)
def test_system_checks(value: object, ids: list[str]) -> None:
    with override_settings(ALEMBIC_OPS=value):
        messages = checks.run_checks()
    assert [m.id for m in messages if m.id and m.id.startswith("django_alembic_ops")] == ids


def test_module_name_setting(project: Project, alias: str) -> None:
    package = project.app("shop", ops=False)
    with override_settings(ALEMBIC_OPS={"MODULE_NAME": "ops_scripts"}):
        run("opsmakemigration", "shop", "--empty", "-m", "first")
        assert (package / "ops_scripts" / "0001_first.py").is_file()
        assert "Applying shop.0001_first... OK" in run("opsmigrate", database=alias)


def test_cli_exit_status_and_traceback(tmp_path: Path) -> None:
    """The real manage.py: one line and exit 1; a traceback only with --traceback."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    base = [sys.executable, "-m", "django", "opsmigrate", "nope"]
    plain = subprocess.run(base, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert plain.returncode == 1
    assert (
        plain.stderr.strip()
        == "CommandError: No installed app with label 'nope'; check INSTALLED_APPS."
    )
    traced = subprocess.run(
        [*base, "--traceback"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert traced.returncode == 1
    assert "Traceback (most recent call last)" in traced.stderr

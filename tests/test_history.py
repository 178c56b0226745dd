"""alembic_ops_history: events with AST checksums, (changed), --check, --fake, old databases."""

from __future__ import annotations

import datetime
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings

from django_alembic_ops import conf, history, tools

from .conftest import Project, one_table, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TABLE = history.TABLE


def rows(alias: str) -> list[tuple[Any, ...]]:
    return query(
        alias,
        f"SELECT event, app, revision, name, checksum, applied_at, duration, host "
        f"FROM {TABLE} ORDER BY id",
    )


@pytest.fixture
def shop(project: Project) -> Project:
    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script("shop", "0002_b", revision="s2", down="s1", **one_table("shop_b"))
    return project


def script_path(project: Project, name: str) -> Path:
    return project.root / "shop" / "migrations_ops" / f"{name}.py"


def test_applied_at_duration_host_recorded_and_shown_at_v2(shop: Project, alias: str) -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    run("opsmigrate", database=alias)
    recorded = rows(alias)
    assert [row[:4] for row in recorded] == [
        ("apply", "shop", "s1", "0001_initial"),
        ("apply", "shop", "s2", "0002_b"),
    ]
    for row in recorded:
        _, _, _, name, checksum, applied_at, duration, host = row
        assert checksum == history.checksum_source(script_path(shop, name).read_text())
        if isinstance(applied_at, str):  # SQLite through Django's raw cursor
            applied_at = datetime.datetime.fromisoformat(applied_at)
        assert before <= applied_at.replace(tzinfo=None) <= before + datetime.timedelta(minutes=5)
        assert 0 <= duration < 60
        assert host == socket.gethostname()
    shown = run("opsshowmigrations", database=alias, verbosity=2)
    pattern = r" \[X\] {} \(applied at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC, \d+\.\d\ds, on {}\)"
    for name in ("0001_initial", "0002_b"):
        assert re.search(pattern.format(name, re.escape(socket.gethostname())), shown), shown
    # Not at the default verbosity.
    assert run("opsshowmigrations", database=alias) == "shop\n [X] 0001_initial\n [X] 0002_b\n"


def test_up_to_date_run_does_not_read_history(
    shop: Project, alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("opsmigrate", database=alias)

    def refuse(*args: Any) -> None:
        raise AssertionError("the history table was read")

    monkeypatch.setattr(history, "_exists", refuse)
    assert "No ops migrations to apply." in run("opsmigrate", database=alias)


REFORMATTED = '''\
"""Docstring rewritten: formatting does not count."""
# A comment.
from alembic import op
import sqlalchemy as sa

revision = 's1'  # quotes and comments change nothing
down_revision = None
branch_labels = ('shop',)
depends_on = None
django_dependencies = []
lint_ignore = ["renamed-table"]


def upgrade():
    """Creates shop_a."""
    op.create_table(
        'shop_a',
        sa.Column('id', sa.Integer, primary_key=True),
    )


def downgrade():
    # Drops it again.
    op.drop_table('shop_a')
'''


def test_reformatting_and_comments_keep_the_checksum(shop: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    path = script_path(shop, "0001_initial")
    path.write_text(REFORMATTED)
    ruff = tools.executable("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e .[dev])")
    subprocess.run(
        [ruff, "format", "--line-length", "40", "--isolated", str(path)],
        check=True,
        capture_output=True,
    )
    assert "'shop_a'" not in path.read_text()  # ruff did rewrite it
    assert "(changed)" not in run("opsshowmigrations", database=alias)
    run("opsmigrate", "--check", database=alias)  # no error


def test_changed_op_call_is_marked_fails_check_and_fake_records_it(
    shop: Project, alias: str
) -> None:
    run("opsmigrate", database=alias)
    path = script_path(shop, "0001_initial")
    path.write_text(path.read_text().replace("sa.Integer", "sa.BigInteger"))
    assert run("opsshowmigrations", database=alias) == (
        "shop\n [X] 0001_initial (changed)\n [X] 0002_b\n"
    )
    assert "[X]  shop.0001_initial (changed)" in run("opsshowmigrations", "--plan", database=alias)
    message = run_error("opsmigrate", "--check", database=alias)
    assert message == (
        f"Applied ops migrations changed since they were applied (their checksum differs from "
        f"{TABLE}): shop.0001_initial; undo the edit, or record the new code with "
        "'python manage.py opsmigrate shop 0002_b --fake'."
    )
    # Also when something is pending.
    shop.script("shop", "0003_c", revision="s3", down="s2", **one_table("shop_c"))
    assert "shop.0001_initial" in run_error("opsmigrate", "--check", database=alias)
    (shop.root / "shop" / "migrations_ops" / "0003_c.py").unlink()

    run("opsmigrate", "shop", "0002_b", "--fake", database=alias, verbosity=0)
    last = rows(alias)[-1]
    assert last[:3] == ("fake", "shop", "s1")
    assert last[4] == history.checksum_source(path.read_text())
    assert len(rows(alias)) == 3
    assert "(changed)" not in run("opsshowmigrations", database=alias)
    run("opsmigrate", "--check", database=alias)


def test_fake_on_an_applied_changed_migration_records_the_new_checksum(
    shop: Project, alias: str
) -> None:
    run("opsmigrate", database=alias)
    path = script_path(shop, "0002_b")
    path.write_text(path.read_text().replace('"shop_b"', '"shop_b2"', 1))
    assert "shop.0002_b" in run_error("opsmigrate", "--check", database=alias)
    run("opsmigrate", "shop", "0002", "--fake", database=alias, verbosity=0)
    last = rows(alias)[-1]
    assert last[:3] == ("fake", "shop", "s2")
    assert last[4] == history.checksum_source(path.read_text())
    assert "(changed)" not in run("opsshowmigrations", database=alias)
    run("opsmigrate", "--check", database=alias)
    # Faking it again records nothing new.
    run("opsmigrate", "shop", "0002", "--fake", database=alias, verbosity=0)
    assert len(rows(alias)) == 3


def test_unapply_is_recorded_as_an_event(shop: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    run("opsmigrate", "shop", "zero", database=alias)
    assert [(row[0], row[2]) for row in rows(alias)] == [
        ("apply", "s1"),
        ("apply", "s2"),
        ("unapply", "s2"),
        ("unapply", "s1"),
    ]
    assert "(applied at" not in run("opsshowmigrations", database=alias, verbosity=2)


def test_database_migrated_before_history_gets_it_on_next_run(shop: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0001", database=alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE {TABLE}")
    run("opsmigrate", "--check", "shop", "0001", database=alias)  # no history: no error
    run("opsmigrate", database=alias)
    assert [(row[0], row[2]) for row in rows(alias)] == [("apply", "s2")]
    shown = run("opsshowmigrations", database=alias, verbosity=2)
    assert " [X] 0001_initial\n" in shown  # no checksum recorded for it: nothing to say
    assert " [X] 0002_b (applied at " in shown


def test_failed_migration_leaves_no_history_row(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop", "0001_initial", revision="s1", upgrade='op.execute("SELECT * FROM no_such_table")'
    )
    run_error("opsmigrate", database=alias)
    if connections[alias].vendor == "mysql":
        # MySQL commits DDL at once: the table stays, empty.
        assert rows(alias) == []
    else:
        # Created in the failed migration's transaction: rolled back with it.
        assert TABLE not in table_names(alias)
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script(
        "shop", "0002_b", revision="s2", down="s1", upgrade='op.execute("SELECT * FROM nope")'
    )
    run_error("opsmigrate", database=alias)
    assert [(row[0], row[2]) for row in rows(alias)] == [("apply", "s1")]


def test_flush_keeps_the_history(shop: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    run("flush", interactive=False, database=alias, verbosity=0)
    assert len(rows(alias)) == 2


def test_checksum_ignores_formatting_not_code() -> None:
    base = 'def upgrade():\n    """Doc."""\n    op.drop_table("a")\n'
    same = "# c\nlint_ignore = ['x']\ndef upgrade():\n    op.drop_table(\n        'a'\n    )\n"
    assert history.checksum_source(base) == history.checksum_source(same)
    assert history.checksum_source(base) != history.checksum_source(base.replace('"a"', '"b"'))


def test_one_transaction_for_the_run_records_all_or_nothing(project: Project, alias: str) -> None:
    if connections[alias].vendor == "mysql":
        pytest.skip("DDL commits implicitly: the run is no one transaction")
    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script(
        "shop", "0002_b", revision="s2", down="s1", upgrade='op.execute("SELECT * FROM nope")'
    )
    with override_settings(ALEMBIC_OPS={"TRANSACTION_PER_MIGRATION": False}):
        conf.get.cache_clear()
        run_error("opsmigrate", database=alias)
        assert TABLE not in table_names(alias)  # 0001_initial was rolled back with 0002_b
        project.script("shop", "0002_b", revision="s2", down="s1", **one_table("shop_b"))
        run("opsmigrate", database=alias)
    conf.get.cache_clear()
    assert [(row[0], row[2]) for row in rows(alias)] == [("apply", "s1"), ("apply", "s2")]


def test_fake_apply_is_a_fake_event(shop: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0001", database=alias)
    run("opsmigrate", "shop", "0002", "--fake", database=alias)
    assert [(row[0], row[2]) for row in rows(alias)] == [("apply", "s1"), ("fake", "s2")]
    assert "shop_b" not in table_names(alias)


def test_a_history_row_the_database_refuses_fails_its_migration_and_says_so(
    project: Project, alias: str
) -> None:
    """The history row is written in its migration's transaction: when the database refuses
    it, the migration failed, the version table stays at the migration before, and the
    message says what stayed (MySQL's DDL) or that it was rolled back."""
    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    run("opsmigrate", database=alias)
    vendor = connections[alias].vendor
    with connections[alias].cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute(
                "CREATE TRIGGER no_s2 BEFORE INSERT ON alembic_ops_history "
                "WHEN NEW.revision = 's2' BEGIN SELECT RAISE(ABORT, 'no s2 here'); END"
            )
        else:
            cursor.execute(
                "ALTER TABLE alembic_ops_history ADD CONSTRAINT no_s2 CHECK (revision <> 's2')"
            )
    project.script("shop", "0002_b", revision="s2", down="s1", **one_table("shop_b"))

    message = run_error("opsmigrate", database=alias)

    assert "shop.0002_b" in message and "\n" not in message, message
    assert "recording it in alembic_ops_history failed" in message, message
    assert query(alias, "SELECT version_num FROM alembic_ops_version") == [("s1",)]
    assert [(row[0], row[2]) for row in rows(alias)] == [("apply", "s1")]
    if vendor == "mysql":
        assert "not rolled back" in message and "CREATE TABLE shop_b" in message, message
        assert "shop_b" in table_names(alias)
    else:
        assert "rolled back" in message and "not rolled back" not in message, message
        assert "shop_b" not in table_names(alias)

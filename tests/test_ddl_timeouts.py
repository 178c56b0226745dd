"""DDL_LOCK_TIMEOUT, DDL_STATEMENT_TIMEOUT, DDL_RETRIES (issue 16), against real contention.

Another connection (the driver's, outside Django) holds a lock on a table
that the migration alters; the run gives up after the lock timeout, is rolled
back, retried with growing pauses, and finally names the session that held
the lock. Released between two attempts, the run succeeds and records each
migration once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import override_settings

from django_alembic_ops import checks, ddl_timeouts, history
from django_alembic_ops.errors import SettingError

from .conftest import Project, inspect_db, mysql_connect, one_table, pg_connect, query, run

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HOLDER = "nightly_report"
ADD_NOTE = {
    "upgrade": 'op.add_column("shop_order", sa.Column("note", sa.String(20)))',
    "downgrade": 'op.drop_column("shop_order", "note")',
}


@pytest.fixture
def ops_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """``ALEMBIC_OPS`` for the test (parametrised indirectly), entered before ``project``."""
    value: dict[str, Any] = getattr(request, "param", {})
    with override_settings(ALEMBIC_OPS=value):
        yield value


def settings(**value: Any) -> Any:
    return pytest.mark.parametrize("ops_settings", [value], indirect=True, ids=[""])


@pytest.fixture
def shop(ops_settings: dict[str, Any], project: Project, server_alias: str) -> Project:
    """shop_order applied; 0002 creates a table, 0003 alters shop_order (pending)."""
    project.app("shop")
    project.script("shop", "0001_order", revision="s1", **one_table("shop_order"))
    project.script("shop", "0002_refund", revision="s2", down="s1", **one_table("shop_refund"))
    project.script("shop", "0003_note", revision="s3", down="s2", **ADD_NOTE)
    run("opsmigrate", "shop", "0001", database=server_alias)
    return project


class Holder:
    """A session outside Django that holds a lock on shop_order until released."""

    def __init__(self, alias: str) -> None:
        name = connections[alias].settings_dict["NAME"]
        self.vendor = connections[alias].vendor
        if self.vendor == "postgresql":
            self.connection = pg_connect(dbname=name, application_name=HOLDER)
            self.statement = "LOCK TABLE shop_order IN ACCESS EXCLUSIVE MODE"
        else:
            # An open transaction that read the table holds its metadata lock:
            # ALTER TABLE waits for it (the common case: a long report).
            self.connection = mysql_connect(database=name)
            self.connection.autocommit(False)
            self.statement = "SELECT count(*) FROM shop_order"
        with self.connection.cursor() as cursor:
            pid = "pg_backend_pid()" if self.vendor == "postgresql" else "CONNECTION_ID()"
            cursor.execute(f"SELECT {pid}")
            self.pid = int(cursor.fetchone()[0])
            if self.vendor == "mysql":
                cursor.execute("START TRANSACTION")
            cursor.execute(self.statement)
            if cursor.description:
                cursor.fetchall()
        self.released_at: float | None = None

    def release(self) -> None:
        if self.released_at is None:
            self.connection.rollback()
            self.released_at = time.monotonic()

    def close(self) -> None:
        self.release()
        self.connection.close()


@pytest.fixture
def holder(shop: Project, server_alias: str) -> Iterator[Holder]:
    held = Holder(server_alias)
    try:
        yield held
    finally:
        held.close()


class Output(StringIO):
    """Command output that calls ``on_line(text)`` for each write."""

    def __init__(self, on_write: Callable[[str], None] = lambda text: None) -> None:
        super().__init__()
        self.on_write = on_write

    def write(self, text: str) -> int:
        self.on_write(text)
        return super().write(text)


def opsmigrate(alias: str, out: StringIO, **options: Any) -> None:
    call_command("opsmigrate", database=alias, stdout=out, stderr=out, no_color=True, **options)


def applied(alias: str) -> list[tuple[Any, ...]]:
    """(event, revision) of every history row, in order."""
    return query(alias, f"SELECT event, revision FROM {history.TABLE} ORDER BY id")


def columns(alias: str, table: str) -> list[str]:
    with inspect_db(alias) as inspector:
        return [column["name"] for column in inspector.get_columns(table)]


def versions(alias: str) -> list[str]:
    return [row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version")]


@settings(DDL_LOCK_TIMEOUT="200ms", DDL_RETRIES=2)
def test_gives_up_after_retries_naming_the_holder(holder: Holder, server_alias: str) -> None:
    out = Output()
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        opsmigrate(server_alias, out)
    took = time.monotonic() - started
    message = str(info.value)
    assert "\n" not in message
    output = out.getvalue()
    # Each attempt is reported; 0002 committed before and is not run again.
    assert output.endswith(
        "Running ops migrations:\n"
        "  Applying shop.0002_refund... OK\n"
        "  Applying shop.0003_note... lock timeout, retry 1 of 2 in 0.2s\n"
        "  Applying shop.0003_note... lock timeout, retry 2 of 2 in 0.4s\n"
        "  Applying shop.0003_note...\n"
    ), output
    # Three waits of at least the timeout, and the two pauses.
    minimum = 3 * 0.2 + 0.2 + 0.4 if holder.vendor == "postgresql" else 3 * 1 + 0.2 + 0.4
    assert took >= minimum
    if holder.vendor == "postgresql":
        pattern = (
            r"Applying shop\.0003_note failed and was rolled back: LockNotAvailable: "
            r"canceling statement due to lock timeout; statement: ALTER TABLE shop_order ADD "
            r"COLUMN note VARCHAR\(20\); it waited 200ms for a lock 3 times \(DDL_RETRIES 2\), "
            rf"held by pid {holder.pid} \(application '{HOLDER}', idle in transaction, query "
            r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00: 'LOCK TABLE shop_order IN ACCESS "
            rf"EXCLUSIVE MODE'\); wait for that session to finish, or end it \(SELECT "
            rf"pg_terminate_backend\({holder.pid}\)\), then run again\.$"
        )
    else:
        pattern = (
            r"Applying shop\.0003_note failed and was rolled back: OperationalError: "
            r"\(1205, 'Lock wait timeout exceeded; try restarting transaction'\); statement: "
            r"ALTER TABLE shop_order ADD COLUMN note VARCHAR\(20\); it waited 1s \(whole "
            r"seconds on MySQL\) for a lock 3 times \(DDL_RETRIES 2\); find the session holding "
            r"it \(SHOW PROCESSLIST: often an open transaction that used the table\), then run "
            r"again\.$"
        )
    assert re.match(pattern, message), message
    # Rolled back: nothing recorded, the schema as it was.
    holder.release()  # reading shop_order's columns needs a lock too
    assert versions(server_alias) == ["s2"]
    assert applied(server_alias) == [("apply", "s1"), ("apply", "s2")]
    assert "note" not in columns(server_alias, "shop_order")


@pytest.mark.parametrize(
    "ops_settings",
    [
        {"DDL_LOCK_TIMEOUT": "200ms", "DDL_RETRIES": 5},
        {"DDL_LOCK_TIMEOUT": "200ms", "DDL_RETRIES": 5, "TRANSACTION_PER_MIGRATION": False},
    ],
    indirect=True,
    ids=["per-migration", "one-transaction"],
)
def test_released_between_attempts_succeeds_recorded_once(
    holder: Holder, server_alias: str
) -> None:
    def release_at_first_retry(text: str) -> None:
        if "retry 1 of" in text:
            holder.release()

    out = Output(release_at_first_retry)
    opsmigrate(server_alias, out)
    output = out.getvalue()
    assert holder.released_at is not None
    assert output.count("lock timeout, retry") == 1, output
    assert "  Applying shop.0003_note... lock timeout, retry 1 of 5 in 0.2s\n" in output
    assert output.endswith("  Applying shop.0003_note... OK\n"), output
    assert output.count("Applying shop.0002_refund... OK") == 1, output
    # Each migration recorded once, and its schema there.
    assert versions(server_alias) == ["s3"]
    assert applied(server_alias) == [("apply", "s1"), ("apply", "s2"), ("apply", "s3")]
    assert "note" in columns(server_alias, "shop_order")
    assert "shop_refund" in {name for (name,) in query(server_alias, _TABLES[holder.vendor])}


_TABLES = {
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
    "mysql": "SHOW TABLES",
}
_SLEEP = {"postgresql": "SELECT pg_sleep(2)", "mysql": "SELECT SLEEP(2)"}
_SESSION = {
    "postgresql": "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')",
    "mysql": "SELECT @@SESSION.lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout, "
    "@@SESSION.max_statement_time",
}


@settings(DDL_LOCK_TIMEOUT="1s", DDL_STATEMENT_TIMEOUT="200ms", DDL_RETRIES=2)
def test_statement_timeout_fails_without_retry(
    ops_settings: dict[str, Any], project: Project, server_alias: str
) -> None:
    vendor = connections[server_alias].vendor
    before = query(server_alias, _SESSION[vendor])
    project.app("shop")
    project.script("shop", "0001_slow", revision="s1", upgrade=f"op.execute({_SLEEP[vendor]!r})")
    out = Output()
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        opsmigrate(server_alias, out)
    assert time.monotonic() - started < 1.5  # cut at 200ms, never tried again
    reason = {
        "postgresql": "QueryCanceled: canceling statement due to statement timeout; "
        "statement: SELECT pg_sleep(2)",
        "mysql": "OperationalError: (1969, 'Query execution was interrupted "
        "(max_statement_time exceeded)'); statement: SELECT SLEEP(2)",
    }[vendor]
    assert str(info.value) == f"Applying shop.0001_slow failed and was rolled back: {reason}"
    assert "retry" not in out.getvalue()
    assert run("opsshowmigrations", database=server_alias) == "shop\n [ ] 0001_slow\n"
    # SET LOCAL ended with the transaction; MySQL's SET SESSION was put back.
    assert query(server_alias, _SESSION[vendor]) == before


def test_sqlite_is_left_alone(project: Project) -> None:
    """SQLite has no lock or statement timeout to set (its busy timeout is another thing)."""
    project.app("shop")
    project.script("shop", "0001_order", revision="s1", **one_table("shop_order"))
    with override_settings(
        ALEMBIC_OPS={"DDL_LOCK_TIMEOUT": "200ms", "DDL_STATEMENT_TIMEOUT": "1s", "DDL_RETRIES": 2}
    ):
        assert ddl_timeouts.for_alias("default") is None
        assert "Applying shop.0001_order... OK" in run("opsmigrate", database="default")


@pytest.mark.parametrize(
    "value, seconds",
    [("200ms", 0.2), ("3s", 3.0), (" 1.5min ", 90.0), ("1h", 3600.0), (2, 2.0), (0.5, 0.5)],
)
def test_durations(value: Any, seconds: float) -> None:
    assert ddl_timeouts.parse_duration("DDL_LOCK_TIMEOUT", value) == pytest.approx(seconds)


def test_set_statements() -> None:
    timeouts = ddl_timeouts.Timeouts(lock=0.2, statement=90.0, retries=1)

    class Connection:
        def __init__(self, vendor: str, mariadb: bool = False) -> None:
            self.vendor = vendor
            self.mysql_is_mariadb = mariadb

    assert ddl_timeouts.set_statement(Connection("postgresql"), timeouts) == (
        "SET LOCAL lock_timeout = '200ms'; SET LOCAL statement_timeout = '90000ms'"
    )
    assert ddl_timeouts.set_statement(Connection("mysql", mariadb=True), timeouts) == (
        "SET SESSION lock_wait_timeout = 1, innodb_lock_wait_timeout = 1, max_statement_time = 90"
    )
    # MySQL's max_execution_time bounds SELECTs only: not DDL's equivalent.
    assert ddl_timeouts.set_statement(Connection("mysql"), timeouts) == (
        "SET SESSION lock_wait_timeout = 1, innodb_lock_wait_timeout = 1"
    )
    assert ddl_timeouts.set_statement(Connection("sqlite"), timeouts) is None
    assert [timeouts.pause(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]
    assert ddl_timeouts.Timeouts(lock=30.0).pause(3) == ddl_timeouts.MAX_PAUSE


BAD = {"DDL_LOCK_TIMEOUT": "3 secs", "DDL_STATEMENT_TIMEOUT": 0, "DDL_RETRIES": -1}
DURATION_HINT = (
    "Use a string such as '200ms', '3s' or '1min' (units ms, s, min, h), a number of seconds, "
    "or None for no timeout."
)


def test_bad_values_are_system_check_errors() -> None:
    with override_settings(ALEMBIC_OPS=BAD):
        found = [(m.id, m.msg, m.hint) for m in checks.check_settings() if m.id.endswith("E006")]
    assert found == [
        (
            "django_alembic_ops.E006",
            "ALEMBIC_OPS['DDL_LOCK_TIMEOUT'] '3 secs' is not a duration.",
            DURATION_HINT,
        ),
        (
            "django_alembic_ops.E006",
            "ALEMBIC_OPS['DDL_STATEMENT_TIMEOUT'] 0 is not more than zero.",
            DURATION_HINT,
        ),
        (
            "django_alembic_ops.E006",
            "ALEMBIC_OPS['DDL_RETRIES'] -1 is not valid.",
            "Use a whole number of retries, 0 or more.",
        ),
    ]


@pytest.mark.parametrize("bad", ["3", "fast", True, float("inf"), "-1s"])
def test_not_durations(bad: Any) -> None:
    with pytest.raises(SettingError, match="is not a duration: use a string such as '200ms'"):
        ddl_timeouts.parse_duration("DDL_LOCK_TIMEOUT", bad)


@pytest.fixture
def bad_settings() -> Iterator[None]:
    with override_settings(ALEMBIC_OPS={"DDL_LOCK_TIMEOUT": "3 secs"}):
        yield


def test_bad_value_refuses_the_run(bad_settings: None, project: Project, alias: str) -> None:
    """Not a silent fallback to no timeout: the setting was meant to protect production."""
    project.app("shop")
    project.script("shop", "0001_order", revision="s1", **one_table("shop_order"))
    with pytest.raises(CommandError) as info:
        run("opsmigrate", database=alias)
    assert str(info.value) == (
        "ALEMBIC_OPS['DDL_LOCK_TIMEOUT'] '3 secs' is not a duration: use a string such as "
        "'200ms', '3s' or '1min' (units ms, s, min, h), a number of seconds, or None for no "
        "timeout."
    )
    assert "shop_order" not in {
        name for (name,) in query(alias, _ALL_TABLES[connections[alias].vendor])
    }


_ALL_TABLES = {**_TABLES, "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'"}


@pytest.mark.parametrize("value, text", [("200ms", "200ms"), (3, "3s"), (0.5, "0.5s")])
def test_lock_timeout_named_as_written(value: Any, text: str) -> None:
    with override_settings(ALEMBIC_OPS={"DDL_LOCK_TIMEOUT": value}):
        assert ddl_timeouts.configured().lock_text == text


def test_fleet_progress_counts_a_retried_migration_once() -> None:
    """A fleet target's result lists a migration done once it committed, not at a retry."""
    from types import SimpleNamespace

    from django_alembic_ops.fleet.apply import _Progress

    progress = _Progress(None, None)  # type: ignore[arg-type]
    migration: Any = SimpleNamespace(full_name="shop.0003_note")
    progress("apply_start", migration, False, None)
    progress("apply_retry", migration, False, 0.2)
    assert (progress.running, progress.done) == (migration, [])
    progress("apply_start", migration, False, None)
    progress("apply_success", migration, False, 0.1)
    assert (progress.running, progress.done) == (None, ["shop.0003_note"])


PARTLY_COMMITTED = """
op.create_table("shop_tmp", sa.Column("id", sa.Integer, primary_key=True))
if op.get_context().dialect.name == "postgresql":
    op.get_bind().commit()  # MySQL's CREATE TABLE commits by itself
op.add_column("shop_order", sa.Column("note", sa.String(20)))
"""


# One attempt: 1s leaves the watcher time to connect on a busy machine.
@settings(DDL_LOCK_TIMEOUT="1s", DDL_RETRIES=2)
def test_partly_committed_migration_is_not_retried(
    ops_settings: dict[str, Any], project: Project, server_alias: str
) -> None:
    project.app("shop")
    project.script("shop", "0001_order", revision="s1", **one_table("shop_order"))
    project.script("shop", "0002_tmp", revision="s2", down="s1", upgrade=PARTLY_COMMITTED)
    run("opsmigrate", "shop", "0001", database=server_alias)
    held = Holder(server_alias)
    try:
        out = Output()
        with pytest.raises(CommandError) as info:
            opsmigrate(server_alias, out)
    finally:
        held.close()
    message = str(info.value)
    assert "retry" not in out.getvalue()
    assert message.startswith("Applying shop.0002_tmp failed and was not rolled back: ")
    assert "; these statements had committed: CREATE TABLE shop_tmp" in message
    assert " for a lock once (DDL_RETRIES 2)" in message
    if held.vendor == "postgresql":
        assert f"held by pid {held.pid} (application '{HOLDER}'" in message
    assert versions(server_alias) == ["s1"]

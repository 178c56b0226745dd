"""Fault injection: what is recorded is what committed, whatever fails and where.

SPEC, "Reliability promises". A run of three migrations is made to fail at
each point in turn:

- ``statement``: each statement of each migration fails at the database (the
  statement is swapped for one that fails there, as a real error would);
- ``version``: the version-table write of each migration fails;
- ``commit``: a deferred foreign key is violated just before the migration's
  transaction ends: PostgreSQL raises at ``COMMIT``, SQLite's
  ``PRAGMA foreign_key_check`` fails before it;
- ``commit_error``: the driver's ``COMMIT`` of each migration fails;
- ``between``: the run is interrupted (``KeyboardInterrupt``) after one
  migration and before the next;
- ``kill``: ``manage.py opsmigrate`` is killed with ``SIGKILL`` in the middle
  of each migration (a separate process and database).

After each: the version table names exactly the migrations whose changes
committed (compared with the tables and indexes present), the output said
what happened (``OK``; "rolled back"; "not rolled back" naming the
statements that had committed — migration 0002 runs ``autocommit_block()``),
and a run with the fault removed reaches the heads, with every row once.

The backends come from the ``alias`` fixture: a new backend is one entry
there, plus its facts in :data:`TRANSACTIONAL_DDL` / :data:`DEFERRED_CONSTRAINTS`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.db.utils import load_backend
from sqlalchemy import event
from sqlalchemy.engine import Engine

from django_alembic_ops import runner

from .conftest import Project, query, script_source

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REPO = Path(__file__).resolve().parent.parent

# -- the run: three migrations, their statements and what they leave -------------------

#: What a vendor does with DDL: inside a transaction (rolled back with it) or
#: committing implicitly (MySQL/MariaDB).
TRANSACTIONAL_DDL = {"sqlite": True, "postgresql": True, "mysql": False}
#: Whether a deferred foreign key can be violated until COMMIT (SQLite: our
#: foreign_key_check before COMMIT stands in for it).
DEFERRED_CONSTRAINTS = {"sqlite": True, "postgresql": True, "mysql": False}


@dataclass(frozen=True)
class Migration:
    name: str
    revision: str
    upgrade: str
    #: A distinctive part of each statement that changes something, in order,
    #: with whether it is DDL (it commits implicitly on MySQL).
    statements: tuple[tuple[str, bool], ...]
    #: The tables and indexes it creates, and the rows it inserts.
    objects: frozenset[str]
    rows: tuple[tuple[str, int], ...] = ()
    #: Statements committed once they ran (before and inside autocommit_block()).
    autocommitted: int = 0

    @property
    def full_name(self) -> str:
        return f"shop.{self.name}"


MIGRATIONS = (
    Migration(
        "0001_first",
        "fi0001",
        """
        op.create_table("fi_a", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO fi_a (id) VALUES (1)")
        deferred = op.get_context().dialect.name != "mysql"  # MySQL has no such thing
        op.create_table(
            "fi_child",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("a_id", sa.Integer),
            sa.ForeignKeyConstraint(
                ["a_id"],
                ["fi_a.id"],
                name="fi_child_a_fk",
                deferrable=deferred or None,
                initially="DEFERRED" if deferred else None,
            ),
        )
        """,
        (("CREATE TABLE fi_a", True), ("INSERT INTO fi_a", False), ("CREATE TABLE fi_child", True)),
        frozenset({"fi_a", "fi_child"}),
        rows=(("fi_a", 1),),
    ),
    Migration(
        "0002_index",
        "fi0002",
        """
        op.execute("CREATE TABLE IF NOT EXISTS fi_b (id INTEGER PRIMARY KEY)")
        concurrently = "CONCURRENTLY " if op.get_context().dialect.name == "postgresql" else ""
        with op.get_context().autocommit_block():
            op.execute(f"CREATE INDEX {concurrently}IF NOT EXISTS ix_fi_b ON fi_b (id)")
        op.create_table("fi_e", sa.Column("id", sa.Integer, primary_key=True))
        """,
        (
            ("CREATE TABLE IF NOT EXISTS fi_b", True),
            ("IF NOT EXISTS ix_fi_b", True),
            ("CREATE TABLE fi_e", True),
        ),
        frozenset({"fi_b", "ix_fi_b", "fi_e"}),
        autocommitted=2,
    ),
    Migration(
        "0003_last",
        "fi0003",
        """
        op.create_table("fi_d", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO fi_d (id) VALUES (1)")
        """,
        (("CREATE TABLE fi_d", True), ("INSERT INTO fi_d", False)),
        frozenset({"fi_d"}),
        rows=(("fi_d", 1),),
    ),
)
KNOWN_OBJECTS = frozenset().union(*(m.objects for m in MIGRATIONS))
#: What each statement creates, to tell which statements of a migration stayed.
CREATES = {
    "CREATE TABLE fi_a": "fi_a",
    "CREATE TABLE fi_child": "fi_child",
    "CREATE TABLE IF NOT EXISTS fi_b": "fi_b",
    "IF NOT EXISTS ix_fi_b": "ix_fi_b",
    "CREATE TABLE fi_e": "fi_e",
    "CREATE TABLE fi_d": "fi_d",
}
#: How an operator undoes a statement named as committed, before running
#: again (0002's statements need nothing: they are written to run again).
UNDO = {
    "CREATE TABLE fi_a": "DROP TABLE fi_a",
    "INSERT INTO fi_a": "DELETE FROM fi_a",
    "CREATE TABLE fi_child": "DROP TABLE fi_child",
    "CREATE TABLE fi_e": "DROP TABLE fi_e",
    "CREATE TABLE fi_d": "DROP TABLE fi_d",
    "INSERT INTO fi_d": "DELETE FROM fi_d",
}


def write_scripts(folder: Path) -> None:
    previous = None
    for migration in MIGRATIONS:
        source = script_source(
            revision=migration.revision,
            down=previous,
            upgrade=migration.upgrade,
            branch_labels=None if previous else ("shop",),
        )
        (folder / f"{migration.name}.py").write_text(source)
        previous = migration.revision


# -- the points ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    kind: str  # statement, version, commit, commit_error, between, kill
    migration: int  # index into MIGRATIONS (between: the last one that completes)
    statement: int | None = None  # statement: the one that fails; kill: the one it stops at

    @property
    def id(self) -> str:
        name = MIGRATIONS[self.migration].name[:4]
        if self.kind == "between":
            return f"between-{name}-{MIGRATIONS[self.migration + 1].name[:4]}"
        if self.statement is not None:
            return f"{self.kind}-{name}-{self.statement + 1}"
        return f"{self.kind}-{name}"


POINTS = (
    [
        Point("statement", m, k)
        for m, migration in enumerate(MIGRATIONS)
        for k in range(len(migration.statements))
    ]
    + [Point(kind, m) for kind in ("version", "commit", "commit_error") for m in range(3)]
    + [Point("between", m) for m in range(2)]
    # Killed while waiting before the last statement that changes something:
    # in 0002 that is after autocommit_block(), so its first two statements stay.
    + [Point("kill", m, len(migration.statements) - 1) for m, migration in enumerate(MIGRATIONS)]
)


@dataclass
class Expected:
    recorded: list[Migration]  # in order
    failing: Migration | None
    committed: list[str]  # statements of the failing migration that stayed

    @property
    def objects(self) -> set[str]:
        present = set().union(*(m.objects for m in self.recorded))
        return present | {CREATES[s] for s in self.committed if s in CREATES}


def expected(point: Point, vendor: str) -> Expected:
    if point.kind == "between":
        return Expected(list(MIGRATIONS[: point.migration + 1]), None, [])
    migration = MIGRATIONS[point.migration]
    ran = len(migration.statements) if point.statement is None else point.statement
    count = min(ran, migration.autocommitted)
    if not TRANSACTIONAL_DDL[vendor]:
        # Each DDL statement commits implicitly, with everything before it.
        ddl = [k + 1 for k, (_, is_ddl) in enumerate(migration.statements[:ran]) if is_ddl]
        count = max([count, *ddl])
    committed = [text for text, _ in migration.statements[:count]]
    return Expected(list(MIGRATIONS[: point.migration]), migration, committed)


def undo(want: Expected, run_query: Callable[[str], object]) -> None:
    """What an operator does after "not rolled back": undo the statements it named."""
    for statement in reversed(want.committed):
        if statement in UNDO:
            run_query(UNDO[statement])


def version_write(statement: str, revision: str) -> bool:
    """Alembic's INSERT (first of a branch) or UPDATE of the version table, to ``revision``."""
    return bool(re.search(rf"(VALUES \(|SET version_num=)'{revision}'", statement))


FAILING_STATEMENT = "INSERT INTO fault_injected_here VALUES (1)"


# -- running with a fault in this process -------------------------------------------------


class Fault:
    """One point's fault, installed on SQLAlchemy's engines and Django's connection."""

    def __init__(self, point: Point, alias: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.point = point
        self.alias = alias
        self.monkeypatch = monkeypatch
        self.migration = MIGRATIONS[point.migration]
        self.commit_armed = False

    def before_cursor_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any
    ) -> tuple[str, Any]:
        point, migration = self.point, self.migration
        if point.kind == "statement":
            assert point.statement is not None
            if migration.statements[point.statement][0] in statement:
                return FAILING_STATEMENT, parameters
        elif version_write(statement, migration.revision):
            if point.kind == "version":
                return FAILING_STATEMENT, parameters
            if point.kind == "commit":
                # Checked at COMMIT (PostgreSQL), or by foreign_key_check (SQLite).
                cursor.execute("INSERT INTO fi_child (id, a_id) VALUES (99, 999)")
            if point.kind == "commit_error":
                self.commit_armed = True
        return statement, parameters

    def failing_commit(self, real: Callable[[], None]) -> Callable[[], None]:
        connection = connections[self.alias]

        def commit() -> None:
            if self.commit_armed:
                self.commit_armed = False
                with connection.wrap_database_errors:
                    raise connection.Database.OperationalError("injected fault at COMMIT")
            real()

        return commit

    def interrupted(self, real: Callable[..., None]) -> Callable[..., None]:
        following = MIGRATIONS[self.point.migration + 1]

        def step_started(context: Any, step: runner.Step) -> None:
            if step.migration.name == following.name:
                raise KeyboardInterrupt
            real(context, step)

        return step_started

    def __enter__(self) -> Fault:
        if self.point.kind == "between":
            real = runner.DjangoMigrationContext.step_started
            self.monkeypatch.setattr(
                runner.DjangoMigrationContext, "step_started", self.interrupted(real)
            )
        else:
            # On each new connection, ahead of the runner's own listeners: they
            # see the statement that really runs.
            event.listen(Engine, "engine_connect", self.connected)
        if self.point.kind == "commit_error":
            connection = connections[self.alias]
            self.monkeypatch.setattr(connection, "_commit", self.failing_commit(connection._commit))
        return self

    def connected(self, connection: Any) -> None:
        event.listen(
            connection,
            "before_cursor_execute",
            self.before_cursor_execute,
            retval=True,
            insert=True,
        )

    def __exit__(self, *exc: object) -> None:
        if self.point.kind != "between":
            event.remove(Engine, "engine_connect", self.connected)
        self.monkeypatch.undo()


def query_no_rows(alias: str, sql: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)


def opsmigrate(alias: str) -> tuple[str, str | None]:
    """What ``opsmigrate`` printed, and its error message (``None`` on success)."""
    out = StringIO()
    try:
        call_command("opsmigrate", database=alias, stdout=out, stderr=out, no_color=True)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


# -- what the database holds -------------------------------------------------------------


def catalog_sql(vendor: str) -> str:
    if vendor == "sqlite":
        return "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
    if vendor == "postgresql":
        return (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')"
        )
    return (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "UNION SELECT index_name FROM information_schema.statistics "
        "WHERE table_schema = DATABASE()"
    )


@dataclass
class State:
    versions: list[str]
    objects: set[str]
    rows: dict[str, int]


def read_state(run_query: Callable[[str], list[tuple[Any, ...]]], vendor: str) -> State:
    names = {row[0] for row in run_query(catalog_sql(vendor))}
    versions = (
        sorted(row[0] for row in run_query("SELECT version_num FROM alembic_ops_version"))
        if "alembic_ops_version" in names
        else []
    )
    objects = names & KNOWN_OBJECTS
    rows = {
        table: run_query(f"SELECT COUNT(*) FROM {table}")[0][0]
        for table in ("fi_a", "fi_d", "fi_child")
        if table in objects
    }
    return State(versions, objects, rows)


def assert_recorded_is_committed(state: State, want: Expected) -> None:
    """The version table names exactly the migrations whose changes all committed.

    Of a migration that is not recorded, only what its error named as
    committed is there; of the others nothing.
    """
    head = [want.recorded[-1].revision] if want.recorded else []
    assert state.versions == head
    assert state.objects == want.objects
    for migration in MIGRATIONS:
        for table, count in migration.rows:
            if migration in want.recorded:
                assert state.rows[table] == count, table
            elif table in state.objects:
                inserted = f"INSERT INTO {table}" in want.committed
                assert state.rows[table] == (count if inserted else 0), table
    assert state.rows.get("fi_child", 0) == 0  # the injected orphan never stays


def assert_output(out: str, want: Expected, *, last_line_open: bool) -> None:
    """``OK`` for each recorded migration, then the failing one's line without it."""
    lines = [line for line in out.splitlines() if line.startswith("  Applying ")]
    expect = [f"  Applying {m.full_name}... OK" for m in want.recorded]
    if want.failing is not None and last_line_open:
        expect.append(f"  Applying {want.failing.full_name}...")
    assert lines == expect, out


def error_details(point: Point, vendor: str) -> list[str]:
    """Parts of what the error says after the migration's name and outcome."""
    if point.kind == "statement":
        return [f"; statement: {FAILING_STATEMENT}"]
    if point.kind == "version":
        return [
            ": recording it in alembic_ops_version failed: ",
            f"; statement: {FAILING_STATEMENT}",
        ]
    if point.kind == "commit_error":
        return [": OperationalError: injected fault at COMMIT; statement: COMMIT"]
    if vendor == "postgresql":
        return [
            ': ForeignKeyViolation: insert or update on table "fi_child" violates foreign key '
            'constraint "fi_child_a_fk" DETAIL: Key (a_id)=(999) is not present in table '
            '"fi_a".; statement: COMMIT'
        ]
    return [
        ": IntegrityError: The row in table 'fi_child' with primary key '99' has an invalid "
        "foreign key: fi_child.a_id contains a value '999' that does not have a corresponding "
        "value in fi_a.id."
    ]


def assert_error(error: str | None, point: Point, want: Expected, vendor: str) -> None:
    if want.failing is None:
        assert error is None
        return
    assert error is not None
    outcome = "not rolled back" if want.committed else "rolled back"
    assert error.startswith(f"Applying {want.failing.full_name} failed and was {outcome}: "), error
    head, _, committed = error.partition("; these statements had committed: ")
    for detail in error_details(point, vendor):
        assert detail in head, error
    if want.committed:
        named = committed.split("; ")
        assert len(named) == len(want.committed), error
        for statement, part in zip(want.committed, named, strict=True):
            assert statement in part, error
    else:
        assert not committed, error


def skip_unless_applicable(point: Point, vendor: str) -> None:
    if point.kind == "commit" and not DEFERRED_CONSTRAINTS[vendor]:
        pytest.skip(f"{vendor} has no deferred constraints")


@pytest.mark.parametrize("point", [p for p in POINTS if p.kind != "kill"], ids=lambda p: p.id)
def test_fault(project: Project, alias: str, point: Point, monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = connections[alias].vendor
    skip_unless_applicable(point, vendor)
    project.app("shop")
    write_scripts(project.root / "shop" / "migrations_ops")
    want = expected(point, vendor)

    with Fault(point, alias, monkeypatch):
        if point.kind == "between":
            out = StringIO()
            with pytest.raises(KeyboardInterrupt):
                call_command("opsmigrate", database=alias, stdout=out, no_color=True)
            out_text, error = out.getvalue(), None
        else:
            out_text, error = opsmigrate(alias)

    assert_output(out_text, want, last_line_open=True)
    assert_error(error, point, want, vendor)
    connection = connections[alias]
    assert not connection.in_atomic_block and connection.get_autocommit()
    assert_recorded_is_committed(read_state(lambda sql: query(alias, sql), vendor), want)

    # The fault removed (and what the error named undone), a re-run applies
    # exactly what is not recorded.
    undo(want, lambda sql: query_no_rows(alias, sql))
    out_text, error = opsmigrate(alias)
    assert error is None, error
    rest = [m for m in MIGRATIONS if m not in want.recorded]
    assert_output(out_text, Expected(rest, None, []), last_line_open=False)
    complete = Expected(list(MIGRATIONS), None, [])
    assert_recorded_is_committed(read_state(lambda sql: query(alias, sql), vendor), complete)


# -- a killed process ---------------------------------------------------------------------

SETTINGS = """
import json, os, time
from sqlalchemy import event
from sqlalchemy.engine import Engine

SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django_alembic_ops", "shop"]
DATABASES = {"default": json.loads(os.environ["OPS_DB"])}

PAUSE_AT = os.environ.get("OPS_PAUSE_AT")
if PAUSE_AT:
    @event.listens_for(Engine, "before_cursor_execute")
    def pause(conn, cursor, statement, *args):
        if PAUSE_AT in statement:
            print("\\nPAUSED", flush=True)
            time.sleep(120)
"""


class Deployment:
    """A project on disk and its own database, run with ``manage.py opsmigrate``."""

    def __init__(self, root: Path, database: dict[str, Any]) -> None:
        self.root = root
        self.database = database
        folder = root / "shop" / "migrations_ops"
        folder.mkdir(parents=True)
        for name in ("shop/__init__.py", "shop/models.py", "shop/migrations_ops/__init__.py"):
            (root / name).write_text("")
        (root / "settings.py").write_text(textwrap.dedent(SETTINGS))
        write_scripts(folder)
        filled = connections.configure_settings({"default": dict(database)})["default"]
        # Django's connection to that database, outside Django's handler.
        self.connection = load_backend(database["ENGINE"]).DatabaseWrapper(filled, "deployment")

    @property
    def vendor(self) -> str:
        return str(self.connection.vendor)

    def start(self, pause_at: str | None = None) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{REPO}{os.pathsep}{self.root}",
            "DJANGO_SETTINGS_MODULE": "settings",
            "OPS_DB": json.dumps(self.database),
        }
        if pause_at:
            env["OPS_PAUSE_AT"] = pause_at
        return subprocess.Popen(
            [sys.executable, "-u", "-m", "django", "opsmigrate", "--no-color"],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql)
                return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        finally:
            self.connection.close()  # a SQLite file stays unlocked for the next run


def read_until(process: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    """The process's output up to ``text`` (it is then waiting there)."""
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        char = process.stdout.read(1)
        if not char:
            break
        seen += char
    assert text in seen, seen
    return seen


@pytest.fixture
def deployment(alias: str, tmp_path: Path) -> Iterator[Deployment]:
    """A database of its own on the backend of ``alias`` (a file, or a new database)."""
    base = settings.DATABASES[alias]
    server = {
        key: base[key]
        for key in ("ENGINE", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS")
        if key in base
    }
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        yield Deployment(tmp_path / "project", {**server, "NAME": str(tmp_path / "db.sqlite3")})
        return
    name = f"ops_fault_{uuid.uuid4().hex[:8]}"
    with connections[alias].cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    deployment = Deployment(tmp_path / "project", {**server, "NAME": name})
    try:
        yield deployment
    finally:
        deployment.connection.close()
        force = " WITH (FORCE)" if vendor == "postgresql" else ""
        with connections[alias].cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}{force}")


@pytest.mark.parametrize("point", [p for p in POINTS if p.kind == "kill"], ids=lambda p: p.id)
def test_killed(deployment: Deployment, point: Point) -> None:
    want = expected(point, deployment.vendor)
    assert point.statement is not None
    marker = MIGRATIONS[point.migration].statements[point.statement][0]
    process = deployment.start(pause_at=marker)
    try:
        out = read_until(process, "PAUSED")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert_output(out.replace("\nPAUSED", ""), want, last_line_open=True)
    assert_recorded_is_committed(read_state(deployment.query, deployment.vendor), want)

    undo(want, deployment.query)
    process = deployment.start()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    rest = [m for m in MIGRATIONS if m not in want.recorded]
    assert_output(out, Expected(rest, None, []), last_line_open=False)
    complete = Expected(list(MIGRATIONS), None, [])
    assert_recorded_is_committed(read_state(deployment.query, deployment.vendor), complete)

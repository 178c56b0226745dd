"""``alembic_ops_history``: every migration applied, unapplied or faked, with a checksum.

The version table says only where each app is; this table says how it got
there: one row per event (``apply``, ``unapply``, ``fake``), never updated or
deleted, with the script's checksum, when, how long and on which host.

The row of a step is written on the run's connection inside the step's
transaction (:mod:`.runner`), so it exists exactly when the migration
committed. A database migrated before this table existed gets it on its next
run with steps; its older migrations simply have no checksum to compare.

The checksum covers a script's code, not its formatting: the hash of its AST
without docstrings and without a top-level ``lint_ignore = [...]``
assignment (added to old scripts to silence :mod:`.lint`), so reformatting or
commenting a script keeps it, changing an ``op`` call does not.
"""

from __future__ import annotations

import ast
import datetime
import functools
import hashlib
import socket
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from . import headers
from .errors import ChangedMigration

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.script import Script

    from .scripts import OpsMigration, OpsScripts

# SQLAlchemy is imported only where the table is used: flush and the no-op
# path need no more than the table's name.

TABLE = "alembic_ops_history"
#: PostgreSQL's sequence behind its ``id`` column (``SERIAL``).
ID_SEQUENCE = f"{TABLE}_id_seq"

APPLY, UNAPPLY, FAKE = "apply", "unapply", "fake"


@functools.lru_cache(maxsize=128)
def table(schema: str | None = None) -> sa.Table:
    """The history table (in ``schema``: a tenant's, next to its version table).

    One object per schema (the most recent 128 of a fleet): building a
    ``Table`` and compiling a new ``INSERT`` for it cost about 2 ms, once per
    migration; the same object's ``INSERT`` is compiled once per process.
    """
    import sqlalchemy as sa

    return sa.Table(
        TABLE,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("app", sa.String(255), nullable=False),
        sa.Column("revision", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("applied_at", sa.DateTime, nullable=False),  # UTC
        sa.Column("duration", sa.Float, nullable=False),  # seconds
        sa.Column("host", sa.String(255), nullable=False),
        schema=schema,
    )


def _is_lint_ignore(node: ast.stmt) -> bool:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    return any(isinstance(t, ast.Name) and t.id == "lint_ignore" for t in targets)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return body[1:] or [ast.Pass()]
    return body


def checksum_source(source: str) -> str:
    """SHA-256 of the code of ``source``: formatting, comments and docstrings left out."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not _is_lint_ignore(node)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.body = _without_docstring(node.body)
    dumped = ast.dump(tree, annotate_fields=False, include_attributes=False)
    return hashlib.sha256(dumped.encode()).hexdigest()


def checksum(migration: OpsMigration) -> str:
    """The checksum of ``migration``'s script file as it is now.

    Cached with the script's header while the file keeps its size and mtime
    (:func:`.headers.checksum`).
    """
    return headers.checksum(migration.script.path, checksum_source)


#: Per loaded script: the checksum of the code that was loaded. A script whose
#: file changes is loaded anew (:func:`.scripts.load` compares sizes and
#: mtimes), so a fleet process does not stat every script once per tenant.
_loaded_checksums: weakref.WeakKeyDictionary[Script, str] = weakref.WeakKeyDictionary()


def _loaded_checksum(migration: OpsMigration) -> str:
    value = _loaded_checksums.get(migration.script)
    if value is None:
        value = _loaded_checksums[migration.script] = checksum(migration)
    return value


@dataclass(frozen=True)
class Entry:
    """The last event of one revision."""

    event: str
    app: str
    revision: str
    name: str
    checksum: str
    applied_at: datetime.datetime
    duration: float
    host: str


def _exists(connection: sa.Connection, schema: str | None) -> bool:
    # The schema the connection's schema_translate_map makes of ``schema``
    # (a tenant's, see runner.TENANT_SCHEMA): reflection does not apply it.
    schema = connection.schema_for_object(table(schema))
    return bool(connection.dialect.has_table(connection, TABLE, schema=schema))


def ensure(connection: sa.Connection, schema: str | None = None) -> None:
    """Create the history table on ``connection`` (in its transaction) if missing."""
    if not _exists(connection, schema):
        table(schema).create(connection)


def record(
    connection: sa.Connection,
    migration: OpsMigration,
    event: str,
    duration: float,
    schema: str | None = None,
) -> None:
    """Add one event row for ``migration`` (one ``INSERT``)."""
    statement, positions = _insert(connection.dialect, connection.schema_for_object(table(schema)))
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    # On SQLite, SQLAlchemy's own format (the driver's default adapter is deprecated).
    applied_at = now.isoformat(" ", "microseconds") if connection.dialect.name == "sqlite" else now
    values: dict[str, Any] = {
        "event": event,
        "app": migration.app_label,
        "revision": migration.revision,
        "name": migration.name,
        "checksum": _loaded_checksum(migration),
        "applied_at": applied_at,
        "duration": duration,
        "host": socket.gethostname(),
    }
    params = values if positions is None else tuple(values[key] for key in positions)
    connection.exec_driver_sql(statement, params)


_ROW_KEYS = ("event", "app", "revision", "name", "checksum", "applied_at", "duration", "host")


@functools.lru_cache(maxsize=8)
def _insert_unqualified(dialect: sa.Dialect) -> tuple[str, tuple[str, ...] | None]:
    compiled = table().insert().inline().compile(dialect=dialect, column_keys=_ROW_KEYS)
    positions = compiled.positiontup
    return compiled.string, None if positions is None else tuple(positions)


def _insert(dialect: sa.Dialect, schema: str | None) -> tuple[str, tuple[str, ...] | None]:
    """The history row's ``INSERT`` in ``dialect``'s own words, and its parameters' order.

    Compiled once per process and sent as is: a row a migration through
    SQLAlchemy's whole statement machinery (cache lookup, parameter
    processing, result set-up), or a compilation per tenant schema, cost as
    much CPU as the rest of a fleet tenant's bookkeeping. ``None``: the
    driver takes names.
    """
    statement, positions = _insert_unqualified(dialect)
    if schema is not None:
        preparer = dialect.identifier_preparer
        name = preparer.quote(TABLE)
        qualified = f"{preparer.quote_schema(schema)}.{name}"
        statement = statement.replace(f"INTO {name} ", f"INTO {qualified} ", 1)
    return statement, positions


def _latest(connection: sa.Connection, schema: str | None) -> dict[str, Entry]:
    if not _exists(connection, schema):
        return {}
    import sqlalchemy as sa

    history = table(schema)
    columns = [c for c in history.c if c.name not in ("id", "applied_at")]
    # Django's SQLite connection already converts DATETIME columns (its
    # converters), which SQLAlchemy's would parse again: take the raw value.
    applied_at = sa.type_coerce(history.c.applied_at, sa.String).label("applied_at")
    rows = connection.execute(sa.select(*columns, applied_at).order_by(history.c.id))
    latest: dict[str, Entry] = {}
    for row in rows:
        values = row._asdict()
        if isinstance(values["applied_at"], str):
            values["applied_at"] = datetime.datetime.fromisoformat(values["applied_at"])
        latest[row.revision] = Entry(**values)
    return latest


def applied_entries(alias: str) -> dict[str, Entry]:
    """Per revision, its last ``apply`` or ``fake`` event, if it is not unapplied since."""
    from . import bridge

    with bridge.sqlalchemy_connection(alias) as connection:
        latest = _latest(connection, None)
    return {rev: entry for rev, entry in latest.items() if entry.event != UNAPPLY}


@dataclass(frozen=True)
class Status:
    """What the history says about one applied migration."""

    migration: OpsMigration
    entry: Entry  # its last apply or fake event
    changed: bool  # its script's code differs from what that event recorded


def _scan(alias: str) -> tuple[dict[str, Status], dict[str, str]]:
    """:func:`status`, and per app the name of its last applied migration."""
    from . import executor, state

    entries = applied_entries(alias)
    if not entries:
        return {}, {}  # nothing recorded: no script imported for nothing
    scripts: OpsScripts = executor.load_scripts()
    applied = scripts.applied(state.read_heads(alias))
    found, last = {}, {}
    for migration in scripts.upgrade_order():
        if migration.revision not in applied:
            continue
        last[migration.app_label] = migration.name
        entry = entries.get(migration.revision)
        if entry is not None:
            is_changed = checksum(migration) != entry.checksum
            found[migration.full_name] = Status(migration, entry, is_changed)
    return found, last


def status(alias: str) -> dict[str, Status]:
    """Per full name (``shop.0002_b``), the applied migrations the history records.

    A migration applied before the history table existed is not in it.
    """
    return _scan(alias)[0]


def check_unchanged(alias: str) -> None:
    """Refuse when an applied script's code changed since it was applied.

    :raises ~django_alembic_ops.errors.ChangedMigration: naming them, and the way to
        accept the change.
    """
    found, last = _scan(alias)
    changed = [status.migration for status in found.values() if status.changed]
    if changed:
        names = ", ".join(migration.full_name for migration in changed)
        fakes = " and ".join(
            f"'python manage.py opsmigrate {app_label} {last[app_label]} --fake'"
            for app_label in dict.fromkeys(migration.app_label for migration in changed)
        )
        raise ChangedMigration(
            f"Applied ops migrations changed since they were applied (their checksum differs "
            f"from {TABLE}): {names}; undo the edit, or record the new code with {fakes}."
        )


def acknowledge(alias: str, app_label: str) -> None:
    """Record the current checksum of ``app_label``'s applied migrations that changed.

    What ``opsmigrate <app_label> <migration> --fake`` does after faking:
    the app's state up to ``migration`` is declared to be what its scripts
    now say.
    """
    changed = [s.migration for s in status(alias).values() if s.changed]
    changed = [migration for migration in changed if migration.app_label == app_label]
    if not changed:
        return
    from . import bridge

    with transaction.atomic(using=alias), bridge.sqlalchemy_connection(alias) as connection:
        for migration in changed:
            record(connection, migration, FAKE, 0.0)

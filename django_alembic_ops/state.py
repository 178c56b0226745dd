"""What is applied on a database, answered without SQLAlchemy or Alembic.

The no-op case — everything applied — is the common one (every deploy,
``post_migrate`` after every test flush). This module answers it from the
version table, read through Django's cursor, and from cached script headers
(:mod:`.headers`); importing it loads neither Alembic nor SQLAlchemy.

It is also the home of the other questions about a database that need no
SQLAlchemy: connecting with a one-line error, and the vendor (which offline
SQL needs without importing the backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, router, transaction

from . import conf, discovery, headers
from .errors import DatabaseUnavailable

#: ENGINE -> ``connection.vendor`` of the backends Django ships. Offline SQL
#: needs only the vendor, and importing a backend also imports its driver
#: (psycopg alone is several MB), which ``--sql`` never uses.
_BUILTIN_VENDORS = {
    "django.db.backends.sqlite3": "sqlite",
    "django.db.backends.postgresql": "postgresql",
    "django.db.backends.mysql": "mysql",
    "django.db.backends.oracle": "oracle",
    "django.contrib.gis.db.backends.spatialite": "sqlite",
    "django.contrib.gis.db.backends.postgis": "postgresql",
    "django.contrib.gis.db.backends.mysql": "mysql",
    "django.contrib.gis.db.backends.oracle": "oracle",
}


def vendor(alias: str) -> str:
    """``connections[alias].vendor``, without importing a built-in backend."""
    engine = connections.settings.get(alias, {}).get("ENGINE")
    # Anything else (an unknown alias too) goes through Django as usual.
    return _BUILTIN_VENDORS.get(engine) or connections[alias].vendor


def ensure_connection(alias: str) -> None:
    """Connect Django's alias, turning failures into a one-line error.

    The message names the alias and the driver's reason, never the settings
    (which hold the password).
    """
    connection = connections[alias]
    try:
        connection.ensure_connection()
    except Exception as exc:
        reason = " ".join(str(exc).split())
        password = connection.settings_dict.get("PASSWORD")
        if password:
            reason = reason.replace(str(password), "********")
        raise DatabaseUnavailable(
            f"Cannot connect to database '{alias}' ({connection.vendor}): {reason}. "
            f"Check DATABASES['{alias}'] and that the server is running."
        ) from None


def quote_pg_identifier(name: str) -> str:
    """``name`` as a PostgreSQL identifier: in double quotes, inner quotes doubled.

    (Django's ``quote_name`` leaves a name that is already quoted as it is and
    doubles nothing: a tenant schema name comes from the data, not from code.)
    """
    return '"' + name.replace('"', '""') + '"'


def read_heads(alias: str, schema: str | None = None) -> tuple[str, ...]:
    """The revisions in the version table (empty when it does not exist yet).

    ``schema``: the version table of that PostgreSQL schema (a tenant's);
    ``None``: the one the connection's ``search_path`` finds.

    Read through Django's cursor: answering "up to date?" needs no SQLAlchemy.
    """
    ensure_connection(alias)
    connection = connections[alias]
    table = conf.get().VERSION_TABLE
    with connection.cursor() as cursor:
        if schema is not None:
            name = f"{quote_pg_identifier(schema)}.{quote_pg_identifier(table)}"
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            if not cursor.fetchone()[0]:
                return ()
        elif not _table_exists(connection, cursor, table):
            return ()
        else:
            name = connection.ops.quote_name(table)
        cursor.execute(f"SELECT version_num FROM {name}")
        return tuple(sorted(row[0] for row in cursor.fetchall()))


def forget_revisions(alias: str, revisions: Sequence[str]) -> None:
    """Delete ``revisions`` from the version table, in one transaction.

    For revisions no script defines (see :func:`.executor.migrate` with
    ``fake``). Alembic's stamp resolves the current heads to scripts first, and
    its ``purge`` empties the whole table (every app's heads), so the rows go
    through Django's cursor, as :func:`read_heads` reads them.
    """
    if not revisions:
        return
    connection = connections[alias]
    table = connection.ops.quote_name(conf.get().VERSION_TABLE)
    placeholders = ", ".join(["%s"] * len(revisions))
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE version_num IN ({placeholders})", list(revisions)
        )


def _table_exists(connection: Any, cursor: Any, table: str) -> bool:
    # Listing every table (Django's introspection) costs more than the rest
    # of the up-to-date check on a database with many tables.
    if connection.vendor == "sqlite":
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
        return cursor.fetchone() is not None
    if connection.vendor == "postgresql":
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [connection.ops.quote_name(table)])
        return bool(cursor.fetchone()[0])
    if connection.vendor == "mysql":
        # One table looked up by name, which MySQL and MariaDB answer without
        # opening the others (SHOW FULL TABLES: 8 ms with 1,000 tables on
        # MariaDB). The name compares case-insensitively there: check it here.
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            [table],
        )
        return any(row[0] == table for row in cursor.fetchall())
    return table in connection.introspection.table_names(cursor)


def up_to_date(database: str, app_label: str | None = None) -> bool:
    """Whether nothing is pending (for ``app_label``, or all apps), answered cheaply.

    Reads script headers (cached, see :mod:`.headers`) and the version table
    through Django's cursor; imports no script. ``False`` means "pending, or
    cannot tell": callers then plan with the full Alembic load.
    """
    ops_apps = discovery.ops_apps()
    if app_label is not None:
        discovery.require_ops_app(app_label)
    current = read_heads(database)
    if not current:
        return False  # a new database: skip reading headers, there is work
    graph = headers.load(ops_apps)
    if graph is None:
        return False
    allowed = [app.label for app in ops_apps if router.allow_migrate(database, app.label)]
    if app_label is not None:
        if app_label not in allowed:
            return False
        allowed = [app_label]
    if not any(graph.by_app.get(label) for label in allowed):
        return False
    complete = graph.complete_heads(allowed)
    if complete is None:
        return False
    if any(head not in graph.headers for head in current):
        return False
    if app_label is None:
        return set(current) == complete
    return complete <= graph.ancestors(current)

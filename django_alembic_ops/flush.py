"""Django's flush empties the tables ops migrations created, with Django's own.

Django's flush (the end of every ``TransactionTestCase`` and
``transactional_db`` test, ``manage.py flush``) empties the tables of managed
models only (``introspection.django_table_names``). A foreign key between one
of those and an ops table then blocks it (PostgreSQL refuses to ``TRUNCATE``
a table another table references), and rows in ops tables leak from one test
into the next. The package's ``flush`` and ``sqlflush`` commands, which
``TransactionTestCase`` calls too, run Django's inside
:func:`including_ops_tables`: the ops tables go into Django's statement
(PostgreSQL: one ``TRUNCATE a, b, c``).

Which tables are ops-owned is known, never guessed from the database:

- in a test database (see :mod:`.testdb`) every table came from the
  migrations: every table that is not Django's own, a version table
  (``django_migrations``, ``VERSION_TABLE``) or a database cache table (which
  ``createcachetable`` made). On PostgreSQL, tables of extensions (PostGIS's
  ``spatial_ref_sys``), foreign tables and partitions (emptied with their
  parent) are left out;
- in any other database only the tables of the apps' autogenerate targets:
  the tables of an app's ``Meta.managed = False`` models (with their
  many-to-many join tables), or of its ``target_metadata``, for each app with
  ops migrations that the routers allow there. A table only a script creates
  (no model, no ``target_metadata``) is not emptied there, and a table another
  service keeps in the same database is never touched.

``serialized_rollback = True`` brings rows back the way Django does for its
own: :func:`prepare_test_database` (a ``post_migrate`` receiver) extends the
test database's serialization, taken once after it is built, with the rows
of its ops tables, and loads them again with Django's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, router, transaction

from . import conf, discovery, history, testdb

if TYPE_CHECKING:
    from django.apps import AppConfig
    from django.db.backends.base.base import BaseDatabaseWrapper

#: Django's own version table (``MigrationRecorder.Migration``'s ``db_table``).
DJANGO_MIGRATIONS_TABLE = "django_migrations"

# Every table a flush may empty on PostgreSQL, with what deciding how to
# empty it needs (see _pg_emptying): whether it has rows, the table it
# references (one row per foreign key), and whether it is a plain table with
# no trigger or rule at all. One round trip for the whole flush.
_PG_TABLES = """
SELECT c.relname,
       c.relkind = 'p' OR pg_catalog.pg_relation_size(c.oid) > 0,
       r.relname,
       c.relkind = 'r' AND NOT c.relhastriggers AND NOT c.relhasrules
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = c.oid AND k.contype = 'f'
LEFT JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
WHERE c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND pg_catalog.pg_table_is_visible(c.oid)
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
"""

#: ``(table, has rows, a table it references or None, no trigger or rule)``,
#: from :data:`_PG_TABLES`.
PgTableRow = tuple[str, bool, "str | None", bool]


def kept_tables() -> set[str]:
    """Tables a flush never empties: the version and history tables, database cache tables."""
    kept = {DJANGO_MIGRATIONS_TABLE, conf.get().VERSION_TABLE, history.TABLE}
    for cache in getattr(settings, "CACHES", {}).values():
        if cache.get("BACKEND") == "django.core.cache.backends.db.DatabaseCache":
            kept.add(cache.get("LOCATION", ""))
    return kept


def _pg_tables(connection: BaseDatabaseWrapper) -> list[PgTableRow]:
    with connection.cursor() as cursor:
        cursor.execute(_PG_TABLES)
        return [tuple(row) for row in cursor.fetchall()]


def _table_names(
    connection: BaseDatabaseWrapper, pg_rows: list[PgTableRow] | None = None
) -> list[str]:
    """The tables a flush may empty: visible, not views, not another owner's."""
    if connection.vendor == "postgresql":
        rows = _pg_tables(connection) if pg_rows is None else pg_rows
        return list(dict.fromkeys(row[0] for row in rows))
    with connection.cursor() as cursor:
        names: list[str] = connection.introspection.table_names(cursor, include_views=False)
        return names


def target_tables(alias: str) -> set[str]:
    """The tables of the autogenerate targets of the apps with ops migrations on ``alias``.

    What ops owns by definition (see :mod:`.autogenerate.target`): an app's
    ``target_metadata`` tables if it defines one, else the tables of its
    ``Meta.managed = False`` models and their many-to-many join tables.
    """
    ops_apps = discovery.ops_apps()
    if not ops_apps:
        return set()  # and SQLAlchemy stays unimported
    from .autogenerate.metadata import EXTERNAL, model_tables
    from .autogenerate.target import declared_metadata, unmanaged_models

    tables: set[str] = set()
    for app in ops_apps:
        if not router.allow_migrate(alias, app.label):
            continue
        declared = declared_metadata(app.label)
        if declared is not None:
            # Django's flush reaches the tables on the search path only.
            tables.update(
                t.name
                for t in declared.tables.values()
                if not t.info.get(EXTERNAL) and not t.schema
            )
        else:
            tables.update(m._meta.db_table for m in model_tables(unmanaged_models(app.label)))
    return tables


def ops_tables(
    connection: BaseDatabaseWrapper,
    django_tables: Iterable[str] = (),
    *,
    subset: bool = False,
    pg_rows: list[PgTableRow] | None = None,
) -> list[str]:
    """The existing ops-owned tables of ``connection`` that a flush empties.

    :param django_tables: the tables Django's flush empties anyway (left out).
    :param subset: Django flushes only some apps (a test case's
        ``available_apps``): only their apps' target tables go with them.
    :param pg_rows: :data:`_PG_TABLES`' rows, when the caller has read them.
    """
    existing = _table_names(connection, pg_rows)
    skip = kept_tables() | set(django_tables)
    if testdb.in_test_environment() and not subset:
        if not django_tables:
            # Django's flush passes every table of its own that exists (the
            # same models loop, ~1.5 ms with auth's tables): not asked twice.
            skip |= set(connection.introspection.django_table_names(include_views=False))
        return [name for name in existing if name not in skip]
    owned = target_tables(connection.alias)
    return [name for name in existing if name in owned and name not in skip]


@contextmanager
def including_ops_tables(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """While the block runs, Django's flush SQL for ``connection`` also empties ops tables.

    Django's ``flush`` and ``sqlflush`` build their statements with
    ``connection.ops.sql_flush(style, tables, ...)``; the ops tables join
    ``tables`` there, so that each backend's own SQL empties all of them
    together: PostgreSQL one ``TRUNCATE``, MySQL with foreign-key checks off.
    On SQLite, where the foreign keys Alembic creates are checked at once,
    ``PRAGMA defer_foreign_keys`` moves every check to the end of Django's
    flush transaction, when all the tables are empty.
    """
    original: Callable[..., list[str]] = connection.ops.sql_flush

    def sql_flush(style: Any, tables: Sequence[str], **kwargs: Any) -> list[str]:
        # TransactionTestCase allows CASCADE exactly when it flushes only its
        # available_apps (its comment says so); apps.get_app_configs() are those then.
        subset = kwargs.get("allow_cascade", False)
        deleted: list[str] = []
        if connection.vendor == "postgresql":
            pg_rows = _pg_tables(connection)
            extra = ops_tables(connection, tables, subset=subset, pg_rows=pg_rows)
            if extra and not kwargs.get("reset_sequences"):
                extra, deleted = _pg_emptying(extra, tables, pg_rows)
        else:
            extra = ops_tables(connection, tables, subset=subset)
            if extra and connection.vendor in _ASKED and not kwargs.get("reset_sequences"):
                extra = _with_rows(connection, extra)
        statements = original(style, [*extra, *tables], **kwargs)
        if extra and statements and connection.vendor == "sqlite":
            statements = ["PRAGMA defer_foreign_keys = ON;", *statements]
        quote = connection.ops.quote_name
        return [*statements, *(f"DELETE FROM {quote(table)};" for table in deleted)]

    # On this connection object only, which belongs to this thread.
    connection.ops.sql_flush = sql_flush  # type: ignore[method-assign]
    try:
        yield
    finally:
        del connection.ops.sql_flush


def _pg_emptying(
    ops: Sequence[str], django_tables: Sequence[str], pg_rows: list[PgTableRow]
) -> tuple[list[str], list[str]]:
    """How a PostgreSQL flush empties ops tables: ``(truncated, deleted)``.

    ``TRUNCATE`` gives every table and index new files, empty or not (about
    1.5 ms a table here), so emptying every ops table that way would cost more
    than the rest of the flush. A table whose main file has no page has no row
    (a row written, even uncommitted, extends it; a ``TRUNCATE`` empties it),
    so the file size answers without reading the table or planning a query
    over every table (a partitioned table keeps its rows in its partitions: it
    always counts as having rows). An empty table must still be truncated when
    it references a table that is truncated (PostgreSQL refuses otherwise).

    A table with rows and no trigger or rule at all - so no foreign key either
    way, whose checks are triggers - is emptied by ``DELETE`` instead: a test
    leaves a few rows, which a ``DELETE`` removes in a fraction of
    ``TRUNCATE``'s cost, and with no trigger nothing else sees the difference.
    Its pages stay until vacuumed, so it is deleted from again at the next
    flush: still cheaper than one ``TRUNCATE``.
    """
    wanted = set(ops)
    found = [row for row in pg_rows if row[0] in wanted]
    chosen = {table for table, has_pages, _, _ in found if has_pages}
    references = [(table, referenced) for table, _, referenced, _ in found if referenced]
    truncated = chosen | set(django_tables)
    grew = True
    while grew:  # every table referencing a truncated one is truncated too
        referrers = {table for table, referenced in references if referenced in truncated}
        grew = not referrers <= truncated
        truncated |= referrers
        chosen |= referrers
    plain = {table for table, _, _, no_triggers in found if no_triggers}
    return (
        [table for table in ops if table in chosen and table not in plain],
        [table for table in ops if table in chosen and table in plain],
    )


#: Under SQLite's default limit of 500 terms in one compound SELECT.
_CHUNK = 400
#: The backends whose flush is asked which ops tables have a row.
_ASKED = ("sqlite", "mysql")


def _with_rows(connection: BaseDatabaseWrapper, ops: Sequence[str]) -> list[str]:
    """The ops tables of a SQLite or MySQL database that have a row.

    Django's flush empties each table with its own ``DELETE`` there, which
    costs even when the table is empty (SQLite ~50 us, MariaDB ~80 us: 50
    and 80 ms a flush with 1,000 ops tables); an ``EXISTS`` reads one page
    (MariaDB: 30 ms for 1,000). An empty table needs no ``DELETE``, and no
    foreign-key check can fail on it (SQLite defers the checks to the end of
    the flush, Django's MySQL flush turns them off).
    """
    quote = connection.ops.quote_name
    dual = " FROM DUAL" if connection.vendor == "mysql" else ""
    found: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ops), _CHUNK):
            chunk = ops[start : start + _CHUNK]
            cursor.execute(
                " UNION ALL ".join(
                    f"SELECT %s{dual} WHERE EXISTS (SELECT 1 FROM {quote(table)})"
                    for table in chunk
                ),
                list(chunk),
            )
            found.update(row[0] for row in cursor.fetchall())
    return [table for table in ops if table in found]


# -- serialized_rollback ------------------------------------------------------------


@dataclass(frozen=True)
class TableRows:
    """The rows of one table, as read by :func:`read_rows` (``data``: backend-specific)."""

    table: str
    columns: tuple[str, ...]
    data: Any


def _insertable_columns(connection: BaseDatabaseWrapper, cursor: Any, table: str) -> list[str]:
    """The columns a row can be written to: generated columns are computed."""
    if connection.vendor == "postgresql":
        cursor.execute(
            "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = %s::regclass "
            "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            [connection.ops.quote_name(table)],
        )
        return [row[0] for row in cursor.fetchall()]
    if connection.vendor == "sqlite":
        cursor.execute(f"PRAGMA table_xinfo({connection.ops.quote_name(table)})")
        return [row[1] for row in cursor.fetchall() if row[6] == 0]  # hidden: 2, 3 generated
    return [info.name for info in connection.introspection.get_table_description(cursor, table)]


def read_rows(connection: BaseDatabaseWrapper, tables: Iterable[str]) -> list[TableRows]:
    """The rows of each of ``tables`` that has any.

    On PostgreSQL as one JSON document per table (``json_agg``), which
    PostgreSQL reads back into the same types whatever the driver makes of
    them; elsewhere as the driver's values.
    """
    quote = connection.ops.quote_name
    found: list[TableRows] = []
    with connection.cursor() as cursor:
        for table in tables:
            if connection.vendor == "postgresql":
                cursor.execute(f"SELECT json_agg(t)::text FROM {quote(table)} t")
                data: Any = cursor.fetchone()[0]
                if data is None:
                    continue
                columns = _insertable_columns(connection, cursor, table)
            else:
                columns = _insertable_columns(connection, cursor, table)
                listed = ", ".join(quote(column) for column in columns)
                cursor.execute(f"SELECT {listed} FROM {quote(table)}")
                data = cursor.fetchall()
                if not data:
                    continue
            found.append(TableRows(table, tuple(columns), data))
    return found


def _referenced_first(
    connection: BaseDatabaseWrapper, snapshot: list[TableRows]
) -> list[TableRows]:
    """``snapshot`` ordered so that a table comes after the tables it references."""
    by_table = {rows.table: rows for rows in snapshot}
    with connection.cursor() as cursor:
        needs = {
            table: {
                referenced
                # (field, table), plus on_delete from Django 6.0 on.
                for _, referenced, *_ in connection.introspection.get_relations(
                    cursor, table
                ).values()
                if referenced in by_table and referenced != table
            }
            for table in by_table
        }
    ordered: list[TableRows] = []
    while needs:
        ready = sorted(table for table, parents in needs.items() if not parents & needs.keys())
        ready = ready or sorted(needs)  # a cycle: no order satisfies it
        for table in ready:
            ordered.append(by_table[table])
            del needs[table]
    return ordered


def write_rows(connection: BaseDatabaseWrapper, snapshot: list[TableRows]) -> None:
    """Insert the rows of :func:`read_rows` again (into empty tables)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for rows in _referenced_first(connection, snapshot):
            table = quote(rows.table)
            listed = ", ".join(quote(column) for column in rows.columns)
            if connection.vendor == "postgresql":
                # OVERRIDING SYSTEM VALUE: identity columns GENERATED ALWAYS too.
                cursor.execute(
                    f"INSERT INTO {table} ({listed}) OVERRIDING SYSTEM VALUE "
                    f"SELECT {listed} FROM json_populate_recordset(NULL::{table}, %s::json)",
                    [rows.data],
                )
            else:
                placeholders = ", ".join(["%s"] * len(rows.columns))
                cursor.executemany(
                    f"INSERT INTO {table} ({listed}) VALUES ({placeholders})", rows.data
                )


def _delete_rows(connection: BaseDatabaseWrapper, snapshot: list[TableRows]) -> None:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for rows in reversed(_referenced_first(connection, snapshot)):
            cursor.execute(f"DELETE FROM {quote(rows.table)}")


def _deserialize(connection: BaseDatabaseWrapper, data: str, snapshot: list[TableRows]) -> None:
    """Django's ``deserialize_db_from_string()``, with the ops rows of ``snapshot``.

    Django's method checks the foreign keys before it returns, so the ops
    rows must be in the same transaction, before that check: after Django's
    rows, which the ops tables' (not deferrable) foreign keys may point at,
    and before Django's deferred ones are checked.
    """
    from django.core import serializers

    alias = connection.alias
    table_names: set[str] = set()
    with transaction.atomic(using=alias):
        # The test database still has its first rows until a test flushes it.
        _delete_rows(connection, snapshot)
        with connection.constraint_checks_disabled():
            for obj in serializers.deserialize("json", StringIO(data), using=alias):
                obj.save()
                table_names.add(obj.object.__class__._meta.db_table)
            write_rows(connection, snapshot)
        connection.check_constraints(table_names=table_names | {r.table for r in snapshot})


#: Marks a creation object whose (de)serialization includes the ops tables.
_PREPARED = "_django_alembic_ops_serializes"


def prepare_test_database(sender: AppConfig, *, using: str, **kwargs: Any) -> None:
    """``post_migrate``: make ``serialized_rollback`` bring back the ops tables' rows too.

    Django builds a test database with ``migrate`` and then serializes its
    rows (``creation.serialize_db_to_string()``) for ``serialized_rollback``;
    the first ``post_migrate`` on a test database wraps that method, and its
    counterpart, on this connection's creation object. Outside tests, and on
    every later ``post_migrate`` (one per flush), this returns at once.
    """
    if not testdb.in_test_environment():
        return
    creation = connections[using].creation
    if getattr(creation, _PREPARED, False):
        return
    serialize = creation.serialize_db_to_string
    deserialize = creation.deserialize_db_from_string
    snapshot: list[TableRows] = []

    def serialize_db_to_string() -> str:
        data: str = serialize()
        snapshot[:] = read_rows(creation.connection, ops_tables(creation.connection))
        return data

    def deserialize_db_from_string(data: str) -> None:
        if snapshot:
            _deserialize(creation.connection, data, snapshot)
        else:
            deserialize(data)  # nothing of ours: Django's own, untouched

    creation.serialize_db_to_string = serialize_db_to_string  # type: ignore[method-assign]
    creation.deserialize_db_from_string = deserialize_db_from_string  # type: ignore[method-assign]
    setattr(creation, _PREPARED, True)

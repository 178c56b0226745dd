"""SQLite's foreign-key check before a migration commits, over the tables it could have broken.

On SQLite each migration runs with foreign-key enforcement off (see
:mod:`.runner`), so it is checked before it commits, as Django's schema
editor does. Django checks the whole database (``PRAGMA foreign_key_check``),
which reads every row of every table that has a foreign key: once per
migration, on a database with data, that grows with the data, not with the
migration (measured: 1.4 s of a 300-migration history over 60,000 rows).

A new violation can only be in a table the migration wrote to, or in a
table referencing one whose rows it deleted or changed, or that it dropped,
altered or rebuilt. So while the migration runs, SQLite's authorizer — which
SQLite calls when it compiles each statement, including the statements of
the triggers it fires — collects the tables that are inserted into, updated,
deleted from, created, dropped or altered. The check then runs Django's
``check_constraints()`` on those that are tables afterwards and, when rows
may have gone from one (anything but a new table: an ``INSERT OR REPLACE``
deletes rows too), on the tables whose foreign keys reference it: only then
are other tables' foreign keys read. A table renamed away (its new name
unknown), or a write outside the main schema (a temporary or attached
table), checks the whole database, as before (Alembic's batch copy
``_alembic_tmp_<table>``, renamed to the table it dropped, is known). The
version and history tables, which every migration writes and nothing
references, are left out.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable
from typing import Any

_WRITES = frozenset(
    {
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_ALTER_TABLE,
    }
)
#: What cannot leave a row referencing a table without its parent row. Not an
#: insert: ``INSERT OR REPLACE`` deletes the rows it conflicts with, and SQLite's
#: authorizer reports it as a plain insert.
_ADDS = frozenset({sqlite3.SQLITE_CREATE_TABLE})
_BATCH_COPY_PREFIX = "_alembic_tmp_"  # Alembic's batch copy (see sqlite_impl)


def _allow(*_: Any) -> int:
    return sqlite3.SQLITE_OK


class WrittenTables:
    """The tables the statements on one SQLite connection write, between start and stop."""

    def __init__(self, connection: Any, ignore: Iterable[str] = ()) -> None:
        """``connection``: Django's connection wrapper (SQLite); ``ignore``: tables left out."""
        self.connection = connection
        self.ignore = {name.lower() for name in ignore}
        self.written: set[str] = set()  # lower case: SQLite's names are case-insensitive
        self.removing: set[str] = set()  # rows may have gone: referencing tables are checked too
        self.altered: set[str] = set()
        self.everywhere = False  # a write outside the main schema: check everything

    def start(self) -> None:
        # Installing an authorizer expires every prepared statement: cached ones
        # are compiled again, so they are seen too.
        self.connection.connection.set_authorizer(self._authorize)

    def stop(self) -> None:
        if sys.version_info >= (3, 11):
            self.connection.connection.set_authorizer(None)
        else:  # None disables an authorizer from Python 3.11; before, it denies everything
            self.connection.connection.set_authorizer(_allow)

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, schema: str | None, _: Any
    ) -> int:
        if action in _WRITES:
            if action == sqlite3.SQLITE_ALTER_TABLE:
                schema, table = arg1, arg2  # SQLite's order for this action
            else:
                table = arg1
            if table is None:
                return sqlite3.SQLITE_OK
            name = table.lower()
            if name.startswith("sqlite_") or name in self.ignore:
                pass
            elif schema != "main":
                self.everywhere = True
            else:
                self.written.add(name)
                if action not in _ADDS:
                    self.removing.add(name)
                if action == sqlite3.SQLITE_ALTER_TABLE:
                    self.altered.add(name)
        return sqlite3.SQLITE_OK

    def check(self) -> None:
        """Django's ``check_constraints()`` on the tables a violation can be in.

        Called after :meth:`stop`. Raises what Django raises for the first
        violation found (``IntegrityError``).
        """
        if not (self.written or self.everywhere):
            return
        with self.connection.cursor() as cursor:
            # Not every name written is a table now: dropped, renamed, or a view
            # (dropping a view, or writing through its triggers, is reported as a
            # delete from it).
            existing = self._existing(cursor, self.written)
            if self.everywhere or any(self._renamed_away(name, existing) for name in self.altered):
                self.connection.check_constraints()
                return
            tables = set(existing.values())
            if self.removing:
                tables |= self._referencing(cursor, self.removing)
        if tables:
            self.connection.check_constraints(table_names=sorted(tables))

    @staticmethod
    def _renamed_away(name: str, existing: dict[str, str]) -> bool:
        """Whether ``name`` was renamed to a table the check does not know.

        Alembic's batch mode renames its copy ``_alembic_tmp_<table>`` to
        ``<table>``, which it dropped (so wrote) first.
        """
        if name in existing:
            return False  # altered in place (a column added or dropped)
        target = name.removeprefix(_BATCH_COPY_PREFIX)
        return target == name or target not in existing

    @staticmethod
    def _existing(cursor: Any, names: set[str]) -> dict[str, str]:
        """Lower-case name -> name, of those of ``names`` that are tables now."""
        if not names:
            return {}
        marks = ", ".join(["%s"] * len(names))
        cursor.execute(
            "SELECT name FROM sqlite_master "
            f"WHERE type = 'table' AND name COLLATE NOCASE IN ({marks})",
            sorted(names),
        )
        return {name.lower(): name for (name,) in cursor.fetchall()}

    @staticmethod
    def _referencing(cursor: Any, names: set[str]) -> set[str]:
        """The tables with a foreign key to one of ``names`` (SQLite 3.16+)."""
        # The text of the CREATE TABLE names the referenced table (quoted or
        # not): only those are asked for their foreign keys.
        mentions = " OR ".join(["instr(lower(m.sql), %s) > 0"] * len(names))
        cursor.execute(
            'SELECT m.name, p."table" FROM sqlite_master AS m '
            "JOIN pragma_foreign_key_list(m.name) AS p "
            f"WHERE m.type = 'table' AND ({mentions})",
            sorted(names),
        )
        return {table for table, referenced in cursor.fetchall() if referenced.lower() in names}

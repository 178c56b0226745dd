"""Alembic's SQLite implementation, with a table rebuild that views survive.

``batch_alter_table`` rebuilds a SQLite table: it creates
``_alembic_tmp_<table>``, copies the rows, drops ``<table>`` and renames the
copy into place. Since SQLite 3.26, with ``legacy_alter_table`` off (Django
turns it off on every connection), a rename re-parses every view and trigger
of the schema, and fails on those that read the table just dropped: "error
in view ...: no such table". The legacy rename leaves views and triggers
alone; they name the table, so they read the rebuilt one; every view is then
compiled, so one that reads a column the batch dropped still fails the
migration, as the modern rename would have. Only that rename runs in legacy
mode: a user's ``op.rename_table()`` keeps SQLite's modern behaviour, which
also renames the table in views, triggers and foreign keys.
"""

from __future__ import annotations

from typing import Any

from alembic.ddl.sqlite import SQLiteImpl
from alembic.runtime.migration import MigrationContext

_BATCH_COPY_PREFIX = "_alembic_tmp_"  # alembic.operations.batch.ApplyBatchImpl's


class DjangoSQLiteImpl(SQLiteImpl):
    # No ``__dialect__``: Alembic's registry (used by every other Alembic
    # context in the process) keeps its own SQLiteImpl.

    def rename_table(self, old_table_name: str, new_table_name: Any, schema: Any = None) -> None:
        if old_table_name != f"{_BATCH_COPY_PREFIX}{new_table_name}":
            super().rename_table(old_table_name, new_table_name, schema=schema)
            return
        # Also written to --sql output, so the DBA's script behaves the same.
        self._exec("PRAGMA legacy_alter_table = ON")
        try:
            super().rename_table(old_table_name, new_table_name, schema=schema)
        finally:
            self._exec("PRAGMA legacy_alter_table = OFF")
        if not self.as_sql:
            self._check_views()

    def _check_views(self) -> None:
        """Fail now, not at the first query, on a view the rebuild broke.

        The modern rename would have refused a view that reads a column the
        batch dropped; the legacy one does not look. Selecting from a view
        compiles it. (Triggers are compiled only when they fire.)
        """
        assert self.connection is not None
        names = self.connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'view'"
        ).scalars()
        quote = self.dialect.identifier_preparer.quote
        for name in list(names):
            self.connection.exec_driver_sql(f"SELECT * FROM {quote(name)} LIMIT 0").close()


def adapt(context: MigrationContext) -> None:
    """Use :class:`DjangoSQLiteImpl` for ``context`` when it runs on SQLite."""
    if type(context.impl) is SQLiteImpl:
        # The subclass adds no state; Alembic offers no hook to choose the impl.
        context.impl.__class__ = DjangoSQLiteImpl

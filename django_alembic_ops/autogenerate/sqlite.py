"""SQLite: keep what a ``batch_alter_table`` rebuild would lose.

SQLite alters most things by rebuilding the table: Alembic reflects it,
creates a copy with the change, copies the rows and renames. Reflection
does not see everything Django puts in a table, and the copy silently
loses it:

- unnamed CHECK constraints (``PositiveIntegerField``'s ``"qty" >= 0``,
  ``JSONField``'s ``JSON_VALID``) - Alembic leaves them out on purpose and
  asks for them in ``table_args``;
- ``AUTOINCREMENT`` on the primary key (``sqlite_autoincrement``);
- ``UNIQUE`` written inline after a parenthesised type, as Django writes
  ``"email" varchar(254) NOT NULL UNIQUE`` (SQLAlchemy's parser misses it).

So every batch block on an existing table restates them from the state the
block must produce (the target for ``upgrade()``, the database as it is for
``downgrade()``), and forces a rebuild when only they change. Batch mode also
needs a name for every constraint it adds: unnamed ones get Django's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.operations import ops
from django.db.backends.base.base import BaseDatabaseWrapper
from sqlalchemy.engine import Connection

from .render import BatchTableOps

__all__ = [
    "TableState",
    "foreign_key_signature",
    "hidden_uniques",
    "optionless_foreign_keys",
    "prepare",
    "prepare_reverse",
]


def _normalised(sqltext: str) -> str:
    return re.sub(r'[\s()"`\[\]]', "", sqltext).lower()


@dataclass(frozen=True)
class TableState:
    """What a rebuilt table must keep that reflection does not carry."""

    checks: tuple[str, ...] = ()  # SQL of the unnamed CHECK constraints
    autoincrement: bool = False
    uniques: tuple[tuple[str, ...], ...] = ()  # unique column sets to restate
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def check_set(self) -> frozenset[str]:
        return frozenset(_normalised(check) for check in self.checks)


def _table_sql(connection: Connection, table: str) -> str:
    sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    return str(sql or "")


def hidden_uniques(connection: Connection, table: str) -> set[tuple[str, ...]]:
    """Unique column sets SQLite has but SQLAlchemy's reflection does not report."""
    quoted = '"' + table.replace('"', '""') + '"'
    found: set[tuple[str, ...]] = set()
    for row in connection.exec_driver_sql(f"PRAGMA index_list({quoted})").fetchall():
        name, origin = row[1], row[3]
        if origin != "u":
            continue
        index = '"' + str(name).replace('"', '""') + '"'
        columns = connection.exec_driver_sql(f"PRAGMA index_info({index})").fetchall()
        found.add(tuple(str(c[2]) for c in columns))
    reflected = {
        tuple(uc["column_names"]) for uc in sa.inspect(connection).get_unique_constraints(table)
    }
    return found - reflected


ForeignKeySignature = tuple[tuple[str, ...], str, tuple[str, ...]]


def foreign_key_signature(constraint: sa.ForeignKeyConstraint) -> ForeignKeySignature:
    """(columns, referred table, referred columns) of a foreign key."""
    targets = [element.target_fullname.rsplit(".", 1) for element in constraint.elements]
    return (
        tuple(str(key) for key in constraint.column_keys),
        targets[0][0] if targets else "",
        tuple(column for _, column in targets),
    )


def optionless_foreign_keys(connection: Connection, table: str) -> set[ForeignKeySignature]:
    """Foreign keys whose options SQLite's reflection cannot read.

    SQLAlchemy reads ``DEFERRABLE``/``ON DELETE`` from a table-level
    ``FOREIGN KEY`` clause only; Django writes ``REFERENCES ... DEFERRABLE
    INITIALLY DEFERRED`` inline, which comes back without options.
    """
    return {
        (
            tuple(fk["constrained_columns"]),
            fk["referred_table"],
            tuple(fk["referred_columns"]),
        )
        for fk in sa.inspect(connection).get_foreign_keys(table)
        if not fk.get("options")
    }


def database_state(connection: Connection, table: str) -> TableState:
    inspector = sa.inspect(connection)
    checks = tuple(
        str(check["sqltext"])
        for check in inspector.get_check_constraints(table)
        if not check.get("name")
    )
    autoincrement = bool(re.search(r"\bAUTOINCREMENT\b", _table_sql(connection, table), re.I))
    return TableState(checks, autoincrement)


def target_state(table: sa.Table, hidden: Iterable[tuple[str, ...]]) -> TableState:
    checks = tuple(
        str(constraint.sqltext)
        for constraint in table.constraints
        if isinstance(constraint, sa.CheckConstraint)
        and not constraint.name
        and not getattr(constraint, "_type_bound", False)
    )
    kept = {
        tuple(c.name for c in constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint) and not constraint.name
    }
    autoincrement = bool(table.dialect_options["sqlite"].get("autoincrement"))
    return TableState(checks, autoincrement, tuple(sorted(set(hidden) & kept)))


def _django_name(
    connection: BaseDatabaseWrapper, table: str, columns: list[str], suffix: str
) -> str:
    editor: Any = connection.schema_editor(collect_sql=True, atomic=False)
    return str(editor._create_index_name(table, columns, suffix=suffix))


def _name_constraints(
    op: ops.ModifyTableOps, connection: BaseDatabaseWrapper, notes: list[str]
) -> list[ops.MigrateOperation]:
    result: list[ops.MigrateOperation] = []
    for sub in op.ops:
        if isinstance(sub, ops.CreateForeignKeyOp) and not sub.constraint_name:
            suffix = f"_fk_{sub.referent_table}_{sub.remote_cols[0]}"
            sub.constraint_name = _django_name(
                connection, sub.source_table, list(sub.local_cols), suffix
            )
        elif isinstance(sub, ops.CreateUniqueConstraintOp) and not sub.constraint_name:
            sub.constraint_name = _django_name(
                connection, sub.table_name, list(sub.columns), "_uniq"
            )
        elif isinstance(sub, ops.DropConstraintOp) and not sub.constraint_name:
            notes.append(
                f"{op.table_name}: an unnamed {sub.constraint_type or 'constraint'} cannot be "
                "dropped by batch_alter_table on SQLite; not rendered - drop it by hand "
                "(e.g. rebuild the table with batch_alter_table(copy_from=...))."
            )
            continue
        result.append(sub)
    return result


def _batch(
    op: ops.ModifyTableOps,
    before: TableState,
    after: TableState,
    sub_ops: list[ops.MigrateOperation],
) -> BatchTableOps | None:
    # Restated constraints only matter when the table is rebuilt anyway,
    # except when they are what changed.
    rebuild = before.check_set != after.check_set or before.autoincrement != after.autoincrement
    if not sub_ops and not rebuild:
        return None
    table_args = [f"sa.CheckConstraint({check!r})" for check in after.checks]
    table_args += [
        "sa.UniqueConstraint(" + ", ".join(repr(c) for c in columns) + ")"
        for columns in after.uniques
    ]
    return BatchTableOps(
        op.table_name,
        sub_ops,
        schema=op.schema,
        recreate="always" if rebuild else "auto",
        table_args=table_args,
        table_kwargs={"sqlite_autoincrement": True} if after.autoincrement else {},
    )


def _apply(
    container: ops.OpContainer,
    tables: set[str],
    before: dict[str, TableState],
    after: dict[str, TableState],
    connection: BaseDatabaseWrapper,
    notes: list[str],
) -> None:
    result: list[ops.MigrateOperation] = []
    seen: set[str] = set()
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps) and op.table_name in tables:
            seen.add(op.table_name)
            sub_ops = _name_constraints(op, connection, notes)
            batch = _batch(op, before[op.table_name], after[op.table_name], sub_ops)
            if batch is not None:
                result.append(batch)
        else:
            result.append(op)
    for name in sorted(tables - seen):
        batch = _batch(ops.ModifyTableOps(name, []), before[name], after[name], [])
        if batch is not None:
            result.append(batch)
    container.ops = result


def prepare(
    upgrade_ops: ops.UpgradeOps,
    metadata: sa.MetaData,
    sa_connection: Connection,
    connection: BaseDatabaseWrapper,
    hidden: dict[str, set[tuple[str, ...]]],
    notes: list[str],
) -> dict[str, TableState]:
    """Turn the changes to the existing tables (the keys of ``hidden``) into batch blocks.

    ``hidden`` holds each table's :func:`hidden_uniques`. Returns the
    database state of each table, for :func:`prepare_reverse`.
    """
    tables = set(hidden)
    before = {name: database_state(sa_connection, name) for name in tables}
    after = {name: target_state(metadata.tables[name], hidden[name]) for name in tables}
    _apply(upgrade_ops, tables, before, after, connection, notes)
    return before


def prepare_reverse(
    downgrade_ops: ops.DowngradeOps,
    metadata: sa.MetaData,
    database: dict[str, TableState],
    connection: BaseDatabaseWrapper,
    notes: list[str],
) -> None:
    """The same for ``downgrade()``: blocks restore the database as it is now."""
    tables = set(database)
    after_upgrade = {name: target_state(metadata.tables[name], ()) for name in tables}
    _apply(downgrade_ops, tables, after_upgrade, database, connection, notes)

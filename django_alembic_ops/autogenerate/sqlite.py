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
  ``"email" varchar(254) NOT NULL UNIQUE`` (SQLAlchemy's parser misses it);
- indexes on expressions (not reflected at all) and the ``DESC`` of an
  index column (reflected as ascending).

So every batch block on an existing table restates the constraints from the
state the block must produce (the target for ``upgrade()``, the database as
it is for ``downgrade()``), and forces a rebuild when only they change.
Index operations are kept out of batch blocks (a rebuild cannot create an
index with a ``DESC`` column), and the indexes a rebuild would lose are set
aside before it and re-created after it from their exact SQL.

Batch mode also needs a name for every constraint it adds or drops: added
ones get Django's name; an unnamed one cannot be dropped, which is noted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ClauseElement

from .render import BatchTableOps, DropTemporaryDefaultOp

__all__ = [
    "ForeignKeySignature",
    "RestoreIndexOp",
    "SetAsideIndexOp",
    "TableState",
    "database_state",
    "expression_indexes",
    "is_expression_index",
    "foreign_key_signature",
    "hidden_uniques",
    "optionless_foreign_keys",
    "prepare",
    "rebuilds",
    "target_state",
]


class SetAsideIndexOp(ops.DropIndexOp):
    """Drop an index a rebuild would copy wrongly; :class:`RestoreIndexOp` brings it back."""

    is_change = False  # part of a rebuild, not a change to report


class RestoreIndexOp(ops.ExecuteSQLOp):
    """Re-create, from its exact SQL, an index a table rebuild dropped.

    ``restores``: the index is not set aside around a rebuild but brought
    back in ``downgrade()`` (other backends need it too), in place of
    ``replaces``, a ``create_index`` from reflection, which lost ``DESC``
    or the index's expressions.
    """

    is_change = False

    def __init__(
        self, sqltext: str, *, replaces: ops.CreateIndexOp | None = None, restores: bool = False
    ) -> None:
        super().__init__(sqltext)
        self.replaces = replaces
        self.restores = restores or replaces is not None


@renderers.dispatch_for(RestoreIndexOp)
def _render_restore_index(autogen_context: AutogenContext, op: RestoreIndexOp) -> str:
    sql = str(op.sqltext)
    if ":" in sql:  # a plain string would be text() with bind parameters
        escaped = re.sub(r"(?<![:\w\\]):(?=\w)", r"\\:", sql)
        return f"op.execute(sa.text({escaped!r}))"
    return f"op.execute({sql!r})"


def _normalised(sqltext: str) -> str:
    return re.sub(r'[\s()"`\[\]]', "", sqltext).lower()


@dataclass(frozen=True)
class TableState:
    """What a rebuilt table must keep that reflection does not carry."""

    checks: tuple[str, ...] = ()  # SQL of the unnamed CHECK constraints
    autoincrement: bool = False
    uniques: tuple[tuple[str, ...], ...] = ()  # unique column sets to restate
    # Indexes a rebuild loses: name -> (CREATE INDEX SQL, reflected at all).
    fragile_indexes: dict[str, tuple[str, bool]] = field(default_factory=dict)

    @property
    def check_set(self) -> frozenset[str]:
        return frozenset(_normalised(check) for check in self.checks)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _master_sql(connection: Connection, kind: str, name: str) -> str:
    sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)
    ).scalar()
    return str(sql or "")


def hidden_uniques(connection: Connection, table: str) -> set[tuple[str, ...]]:
    """Unique column sets SQLite has but SQLAlchemy's reflection does not report."""
    found: set[tuple[str, ...]] = set()
    for row in connection.exec_driver_sql(f"PRAGMA index_list({_quoted(table)})").fetchall():
        if row[3] != "u":  # origin: a UNIQUE constraint
            continue
        info = connection.exec_driver_sql(f"PRAGMA index_info({_quoted(str(row[1]))})")
        found.add(tuple(str(column[2]) for column in info.fetchall()))
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


def _fragile_indexes(connection: Connection, table: str) -> dict[str, tuple[str, bool]]:
    reflected = {str(index["name"]) for index in sa.inspect(connection).get_indexes(table)}
    fragile: dict[str, tuple[str, bool]] = {}
    for row in connection.exec_driver_sql(f"PRAGMA index_list({_quoted(table)})").fetchall():
        name, origin = str(row[1]), row[3]
        if origin != "c":  # made by CREATE INDEX
            continue
        sql = _master_sql(connection, "index", name)
        columns = re.split(r"\bWHERE\b", sql, flags=re.I)[0]
        if name not in reflected:
            fragile[name] = (sql, False)
        elif re.search(r"\bDESC\b", columns, re.I):
            fragile[name] = (sql, True)
    return fragile


def database_state(connection: Connection, table: str) -> TableState:
    """The table as it is in the database."""
    inspector = sa.inspect(connection)
    checks = tuple(
        str(check["sqltext"])
        for check in inspector.get_check_constraints(table)
        if not check.get("name")
    )
    autoincrement = bool(
        re.search(r"\bAUTOINCREMENT\b", _master_sql(connection, "table", table), re.I)
    )
    return TableState(checks, autoincrement, (), _fragile_indexes(connection, table))


def target_state(
    table: sa.Table, hidden: Iterable[tuple[str, ...]], database: TableState
) -> TableState:
    """The table as the target wants it (indexes set aside: those of the database)."""
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
    # An index the migration does not touch is the same on both sides.
    return TableState(
        checks, autoincrement, tuple(sorted(set(hidden) & kept)), database.fragile_indexes
    )


def rebuilds(batch: BatchTableOps) -> bool:
    """Whether Alembic will rebuild the table for ``batch`` (its SQLite rule)."""
    if batch.recreate == "always":
        return True
    for op in batch.ops:
        if isinstance(op, ops.AddColumnOp):
            default = op.column.server_default
            if isinstance(default, sa.DefaultClause) and isinstance(default.arg, ClauseElement):
                return True
            if isinstance(default, sa.Computed) and default.persisted:
                return True
        elif not isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)):
            return True
    return False


def _table_ops(
    table: str,
    before: TableState,
    after: TableState,
    sub_ops: list[ops.MigrateOperation],
    restoring: bool,
) -> list[ops.MigrateOperation]:
    """The operations for one existing table: index drops, a batch block, index creates."""
    drops = [op for op in sub_ops if isinstance(op, ops.DropIndexOp)]
    creates: list[ops.MigrateOperation] = [
        # Back to the database as it is: re-create its indexes from their SQL,
        # which has what reflection lost (DESC, expressions).
        RestoreIndexOp(after.fragile_indexes[op.index_name][0], replaces=op)
        if restoring and op.index_name in after.fragile_indexes
        else op
        for op in sub_ops
        if isinstance(op, ops.CreateIndexOp)
    ]
    created = {op.index_name for op in sub_ops if isinstance(op, ops.CreateIndexOp)}
    rest = [op for op in sub_ops if not isinstance(op, (ops.DropIndexOp, ops.CreateIndexOp))]
    # A rebuild copies the rows once, after all of a block's operations: the
    # default a new column is filled with must go in a second block.
    later = [op for op in rest if isinstance(op, DropTemporaryDefaultOp)]
    rest = [op for op in rest if not isinstance(op, DropTemporaryDefaultOp)]
    # Restated constraints only matter when the table is rebuilt anyway,
    # except when they are what changed.
    checks_changed = (
        before.check_set != after.check_set or before.autoincrement != after.autoincrement
    )
    table_args = [f"sa.CheckConstraint({check!r})" for check in after.checks]
    table_args += [
        "sa.UniqueConstraint(" + ", ".join(repr(c) for c in columns) + ")"
        for columns in after.uniques
    ]
    batch = BatchTableOps(
        table,
        rest,
        recreate="always" if checks_changed else "auto",
        table_args=table_args,
        table_kwargs={"sqlite_autoincrement": True} if after.autoincrement else {},
    )
    # What other backends must do with their named CHECKs (see .portable).
    batch.checks_changed = (before.checks, after.checks)
    result: list[ops.MigrateOperation] = list(drops)
    restored: list[ops.MigrateOperation] = []
    touched = {op.index_name for op in drops} | created
    if rebuilds(batch):
        # Set aside before the rebuild (which would copy a DESC index as
        # ascending, and warn about an expression index it cannot read),
        # re-created after it from the exact SQL.
        for name, (sql, _reflected) in sorted(before.fragile_indexes.items()):
            if name not in touched:
                result.append(SetAsideIndexOp(name, table_name=table))
                restored.append(RestoreIndexOp(sql))
    if not batch.is_empty():
        result.append(batch)
    if later:
        result += restored
        restored = []
        second = BatchTableOps(
            table, later, table_args=batch.table_args, table_kwargs=batch.table_kwargs
        )
        for name, (sql, _reflected) in sorted(before.fragile_indexes.items()):
            if name not in touched:
                result.append(SetAsideIndexOp(name, table_name=table))
                restored.append(RestoreIndexOp(sql))
        result.append(second)
    return result + restored + list(creates)


def prepare(
    container: ops.OpContainer,
    before: dict[str, TableState],
    after: dict[str, TableState],
    *,
    restoring: bool = False,
) -> None:
    """Rewrite the changes to the existing tables (``before``'s keys) for SQLite.

    ``restoring``: ``after`` is the database as it is (``downgrade()``).
    """
    result: list[ops.MigrateOperation] = []
    seen: set[str] = set()
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps) and op.table_name in before:
            seen.add(op.table_name)
            name = op.table_name
            result.extend(_table_ops(name, before[name], after[name], list(op.ops), restoring))
        else:
            result.append(op)
    for name in sorted(set(before) - seen):
        result.extend(_table_ops(name, before[name], after[name], [], restoring))
    container.ops = result


def is_expression_index(index: sa.Index) -> bool:
    """Whether an index has an element that is not a (possibly DESC) column."""
    for expression in index.expressions:
        while isinstance(expression, sa.sql.elements.UnaryExpression):
            expression = expression.element
        if not isinstance(expression, sa.sql.elements.ColumnClause) or expression.is_literal:
            return True
    return False


def _normalised_index(sql: str) -> str:
    sql = re.sub(r"\bIF\s+NOT\s+EXISTS\b", "", sql, flags=re.I)
    return re.sub(r'[\s"`\[\]]', "", sql).lower()


def _modify_ops(container: ops.OpContainer, table: str) -> ops.ModifyTableOps:
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps) and op.table_name == table:
            return op
    found = ops.ModifyTableOps(table, [])
    container.ops.append(found)
    return found


def expression_indexes(
    upgrade_ops: ops.UpgradeOps,
    downgrade_ops: ops.DowngradeOps,
    metadata: sa.MetaData,
    sa_connection: Connection,
    tables: set[str],
) -> None:
    """Compare indexes on expressions, which SQLite's reflection cannot see.

    Alembic skips them on SQLite (with a warning), so a new table would not
    even get them. They are compared here by name and by their SQL as
    ``sqlite_master`` keeps it; ``downgrade()`` re-creates a dropped one
    from that SQL.
    """
    dialect = sa_connection.dialect
    created = {op.table_name for op in upgrade_ops.ops if isinstance(op, ops.CreateTableOp)}
    for position, op in enumerate(list(upgrade_ops.ops)):
        if isinstance(op, ops.CreateTableOp):
            table = metadata.tables[op.table_name]
            new = [
                ops.CreateIndexOp.from_index(index)
                for index in sorted(table.indexes, key=lambda i: str(i.name))
                if is_expression_index(index)
            ]
            upgrade_ops.ops[position + 1 : position + 1] = new
    for name in sorted(tables - created):
        table = metadata.tables[name]
        wanted = {str(i.name): i for i in table.indexes if is_expression_index(i)}
        present = {
            index: sql
            for index, (sql, reflected) in _fragile_indexes(sa_connection, name).items()
            if not reflected
        }
        up: list[ops.MigrateOperation] = []
        down: list[ops.MigrateOperation] = []
        for index_name in sorted(set(wanted) | set(present)):
            index = wanted.get(index_name)
            sql = present.get(index_name)
            if index is not None and sql is not None:
                ours = str(sa.schema.CreateIndex(index).compile(dialect=dialect))
                if _normalised_index(ours) == _normalised_index(sql):
                    continue
            if sql is not None:
                up.append(ops.DropIndexOp(index_name, table_name=name))
                down.append(RestoreIndexOp(sql, restores=True))
            if index is not None:
                up.append(ops.CreateIndexOp.from_index(index))
                down.insert(0, ops.DropIndexOp(index_name, table_name=name))
        if up:
            _modify_ops(upgrade_ops, name).ops.extend(up)
            _modify_ops(downgrade_ops, name).ops.extend(down)

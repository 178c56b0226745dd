"""The safe forms of changes to a busy PostgreSQL table, written by autogenerate.

Alembic's autogenerate writes what a table that nobody uses needs:
``CREATE INDEX`` blocks writes until the index is built, a new foreign key
or check scans every row under a lock, and ``SET NOT NULL`` scans the table
under a lock that blocks its reads. :func:`make_safe` rewrites the upgrade
operations of tables that already exist into the forms ``opslint`` asks
for (:mod:`django_alembic_ops.lint.rules`):

- an index is created with ``postgresql_concurrently=True`` inside
  ``with op.get_context().autocommit_block():``, at the end of the script
  (``CONCURRENTLY`` cannot run in a transaction);
- a foreign key or a check is added with ``postgresql_not_valid=True``
  (only the rows written from then on are checked, under a brief lock), and
  validated inside that block, where ``VALIDATE CONSTRAINT`` runs in a
  transaction of its own and blocks no reads or writes;
- ``NOT NULL`` on an existing column: a check ``IS NOT NULL`` is added
  ``NOT VALID`` and validated the same way, then ``SET NOT NULL`` uses it
  instead of scanning the table (PostgreSQL 12+), and the check is dropped;
- a unique constraint: its unique index is built ``CONCURRENTLY`` in that
  block, then ``ADD CONSTRAINT ... UNIQUE USING INDEX`` makes it the
  constraint (``ADD CONSTRAINT ... UNIQUE`` would build it under a lock that
  blocks reads and writes).

A table created in the same migration has no rows and no readers: its
operations are left as they are. ``downgrade()`` is not rewritten.

The script runs on every backend it is made for (:mod:`.portable`): the
``postgresql_*`` keywords mean nothing to SQLite and MySQL, the autocommit
block runs there too (each of its statements commits), and what only
PostgreSQL can run (``VALIDATE CONSTRAINT``, the check standing in for
``NOT NULL``, ``USING INDEX``) is inside ``if dialect == "postgresql":``,
with the plain ``alter_column(nullable=False)`` and
``create_unique_constraint()`` for the others. The rendered
upgrade looks like::

    with op.batch_alter_table("shop_item", schema=None) as batch_op:
        batch_op.create_foreign_key(..., postgresql_not_valid=True)
        if dialect == "postgresql":
            batch_op.create_check_constraint(
                "shop_item_qty_not_null", "qty IS NOT NULL", postgresql_not_valid=True
            )
        if dialect != "postgresql":
            batch_op.alter_column("qty", existing_type=sa.Integer(), nullable=False)
    with op.get_context().autocommit_block():
        op.create_index(..., postgresql_concurrently=True)
        if dialect == "postgresql":
            op.execute("ALTER TABLE shop_item VALIDATE CONSTRAINT ...")
            op.execute("ALTER TABLE shop_item VALIDATE CONSTRAINT shop_item_qty_not_null")
    if dialect == "postgresql":
        op.alter_column("shop_item", "qty", existing_type=sa.Integer(), nullable=False)
        op.drop_constraint("shop_item_qty_not_null", "shop_item", type_="check")
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext

# Alembic's renderer of a check, called by ours (see _NotValidCheckOp).
from alembic.autogenerate.render import _add_check_constraint
from alembic.operations import ops
from sqlalchemy.engine import make_url

from .metadata import pg_constraint_name
from .render import AutocommitBlockOps, DialectOps

__all__ = ["make_safe"]

POSTGRESQL = "postgresql"
# Quotes a name only where PostgreSQL needs it.
_QUOTE = make_url("postgresql://").get_dialect()().identifier_preparer


class _StatementOp(ops.ExecuteSQLOp):
    """A statement of PostgreSQL's, written as ``op.execute()`` of its ``parts``."""

    is_change = False

    def __init__(self, *parts: str) -> None:
        super().__init__("".join(parts))
        self.parts = parts


@renderers.dispatch_for(_StatementOp)
def _render_statement(autogen_context: AutogenContext, op: _StatementOp) -> str:
    # Implicitly concatenated literals, one clause each: the layout joins
    # them where the line has room, else writes one a line, as ruff does.
    return f"op.execute({' '.join(repr(part) for part in op.parts)})"


def _table(table: str, schema: str | None) -> str:
    name = _QUOTE.quote(table)
    return f"{_QUOTE.quote_schema(schema)}.{name}" if schema else name


class _ValidateOp(_StatementOp):
    """``ALTER TABLE ... VALIDATE CONSTRAINT ...``."""

    def __init__(self, table: str, constraint: str, schema: str | None) -> None:
        super().__init__(
            f"ALTER TABLE {_table(table, schema)} ",
            f"VALIDATE CONSTRAINT {_QUOTE.quote(constraint)}",
        )


class _UniqueIndexOp(ops.CreateIndexOp):
    """The index a unique constraint will use, built first."""

    is_change = False


class _UsingIndexOp(_StatementOp):
    """``ALTER TABLE ... ADD CONSTRAINT name UNIQUE USING INDEX name``."""

    def __init__(self, op: ops.CreateUniqueConstraintOp) -> None:
        name = _QUOTE.quote(str(op.constraint_name))
        parts = [
            f"ALTER TABLE {_table(op.table_name, op.schema)} ",
            f"ADD CONSTRAINT {name} ",
            f"UNIQUE USING INDEX {name}",
        ]
        if op.kw.get("deferrable"):
            parts[-1] += " DEFERRABLE"
        if op.kw.get("initially"):
            parts[-1] += f" INITIALLY {str(op.kw['initially']).upper()}"
        super().__init__(*parts)


class _NotValidCheckOp(ops.CreateCheckConstraintOp):
    """A check added ``NOT VALID`` (``postgresql_not_valid=True``)."""


@renderers.dispatch_for(_NotValidCheckOp)
def _render_not_valid_check(autogen_context: AutogenContext, op: _NotValidCheckOp) -> str:
    text = str(_add_check_constraint(autogen_context, op))
    if "postgresql_not_valid" not in text:
        # Alembic before 1.20 renders no dialect option of a check: without
        # it the check would be validated at once, under the lock.
        text = f"{text[:-1]}, postgresql_not_valid=True)"
    return text


class _NotNullCheckOp(_NotValidCheckOp):
    """The check that stands in for ``NOT NULL`` while it is validated."""

    is_change = False


class _SetNotNullOp(ops.AlterColumnOp):
    """``SET NOT NULL`` once the check has been validated."""

    is_change = False


class _DropNotNullCheckOp(ops.DropConstraintOp):
    """Drop the check once the column is ``NOT NULL``."""

    is_change = False


@dataclass
class _Later:
    """What runs after the rewritten operations."""

    #: Index creations (``CONCURRENTLY``), each as it was guarded.
    indexes: list[ops.MigrateOperation] = field(default_factory=list)
    #: ``VALIDATE CONSTRAINT`` statements (PostgreSQL's).
    validations: list[ops.MigrateOperation] = field(default_factory=list)
    #: After the block, in the migration's transaction again (PostgreSQL's):
    #: ``SET NOT NULL`` and the drop of its check, ``UNIQUE USING INDEX``.
    after: list[ops.MigrateOperation] = field(default_factory=list)


class _Rewriter:
    """Rewrites one ``upgrade()``'s operations, collecting what must run at its end."""

    def __init__(self, existing: set[str], dialects: Sequence[str]) -> None:
        self.existing = existing
        # Guards are needed when the script also runs elsewhere.
        self.portable = set(dialects) != {POSTGRESQL}
        self.later = _Later()

    def _pg_only(self, made: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
        return [DialectOps((POSTGRESQL,), made)] if self.portable and made else made

    def _is_existing(self, table: str | None) -> bool:
        return table is not None and table in self.existing

    def rewrite(
        self, operations: list[ops.MigrateOperation], guard: Sequence[str]
    ) -> list[ops.MigrateOperation]:
        """``operations`` rewritten; what must run later is collected in ``self.later``.

        ``guard``: the backends that run ``operations`` (they are inside an
        ``if dialect ...:`` block); empty: every backend.
        """
        on_postgresql = not guard or POSTGRESQL in guard
        result: list[ops.MigrateOperation] = []
        for op in operations:
            if isinstance(op, DialectOps) and not op.otherwise:
                result += _guarded(op.dialects, self.rewrite(op.ops, op.dialects))
            elif not on_postgresql:
                result.append(op)
            elif isinstance(op, ops.ModifyTableOps) and self._is_existing(op.table_name):
                op.ops = self.rewrite(op.ops, guard)
                if not op.is_empty():
                    result.append(op)
            elif isinstance(op, ops.CreateIndexOp) and self._is_existing(op.table_name):
                concurrent = copy.copy(op)
                concurrent.kw = {**op.kw, "postgresql_concurrently": True}
                _append(self.later.indexes, _guarded(guard, [concurrent]))
            elif (
                isinstance(op, (ops.CreateForeignKeyOp, ops.CreateCheckConstraintOp))
                and op.constraint_name  # VALIDATE needs its name (compare names them)
                and self._is_existing(_source_table(op))
            ):
                result.append(self._not_valid(op))
            elif (
                isinstance(op, ops.AlterColumnOp)
                and op.modify_nullable is False
                and self._is_existing(op.table_name)
            ):
                result += self._not_null(op)
            elif (
                isinstance(op, ops.CreateUniqueConstraintOp)
                and op.constraint_name
                and set(op.kw) <= {"deferrable", "initially"}
                and self._is_existing(op.table_name)
            ):
                result += self._unique(op, guard)
            else:
                result.append(op)
        return result

    def _not_valid(
        self, op: ops.CreateForeignKeyOp | ops.CreateCheckConstraintOp
    ) -> ops.MigrateOperation:
        made: ops.MigrateOperation
        if isinstance(op, ops.CreateCheckConstraintOp):
            made = _NotValidCheckOp(
                op.constraint_name,
                op.table_name,
                op.condition,
                schema=op.schema,
                **{**op.kw, "postgresql_not_valid": True},
            )
        else:
            made = copy.copy(op)
            made.kw = {**op.kw, "postgresql_not_valid": True}
        schema = op.kw.get("source_schema") if isinstance(op, ops.CreateForeignKeyOp) else op.schema
        self.later.validations.append(
            _ValidateOp(_source_table(op), str(op.constraint_name), schema)
        )
        return made

    def _not_null(self, op: ops.AlterColumnOp) -> list[ops.MigrateOperation]:
        """``NOT NULL`` through a validated check on PostgreSQL; as it was elsewhere."""
        result: list[ops.MigrateOperation] = []
        rest = copy.copy(op)
        rest.modify_nullable = None
        if _modifies_more(rest):
            result.append(rest)  # the type, default or comment changes on every backend
        name = pg_constraint_name(op.table_name, op.modify_name or op.column_name, "not_null")
        check = _NotNullCheckOp(
            name,
            op.table_name,
            f"{_QUOTE.quote(op.modify_name or op.column_name)} IS NOT NULL",
            schema=op.schema,
            postgresql_not_valid=True,
        )
        if self.portable:
            # The other backends set NOT NULL where the script said so.
            result.append(DialectOps((POSTGRESQL,), [check], [_set_not_null(op)]))
        else:
            result.append(check)
        self.later.validations.append(_ValidateOp(op.table_name, name, op.schema))
        self.later.after += [
            _set_not_null(op, _SetNotNullOp),
            _DropNotNullCheckOp(name, op.table_name, type_="check", schema=op.schema),
        ]
        return result

    def _unique(
        self, op: ops.CreateUniqueConstraintOp, guard: Sequence[str]
    ) -> list[ops.MigrateOperation]:
        """A unique index built ``CONCURRENTLY``, then made the constraint, on PostgreSQL.

        ``ADD CONSTRAINT ... UNIQUE`` builds its index under a lock that
        blocks reads and writes; ``UNIQUE USING INDEX`` takes an index
        built beforehand, in a moment.
        """
        name = str(op.constraint_name)
        index = _UniqueIndexOp(
            name,
            op.table_name,
            list(op.columns),
            schema=op.schema,
            unique=True,
            postgresql_concurrently=True,
        )
        pg_guard = (POSTGRESQL,) if self.portable else guard
        _append(self.later.indexes, _guarded(pg_guard, [index]))
        self.later.after.append(_UsingIndexOp(op))
        # The other backends add the constraint where the script said so.
        return [DialectOps((POSTGRESQL,), [], [op])] if self.portable else []

    def tail(self) -> list[ops.MigrateOperation]:
        """What runs after the rewritten operations, in and after the autocommit block."""
        later = self.later
        block = [*later.indexes, *self._pg_only(later.validations)]
        result: list[ops.MigrateOperation] = []
        if block and self.portable and all(_only_postgresql(op) for op in block):
            # Nothing for the other backends to run outside their transaction.
            flat = [sub for op in block if isinstance(op, DialectOps) for sub in op.ops]
            result.append(AutocommitBlockOps(flat, (POSTGRESQL,)))
        elif block:
            result.append(AutocommitBlockOps(block))
        # SET NOT NULL and UNIQUE USING INDEX take a lock that blocks reads
        # (briefly: the check is validated, the index built): in the
        # migration's transaction again, where its lock timeout applies.
        return result + self._pg_only(later.after)


def _only_postgresql(op: ops.MigrateOperation) -> bool:
    return isinstance(op, DialectOps) and op.dialects == (POSTGRESQL,) and not op.otherwise


def _guarded(guard: Sequence[str], made: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    """``made`` inside ``if dialect in guard:`` blocks (none when ``guard`` is empty).

    A block ``made`` holds is split rather than nested: PostgreSQL's
    operations and the others' (``otherwise``) inside a block for
    PostgreSQL and SQLite become one block for each.
    """
    if not guard:
        return made
    result: list[ops.MigrateOperation] = []
    for op in made:
        if isinstance(op, DialectOps):
            inside = tuple(d for d in guard if d in op.dialects)
            elsewhere = tuple(d for d in guard if d not in op.dialects)
            _append(result, [DialectOps(inside, op.ops)] if inside and op.ops else [])
            _append(
                result, [DialectOps(elsewhere, op.otherwise)] if elsewhere and op.otherwise else []
            )
        else:
            _append(result, [DialectOps(guard, [op])])
    return result


def _append(result: list[ops.MigrateOperation], made: list[ops.MigrateOperation]) -> None:
    """Append ``made``, joining consecutive blocks for the same backends."""
    for op in made:
        last = result[-1] if result else None
        if (
            isinstance(op, DialectOps)
            and isinstance(last, DialectOps)
            and last.dialects == op.dialects
            and not last.otherwise
            and not op.otherwise
        ):
            last.ops += op.ops
        else:
            result.append(op)


def _source_table(op: ops.CreateForeignKeyOp | ops.CreateCheckConstraintOp) -> str:
    return op.source_table if isinstance(op, ops.CreateForeignKeyOp) else op.table_name


def _modifies_more(op: ops.AlterColumnOp) -> bool:
    return (
        op.modify_type is not None
        or op.modify_server_default is not False
        or op.modify_comment is not False
        or op.modify_name is not None
    )


def _set_not_null(
    op: ops.AlterColumnOp, cls: type[ops.AlterColumnOp] = ops.AlterColumnOp
) -> ops.AlterColumnOp:
    """``op``'s ``NOT NULL`` alone, the column as the rest of ``op`` left it."""
    server_default = op.existing_server_default
    if op.modify_server_default is not False:
        server_default = op.modify_server_default
    comment = op.existing_comment
    if op.modify_comment is not False:
        comment = op.modify_comment
    return cls(
        op.table_name,
        op.modify_name or op.column_name,
        schema=op.schema,
        existing_type=op.modify_type if op.modify_type is not None else op.existing_type,
        existing_server_default=server_default,
        existing_nullable=True,
        existing_comment=comment,
        modify_nullable=False,
    )


def make_safe(container: ops.UpgradeOps, existing: set[str], dialects: Sequence[str]) -> None:
    """Rewrite ``container`` (``upgrade()``) into the safe forms on ``existing`` tables.

    :param existing: the tables the database already has (their rows and
        readers need protecting); operations on the others stay as they are.
    :param dialects: the backends the script is made for; nothing is
        rewritten unless PostgreSQL is one of them, and what only PostgreSQL
        runs is guarded when it is not the only one.
    """
    if POSTGRESQL not in dialects:
        return
    rewriter = _Rewriter(existing, dialects)
    container.ops = rewriter.rewrite(list(container.ops), ()) + rewriter.tail()

"""opslint's own rules: one function per rule, judging one ``op`` call.

Each rule sees the operation object Alembic's ``op`` built (where the intent
is still visible: ``postgresql_concurrently``, ``postgresql_not_valid``,
``existing_type``) and the tables the migration created before it: a table
created in the same migration has no rows and no readers yet, so nothing on
it needs protecting. A rule returns ``(why, the safe pattern)``, or ``None``.

Rules say which databases they apply to: those about PostgreSQL's locks
(``CONCURRENTLY``, ``NOT VALID``) on PostgreSQL only; those about rows that
exist and code that still runs during a deploy everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.operations import ops
from sqlalchemy.engine import Dialect

POSTGRESQL = frozenset({"postgresql"})

Problem = tuple[str, str]  # (why, the safe pattern)
Check = Callable[[ops.MigrateOperation, "Seen"], "Problem | None"]


@dataclass
class Seen:
    """What the migration did before the operation being judged."""

    dialect: Dialect
    created: set[tuple[str | None, str]] = field(default_factory=set)

    def is_new(self, schema: str | None, table: str) -> bool:
        """Whether ``table`` was created earlier in this migration."""
        return (schema, table) in self.created

    def after(self, operation: ops.MigrateOperation) -> None:
        """Note the tables ``operation`` creates (or renames a new table to)."""
        if isinstance(operation, ops.CreateTableOp):
            self.created.add((operation.schema, operation.table_name))
        elif isinstance(operation, ops.RenameTableOp) and self.is_new(
            operation.schema, operation.table_name
        ):
            self.created.add((operation.schema, operation.new_table_name))


@dataclass(frozen=True)
class Rule:
    """One rule: its name (as ``lint_ignore`` and the finding lines spell it), and more."""

    name: str
    check: Check
    #: The dialects it applies to; ``None``: every one (the rule is about rows
    #: that exist and code that still runs, not about one server's locks).
    dialects: frozenset[str] | None
    #: The operation classes it judges.
    judges: tuple[type[ops.MigrateOperation], ...]
    #: squawk's rules that say the same about the SQL of an operation this
    #: rule judges: those lines are left out (this rule saw the intent).
    squawk: frozenset[str] = frozenset()


RULES: dict[str, Rule] = {}


def rule(
    name: str,
    judges: tuple[type[ops.MigrateOperation], ...],
    *,
    dialects: frozenset[str] | None = None,
    squawk: tuple[str, ...] = (),
) -> Callable[[Check], Check]:
    """Register the decorated function as the rule ``name``."""

    def register(check: Check) -> Check:
        RULES[name] = Rule(name, check, dialects, judges, frozenset(squawk))
        return check

    return register


def _table(schema: str | None, table: str) -> str:
    return f"{schema}.{table}" if schema else table


def _kw(operation: ops.MigrateOperation) -> dict[str, object]:
    return dict(getattr(operation, "kw", None) or {})


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


@rule(
    "index-without-concurrently",
    (ops.CreateIndexOp,),
    dialects=POSTGRESQL,
    squawk=("require-concurrent-index-creation",),
)
def index_without_concurrently(operation: ops.MigrateOperation, seen: Seen) -> Problem | None:
    """``op.create_index`` on an existing table, without ``postgresql_concurrently=True``."""
    assert isinstance(operation, ops.CreateIndexOp)
    if seen.is_new(operation.schema, operation.table_name):
        return None
    if _kw(operation).get("postgresql_concurrently"):
        return None
    table = _table(operation.schema, operation.table_name)
    return (
        f"CREATE INDEX {operation.index_name} blocks writes to {table} until the index is built",
        "create it with postgresql_concurrently=True inside "
        "'with op.get_context().autocommit_block():'",
    )


@rule(
    "constraint-without-not-valid",
    (ops.CreateForeignKeyOp, ops.CreateCheckConstraintOp),
    dialects=POSTGRESQL,
    squawk=("constraint-missing-not-valid", "adding-foreign-key-constraint"),
)
def constraint_without_not_valid(operation: ops.MigrateOperation, seen: Seen) -> Problem | None:
    """A foreign key or check added to an existing table without ``postgresql_not_valid=True``."""
    if isinstance(operation, ops.CreateForeignKeyOp):
        kw = _kw(operation)
        schema, name = _str_or_none(kw.get("source_schema")), operation.source_table
        what = f"foreign key {operation.constraint_name or ''}".rstrip()
        referent = _table(_str_or_none(kw.get("referent_schema")), operation.referent_table)
        lock = f"a lock that blocks writes to it and to {referent}"
    else:
        assert isinstance(operation, ops.CreateCheckConstraintOp)
        schema, name = operation.schema, operation.table_name
        what = f"check constraint {operation.constraint_name or ''}".rstrip()
        lock = "a lock that blocks its reads and writes"
    if seen.is_new(schema, name) or _kw(operation).get("postgresql_not_valid"):
        return None
    constraint = operation.constraint_name or "<name>"
    return (
        f"adding {what} scans every row of {_table(schema, name)} under {lock}",
        f"add it with postgresql_not_valid=True, then VALIDATE CONSTRAINT {constraint} in "
        "another transaction (a later migration, or inside "
        "'with op.get_context().autocommit_block():')",
    )


def _fills_itself(column: sa.Column[object]) -> bool:
    """Whether the database gives existing rows a value without a default."""
    return column.identity is not None or column.computed is not None


@rule(
    "not-null-without-default",
    (ops.AddColumnOp,),
    squawk=("adding-required-field",),
)
def not_null_without_default(operation: ops.MigrateOperation, seen: Seen) -> Problem | None:
    """``op.add_column`` of a ``NOT NULL`` column without a server default, to an existing table."""
    assert isinstance(operation, ops.AddColumnOp)
    column = operation.column
    if seen.is_new(operation.schema, operation.table_name):
        return None
    if column.nullable or column.server_default is not None or _fills_itself(column):
        return None
    table = _table(operation.schema, operation.table_name)
    if seen.dialect.name == "mysql":
        # MySQL gives existing rows the type's implicit default (0, '').
        rows = "gives its rows an implicit value (0, '')"
    else:
        rows = f"fails when {table} has rows"
    return (
        f"adding {table}.{column.name} NOT NULL without a default {rows}, "
        "and the code still running inserts rows without it",
        "add it with a server_default, or nullable, backfill it, then make it NOT NULL",
    )


def _same_type(
    old: sa.types.TypeEngine[object], new: sa.types.TypeEngine[object], dialect: Dialect
) -> bool:
    return str(old.compile(dialect=dialect)) == str(new.compile(dialect=dialect))


def _widened_text(old: sa.types.TypeEngine[object], new: sa.types.TypeEngine[object]) -> bool:
    """A ``varchar`` made longer or unbounded (or ``text``): no rewrite on PostgreSQL."""
    if not isinstance(old, sa.String) or not isinstance(new, sa.String):
        return False
    if isinstance(old, sa.Text) and not isinstance(new, sa.Text):
        return False
    return new.length is None or (old.length is not None and new.length >= old.length)


@rule(
    "column-type-change",
    (ops.AlterColumnOp,),
    squawk=("changing-column-type",),
)
def column_type_change(operation: ops.MigrateOperation, seen: Seen) -> Problem | None:
    """``op.alter_column(type_=...)`` on an existing table."""
    assert isinstance(operation, ops.AlterColumnOp)
    if operation.modify_type is None or seen.is_new(operation.schema, operation.table_name):
        return None
    new = sa.types.to_instance(operation.modify_type)
    if operation.existing_type is not None:
        old = sa.types.to_instance(operation.existing_type)
        if _same_type(old, new, seen.dialect):
            return None
        if seen.dialect.name == "postgresql" and _widened_text(old, new):
            return None
    table = _table(operation.schema, operation.table_name)
    return (
        f"changing the type of {table}.{operation.column_name} rewrites {table} under a lock "
        "that blocks its reads and writes, and the code still running expects the old type",
        "add a column of the new type, backfill it in batches, move the code to it, "
        "then drop the old column in a later release",
    )


@rule("rename-table", (ops.RenameTableOp,), squawk=("renaming-table",))
def rename_table(operation: ops.MigrateOperation, seen: Seen) -> Problem | None:
    """``op.rename_table`` of an existing table."""
    assert isinstance(operation, ops.RenameTableOp)
    if seen.is_new(operation.schema, operation.table_name):
        return None
    old = _table(operation.schema, operation.table_name)
    return (
        f"renaming {old} to {operation.new_table_name} breaks the code still running, "
        "which uses the old name",
        "keep the table's name (set the model's Meta.db_table to it), or create the new "
        "table, write to both, copy the rows, and drop the old one in a later release",
    )


@rule("rename-column", (ops.AlterColumnOp,), squawk=("renaming-column",))
def rename_column(operation: ops.MigrateOperation, seen: Seen) -> Problem | None:
    """``op.alter_column(new_column_name=...)`` on an existing table."""
    assert isinstance(operation, ops.AlterColumnOp)
    if operation.modify_name is None or seen.is_new(operation.schema, operation.table_name):
        return None
    table = _table(operation.schema, operation.table_name)
    return (
        f"renaming {table}.{operation.column_name} to {operation.modify_name} breaks the code "
        "still running, which uses the old name",
        "keep the column's name (set the field's db_column to it), or add the new column, "
        "write to both, backfill it, and drop the old one in a later release",
    )


def _models_with_column(table: str, column: str) -> Iterator[tuple[str, str]]:
    """``("shop.Order", "status")`` for each installed model field stored in ``table.column``."""
    from django.apps import apps

    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or meta.db_table != table:
            continue
        for model_field in meta.concrete_fields:
            if model_field.column == column:
                yield meta.label, model_field.name


@rule("drop-column-in-model", (ops.DropColumnOp,), squawk=("ban-drop-column",))
def drop_column_in_model(operation: ops.MigrateOperation, seen: Seen) -> Problem | None:
    """``op.drop_column`` of a column that an installed Django model still has."""
    assert isinstance(operation, ops.DropColumnOp)
    if seen.is_new(operation.schema, operation.table_name):
        return None
    found = next(_models_with_column(operation.table_name, operation.column_name), None)
    if found is None:
        return None
    model, field_name = found
    table = _table(operation.schema, operation.table_name)
    return (
        f"model {model} still has the field {field_name} ({table}.{operation.column_name}): "
        "its queries fail once the column is gone",
        "remove the field from the model and deploy that first; drop the column in a later release",
    )


def _applies(each: Rule, dialect: str, operation: ops.MigrateOperation) -> bool:
    return (each.dialects is None or dialect in each.dialects) and isinstance(
        operation, each.judges
    )


def judge(operation: ops.MigrateOperation, seen: Seen) -> Iterator[tuple[Rule, Problem]]:
    """The rules that apply on ``seen.dialect`` and find ``operation`` unsafe."""
    for each in RULES.values():
        if _applies(each, seen.dialect.name, operation):
            problem = each.check(operation, seen)
            if problem is not None:
                yield each, problem


def covered_by(squawk_rule: str, operation: ops.MigrateOperation, dialect: str) -> bool:
    """Whether one of our rules judged ``operation`` for what ``squawk_rule`` says."""
    return any(
        squawk_rule in each.squawk and _applies(each, dialect, operation) for each in RULES.values()
    )

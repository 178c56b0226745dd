"""Django models -> SQLAlchemy :class:`~sqlalchemy.schema.MetaData`, as Django would create them.

Nothing here knows a Django field type. Every fact comes from Django itself,
asked on the connection the schema is for:

- the column type is ``field.db_parameters(connection)["type"]`` (with its
  collation and CHECK), turned into a SQLAlchemy type by the dialect's own
  parser: PostgreSQL's reflection parser (after PostgreSQL's documented type
  aliases, ``varchar`` -> ``character varying``), SQLite's type-affinity rules
  on the upper-cased string;
- identity / ``AUTOINCREMENT`` from ``field.db_type_suffix(connection)``;
- database defaults from the schema editor's ``db_default_sql()``;
- index and unique-index names, columns, opclasses, conditions and
  ``INCLUDE`` lists from the statements the schema editor builds for
  ``_field_indexes_sql()`` (with PostgreSQL's ``varchar_pattern_ops``
  ``_like`` indexes), ``Index.create_sql()`` and ``_create_unique_sql()``;
- ``unique_together`` and ``Meta.constraints`` through the same calls
  ``create_model()`` makes, so a unique set is a unique index where Django
  makes one (SQLite) and a constraint where Django makes one (PostgreSQL);
- foreign-key names from ``_fk_constraint_name()`` where Django names them
  (PostgreSQL), none where Django writes them inline (SQLite), and
  ``DEFERRABLE INITIALLY DEFERRED`` as Django writes it.

The schema editor is only asked for statements (``collect_sql=True``); it
never executes anything.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.ddl_references import Expressions, IndexColumns, Statement
from django.db.models.expressions import Col
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SAWarning
from sqlalchemy.sql.type_api import TypeEngine

from ..errors import OpsError

__all__ = [
    "CHECK_COLUMN",
    "UnsupportedModel",
    "build_metadata",
    "model_tables",
    "pg_constraint_name",
]

#: ``Table.info`` key set on tables that are only in the metadata so that
#: foreign keys can point at them (other apps' tables, Django's tables).
EXTERNAL = "django_alembic_ops_external"
#: ``CheckConstraint.info`` key: the column of a field's own CHECK (a
#: backend that names such checks names them after it).
CHECK_COLUMN = "django_alembic_ops_column"

#: PostgreSQL's documented aliases for its built-in types ("Data Types",
#: table 8-1): Django writes some types by alias, SQLAlchemy's PostgreSQL
#: parser knows them by the name ``format_type()`` reports.
_PG_ALIASES = {
    "int8": "bigint",
    "varbit": "bit varying",
    "bool": "boolean",
    "char": "character",
    "varchar": "character varying",
    "float8": "double precision",
    "int": "integer",
    "int4": "integer",
    "decimal": "numeric",
    "float4": "real",
    "int2": "smallint",
    "timetz": "time with time zone",
    "timestamptz": "timestamp with time zone",
}
_PG_TYPE = re.compile(r"^\s*([a-z_][a-z0-9_]*)(.*)$", re.I | re.S)
_PG_IDENTIFIER_MAX = 63


class UnsupportedModel(OpsError):
    """A model, field or constraint that cannot be expressed for autogenerate."""


class _NoNamedTypes:
    """PostgreSQL's type parser asks for enums and domains; Django makes none."""

    enums: dict[Any, Any] = {}
    domains: dict[Any, Any] = {}


def pg_constraint_name(table: str, column: str | None, label: str) -> str:
    """The name PostgreSQL gives an unnamed constraint (``ChooseConstraintName``).

    ``<table>_<column>_<label>``, the longer of table and column shortened
    until it fits in 63 bytes, as ``makeObjectName()`` does.
    """
    name1, name2 = table, column or ""
    overhead = len(label) + 1 + (1 if name2 else 0)
    available = _PG_IDENTIFIER_MAX - overhead
    while len(name1.encode()) + len(name2.encode()) > available:
        if len(name1) > len(name2):
            name1 = name1[:-1]
        else:
            name2 = name2[:-1]
    return "_".join(part for part in (name1, name2, label) if part)


def _unquote(name: object) -> str:
    text = str(name)
    for quote in ('"', "`"):
        if len(text) >= 2 and text[0] == quote and text[-1] == quote:
            return text[1:-1].replace(quote * 2, quote)
    return text


def sql_text(sql: str) -> sa.TextClause:
    """``sa.text()`` of literal SQL (no bind parameters)."""
    # A colon before a word would be a bind parameter to text().
    return sa.text(re.sub(r"(?<![:\w\\]):(?=\w)", r"\\:", sql))


def _reflect_pg_type(
    dialect: Dialect, text: str, db_type: str, collation: str | None
) -> TypeEngine[Any]:
    """PostgreSQL's reflection of a ``format_type()`` string, as SQLAlchemy reads a column.

    The private ``_reflect_type`` takes a named-type loader from SQLAlchemy 2.1
    on, and the domains and enums it knows (none here) before.
    """
    reflect = dialect._reflect_type  # type: ignore[attr-defined]
    if "named_type_loader" in inspect.signature(reflect).parameters:
        return reflect(text, _NoNamedTypes(), f"type {db_type!r}", collation)  # type: ignore[no-any-return]
    return reflect(text, {}, {}, f"type {db_type!r}", collation)  # type: ignore[no-any-return]


def sqlalchemy_type(
    dialect: Dialect, db_type: str, collation: str | None = None
) -> TypeEngine[Any]:
    """The SQLAlchemy type the dialect reads for the Django type string ``db_type``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        if dialect.name == "postgresql":
            match = _PG_TYPE.match(db_type)
            text = db_type
            if match and match.group(1).lower() in _PG_ALIASES:
                text = _PG_ALIASES[match.group(1).lower()] + match.group(2)
            try:
                result: TypeEngine[Any] = _reflect_pg_type(dialect, text, db_type, collation)
            except Exception:
                result = sa.types.NULLTYPE
        elif dialect.name == "sqlite":
            result = dialect._resolve_type_affinity(db_type.upper())  # type: ignore[attr-defined]
            if collation and isinstance(result, sa.String):
                result.collation = collation
        else:
            raise UnsupportedModel(
                f"Autogenerate does not support the {dialect.name} backend yet "
                "(SQLite and PostgreSQL are supported)."
            )
    if isinstance(result, sa.types.NullType):
        raise UnsupportedModel(f"SQLAlchemy does not know the {dialect.name} type {db_type!r}")
    return result


@dataclass
class _Builder:
    """Builds the tables of some models on one connection."""

    connection: BaseDatabaseWrapper
    dialect: Dialect
    metadata: sa.MetaData
    notes: list[str] = field(default_factory=list)
    # Its statement builders are private API, untyped in django-stubs.
    editor: Any = field(init=False)
    _table_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # collect_sql=True: statements are built, never executed.
        self.editor = self.connection.schema_editor(collect_sql=True, atomic=False)
        self.editor.deferred_sql = []

    @property
    def vendor(self) -> str:
        return str(self.connection.vendor)

    # -- columns -------------------------------------------------------------

    def _where(self, condition: str) -> dict[str, Any]:
        return {f"{self.dialect.name}_where": sql_text(condition)}

    def column(
        self, model: type[models.Model], fld: models.Field[Any, Any]
    ) -> sa.Column[Any] | None:
        params = fld.db_parameters(connection=self.connection)
        db_type = params["type"]
        if db_type is None:
            return None  # no column (e.g. a many-to-many field)
        label = f"{model._meta.label}.{fld.name}"
        try:
            type_ = sqlalchemy_type(self.dialect, db_type, params.get("collation"))
        except UnsupportedModel as exc:
            raise UnsupportedModel(
                f"{label}: {exc}; describe this table in target_metadata instead."
            ) from None
        kwargs: dict[str, Any] = {}
        null = bool(fld.null)
        features = self.connection.features
        if (
            fld.empty_strings_allowed
            and not fld.primary_key
            and features.interprets_empty_strings_as_nulls
        ):
            null = True
        args: list[Any] = []
        if getattr(fld, "generated", False):
            sql, gen_params = fld.generated_sql(self.connection)  # type: ignore[attr-defined]
            if gen_params:
                sql = sql % tuple(self.editor.quote_value(p) for p in gen_params)
            args.append(sa.Computed(sql_text(sql), persisted=bool(fld.db_persist)))  # type: ignore[attr-defined]
            null = True
        elif getattr(fld, "has_db_default", lambda: False)():  # Django 5.0+
            sql, default_params = self.editor.db_default_sql(fld)
            if default_params:
                sql = sql % tuple(self.editor.quote_value(p) for p in default_params)
            kwargs["server_default"] = sql_text(sql)
        suffix = fld.db_type_suffix(connection=self.connection) or ""
        if fld.primary_key:
            if "IDENTITY" in suffix.upper():
                args.append(sa.Identity(always="ALWAYS" in suffix.upper()))
            elif "AUTOINCREMENT" in suffix.upper() and self.vendor == "sqlite":
                model_table_kwargs = self._table_kwargs.setdefault(model._meta.db_table, {})
                model_table_kwargs["sqlite_autoincrement"] = True
            elif "AUTO_INCREMENT" in suffix.upper():
                kwargs["autoincrement"] = True
            else:
                # Otherwise SQLAlchemy would make an integer key SERIAL.
                kwargs["autoincrement"] = False
        if features.supports_comments and fld.db_comment:
            kwargs["comment"] = fld.db_comment
        return sa.Column(
            fld.column,
            type_,
            *args,
            primary_key=bool(fld.primary_key),
            nullable=null and not fld.primary_key,
            **kwargs,
        )

    # -- indexes -------------------------------------------------------------

    def index(self, table: sa.Table, statement: Statement, *, unique: bool = False) -> sa.Index:
        """An index the schema editor would create with ``statement``."""
        parts: dict[str, Any] = statement.parts
        name = _unquote(parts["name"])
        columns = parts["columns"]
        expressions: list[Any] = []
        kwargs: dict[str, Any] = {}
        if isinstance(columns, Expressions):
            # One element per expression, as the database reports them; a
            # plain column stays a column.
            for item in columns.expressions.get_source_expressions():
                inner = item.get_source_expressions()
                if len(inner) == 1 and isinstance(inner[0], Col):
                    expressions.append(table.c[str(inner[0].target.column)])
                    continue
                sql, params = columns.compiler.compile(item)
                expressions.append(sql_text(sql % tuple(map(columns.quote_value, params))))
        else:
            suffixes = list(getattr(columns, "col_suffixes", ()) or ())
            for position, column_name in enumerate(columns.columns):
                column: Any = table.c[column_name]
                suffix = suffixes[position] if position < len(suffixes) else ""
                if suffix and suffix.strip().upper() == "DESC":
                    column = column.desc()
                elif suffix and suffix.strip().upper() != "ASC":
                    raise UnsupportedModel(
                        f"Index {name}: column option {suffix!r} is not supported."
                    )
                expressions.append(column)
            if isinstance(columns, IndexColumns) and any(columns.opclasses):
                kwargs["postgresql_ops"] = {
                    column_name: opclass
                    for column_name, opclass in zip(
                        columns.columns, columns.opclasses, strict=False
                    )
                    if opclass
                }
        condition = str(parts.get("condition") or "").strip()
        if condition:
            kwargs.update(self._where(re.sub(r"^WHERE\s+", "", condition, flags=re.I)))
        include = parts.get("include")
        if isinstance(include, Statement):
            include_parts: dict[str, Any] = include.parts
            kwargs["postgresql_include"] = list(include_parts["columns"].columns)
        using = str(parts.get("using") or "").strip()
        if using:
            kwargs["postgresql_using"] = re.sub(r"^USING\s+", "", using, flags=re.I)
        if "NOT DISTINCT" in str(parts.get("nulls_distinct") or "").upper():
            kwargs["postgresql_nulls_not_distinct"] = True
        index = sa.Index(name, *expressions, unique=unique, **kwargs)
        if index.table is None:  # only text expressions: attach it explicitly
            table.append_constraint(index)
        return index

    def _is_unique_index(self, statement: Statement) -> bool:
        return "CREATE UNIQUE INDEX" in statement.template.upper()

    def _unique(self, table: sa.Table, statement: Statement) -> None:
        """A unique set from ``_create_unique_sql()``: an index or a constraint."""
        if self._is_unique_index(statement):
            self.index(table, statement, unique=True)
            return
        parts: dict[str, Any] = statement.parts
        kwargs = self._deferrable(str(parts.get("deferrable") or ""))
        if "NOT DISTINCT" in str(parts.get("nulls_distinct") or "").upper():
            kwargs["postgresql_nulls_not_distinct"] = True
        table.append_constraint(
            sa.UniqueConstraint(*parts["columns"].columns, name=_unquote(parts["name"]), **kwargs)
        )

    @staticmethod
    def _deferrable(sql: str) -> dict[str, Any]:
        sql = sql.upper()
        if "DEFERRABLE" not in sql or "NOT DEFERRABLE" in sql:
            return {}
        initially = "DEFERRED" if "INITIALLY DEFERRED" in sql else "IMMEDIATE"
        return {"deferrable": True, "initially": initially}

    def _take_deferred(self) -> list[Statement]:
        taken = [s for s in self.editor.deferred_sql if isinstance(s, Statement)]
        self.editor.deferred_sql = []
        return taken

    # -- tables --------------------------------------------------------------

    def table(self, model: type[models.Model]) -> sa.Table:
        """Add the table of ``model`` with its columns (pass one)."""
        meta = model._meta
        name = meta.db_table
        if name in self.metadata.tables:
            raise UnsupportedModel(f"Two models use the table {name!r}.")
        columns = [c for f in self._fields(model) if (c := self.column(model, f)) is not None]
        table_kwargs: dict[str, Any] = dict(self._table_kwargs.get(name, {}))
        if self.connection.features.supports_comments and meta.db_table_comment:
            table_kwargs["comment"] = meta.db_table_comment
        return sa.Table(name, self.metadata, *columns, **table_kwargs)

    @staticmethod
    def _fields(model: type[models.Model]) -> list[Any]:
        return [f for f in model._meta.local_fields if f.concrete]

    def constraints(self, model: type[models.Model], table: sa.Table) -> None:
        """Add what ``create_model()`` adds after the columns (pass two)."""
        meta = model._meta
        editor = self.editor
        name = table.name
        fields = self._fields(model)
        for fld in fields:
            if fld.column not in table.c:
                continue
            params = fld.db_parameters(connection=self.connection)
            if params.get("check"):
                check_name = (
                    pg_constraint_name(name, fld.column, "check")
                    if self.vendor == "postgresql"
                    else None
                )
                check = sa.CheckConstraint(
                    sql_text(params["check"]), name=check_name, info={CHECK_COLUMN: fld.column}
                )
                table.append_constraint(check)
            if fld.unique and not fld.primary_key:
                # Written inline by Django; the database names it
                # (<table>_<column>_key on PostgreSQL, nothing on SQLite).
                table.append_constraint(sa.UniqueConstraint(fld.column))
            if fld.remote_field is not None and getattr(fld, "db_constraint", False):
                self._foreign_key(model, table, fld)

        for field_names in meta.unique_together:
            unique_fields = [meta.get_field(n) for n in field_names]
            statement = editor._create_unique_sql(model, unique_fields)
            if statement is not None:
                self._unique(table, statement)

        for constraint in meta.constraints:
            self._constraint(model, table, constraint)

        # What _model_indexes_sql() does; it returns [] for unmanaged models.
        for fld in fields:
            for statement in editor._field_indexes_sql(model, fld):
                self.index(table, statement)
        # Django 4.2 still has index_together (and makes these indexes for it).
        for field_names in getattr(meta, "index_together", ()):
            together = [meta.get_field(n) for n in field_names]
            self.index(table, editor._create_index_sql(model, fields=together, suffix="_idx"))
        for index in meta.indexes:
            if (
                index.contains_expressions
                and not self.connection.features.supports_expression_indexes
            ):
                self.notes.append(f"{name}: skipped expression index {index.name} (unsupported)")
                continue
            self.index(table, index.create_sql(model, editor))
        for statement in self._take_deferred():
            self.notes.append(f"{name}: skipped {statement}")

    def _constraint(
        self, model: type[models.Model], table: sa.Table, constraint: models.BaseConstraint
    ) -> None:
        editor = self.editor
        if isinstance(constraint, models.CheckConstraint):
            if not self.connection.features.supports_table_check_constraints:
                return
            check = cast(Any, constraint)._get_check_sql(model, editor)
            table.append_constraint(sa.CheckConstraint(sql_text(check), name=constraint.name))
        elif isinstance(constraint, models.UniqueConstraint):
            inline = constraint.constraint_sql(model, editor)
            if inline:
                fields: list[Any] = [model._meta.get_field(n) for n in constraint.fields]
                deferrable = editor._deferrable_constraint_sql(constraint.deferrable) or ""
                table.append_constraint(
                    sa.UniqueConstraint(
                        *[f.column for f in fields],
                        name=constraint.name,
                        **self._deferrable(deferrable),
                    )
                )
            for statement in self._take_deferred():
                self._unique(table, statement)
        else:
            raise UnsupportedModel(
                f"{model._meta.label}: {type(constraint).__name__} {constraint.name!r} cannot be "
                "autogenerated; describe the table in target_metadata, or create the "
                "constraint with op.execute() in a migration written with --empty."
            )

    def _foreign_key(self, model: type[models.Model], table: sa.Table, fld: Any) -> None:
        editor = self.editor
        target = fld.target_field
        to_model = target.model
        to_table = to_model._meta.db_table
        self.ensure_referenced(to_model, target)
        if editor.sql_create_inline_fk:
            name = None  # written inline by Django: unnamed
            deferrable = editor.sql_create_inline_fk
        else:
            name = _unquote(
                editor._fk_constraint_name(model, fld, "_fk_%(to_table)s_%(to_column)s")
            )
            deferrable = self.connection.ops.deferrable_sql()
        kwargs = self._deferrable(deferrable)
        on_delete = getattr(editor, "_create_on_delete_sql", None)
        if on_delete is not None:  # Django 6.0+: database-level on_delete
            match = re.search(r"ON DELETE ([A-Z ]+)", str(on_delete(model, fld) or ""), re.I)
            if match:
                kwargs["ondelete"] = match.group(1).strip().upper()
        table.append_constraint(
            sa.ForeignKeyConstraint(
                [fld.column], [f"{to_table}.{target.column}"], name=name, **kwargs
            )
        )

    def ensure_referenced(self, to_model: type[models.Model], target: Any) -> None:
        """Give a foreign key's target a table to point at (left out of comparing)."""
        name = to_model._meta.db_table
        table = self.metadata.tables.get(name)
        if table is None:
            table = sa.Table(name, self.metadata, info={EXTERNAL: True})
        if target.column in table.c:
            return
        if not table.info.get(EXTERNAL):
            raise UnsupportedModel(f"{name}.{target.column} is not a column of the model.")
        db_type = target.db_parameters(connection=self.connection)["type"]
        table.append_column(sa.Column(target.column, sqlalchemy_type(self.dialect, db_type)))


def model_tables(models_: Iterable[type[models.Model]]) -> list[type[models.Model]]:
    """The models whose tables ``models_`` own: themselves and their auto-created M2M tables."""
    result: list[type[models.Model]] = []
    for model in models_:
        result.append(model)
        for m2m in model._meta.local_many_to_many:
            through = m2m.remote_field.through
            if isinstance(through, type) and through._meta.auto_created:
                result.append(through)
    return result


def build_metadata(
    models_: Sequence[type[models.Model]],
    connection: BaseDatabaseWrapper,
    dialect: Dialect,
    notes: list[str] | None = None,
) -> sa.MetaData:
    """The tables of ``models_`` as Django creates them on ``connection``.

    :param models_: concrete models, each a table of its own (pass the
        auto-created M2M models too; see :func:`model_tables`).
    :param connection: the Django connection whose backend decides types,
        names and defaults.
    :param dialect: the SQLAlchemy dialect of that connection.
    :param notes: collects one line for each thing that was left out.

    Tables that only foreign keys point at are added with
    ``info={EXTERNAL: True}``; they are not the models' own.
    """
    builder = _Builder(connection, dialect, sa.MetaData())
    # Every own table exists before any foreign key looks for its target.
    tables = [(model, builder.table(model)) for model in models_]
    for model, table in tables:
        builder.constraints(model, table)
    if notes is not None:
        notes.extend(builder.notes)
    return builder.metadata

"""Django models -> SQLAlchemy :class:`~sqlalchemy.schema.MetaData`, as Django would create them.

Nothing here knows a Django field type. Every fact comes from Django itself,
asked on the connection the schema is for:

- the column type is ``field.db_parameters(connection)["type"]`` (with its
  collation and CHECK), turned into a SQLAlchemy type by the dialect's own
  parser: PostgreSQL's reflection parser (after PostgreSQL's documented type
  aliases, ``varchar`` -> ``character varying``), MySQL's parser of ``SHOW
  CREATE TABLE`` lines (after MySQL's documented synonyms, ``bool`` ->
  ``boolean``, ``double precision`` -> ``double``), SQLite's type-affinity
  rules on the upper-cased string;
- identity / ``AUTOINCREMENT`` from ``field.db_type_suffix(connection)``
  (MySQL's ``AUTO_INCREMENT`` is in the type string);
- database defaults from the schema editor's ``db_default_sql()``;
- index and unique-index names, columns, opclasses, conditions and
  ``INCLUDE`` lists from the statements the schema editor builds for
  ``_field_indexes_sql()`` (with PostgreSQL's ``varchar_pattern_ops``
  ``_like`` indexes), ``Index.create_sql()`` and ``_create_unique_sql()``;
- ``unique_together`` and ``Meta.constraints`` through the same calls
  ``create_model()`` makes, so a unique set is a unique index where Django
  makes one (SQLite) and a constraint where Django makes one (PostgreSQL);
- foreign-key names from ``_fk_constraint_name()`` where Django names them
  (PostgreSQL, MySQL), none where Django writes them inline (SQLite), and
  ``DEFERRABLE INITIALLY DEFERRED`` as Django writes it.

On MySQL/MariaDB, a field's own CHECK (``PositiveIntegerField``'s
```qty` >= 0``) is left out: Django writes it inline in the column's
definition, where neither SQLAlchemy's inspector nor Alembic's comparison
sees it, and the column is ``UNSIGNED`` anyway (MariaDB's ``JSON_VALID``
comes with its ``json`` type).

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
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
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
    "deferrable",
    "is_key_index",
    "key_deferrable",
    "model_tables",
    "pg_constraint_name",
    "quoted",
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

#: MySQL's documented synonyms of its types ("Using Data Types from Other
#: Database Engines", "Numeric Data Type Syntax"): ``SHOW CREATE TABLE``,
#: whose lines SQLAlchemy's parser reads, names them by the type they stand for.
_MYSQL_ALIASES = {
    "bool": "boolean",
    "double precision": "double",
    "real": "double",
    "dec": "decimal",
    "int1": "tinyint",
    "int2": "smallint",
    "int3": "mediumint",
    "int4": "int",
    "int8": "bigint",
    "middleint": "mediumint",
    "float4": "float",
    "float8": "double",
    "long varbinary": "mediumblob",
    "long varchar": "mediumtext",
    "long": "mediumtext",
}
_MYSQL_TYPE = re.compile(
    r"^\s*(double\s+precision|long\s+var(?:binary|char)|[a-z_][a-z0-9_]*)\s*(\([^)]*\))?(.*)$",
    re.I | re.S,
)
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


def quoted(editor: Any, value: Any) -> str:
    """``value`` as an SQL literal, by the schema editor's ``quote_value()``.

    MySQLdb escapes a value that is not a string to bytes, which Django then
    formats as ``b'1'`` (a bit literal) or ``b"'...'"``: decoded here.
    """
    literal = editor.quote_value(value)
    return literal.decode() if isinstance(literal, bytes) else str(literal)


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


def _parse_mysql_type(dialect: Dialect, db_type: str, collation: str | None) -> TypeEngine[Any]:
    """MySQL's parser of a ``SHOW CREATE TABLE`` column line, on the line Django's type makes.

    ``AUTO_INCREMENT`` (part of Django's type string on MySQL) is the
    column's, not the type's; the parser reads ``UNSIGNED`` and ``COLLATE``.
    """
    match = _MYSQL_TYPE.match(db_type)
    if match is None:
        return sa.types.NULLTYPE
    name = " ".join(match.group(1).lower().split())
    name = _MYSQL_ALIASES.get(name, name)
    args = re.sub(r"\s+", "", match.group(2) or "")
    rest = re.sub(r"\bAUTO_INCREMENT\b", "", match.group(3), flags=re.I).strip()
    line = f"  `c` {name}{args}{' ' + rest if rest else ''}"
    if collation:
        line += f" COLLATE {collation}"
    from sqlalchemy.dialects.mysql.reflection import ReflectedState  # MySQL projects only

    state = ReflectedState()
    dialect._tabledef_parser._parse_column(line + ",", state)  # type: ignore[attr-defined]
    if not state.columns:
        return sa.types.NULLTYPE
    return state.columns[0]["type"]


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
        elif dialect.name == "mysql":
            result = _parse_mysql_type(dialect, db_type, collation)
        else:
            raise UnsupportedModel(
                f"Autogenerate does not support the {dialect.name} backend "
                "(SQLite, PostgreSQL and MySQL/MariaDB are supported)."
            )
    if isinstance(result, sa.types.NullType):
        raise UnsupportedModel(f"SQLAlchemy does not know the {dialect.name} type {db_type!r}")
    return result


def deferrable(sql: str) -> dict[str, Any]:
    """``deferrable``/``initially`` of a constraint whose SQL ends with ``sql``."""
    sql = sql.upper()
    if "DEFERRABLE" not in sql or "NOT DEFERRABLE" in sql:
        return {}
    initially = "DEFERRED" if "INITIALLY DEFERRED" in sql else "IMMEDIATE"
    return {"deferrable": True, "initially": initially}


def key_deferrable(connection: BaseDatabaseWrapper) -> dict[str, Any]:
    """``deferrable``/``initially`` of the foreign keys Django makes on ``connection``."""
    editor: Any = connection.schema_editor(collect_sql=True, atomic=False)
    return deferrable(editor.sql_create_inline_fk or connection.ops.deferrable_sql())


def _used_parts(statement: Statement) -> dict[str, Any]:
    """The parts of ``statement`` its template writes.

    A backend's template leaves out what it does not support (MySQL's
    ``CREATE INDEX`` has no ``%(condition)s``: Django's partial index is a
    plain one there).
    """
    template = str(statement.template)
    return {k: v for k, v in statement.parts.items() if f"%({k})s" in template}


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
        if self.vendor == "mysql":
            self.editor._field_should_be_indexed = self._mysql_field_should_be_indexed

    def _mysql_field_should_be_indexed(self, model: type[models.Model], fld: Any) -> bool:
        """Django's MySQL rule, with the server's default storage engine.

        Django asks the server for the engine of each table (a query per
        indexed field, and a connection a backend built offline does not
        have); a table autogenerate creates gets the default engine. InnoDB
        indexes a foreign key's column itself (an index named after the
        constraint), so Django makes none for it.
        """
        editor = self.editor
        base: Any = BaseDatabaseSchemaEditor  # its private rules are untyped in django-stubs
        if not base._field_should_be_indexed(editor, model, fld):
            return False
        storage = self.connection.features._mysql_storage_engine  # type: ignore[attr-defined]
        if (
            storage == "InnoDB"
            and fld.get_internal_type() == "ForeignKey"
            and getattr(fld, "db_constraint", False)
        ):
            return False
        return not editor._is_limited_data_type(fld)

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
                sql = sql % tuple(quoted(self.editor, p) for p in gen_params)
            args.append(sa.Computed(sql_text(sql), persisted=bool(fld.db_persist)))  # type: ignore[attr-defined]
            null = True
        elif getattr(fld, "has_db_default", lambda: False)():  # Django 5.0+
            sql, default_params = self.editor.db_default_sql(fld)
            if default_params:
                sql = sql % tuple(quoted(self.editor, p) for p in default_params)
            kwargs["server_default"] = sql_text(sql)
        # MySQL's AUTO_INCREMENT is part of Django's type string there.
        suffix = f"{fld.db_type_suffix(connection=self.connection) or ''} {db_type}"
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
        parts = _used_parts(statement)
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
                expressions.append(sql_text(sql % tuple(quoted(self.editor, p) for p in params)))
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
        parts = _used_parts(statement)
        kwargs = deferrable(str(parts.get("deferrable") or ""))
        if "NOT DISTINCT" in str(parts.get("nulls_distinct") or "").upper():
            kwargs["postgresql_nulls_not_distinct"] = True
        table.append_constraint(
            sa.UniqueConstraint(*parts["columns"].columns, name=_unquote(parts["name"]), **kwargs)
        )

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
            # Not on MySQL: inline and out of sight there (see the module's docstring).
            if params.get("check") and self.vendor != "mysql":
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
                deferred = editor._deferrable_constraint_sql(constraint.deferrable) or ""
                table.append_constraint(
                    sa.UniqueConstraint(
                        *[f.column for f in fields], name=constraint.name, **deferrable(deferred)
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
        else:
            name = _unquote(
                editor._fk_constraint_name(model, fld, "_fk_%(to_table)s_%(to_column)s")
            )
        kwargs = key_deferrable(self.connection)
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


def is_key_index(connection: BaseDatabaseWrapper, index: sa.Index) -> bool:
    """Whether a reflected MySQL index is the one a foreign key was given by Django.

    Before dropping the index a foreign key uses, Django's MySQL schema
    editor gives the key an index of its own (``_create_missing_fk_index()``),
    which no model declares: like the index InnoDB makes for a key itself,
    it belongs to the key (Alembic leaves that one out by its name).
    """
    table = index.table
    columns = [c.name for c in index.columns]
    if connection.vendor != "mysql" or index.unique or len(columns) != 1 or table is None:
        return False
    if not any(list(fk.column_keys) == columns for fk in table.foreign_key_constraints):
        return False
    editor: Any = connection.schema_editor(collect_sql=True, atomic=False)
    return bool(index.name == editor._create_index_name(table.name, columns, suffix=""))


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

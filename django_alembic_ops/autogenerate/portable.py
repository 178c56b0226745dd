"""Scripts that run on every backend, as Django's migrations do.

Autogenerate compares the database with the target built for *its* backend
(:mod:`.metadata`). The operations it finds are then rewritten here so that
the script gives, on every supported backend, the schema Django would create
there for the same models:

- the target is built a second time for every other backend whose Django
  backend can be loaded (:func:`backends`): a Django connection object of
  that vendor is made from ``ENGINE`` alone and never connects; Django's
  schema editor only builds statements;
- a column gets one type that compiles, on each backend, to what Django
  writes there: the generic SQLAlchemy type of PostgreSQL's (``sa.JSON``,
  ``sa.DateTime(timezone=True)``, ``sa.Uuid``), with ``with_variant()``
  where a backend's type differs (``postgresql.JSONB``, SQLite's ``TEXT``);
- a database default whose SQL differs per backend (``Now()``, booleans,
  decimals) is a :class:`DialectDefault`, written as a lookup on the
  backend's name;
- a constraint or an index that only some backends have, or that differs
  per backend (PostgreSQL names foreign keys, SQLite writes them unnamed; a
  unique set is a constraint on PostgreSQL and a unique index on SQLite;
  PostgreSQL's ``varchar_pattern_ops`` indexes) is created only there:
  constraints with :meth:`~sqlalchemy.schema.Constraint.ddl_if`, index
  operations inside ``if dialect == ...:`` (:class:`.render.DialectOps`).

Objects are the same on two backends when one object compiles, on each, to
the statement Django's counterpart compiles to there (a constraint without
a name counting as the name the backend gives it).

Changes to existing tables (:class:`_TableChanges`) are made the same way:
each index or constraint operation the comparison found becomes, on every
backend, what Django has there - found in the target by name or by what it
stands for, else by Django's naming rules - and SQLite's rebuilds are
SQLite's only (:func:`_rebuilt_on_sqlite` for scripts compared elsewhere).
A column ``downgrade()`` adds back gets the type the app's scripts wrote
(:func:`written_types`).

MySQL/MariaDB: a MySQL target that is not the compared one is built for
MariaDB 10.11 (:data:`OFFLINE_MYSQL_SERVER`: Django's MySQL DDL depends on
the server). Compared there, unique constraints come back as unique indexes
and are made constraints elsewhere; a ``CHECK``'s SQL is requoted
(backticks); InnoDB indexes a foreign key itself, so the others' index of a
key's column comes and goes with the key, and a drop of the index a key
uses on MySQL is preceded by the key's own index (:class:`KeyIndexOp`), as
Django does.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from alembic.operations import ops
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler, load_backend
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import visitors
from sqlalchemy.sql.schema import ColumnCollectionConstraint
from sqlalchemy.sql.type_api import TypeEngine

from .. import state
from ..bridge import VENDOR_DIALECTS
from . import render, sqlite
from .metadata import (
    CHECK_COLUMN,
    UnsupportedModel,
    build_metadata,
    key_deferrable,
    pg_constraint_name,
    sql_text,
    sqlalchemy_type,
)
from .render import DIALECTS, DialectDefault

__all__ = [
    "Backend",
    "DialectDefault",
    "KeyIndexOp",
    "PortableSchema",
    "backends",
    "make_portable",
    "portable_schema",
    "portable_type",
]

#: The backends scripts are written for, in the order they are listed.
ENGINES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgresql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
}


#: The dialects :mod:`.metadata` builds a target for (the others are noted).
SUPPORTED = ("sqlite", "postgresql", "mysql")

#: What a MySQL-family backend built offline (never connected) is taken to be:
#: MariaDB 10.11, the server the suite runs on. Django reads these from the
#: server (``mysql_server_data``); they decide its DDL (``uuid`` from MariaDB
#: 10.7 on, DESC index columns from 10.8 on, CHECK constraints).
OFFLINE_MYSQL_SERVER = {
    "version": "10.11.0-MariaDB",
    "sql_mode": "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,"
    "NO_ENGINE_SUBSTITUTION",
    "default_storage_engine": "InnoDB",
    "sql_auto_is_null": False,
    "lower_case_table_names": False,
    "has_zoneinfo_database": True,
}


@dataclass(frozen=True)
class Backend:
    """The target as Django creates it on one backend."""

    name: str  # SQLAlchemy's dialect name
    dialect: Dialect
    connection: BaseDatabaseWrapper
    metadata: sa.MetaData


class _Unavailable(Exception):
    """A backend whose Django backend cannot be loaded here (its driver is missing)."""


@functools.cache
def _offline_connection(vendor: str) -> BaseDatabaseWrapper:
    """A Django connection object of ``vendor``: never connected, only asked for DDL.

    Cached: made once per process; nothing in it changes.
    """
    engine = ENGINES[vendor]
    try:
        backend = load_backend(engine)
    except (ImportError, ImproperlyConfigured) as exc:
        raise _Unavailable(" ".join(str(exc).split()).split(". ")[0]) from None
    # Django's defaults for every key a backend may read (TIME_ZONE, OPTIONS, ...).
    settings_dict = ConnectionHandler().configure_settings(
        {DEFAULT_DB_ALIAS: {"ENGINE": engine, "NAME": ""}}
    )[DEFAULT_DB_ALIAS]
    wrapper: BaseDatabaseWrapper = backend.DatabaseWrapper(
        settings_dict, alias=f"django_alembic_ops_{vendor}"
    )
    if vendor == "mysql":
        # What Django would ask the server (cached properties, set once).
        wrapper.__dict__["mysql_server_data"] = dict(OFFLINE_MYSQL_SERVER)
        wrapper.SchemaEditorClass = type(
            "OfflineSchemaEditor", (backend.DatabaseSchemaEditor,), {"quote_value": _mysql_quote}
        )
    return wrapper


def _mysql_quote(editor: Any, value: Any) -> Any:
    """Django's MySQL ``quote_value()`` without a connection: MySQLdb's escaping."""
    import MySQLdb  # the driver Django's MySQL backend loaded

    quoted = MySQLdb._mysql.escape(value, MySQLdb.converters.conversions)
    # As Django's: only a string's quoted form is decoded.
    if isinstance(value, str) and isinstance(quoted, bytes):
        quoted = quoted.decode()
    return quoted


@functools.cache
def _dialect(name: str) -> Dialect:
    """SQLAlchemy's dialect ``name`` (its default driver's class, never connected).

    MySQL's as for the server of :data:`OFFLINE_MYSQL_SERVER` (MariaDB's
    native ``UUID`` for ``sa.Uuid``).
    """
    dialect_class: Any = sa.engine.make_url(f"{name}://").get_dialect()
    if name != "mysql":
        return cast(Dialect, dialect_class())
    dialect = dialect_class(is_mariadb=True)
    dialect.server_version_info = (10, 11, 0)
    dialect.supports_native_uuid = True
    return cast(Dialect, dialect)


def backends(
    models: Sequence[Any],
    connection: BaseDatabaseWrapper,
    metadata: sa.MetaData,
    dialect: Dialect,
    notes: list[str],
) -> list[Backend]:
    """The target on the compared backend (first), then on every other one that loads.

    :param models: the models the target was built from.
    :param connection: the compared database's Django connection.
    :param metadata: the target built on it.
    :param notes: gets one line for each backend left out, and why.
    """
    result = [Backend(dialect.name, dialect, connection, metadata)]
    if not models:
        return result
    # A backend the project uses (some alias of DATABASES) is worth a note when
    # the script cannot be made for it; the others are left out quietly.
    used = {state.vendor(alias) for alias in connections.settings}
    for vendor in ENGINES:
        name = VENDOR_DIALECTS[vendor]
        if name == dialect.name:
            continue
        left_out = notes if vendor in used else []
        if name not in SUPPORTED:
            left_out.append(
                f"The script is not made to run on {name}: autogenerate does not support it yet."
            )
            continue
        try:
            wrapper = _offline_connection(vendor)
            other = _dialect(name)
            built = build_metadata(models, wrapper, other, [])
        except _Unavailable as exc:
            left_out.append(f"The script is not made to run on {name}: {exc}.")
            continue
        except UnsupportedModel as exc:
            left_out.append(f"The script is not made to run on {name}: {exc}")
            continue
        result.append(Backend(name, other, wrapper, built))
    return result


# -- types -------------------------------------------------------------------


def _compiled(type_: TypeEngine[Any], dialect: Dialect) -> str | None:
    try:
        # Adapted first, as a statement on that backend adapts it: MySQL's
        # DOUBLE refuses a precision without a scale (sa.Double(precision=53)).
        type_.dialect_impl(dialect)
        return str(type_.compile(dialect=dialect))
    except Exception:  # a type the dialect cannot write (JSONB on SQLite)
        return None


def _generic(type_: TypeEngine[Any]) -> TypeEngine[Any] | None:
    try:
        return type_.as_generic()
    except NotImplementedError:  # no generic counterpart (INET)
        return None


def _bare(type_: TypeEngine[Any]) -> TypeEngine[Any] | None:
    """``type_``'s class without arguments, when it takes none."""
    try:
        return type(type_)()
    except TypeError:
        return None


def _canonical(names: Iterable[str]) -> list[str]:
    """Dialect names in the order of :data:`ENGINES`: a script does not depend on
    which backend it was compared with."""
    order = [VENDOR_DIALECTS[vendor] for vendor in ENGINES]
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))


def portable_type(
    types: dict[str, TypeEngine[Any]], dialects: dict[str, Dialect]
) -> TypeEngine[Any]:
    """One type that compiles on each backend to what ``types`` compile to there.

    The base is the generic type of PostgreSQL's when there is one: PostgreSQL
    has a native type for every Django field, so its generic type says what
    the column holds (``sa.JSON``, ``sa.Uuid``, ``sa.Interval``). Otherwise
    it is the type, generic or not, that the most backends take as it is.
    Every backend where the base compiles differently gets its own type as a
    variant (backends with the same type share one ``with_variant()``).
    """
    names = _canonical(types)
    # Each candidate is compiled for each backend several times below.
    seen: dict[tuple[int, str], str | None] = {}
    kept: list[TypeEngine[Any]] = []  # the ids above stay theirs

    def compiled(candidate: TypeEngine[Any], name: str) -> str | None:
        key = (id(candidate), name)
        if key not in seen:
            kept.append(candidate)
            seen[key] = _compiled(candidate, dialects[name])
        return seen[key]

    def mismatches(candidate: TypeEngine[Any]) -> list[str]:
        return [
            name
            for name in names
            if compiled(candidate, name) is None
            or compiled(candidate, name) != compiled(types[name], name)
        ]

    def everywhere(candidate: TypeEngine[Any] | None) -> bool:
        return candidate is not None and all(compiled(candidate, n) is not None for n in names)

    base = _generic(types["postgresql"]) if "postgresql" in types else None
    if base is not None and not everywhere(base):
        # Its arguments may be what another backend refuses (MySQL's DOUBLE
        # takes no precision alone): without them, if PostgreSQL's is the same.
        bare = _bare(base)
        if (
            bare is not None
            and everywhere(bare)
            and compiled(bare, "postgresql") == compiled(types["postgresql"], "postgresql")
        ):
            base = bare
    if base is None or not everywhere(base):
        candidates = [g for n in names if (g := _generic(types[n])) is not None and everywhere(g)]
        candidates += [types[n] for n in names if everywhere(types[n])]
        if not candidates:
            return types[names[0]]
        base = min(candidates, key=lambda c: len(mismatches(c)))
    assert base is not None
    grouped: dict[str, list[str]] = {}
    for name in mismatches(base):
        grouped.setdefault(repr(types[name]), []).append(name)
    for dialect_names in grouped.values():
        base = base.with_variant(types[dialect_names[0]], *dialect_names)
    return base


# -- defaults ----------------------------------------------------------------


def _default_sql(default: Any) -> str | None:
    if not isinstance(default, sa.DefaultClause):
        return None
    arg = default.arg
    if isinstance(arg, str):
        return arg
    if isinstance(arg, sa.TextClause):
        return arg.text.replace("\\:", ":")
    return None


def portable_default(defaults: dict[str, Any], primary: str) -> Any:
    """The server default of ``primary`` (a :class:`DialectDefault` when the SQL differs)."""
    sql = {name: _default_sql(defaults[name]) for name in _canonical(defaults)}
    own = defaults[primary]
    texts = {text for text in sql.values()}
    if own is None or len(texts) == 1 or None in texts:
        return own
    return DialectDefault({name: text for name, text in sql.items() if text is not None}, primary)


# -- matching objects across backends ----------------------------------------


def _auto_name(constraint: sa.Constraint, table: str, dialect: str) -> str | None:
    """The name ``dialect`` gives ``constraint`` when it has none.

    PostgreSQL's rules; MySQL names a unique key after its first column.
    """
    if dialect == "mysql" and isinstance(constraint, sa.UniqueConstraint):
        return next((str(c.name) for c in constraint.columns), None)
    if dialect != "postgresql":
        return None
    if isinstance(constraint, sa.PrimaryKeyConstraint):
        return pg_constraint_name(table, None, "pkey")
    if isinstance(constraint, sa.UniqueConstraint):
        return pg_constraint_name(table, "_".join(c.name for c in constraint.columns), "key")
    if isinstance(constraint, sa.ForeignKeyConstraint):
        return pg_constraint_name(table, "_".join(constraint.column_keys), "fkey")
    if isinstance(constraint, sa.CheckConstraint):
        return pg_constraint_name(table, constraint.info.get(CHECK_COLUMN), "check")
    return None


def _constraint_ddl(constraint: sa.Constraint, backend: Backend) -> tuple[str | None, str] | None:
    """(name, SQL without the name) that ``constraint`` has in a CREATE TABLE on ``backend``."""
    table = constraint.table
    assert isinstance(table, sa.Table)
    dialect = backend.dialect
    compiler: Any = dialect.ddl_compiler  # made without a statement, as SQLAlchemy does
    try:
        sql = str(compiler(dialect, None).process(constraint))
    except Exception:
        return None
    name = constraint.name
    if isinstance(name, str) and name:
        prefix = f"CONSTRAINT {dialect.identifier_preparer.format_constraint(constraint)} "
        sql = sql.removeprefix(prefix)
    else:
        name = _auto_name(constraint, table.name, backend.name)
    return (str(name) if name else None, " ".join(sql.split()))


def _index_ddl(index: sa.Index, backend: Backend) -> str | None:
    try:
        return " ".join(str(sa.schema.CreateIndex(index).compile(dialect=backend.dialect)).split())
    except Exception:
        return None


_T = TypeVar("_T")


def _place(
    objects: dict[str, list[_T]], same: Callable[[_T, _T, str], bool]
) -> list[tuple[_T, dict[str, _T]]]:
    """Each object once, with what it stands for on each backend (the most backends first).

    ``same(candidate, other, backend)``: whether ``candidate`` gives on
    ``backend`` what ``other`` (an object of that backend) gives.
    """
    order = _canonical(objects)
    left = {name: list(items) for name, items in objects.items()}
    placed: list[tuple[_T, dict[str, _T]]] = []
    while any(left.values()):
        best: tuple[_T, dict[str, _T]] | None = None
        for name in order:
            for candidate in left[name]:
                matches = {name: candidate}
                for other in order:
                    if other == name:
                        continue
                    match = next((o for o in left[other] if same(candidate, o, other)), None)
                    if match is not None:
                        matches[other] = match
                if best is None or len(matches) > len(best[1]):
                    best = (candidate, matches)
        assert best is not None
        candidate, matches = best
        for name, match in matches.items():
            left[name].remove(match)
        placed.append((candidate, {name: matches[name] for name in order if name in matches}))
    return placed


# -- the portable schema -----------------------------------------------------


@dataclass(eq=False)
class Form:
    """An index or a constraint as the script writes it, and what it is on each backend."""

    #: The object in the portable table (``info[DIALECTS]`` when only some backends have it).
    item: Any
    #: Dialect name -> the object of that backend's target it stands for.
    members: dict[str, Any]

    @property
    def name(self) -> str | None:
        return str(self.item.name) if self.item.name else None


@dataclass
class PortableSchema:
    """The target's tables as one script writes them for every backend."""

    backends: list[Backend]
    metadata: sa.MetaData
    #: Per table, its indexes and constraints (primary keys aside).
    forms: dict[str, list[Form]] = field(default_factory=dict)
    #: Column types as the app's scripts wrote them (see :func:`written_types`).
    written: dict[tuple[str, str], str] = field(default_factory=dict)
    #: :func:`portable_type`'s answers, by the types it was given (see :meth:`column_type`).
    types: dict[tuple[tuple[str, str], ...], TypeEngine[Any]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return _canonical(backend.name for backend in self.backends)

    @property
    def primary(self) -> Backend:
        return self.backends[0]

    def indexes(self, table: str) -> list[sa.Index]:
        return [f.item for f in self.forms.get(table, []) if isinstance(f.item, sa.Index)]

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)

    def column_type(self, types: dict[str, TypeEngine[Any]]) -> TypeEngine[Any]:
        """:func:`portable_type` of ``types`` on these backends, each answer worked out once.

        Most of a target's columns repeat a few types (``Integer``,
        ``String(100)``, ...), and working one out compiles several candidates
        for every backend. SQLAlchemy's own types say all they are in their
        ``repr()``; other types (a project's, whose ``repr`` may not) are worked
        out every time. Each column gets its own copy.
        """
        if not all(type(t).__module__.startswith("sqlalchemy.") for t in types.values()):
            return portable_type(types, {b.name: b.dialect for b in self.backends})
        key = tuple(sorted((name, repr(t)) for name, t in types.items()))
        found = self.types.get(key)
        if found is None:
            found = portable_type(types, {b.name: b.dialect for b in self.backends})
            self.types[key] = found
        return found.copy()


def _only_for(item: Any, names: list[str], everyone: list[str]) -> None:
    if len(names) == len(everyone):
        return
    item.info[DIALECTS] = tuple(names)
    if isinstance(item, sa.Constraint):
        # A tuple of names is documented; the annotation only says str.
        item.ddl_if(dialect=tuple(names))  # type: ignore[arg-type]


def _column(
    name: str, columns: dict[str, sa.Column[Any]], schema: PortableSchema
) -> sa.Column[Any]:
    primary = columns[schema.primary.name]
    type_ = schema.column_type({n: c.type for n, c in columns.items()})
    args: list[Any] = []
    identity = next((c.identity for c in columns.values() if c.identity is not None), None)
    if identity is not None:
        args.append(sa.Identity(always=identity.always))
    server_default = portable_default(
        {n: c.server_default for n, c in columns.items()}, schema.primary.name
    )
    if primary.computed is not None:
        sqltext = _computed_sql(columns, schema)
        args.append(sa.Computed(sqltext, persisted=primary.computed.persisted))
        server_default = None  # the Computed is the column's server default
    flags = {c.autoincrement for c in columns.values()}
    autoincrement: Any = False if False in flags else True if True in flags else "auto"
    comment = next((c.comment for c in columns.values() if c.comment), None)
    return sa.Column(
        name,
        type_,
        *args,
        primary_key=primary.primary_key,
        nullable=primary.nullable,
        server_default=server_default,
        autoincrement=autoincrement,
        comment=comment,
    )


def _computed_sql(columns: dict[str, sa.Column[Any]], schema: PortableSchema) -> Any:
    """A generated column's expression, for every backend.

    Django quotes its identifiers as each backend does (MySQL's backticks
    are not PostgreSQL's double quotes); one expression runs everywhere
    when they need no quotes on any backend.
    """
    primary = columns[schema.primary.name].computed
    assert primary is not None
    texts = {
        name: str(column.computed.sqltext)
        for name, column in columns.items()
        if column.computed is not None
    }
    if len(set(texts.values())) <= 1:
        return primary.sqltext
    dialects = [backend.dialect for backend in schema.backends]

    def unquoted(match: re.Match[str]) -> str:
        name = match.group(1)
        plain = all(not d.identifier_preparer._requires_quotes(name) for d in dialects)
        return name if plain else match.group(0)

    bare = {re.sub(r'["`](\w+)["`]', unquoted, text) for text in texts.values()}
    return sql_text(bare.pop()) if len(bare) == 1 else primary.sqltext


def _copy_index(index: sa.Index, table: sa.Table, kwargs: dict[str, Any]) -> sa.Index:
    source = index.table

    def replace(element: Any, **kw: Any) -> Any:
        if isinstance(element, sa.Column) and element.table is source:
            return table.c[element.key]
        return None

    expressions = [
        visitors.replacement_traverse(cast(Any, e), {}, replace) for e in index.expressions
    ]
    copy = sa.Index(index.name, *expressions, unique=bool(index.unique), **kwargs)
    if copy.table is None:  # only text expressions
        table.append_constraint(copy)
    return copy


def _dialect_kwargs(index: sa.Index, dialect: str) -> dict[str, Any]:
    return {k: v for k, v in index.dialect_kwargs.items() if k.startswith(f"{dialect}_")}


def _table(name: str, schema: PortableSchema) -> None:
    tables = {b.name: b.metadata.tables[name] for b in schema.backends}
    primary = tables[schema.primary.name]
    columns = [
        _column(column.name, {n: t.c[column.name] for n, t in tables.items()}, schema)
        for column in primary.c
    ]
    kwargs: dict[str, Any] = {}
    for table in tables.values():
        kwargs.update(table.kwargs)
    comment = next((t.comment for t in tables.values() if t.comment), None)
    table = sa.Table(name, schema.metadata, *columns, comment=comment, **kwargs)
    everyone = schema.names
    by_name = {b.name: b for b in schema.backends}

    def same_constraint(candidate: sa.Constraint, other: sa.Constraint, backend: str) -> bool:
        ours = _constraint_ddl(candidate, by_name[backend])
        return ours is not None and ours == _constraint_ddl(other, by_name[backend])

    constraints = {
        n: [c for c in t.constraints if not isinstance(c, sa.PrimaryKeyConstraint)]
        for n, t in tables.items()
    }
    forms: list[Form] = []
    placed = _place(constraints, same_constraint)
    for constraint, matches in sorted(placed, key=lambda item: -len(item[1])):
        copy = constraint._copy(target_table=table)
        copy.info = dict(constraint.info)
        _only_for(copy, list(matches), everyone)
        table.append_constraint(copy)
        forms.append(Form(copy, matches))

    # Indexes of one name are one index when a copy with every backend's own
    # options (postgresql_where and sqlite_where, ...) gives each its own.
    names_seen = sorted({str(i.name) for t in tables.values() for i in t.indexes})
    for index_name in names_seen:
        members = {
            n: next(i for i in t.indexes if i.name == index_name)
            for n, t in tables.items()
            if any(i.name == index_name for i in t.indexes)
        }
        members = {n: members[n] for n in _canonical(members)}
        base = next(iter(members.values()))
        merged_kwargs = {k: v for n, i in members.items() for k, v in _dialect_kwargs(i, n).items()}
        merged = _copy_index(base, table, merged_kwargs)
        fits = [
            n
            for n, i in members.items()
            if _index_ddl(merged, by_name[n]) == _index_ddl(i, by_name[n])
        ]
        if fits:
            _only_for(merged, fits, everyone)
            forms.append(Form(merged, {n: members[n] for n in fits}))
        else:
            table.indexes.discard(merged)
        for n, i in members.items():
            if n not in fits:
                own = _copy_index(i, table, _dialect_kwargs(i, n))
                _only_for(own, [n], everyone)
                forms.append(Form(own, {n: i}))
    schema.forms[name] = forms


def portable_schema(
    backends_: list[Backend],
    tables: Iterable[str],
    written: dict[tuple[str, str], str] | None = None,
) -> PortableSchema:
    """The tables ``tables`` of the target, for every backend in ``backends_``.

    :param written: column types as the app's scripts wrote them
        (:func:`written_types`).
    """
    schema = PortableSchema(list(backends_), sa.MetaData(), written=dict(written or {}))
    common = [name for name in tables if all(name in b.metadata.tables for b in backends_)]
    # Tables foreign keys point at (other apps', Django's): names and keys only.
    for table in backends_[0].metadata.tables.values():
        if table.name not in common:
            table.to_metadata(schema.metadata)
    for name in common:
        _table(name, schema)
    return schema


# -- the operations ------------------------------------------------------------


#: The Django fields a column read back from a database is taken for, first
#: match first: where several fields share a type there (SQLite's ``integer``,
#: ``bigint``, ``text``), the plainest one.
_LIKELY_FIELDS = (
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    # Only MySQL tells them apart (UNSIGNED).
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
    "CharField",
    "TextField",
    "DateTimeField",
    "DateField",
    "TimeField",
    "BooleanField",
    "DecimalField",
    "FloatField",
    "BinaryField",
    "UUIDField",
    "JSONField",
    "DurationField",
    "GenericIPAddressField",
)


def _field_types(
    type_: TypeEngine[Any], schema: PortableSchema
) -> tuple[str | None, dict[str, TypeEngine[Any]]]:
    """What a column of the compared database is on every backend, as Django writes it.

    For a column the target no longer has (``downgrade()`` adds it back):
    the first field of :data:`_LIKELY_FIELDS` whose type on the compared
    backend is ``type_``, as each backend's Django writes that field.
    """
    primary = schema.primary
    wanted = _reported(type_, primary.dialect)
    params = {
        "max_length": getattr(type_, "length", None),
        "max_digits": getattr(type_, "precision", None),
        "decimal_places": getattr(type_, "scale", None),
    }
    for internal in _LIKELY_FIELDS:
        found: dict[str, TypeEngine[Any]] = {}
        for backend in schema.backends:
            db_type = backend.connection.data_types.get(internal)
            if not isinstance(db_type, str):
                break
            try:
                found[backend.name] = sqlalchemy_type(backend.dialect, db_type % params)
            except (TypeError, ValueError, KeyError, UnsupportedModel):
                break
        else:
            djangos = found[primary.name]
            if _reported(djangos, primary.dialect) == wanted:
                # The database's own, unless it is only a synonym of Django's
                # (MySQL's TINYINT(1) for BOOL, its json's LONGTEXT).
                if _compiled(djangos, primary.dialect) == _compiled(type_, primary.dialect):
                    found[primary.name] = type_
                return internal, found
    return None, {}


#: MariaDB's ``json`` is this type, with a ``JSON_VALID`` CHECK reflection does not show.
_MARIADB_JSON = "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"


def _reported(type_: TypeEngine[Any], dialect: Dialect) -> str | None:
    """``type_`` as the database reports it back: on MySQL, its synonyms resolved
    (``BOOL`` is ``TINYINT(1)``, ``NUMERIC`` is ``DECIMAL``, MariaDB's ``JSON``),
    without the display width of an integer type."""
    text = _compiled(type_, dialect)
    if text is None or dialect.name != "mysql":
        return text
    text = {"BOOL": "TINYINT(1)", "JSON": _MARIADB_JSON}.get(text, text)
    text = re.sub(r"^NUMERIC\b", "DECIMAL", text)
    return re.sub(r"^((?:SMALL|MEDIUM|BIG)?INT(?:EGER)?)\(\d+\)", r"\1", text)


#: What a type written in a script may use: SQLAlchemy and its dialects' types.
_TYPE_MODULES = {"sa", "postgresql", "mysql", "sqlite"}
_NOT_TYPES = {"ForeignKey", "Identity", "Computed", "Sequence", "FetchedValue"}


class _WrittenTypes(ast.NodeVisitor):
    """The column types the ``upgrade()`` of the app's scripts write, in order."""

    def __init__(self) -> None:
        self.table: str | None = None  # of the batch_alter_table block we are in
        self.found: dict[tuple[str, str], str] = {}

    @staticmethod
    def _text(node: ast.expr | None) -> str | None:
        return (
            node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
        )

    def _type(self, node: ast.expr) -> str | None:
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        called = {
            n.func.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
        }
        if not names or not names <= _TYPE_MODULES or called & _NOT_TYPES:
            return None
        return ast.unparse(node)

    def _column(self, table: str | None, node: ast.expr) -> None:
        if not (
            table
            and isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "Column"
            and len(node.args) >= 2
        ):
            return
        column, written = self._text(node.args[0]), self._type(node.args[1])
        if column and written:
            self.found[(table, column)] = written

    def visit_With(self, node: ast.With) -> None:
        outer = self.table
        call = node.items[0].context_expr if node.items else None
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "batch_alter_table"
            and call.args
        ):
            self.table = self._text(call.args[0])
        self.generic_visit(node)
        self.table = outer

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute):
            via_op = isinstance(node.func.value, ast.Name) and node.func.value.id == "op"
            args = list(node.args)
            table = self._text(args.pop(0)) if via_op and args else self.table
            if node.func.attr == "create_table" and via_op:
                for arg in args:
                    self._column(table, arg)
            elif node.func.attr == "add_column" and args:
                self._column(table, args[0])
            elif node.func.attr == "alter_column" and args:
                column = self._text(args[0])
                for keyword in node.keywords:
                    written = self._type(keyword.value) if keyword.arg == "type_" else None
                    if table and column and written:
                        self.found[(table, column)] = written
        self.generic_visit(node)


def written_types(paths: Iterable[Path]) -> dict[tuple[str, str], str]:
    """(table, column) -> the type the app's scripts last gave it, as Python source.

    Read from each script's ``upgrade()``, in history order; only types
    written with SQLAlchemy's names (``sa.``, ``postgresql.``, ...).
    """
    found: dict[tuple[str, str], str] = {}
    for path in paths:
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
                visitor = _WrittenTypes()
                visitor.visit(node)
                found.update(visitor.found)
    return found


def _reflected_type(
    type_: TypeEngine[Any], schema: PortableSchema, table: str = "", column: str = ""
) -> TypeEngine[Any]:
    """A type read from the compared database, for every backend.

    As the app's scripts wrote it (:func:`written_types`), else as Django
    writes the field it most likely is (:func:`_field_types`), else the
    generic type, with the compared database's as its variant where it
    differs there.
    """
    primary = schema.primary
    written = schema.written.get((table, column))
    if written is not None:
        return render.WrittenType(written, type_)
    _, types = _field_types(type_, schema)
    if types:
        return schema.column_type(types)
    generic = _generic(type_)
    if generic is None:
        return type_
    if _compiled(generic, primary.dialect) == _compiled(type_, primary.dialect):
        return generic
    return generic.with_variant(type_, primary.name)


def _target_column(schema: PortableSchema, table: str, column: str) -> sa.Column[Any] | None:
    found = schema.metadata.tables.get(table)
    if found is None or column not in found.c or table not in schema.forms:
        return None
    return found.c[column]


def _column_op(sub: ops.MigrateOperation, table: str, schema: PortableSchema) -> None:
    """The types and defaults of a column operation, for every backend."""
    primary = schema.primary
    if isinstance(sub, ops.AddColumnOp):
        column = sub.column
        target = _target_column(schema, table, column.name)
        if target is None:  # a dropped column, back in downgrade()
            column.type = _reflected_type(column.type, schema, table, column.name)
            return
        copy = target._copy()
        if target.server_default is None and column.server_default is not None:
            copy.server_default = column.server_default  # a temporary default
        sub.column = copy
    elif isinstance(sub, ops.AlterColumnOp):
        target = _target_column(schema, table, sub.column_name)
        own = primary.metadata.tables[table].c[sub.column_name] if target is not None else None

        def portable(type_: TypeEngine[Any]) -> TypeEngine[Any]:
            # The target's type where it is the target's (upgrade()'s new
            # type, an unchanged column's); else what the database had.
            if (
                own is not None
                and target is not None
                and _compiled(type_, primary.dialect) == _compiled(own.type, primary.dialect)
            ):
                return target.type
            return _reflected_type(type_, schema, table, sub.column_name)

        if sub.modify_type is not None:
            sub.modify_type = portable(sub.modify_type)
        if sub.existing_type is not None:
            sub.existing_type = portable(sub.existing_type)
        if (
            target is not None
            and own is not None
            and sub.modify_server_default not in (False, None)
            and _default_sql(sub.modify_server_default) == _default_sql(own.server_default)
        ):
            sub.modify_server_default = target.server_default


def _grouped(
    made: list[tuple[tuple[str, ...], ops.MigrateOperation]], everyone: list[str]
) -> list[ops.MigrateOperation]:
    """Operations for every backend as they are; the others in ``if`` blocks.

    Consecutive operations for the same backends share one block.
    """
    result: list[ops.MigrateOperation] = []
    for dialects, op in made:
        if set(dialects) >= set(everyone):
            result.append(op)
        elif (
            result
            and isinstance(result[-1], render.DialectOps)
            and (result[-1].dialects == dialects)
        ):
            result[-1].ops.append(op)
        else:
            result.append(render.DialectOps(dialects, [op]))
    return result


def _requoted(sql: str, dialect: str) -> str:
    """A CHECK's SQL with its identifiers quoted as ``dialect`` quotes them.

    MySQL quotes with backticks (a double-quoted word is a string there);
    the others with double quotes.
    """
    if dialect == "mysql":
        return re.sub(r'"((?:[^"]|"")+)"', lambda m: "`" + m.group(1).replace('""', '"') + "`", sql)
    return re.sub(r"`((?:[^`]|``)+)`", lambda m: '"' + m.group(1).replace("``", "`") + '"', sql)


def _checked_by(sql: str) -> str | None:
    """The column of a field's own CHECK as Django writes it (``"qty" >= 0``)."""
    match = re.fullmatch(r'\(?"(\w+)" >= 0\)?', sql.strip())
    return match.group(1) if match else None


def _op_key(op: ops.MigrateOperation) -> tuple[Any, ...]:
    """What an index or constraint operation does (two equal keys: one operation)."""
    name = getattr(op, "index_name", None) or getattr(op, "constraint_name", None)
    columns = getattr(op, "columns", None) or getattr(op, "local_cols", None) or []
    return (
        type(op).__name__,
        str(name),
        getattr(op, "constraint_type", None),
        tuple(c if isinstance(c, str) else repr(c) for c in columns),
        getattr(op, "referent_table", None),
        # A CHECK's SQL differs per backend (MySQL quotes with backticks).
        str(getattr(op, "condition", "")),
        tuple(sorted((k, repr(v)) for k, v in (getattr(op, "kw", None) or {}).items())),
    )


def _merged(
    made: list[tuple[tuple[str, ...], ops.MigrateOperation]], everyone: list[str]
) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
    """One entry for operations that do the same on several backends (the first one kept)."""
    merged: dict[tuple[Any, ...], tuple[list[str], ops.MigrateOperation]] = {}
    for dialects, op in made:
        key = _op_key(op)
        if key in merged:
            merged[key][0].extend(d for d in dialects if d not in merged[key][0])
        else:
            merged[key] = (list(dialects), op)
    return [(tuple(_canonical(d)), op) for d, op in merged.values()]


def _index_ops(indexes: Sequence[sa.Index], names: list[str]) -> list[ops.MigrateOperation]:
    """Create the indexes of a new table; those for some backends in ``if`` blocks."""

    def key(index: sa.Index) -> tuple[Any, ...]:
        dialects = index.info.get(DIALECTS)
        order = [names.index(n) for n in dialects] if dialects else []
        return (dialects is not None, order, str(index.name))

    made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = []
    for index in sorted(indexes, key=key):
        op = ops.CreateIndexOp.from_index(index)
        made.append((tuple(index.info.get(DIALECTS) or names), op))
    return _grouped(made, names)


# -- changes to existing tables -------------------------------------------------

_INDEX_OPS = (ops.CreateIndexOp, ops.DropIndexOp)
_CONSTRAINT_OPS = (ops.AddConstraintOp, ops.DropConstraintOp)


def _columns_of(item: Any) -> set[str]:
    if isinstance(item, sa.CheckConstraint):
        column = item.info.get(CHECK_COLUMN)
        return {str(column)} if column else set()
    if isinstance(item, sa.ForeignKeyConstraint):
        return {str(key) for key in item.column_keys}
    if isinstance(item, (sa.Index, ColumnCollectionConstraint)):
        return {str(c.name) for c in item.columns}
    return set()


def _stands_for(op: ops.MigrateOperation, member: Any) -> bool:
    """Whether ``op`` (of the compared backend) creates or drops ``member``."""
    if isinstance(op, ops.DropConstraintOp) and op._reverse is not None:
        return _stands_for(op._reverse, member) or (
            bool(member.name) and member.name == op.constraint_name
        )
    if isinstance(op, _INDEX_OPS):
        return isinstance(member, sa.Index) and member.name == op.index_name
    name = getattr(op, "constraint_name", None)
    if member.name:
        return bool(name) and member.name == name
    if isinstance(op, ops.CreateUniqueConstraintOp):
        return isinstance(member, sa.UniqueConstraint) and [c.name for c in member.columns] == list(
            op.columns
        )
    if isinstance(op, ops.CreateForeignKeyOp):
        return (
            isinstance(member, sa.ForeignKeyConstraint)
            and list(member.column_keys) == list(op.local_cols)
            and member.referred_table.name == op.referent_table
        )
    return False


def _same_object(one: Any, other: Any) -> bool:
    """Whether two backends' objects are one model's field or option (names aside)."""
    if type(one) is not type(other):
        return False
    if isinstance(one, sa.CheckConstraint):
        column = one.info.get(CHECK_COLUMN)
        return bool(column) and column == other.info.get(CHECK_COLUMN)
    if isinstance(one, sa.ForeignKeyConstraint):
        return (
            list(one.column_keys) == list(other.column_keys)
            and one.referred_table.name == other.referred_table.name
        )
    if isinstance(one, sa.UniqueConstraint):
        return [c.name for c in one.columns] == [c.name for c in other.columns]
    return bool(one.name) and one.name == other.name


def _kind(item: Any) -> str:
    if isinstance(item, sa.UniqueConstraint):
        return "unique"
    if isinstance(item, sa.CheckConstraint):
        return "check"
    if isinstance(item, sa.ForeignKeyConstraint):
        return "foreignkey"
    return "primary"


def _op_for(form: Form, table: str, name: str | None, *, create: bool) -> ops.MigrateOperation:
    item = form.item
    if isinstance(item, sa.Index):
        return ops.CreateIndexOp.from_index(item) if create else ops.DropIndexOp.from_index(item)
    if not create:
        return ops.DropConstraintOp(name, table, type_=_kind(item))
    extra: dict[str, Any] = {}
    if item.deferrable is not None:
        extra["deferrable"] = item.deferrable
    if item.initially is not None:
        extra["initially"] = item.initially
    if isinstance(item, sa.UniqueConstraint):
        return ops.CreateUniqueConstraintOp(name, table, [c.name for c in item.columns], **extra)
    if isinstance(item, sa.CheckConstraint):
        return ops.CreateCheckConstraintOp(name, table, item.sqltext)
    assert isinstance(item, sa.ForeignKeyConstraint)
    targets = [element.target_fullname.rsplit(".", 1) for element in item.elements]
    return ops.CreateForeignKeyOp(
        name,
        table,
        targets[0][0],
        list(item.column_keys),
        [column for _, column in targets],
        ondelete=item.ondelete,
        onupdate=item.onupdate,
        **extra,
    )


def _form_ops(
    form: Form,
    table: str,
    schema: PortableSchema,
    *,
    create: bool,
    own_name: str | None,
) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
    """Create (or drop) ``form`` on each of its backends, under the name it has there.

    ``own_name``: the name the compared backend's operation gives it. SQLite
    keeps a field's CHECK in the table's definition (a rebuild restates it),
    so it gets no operation of its own there.
    """
    names: dict[str, str | None] = {}
    for dialect, member in form.members.items():
        if dialect == "sqlite" and isinstance(member, sa.CheckConstraint) and not member.name:
            continue
        if isinstance(member, sa.Index) or member.name:
            names[dialect] = str(member.name)
        elif dialect == schema.primary.name and own_name:
            names[dialect] = own_name
        elif dialect == "sqlite":
            # Batch mode needs a name: Django's, as for the compared backend's.
            names[dialect] = _django_name(member, table, schema.backend("sqlite"))
        else:
            names[dialect] = _auto_name(member, table, dialect) or own_name
    by_name: dict[str | None, list[str]] = {}
    for dialect, name in names.items():
        by_name.setdefault(name, []).append(dialect)
    return [
        (tuple(dialects), _op_for(form, table, name, create=create))
        for name, dialects in by_name.items()
    ]


def _django_name(member: Any, table: str, backend: Backend) -> str | None:
    """The name Django's schema editor makes for a unique set or a foreign key."""
    editor: Any = backend.connection.schema_editor(collect_sql=True, atomic=False)
    if isinstance(member, sa.UniqueConstraint):
        columns = [str(c.name) for c in member.columns]
        return str(editor._create_index_name(table, columns, suffix="_uniq"))
    if isinstance(member, sa.ForeignKeyConstraint):
        to_table, to_column = member.elements[0].target_fullname.rsplit(".", 1)
        suffix = f"_fk_{to_table}_{to_column}"
        return str(editor._create_index_name(table, list(member.column_keys), suffix=suffix))
    return None


def _like_name(schema: PortableSchema, table: str, column: str) -> str | None:
    """The name Django gives PostgreSQL's ``varchar_pattern_ops`` index of ``column``."""
    if "postgresql" not in schema.names:
        return None
    editor: Any = schema.backend("postgresql").connection.schema_editor(
        collect_sql=True, atomic=False
    )
    return str(editor._create_index_name(table, [column], suffix="_like"))


def _textual_on_postgresql(schema: PortableSchema, table: str, column: str) -> bool:
    if "postgresql" not in schema.names:
        return False
    found = schema.backend("postgresql").metadata.tables.get(table)
    return (
        found is not None
        and column in found.c
        and isinstance(found.c[column].type, (sa.String, sa.Text))
    )


class KeyIndexOp(ops.CreateIndexOp):
    """The index a foreign key needs on MySQL, made before the one it used is dropped."""

    is_change = False  # part of the drop


class _TableChanges:
    """The compared backend's operations on one existing table, for every backend."""

    def __init__(self, table: str, schema: PortableSchema, container: ops.OpContainer) -> None:
        self.table = table
        self.schema = schema
        self.forms = schema.forms.get(table, [])
        subs = [
            sub
            for op in container.ops
            if isinstance(op, ops.ModifyTableOps) and op.table_name == table
            for sub in op.ops
        ] + [op for op in container.ops if getattr(op, "table_name", None) == table]
        self.added = {sub.column.name for sub in subs if isinstance(sub, ops.AddColumnOp)}
        # Their types as the compared database has them (downgrade() adds back
        # columns the target no longer has).
        self.added_types: dict[str, TypeEngine[Any]] = {
            sub.column.name: sub.column.type for sub in subs if isinstance(sub, ops.AddColumnOp)
        }
        self.dropped = {sub.column_name for sub in subs if isinstance(sub, ops.DropColumnOp)}
        self.done: set[int] = set()  # forms already given their operations
        self.created_forms: set[int] = set()  # those of them the compared backend creates
        self.sqlite_checks: list[str] = []  # fields' CHECKs SQLite's rebuild must add
        self.created: set[str] = set()  # names of what the compared backend creates
        # Indexes and constraints the container makes or drops here.
        self.touched = {
            str(getattr(sub, "index_name", None) or getattr(sub, "constraint_name", None))
            for sub in subs
            if isinstance(sub, (*_INDEX_OPS, *_CONSTRAINT_OPS))
        }
        self.fk_indexed: set[str] = set()  # columns given their key's index on MySQL
        self.orders: dict[str, list[str]] | None = None  # MySQL's index column orders
        # Columns of foreign keys: in a target, or made or dropped here.
        self.key_columns = {
            str(column)
            for sub in subs
            if isinstance(sub, ops.CreateForeignKeyOp)
            or (isinstance(sub, ops.DropConstraintOp) and sub.constraint_type == "foreignkey")
            for column in self._columns(sub)
        }
        for backend in schema.backends:
            found = backend.metadata.tables.get(table)
            for key in found.foreign_key_constraints if found is not None else ():
                self.key_columns |= {str(c) for c in key.column_keys}

    def translate(self, op: ops.MigrateOperation) -> list[ops.MigrateOperation]:
        """``op`` on every backend: itself where it is right, the backends' own elsewhere."""
        if (
            isinstance(op, ops.AddColumnOp)
            and self.schema.primary.name != "sqlite"
            and "sqlite" in self.schema.names
            and _target_column(self.schema, self.table, op.column.name) is None
        ):
            # A column back in downgrade(): its CHECK on SQLite (JSON_VALID,
            # a positive field's).
            internal, _ = _field_types(op.column.type, self.schema)
            self._sqlite_check(internal, op.column.name)
        checks = self._mysql_readded_checks(op)
        _column_op(op, self.table, self.schema)
        if checks:
            return _grouped([(tuple(self.schema.names), op), *checks], self.schema.names)
        if not isinstance(op, (*_INDEX_OPS, *_CONSTRAINT_OPS)):
            return [op]
        primary = self.schema.primary.name
        create = isinstance(op, (ops.CreateIndexOp, ops.AddConstraintOp))
        named = (
            op.index_name if isinstance(op, _INDEX_OPS) else getattr(op, "constraint_name", None)
        )
        own_name = str(named) if named else None
        if create and own_name:
            self.created.add(str(own_name))
        own = [
            f.members[primary]
            for f in self.forms
            if primary in f.members and _stands_for(op, f.members[primary])
        ]
        forms = [
            f
            for f in self.forms
            if any(_same_object(m, o) or m is o for m in f.members.values() for o in own)
            or (own_name and any(m.name == own_name for m in f.members.values()))
        ]
        made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = []
        covered: set[str] = set()
        for form in forms:
            self.done.add(id(form))
            if create:
                self.created_forms.add(id(form))
            for dialects, form_op in _form_ops(
                form, self.table, self.schema, create=create, own_name=own_name
            ):
                if primary in dialects:
                    form_op = op  # the compared backend's own, as it was made
                made.append((dialects, form_op))
                covered |= set(dialects)
            covered |= set(form.members)
        rest = [name for name in self.schema.names if name not in covered]
        if not forms:
            # Not in the target (dropped, or back in downgrade()): in the
            # form the other backends have it, by Django's rules.
            if isinstance(op, ops.CreateIndexOp) and primary == "mysql":
                self._mysql_descending(op)
            made += self._guessed(op, rest)
        if not forms or not create:  # a new key's index is the target's (extras())
            made += self._key_field_index_ops(op, create=create)
        if not create:
            made = self._mysql_key_index(op) + made
        return _grouped(_merged(made, self.schema.names), self.schema.names)

    def _mysql_key_index(
        self, op: ops.MigrateOperation
    ) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
        """The index a foreign key needs on MySQL, before ``op`` drops the one it used.

        InnoDB refuses to drop the index a foreign key uses (a unique set or
        an index that starts with the key's column took the place of the
        key's own). Django's schema editor then first gives the key an index
        of its own (``_create_missing_fk_index()``, named as a field's index),
        unless another one starts with the column; so does the script, on
        MySQL, where none of the table's other indexes in the target does.
        ``IF NOT EXISTS``: an earlier migration may have made it.
        """
        columns = self._columns(op)
        if "mysql" not in self.schema.names or not columns or columns[0] in self.fk_indexed:
            return []
        if isinstance(op, ops.DropConstraintOp) and op.constraint_type not in (None, "unique"):
            return []
        column = columns[0]
        table = self.schema.backend("mysql").metadata.tables.get(self.table)
        if table is None or not any(
            list(fk.column_keys)[:1] == [column] for fk in table.foreign_key_constraints
        ):
            return []
        name = str(getattr(op, "index_name", None) or getattr(op, "constraint_name", None))
        others: list[Any] = [table.primary_key, *table.indexes]
        others += [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
        if any(
            [c.name for c in item.columns][:1] == [column]
            for item in others
            if str(item.name) != name and str(item.name) not in self.touched
        ):
            return []
        self.fk_indexed.add(column)
        editor: Any = self.schema.backend("mysql").connection.schema_editor(
            collect_sql=True, atomic=False
        )
        index = str(editor._create_index_name(self.table, [column], suffix=""))
        return [(("mysql",), KeyIndexOp(index, self.table, [column], if_not_exists=True))]

    def _guessed(
        self, op: ops.MigrateOperation, dialects: list[str], *, only_companions: bool = False
    ) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
        """What ``op`` is on backends whose target says nothing about its object.

        Django's rules: a unique set (``..._uniq``) is a unique index on SQLite
        and a constraint elsewhere; PostgreSQL has a ``_like`` index next to
        the index or unique constraint of a ``varchar``/``text`` field.
        """
        primary = self.schema.primary.name
        made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = []
        if not only_companions:
            made = self._same_elsewhere(op, dialects)
        if primary != "postgresql" and "postgresql" in dialects:
            made += self._like_companion(op)
        return made

    def _same_elsewhere(
        self, op: ops.MigrateOperation, dialects: list[str]
    ) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
        """``op`` itself on the compared backend; on the others, by Django's naming rules."""
        primary = self.schema.primary.name
        name = str(getattr(op, "index_name", None) or getattr(op, "constraint_name", None) or "")
        chosen: dict[str, ops.MigrateOperation | None] = {}
        for dialect in dialects:
            chosen[dialect] = op if dialect == primary else self._elsewhere(op, name, dialect)
        made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = []
        for candidate in dict.fromkeys(o for o in chosen.values() if o is not None):
            names = tuple(d for d, o in chosen.items() if o is candidate)
            made.append((names, candidate))
        return made

    def _elsewhere(
        self, op: ops.MigrateOperation, name: str, dialect: str
    ) -> ops.MigrateOperation | None:
        primary = self.schema.primary.name
        if primary == "postgresql" and name.endswith("_like"):
            return None  # PostgreSQL's own
        if dialect in ("sqlite", "mysql") and (
            isinstance(op, ops.CreateCheckConstraintOp)
            or (isinstance(op, ops.DropConstraintOp) and op.constraint_type == "check")
        ):
            column = self._checked_column(name)
            if column is not None:
                # A positive field's CHECK: SQLite has it unnamed in the
                # table's definition, restated by the rebuild (or gone with
                # the column), written as Django writes it there; MySQL's
                # is not made (see .metadata).
                if isinstance(op, ops.CreateCheckConstraintOp) and dialect == "sqlite":
                    self._sqlite_check("PositiveIntegerField", column)
                return None
        columns = self._columns(op)
        index_op = isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp))
        if dialect == "mysql" and index_op and self._key_field_index(name, columns):
            return None  # InnoDB indexes the key itself
        unique_op = isinstance(op, ops.CreateUniqueConstraintOp) or (
            isinstance(op, ops.DropConstraintOp) and op.constraint_type == "unique"
        )
        unique_index = (isinstance(op, ops.CreateIndexOp) and bool(op.unique)) or (
            isinstance(op, ops.DropIndexOp) and self._unique(op)
        )
        create = isinstance(op, (ops.CreateIndexOp, ops.AddConstraintOp))
        if isinstance(op, ops.CreateForeignKeyOp):
            # Deferrable as Django makes keys there (never on MySQL).
            kw = {k: v for k, v in op.kw.items() if k not in ("deferrable", "initially")}
            kw.update(key_deferrable(self.schema.backend(dialect).connection))
            return ops.CreateForeignKeyOp(
                name, self.table, op.referent_table, op.local_cols, op.remote_cols, **kw
            )
        if isinstance(op, ops.CreateCheckConstraintOp) and "mysql" in (primary, dialect):
            condition = _requoted(str(op.condition), dialect)
            return ops.CreateCheckConstraintOp(name, self.table, condition)
        # MySQL reports a unique constraint as a unique index.
        field_unique = unique_op or (primary == "mysql" and unique_index)
        if field_unique and len(columns) == 1 and primary != dialect:
            # A field's unique: named by Django for SQLite's batch mode, by
            # the database on PostgreSQL (<table>_<column>_key) and MySQL
            # (<column>).
            editor: Any = self.schema.backend(primary).connection.schema_editor(
                collect_sql=True, atomic=False
            )
            names = {
                "sqlite": str(editor._create_index_name(self.table, columns, suffix="_uniq")),
                "postgresql": pg_constraint_name(self.table, columns[0], "key"),
                "mysql": columns[0],
            }
            if name == names.get(primary) and dialect in names:
                if create:
                    return ops.CreateUniqueConstraintOp(names[dialect], self.table, columns)
                return ops.DropConstraintOp(names[dialect], self.table, type_="unique")
        if primary == "mysql" and unique_index and not name.endswith("_uniq"):
            # A UniqueConstraint: a constraint on the other backends.
            if create:
                return ops.CreateUniqueConstraintOp(name, self.table, columns)
            return ops.DropConstraintOp(name, self.table, type_="unique")
        if not name.endswith("_uniq") or not (unique_index or unique_op):
            return op
        # A unique set (unique_together): an index on SQLite, a constraint elsewhere.
        if dialect == "sqlite" and unique_op:
            if create:
                return ops.CreateIndexOp(name, self.table, columns, unique=True)
            return ops.DropIndexOp(name, table_name=self.table)
        if dialect != "sqlite" and index_op:
            if create:
                return ops.CreateUniqueConstraintOp(name, self.table, columns)
            return ops.DropConstraintOp(name, self.table, type_="unique")
        return op

    def _mysql_descending(self, op: ops.CreateIndexOp) -> None:
        """The ``DESC`` of an index MySQL's ``downgrade()`` makes again.

        SQLAlchemy's MySQL reflection drops it; Django's introspection has
        it (a query, for a table whose indexes come back only).
        """
        if self.orders is None:
            connection = self.schema.primary.connection
            with connection.cursor() as cursor:
                constraints = connection.introspection.get_constraints(cursor, self.table)
            self.orders = {name: list(c.get("orders") or []) for name, c in constraints.items()}
        orders = self.orders.get(str(op.index_name), [])
        if "DESC" in orders and len(orders) == len(op.columns):
            op.columns = [
                sa.literal_column(str(getattr(c, "name", c))).desc() if order == "DESC" else c
                for c, order in zip(op.columns, orders, strict=True)
            ]

    def _mysql_readded_checks(
        self, op: ops.MigrateOperation
    ) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
        """A column MySQL's ``downgrade()`` adds back: its field's CHECK on PostgreSQL.

        MySQL shows no CHECK of a field (see .metadata), so the comparison
        has none to restore; the field is told by the column's type.
        """
        if (
            not isinstance(op, ops.AddColumnOp)
            or self.schema.primary.name != "mysql"
            or "postgresql" not in self.schema.names
            or _target_column(self.schema, self.table, op.column.name) is not None
        ):
            return []
        internal, _ = _field_types(op.column.type, self.schema)
        checks = self.schema.backend("postgresql").connection.data_type_check_constraints
        sql = checks.get(internal) if internal else None
        if not isinstance(sql, str):
            return []
        column = op.column.name
        name = pg_constraint_name(self.table, column, "check")
        create = ops.CreateCheckConstraintOp(name, self.table, sql % {"column": column})
        return [(("postgresql",), create)]

    def _key_field_index_ops(
        self, op: ops.MigrateOperation, *, create: bool
    ) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
        """With a foreign key MySQL made or dropped: Django's index of its column
        on the other backends (InnoDB indexes the key itself; the others have
        the field's index, ``db_index`` being a foreign key's default)."""
        key = isinstance(op, ops.CreateForeignKeyOp) or (
            isinstance(op, ops.DropConstraintOp) and op.constraint_type == "foreignkey"
        )
        columns = self._columns(op)
        if self.schema.primary.name != "mysql" or not key or len(columns) != 1:
            return []
        names: dict[str, list[str]] = {}
        for backend in self.schema.backends[1:]:
            editor: Any = backend.connection.schema_editor(collect_sql=True, atomic=False)
            name = str(editor._create_index_name(self.table, columns, suffix=""))
            names.setdefault(name, []).append(backend.name)
        made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = []
        for name, dialects in names.items():
            index: ops.MigrateOperation = (
                ops.CreateIndexOp(name, self.table, columns)
                if create
                else ops.DropIndexOp(name, table_name=self.table, if_exists=True)
            )
            made.append((tuple(_canonical(dialects)), index))
        return made

    def _key_field_index(self, name: str, columns: list[str]) -> bool:
        """Whether ``name`` is the index Django gives a foreign key's column
        (on the backends where the key has none of its own)."""
        if len(columns) != 1 or columns[0] not in self.key_columns:
            return False
        editor: Any = self.schema.primary.connection.schema_editor(collect_sql=True, atomic=False)
        return name == str(editor._create_index_name(self.table, columns, suffix=""))

    def _sqlite_check(self, internal: str | None, column: str) -> None:
        """Have SQLite's rebuild add the CHECK Django writes there for a field."""
        checks = self.schema.backend("sqlite").connection.data_type_check_constraints
        sql = checks.get(internal) if internal else None
        if isinstance(sql, str) and sql % {"column": column} not in self.sqlite_checks:
            self.sqlite_checks.append(sql % {"column": column})

    def _checked_column(self, name: str) -> str | None:
        """The column of a field's CHECK that PostgreSQL named ``name``."""
        columns = {c for c in self.added | self.dropped}
        table = self.schema.metadata.tables.get(self.table)
        if table is not None:
            columns |= {c.name for c in table.c}
        return next(
            (c for c in columns if pg_constraint_name(self.table, c, "check") == name), None
        )

    @staticmethod
    def _unique(op: ops.DropIndexOp) -> bool:
        reverse = op._reverse
        return isinstance(reverse, ops.CreateIndexOp) and bool(reverse.unique)

    @staticmethod
    def _columns(op: ops.MigrateOperation) -> list[str]:
        if isinstance(op, (ops.DropIndexOp, ops.DropConstraintOp)):
            op = op._reverse if op._reverse is not None else op
        columns = getattr(op, "columns", None) or getattr(op, "local_cols", None) or []
        return [c if isinstance(c, str) else str(getattr(c, "name", "")) for c in columns]

    def _like_companion(
        self, op: ops.MigrateOperation
    ) -> list[tuple[tuple[str, ...], ops.MigrateOperation]]:
        """PostgreSQL's ``_like`` index, made and dropped with a field's own index or unique."""
        columns = self._columns(op)
        if len(columns) != 1 or columns[0] in self.dropped:
            return []
        column = columns[0]
        if not (
            _textual_on_postgresql(self.schema, self.table, column)
            or isinstance(self.added_types.get(column), (sa.String, sa.Text))
        ):
            return []
        editor: Any = self.schema.primary.connection.schema_editor(collect_sql=True, atomic=False)
        field_names = {
            str(editor._create_index_name(self.table, [column], suffix=suffix))
            for suffix in ("", "_uniq")
        }
        if self.schema.primary.name == "mysql":
            field_names.add(column)  # MySQL names a field's unique after its column
        name = str(getattr(op, "index_name", None) or getattr(op, "constraint_name", None))
        like = _like_name(self.schema, self.table, column)
        if name not in field_names or like is None or like in {f.name for f in self.forms}:
            return []
        if isinstance(op, (ops.DropIndexOp, ops.DropConstraintOp)):
            drop = ops.DropIndexOp(like, table_name=self.table, if_exists=True)
            return [(("postgresql",), drop)]
        found = self.schema.backend("postgresql").metadata.tables[self.table].c
        type_ = found[column].type if column in found else self.added_types[column]
        opclass = "text_pattern_ops" if isinstance(type_, sa.Text) else "varchar_pattern_ops"
        create = ops.CreateIndexOp(like, self.table, [column], postgresql_ops={column: opclass})
        return [(("postgresql",), create)]

    def extras(self) -> list[ops.MigrateOperation]:
        """What other backends have and the compared one creates nothing for.

        PostgreSQL's ``_like`` index of a new column, or next to a new index;
        a new column's CHECK as PostgreSQL names it.
        """
        primary = self.schema.primary.name
        made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = []
        for form in self.forms:
            if id(form) in self.done or primary in form.members:
                continue
            name = form.name or ""
            new = bool(_columns_of(form.item) & self.added) or (
                name.endswith("_like") and name.removesuffix("_like") in self.created
            )
            if not new and name.endswith("_like"):
                columns = _columns_of(form.item)
                new = any(
                    _columns_of(f.item) == columns and f.name in self.created
                    for f in self.forms
                    if f is not form
                ) or any(
                    isinstance(f.members.get(primary), sa.UniqueConstraint)
                    and _columns_of(f.item) == columns
                    and id(f) in self.created_forms
                    for f in self.forms
                )
            if new:
                self.done.add(id(form))
                made += _form_ops(form, self.table, self.schema, create=True, own_name=None)
        return _grouped(made, self.schema.names)

    def check_ops(self, batch: render.BatchTableOps) -> list[ops.MigrateOperation]:
        """The other backends' side of the field CHECKs a SQLite rebuild restates.

        SQLite keeps a field's CHECK (``"qty" >= 0``) unnamed in the table's
        definition; PostgreSQL has it as ``<table>_<column>_check``. A check
        the block adds is created there, one it removes is dropped (unless
        its column goes too).
        """
        before, after = (list(checks) for checks in batch.checks_changed)
        others = tuple(n for n in self.schema.names if n not in ("sqlite", "mysql"))
        made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = []
        for sql in before + after:
            column = _checked_by(sql)
            if not others or column is None or (sql in before) == (sql in after):
                continue
            name = pg_constraint_name(self.table, column, "check")
            if sql in after:
                made.append((others, ops.CreateCheckConstraintOp(name, self.table, sql)))
            elif column not in self.dropped:
                made.append((others, ops.DropConstraintOp(name, self.table, type_="check")))
        return _grouped(made, self.schema.names)

    def sqlite_state(self, *, upgrade: bool) -> tuple[list[str], dict[str, Any], bool]:
        """``table_args``, ``table_kwargs`` and whether SQLite must rebuild, for a
        batch block on SQLite made from another backend's comparison.

        The table after the block is the target, less the CHECKs of the
        columns the block drops; before it, in ``upgrade()``, less those of
        the columns it adds (``downgrade()`` starts from the target).
        """
        table = self.schema.backend("sqlite").metadata.tables[self.table]
        checks = [
            c
            for c in table.constraints
            if isinstance(c, sa.CheckConstraint) and not c.name and not c._type_bound
        ]
        after = [str(c.sqltext) for c in checks if not (_columns_of(c) & self.dropped)]
        before = [str(c.sqltext) for c in checks if not (upgrade and _columns_of(c) & self.added)]
        after += [sql for sql in self.sqlite_checks if sql not in after]  # columns added back
        args = [f"sa.CheckConstraint({sql!r})" for sql in after]
        kwargs = {"sqlite_autoincrement": True} if table.kwargs.get("sqlite_autoincrement") else {}
        return args, kwargs, before != after


def _rebuilt_on_sqlite(
    op: ops.ModifyTableOps, changes: _TableChanges, *, upgrade: bool
) -> list[ops.MigrateOperation]:
    """Another backend's changes to an existing table, in batch blocks SQLite can run.

    As :mod:`.sqlite` lays them out: index operations outside the block, the
    drop of a new column's temporary default in a second block, and what a
    rebuild loses restated from SQLite's target.
    """
    args, kwargs, rebuild = changes.sqlite_state(upgrade=upgrade)

    def is_index(sub: ops.MigrateOperation) -> bool:
        return isinstance(sub, _INDEX_OPS) or (
            isinstance(sub, render.DialectOps) and all(isinstance(o, _INDEX_OPS) for o in sub.ops)
        )

    def is_drop(sub: ops.MigrateOperation) -> bool:
        # A foreign key's index made for a drop goes with the drops.
        inner = sub.ops if isinstance(sub, render.DialectOps) else [sub]
        return all(isinstance(o, (ops.DropIndexOp, KeyIndexOp)) for o in inner)

    drops = [sub for sub in op.ops if is_index(sub) and is_drop(sub)]
    creates = [sub for sub in op.ops if is_index(sub) and not is_drop(sub)]
    rest = [sub for sub in op.ops if not is_index(sub)]
    later = [sub for sub in rest if isinstance(sub, render.DropTemporaryDefaultOp)]
    rest = [sub for sub in rest if not isinstance(sub, render.DropTemporaryDefaultOp)]
    result: list[ops.MigrateOperation] = list(drops)
    block = render.BatchTableOps(
        op.table_name,
        rest,
        schema=op.schema,
        recreate="always" if rebuild else "auto",
        recreate_on=("sqlite",),
        table_args=args,
        table_kwargs=kwargs,
    )
    if not block.is_empty():
        result.append(block)
    if later:
        result.append(
            render.BatchTableOps(
                op.table_name, later, schema=op.schema, table_args=args, table_kwargs=kwargs
            )
        )
    return result + creates


def make_portable(container: ops.OpContainer, schema: PortableSchema, *, upgrade: bool) -> None:
    """Rewrite ``container`` (``upgrade()``'s or ``downgrade()``'s) to run on every backend.

    The target's new tables are created from :func:`portable_schema`'s
    tables and indexes (the indexes of a new table with ``op.create_index``
    on every backend: a new table needs no batch mode, so the same models
    give the same script whichever backend they were compared with); column
    operations get portable types and defaults; an index or a constraint
    added to or dropped from an existing table is, on each backend, what
    Django has there (:class:`_TableChanges`). When the compared backend is
    not SQLite, the changes to existing tables go in batch blocks that SQLite
    can run (:func:`_rebuilt_on_sqlite`); when it is, its rebuilds are
    SQLite's only. A dropped table's indexes go with it (no ``drop_index``
    first: MySQL refuses to drop the index a foreign key uses).
    """
    new = {
        op.table_name
        for op in container.ops
        if isinstance(op, (ops.CreateTableOp, ops.DropTableOp)) and op.table_name in schema.forms
    }
    dropped = {op.table_name for op in container.ops if isinstance(op, ops.DropTableOp)}
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps) and op.table_name in dropped:
            op.ops = [sub for sub in op.ops if not isinstance(sub, ops.DropIndexOp)]
    container.ops = [
        op
        for op in container.ops
        if not (isinstance(op, ops.DropIndexOp) and op.table_name in dropped)
        and not (isinstance(op, ops.ModifyTableOps) and op.table_name in dropped and not op.ops)
    ]
    primary = schema.primary.name
    changes: dict[str, _TableChanges] = {}

    def changes_of(table: str) -> _TableChanges:
        if table not in changes:
            changes[table] = _TableChanges(table, schema, container)
        return changes[table]

    result: list[ops.MigrateOperation] = []
    last: dict[str, int] = {}  # existing table -> position after its last operation
    for op in container.ops:
        table = getattr(op, "table_name", None)
        if isinstance(op, ops.CreateTableOp) and table in new:
            assert table is not None
            result.append(ops.CreateTableOp.from_table(schema.metadata.tables[table]))
            result += _index_ops(schema.indexes(table), schema.names)
        elif isinstance(op, ops.DropTableOp) and table in new:
            result.append(op)
        elif isinstance(op, _INDEX_OPS) and table in new:
            continue  # made above, with the table
        elif isinstance(op, ops.ModifyTableOps) and table in new:
            op.ops = [sub for sub in op.ops if not isinstance(sub, _INDEX_OPS)]
            if op.ops:
                result.append(op)
        elif isinstance(op, sqlite.RestoreIndexOp) and op.restores:
            # An index brought back from its SQL: standard SQL, but for MySQL.
            quoted = tuple(d for d in schema.names if d != "mysql")
            made: list[tuple[tuple[str, ...], ops.MigrateOperation]] = [(quoted, op)]
            if op.replaces is not None and len(quoted) < len(schema.names):
                made.append((("mysql",), op.replaces))
            result += _grouped(made, schema.names)
        elif isinstance(op, (sqlite.SetAsideIndexOp, sqlite.RestoreIndexOp)):
            result.append(render.DialectOps(("sqlite",), [op]))  # around SQLite's rebuilds
        elif isinstance(op, ops.ModifyTableOps) and table in schema.forms:
            assert table is not None
            table_changes = changes_of(table)
            op.ops = [made for sub in op.ops for made in table_changes.translate(sub)]
            if isinstance(op, render.BatchTableOps) and primary == "sqlite":
                op.ops += table_changes.check_ops(op)
                if op.recreate == "always":
                    op.recreate_on = ("sqlite",)  # a rebuild only SQLite needs
            if primary != "sqlite" and "sqlite" in schema.names:
                # In the same blocks: a later rebuild would lose what SQLite's
                # restates.
                op.ops += table_changes.extras()
                result += _rebuilt_on_sqlite(op, table_changes, upgrade=upgrade)
            elif op.ops or not op.is_empty():
                result.append(op)
            last[table] = len(result)
        elif isinstance(op, (*_INDEX_OPS, *_CONSTRAINT_OPS)) and table in schema.forms:
            assert table is not None
            result += changes_of(table).translate(op)
            last[table] = len(result)
        elif isinstance(op, ops.ModifyTableOps):
            assert table is not None
            for sub in op.ops:
                _column_op(sub, table, schema)
            result.append(op)
        elif isinstance(op, ops.CreateTableOp):  # a dropped table, back in downgrade()
            for item in op.columns:
                if isinstance(item, sa.Column):
                    item.type = _reflected_type(item.type, schema, op.table_name, item.name)
            result.append(op)
        else:
            result.append(op)
    # Other backends' own objects, after everything else of their table.
    for table, position in sorted(last.items(), key=lambda item: -item[1]):
        result[position:position] = changes[table].extras()
    container.ops = result

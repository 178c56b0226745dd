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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from alembic.operations import ops
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler, load_backend
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import visitors
from sqlalchemy.sql.type_api import TypeEngine

from ..bridge import VENDOR_DIALECTS
from . import render
from .metadata import CHECK_COLUMN, UnsupportedModel, build_metadata, pg_constraint_name
from .render import DIALECTS, DialectDefault

__all__ = [
    "Backend",
    "DialectDefault",
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


#: The server a MySQL-family script is written for when none is connected:
#: MariaDB 10.11 (Debian's) with its defaults, as Django's MySQL backend
#: reads them (``DatabaseWrapper.mysql_server_data``).
MARIADB_SERVER = {
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
        # What Django would ask the server (its data types depend on it): a
        # MariaDB with its default settings, the server SPEC names.
        wrapper.__dict__["mysql_server_data"] = MARIADB_SERVER
    return wrapper


@functools.cache
def _dialect(name: str) -> Dialect:
    """SQLAlchemy's dialect ``name`` (its default driver's class, never connected)."""
    dialect: Dialect = sa.engine.make_url(f"{name}://").get_dialect()()
    return dialect


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
    for vendor in ENGINES:
        name = VENDOR_DIALECTS[vendor]
        if name == dialect.name:
            continue
        try:
            wrapper = _offline_connection(vendor)
            other = _dialect(name)
            built = build_metadata(models, wrapper, other, [])
        except _Unavailable as exc:
            notes.append(f"The script is not made to run on {name}: {exc}.")
            continue
        except UnsupportedModel as exc:
            notes.append(f"The script is not made to run on {name}: {exc}")
            continue
        result.append(Backend(name, other, wrapper, built))
    return result


# -- types -------------------------------------------------------------------


def _compiled(type_: TypeEngine[Any], dialect: Dialect) -> str | None:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # a type the dialect cannot write (JSONB on SQLite)
        return None


def _generic(type_: TypeEngine[Any]) -> TypeEngine[Any] | None:
    try:
        return type_.as_generic()
    except NotImplementedError:  # no generic counterpart (INET)
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

    def mismatches(candidate: TypeEngine[Any]) -> list[str]:
        return [
            name
            for name in names
            if _compiled(candidate, dialects[name]) is None
            or _compiled(candidate, dialects[name]) != _compiled(types[name], dialects[name])
        ]

    def everywhere(candidate: TypeEngine[Any] | None) -> bool:
        return candidate is not None and all(
            _compiled(candidate, dialects[n]) is not None for n in names
        )

    base = _generic(types["postgresql"]) if "postgresql" in types else None
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
    """The name ``dialect`` gives ``constraint`` when it has none (PostgreSQL's rules)."""
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
) -> list[tuple[_T, list[str]]]:
    """Each object once, with the backends it stands for (greedy: the most backends first).

    ``same(candidate, other, backend)``: whether ``candidate`` gives on
    ``backend`` what ``other`` (an object of that backend) gives.
    """
    order = _canonical(objects)
    left = {name: list(items) for name, items in objects.items()}
    placed: list[tuple[_T, list[str]]] = []
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
        placed.append((candidate, [name for name in order if name in matches]))
    return placed


# -- the portable schema -----------------------------------------------------


@dataclass
class PortableSchema:
    """The target's tables as one script writes them for every backend."""

    backends: list[Backend]
    metadata: sa.MetaData
    #: Per table, its indexes (those only for some backends have ``info[DIALECTS]``).
    indexes: dict[str, list[sa.Index]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return _canonical(backend.name for backend in self.backends)

    @property
    def primary(self) -> Backend:
        return self.backends[0]


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
    dialects = {backend.name: backend.dialect for backend in schema.backends}
    type_ = portable_type({n: c.type for n, c in columns.items()}, dialects)
    args: list[Any] = []
    identity = next((c.identity for c in columns.values() if c.identity is not None), None)
    if identity is not None:
        args.append(sa.Identity(always=identity.always))
    if primary.computed is not None:
        args.append(sa.Computed(primary.computed.sqltext, persisted=primary.computed.persisted))
    flags = {c.autoincrement for c in columns.values()}
    autoincrement: Any = False if False in flags else True if True in flags else "auto"
    comment = next((c.comment for c in columns.values() if c.comment), None)
    return sa.Column(
        name,
        type_,
        *args,
        primary_key=primary.primary_key,
        nullable=primary.nullable,
        server_default=portable_default(
            {n: c.server_default for n, c in columns.items()}, schema.primary.name
        ),
        autoincrement=autoincrement,
        comment=comment,
    )


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
    placed = _place(constraints, same_constraint)
    for constraint, names in sorted(placed, key=lambda item: -len(item[1])):
        copy = constraint._copy(target_table=table)
        copy.info = dict(constraint.info)
        _only_for(copy, names, everyone)
        table.append_constraint(copy)

    # Indexes of one name are one index when a copy with every backend's own
    # options (postgresql_where and sqlite_where, ...) gives each its own.
    indexes: list[sa.Index] = []
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
            indexes.append(merged)
        else:
            table.indexes.discard(merged)
        for n, i in members.items():
            if n not in fits:
                own = _copy_index(i, table, _dialect_kwargs(i, n))
                _only_for(own, [n], everyone)
                indexes.append(own)
    schema.indexes[name] = indexes


def portable_schema(backends_: list[Backend], tables: Iterable[str]) -> PortableSchema:
    """The tables ``tables`` of the target, for every backend in ``backends_``."""
    schema = PortableSchema(list(backends_), sa.MetaData())
    common = [name for name in tables if all(name in b.metadata.tables for b in backends_)]
    # Tables foreign keys point at (other apps', Django's): names and keys only.
    for table in backends_[0].metadata.tables.values():
        if table.name not in common:
            table.to_metadata(schema.metadata)
    for name in common:
        _table(name, schema)
    return schema


# -- the operations ------------------------------------------------------------


def _reflected_type(type_: TypeEngine[Any], schema: PortableSchema) -> TypeEngine[Any]:
    """A type read from the compared database, as generic as it stays the same there."""
    primary = schema.primary
    generic = _generic(type_)
    if generic is None or type(type_).__module__.startswith("sqlalchemy.sql"):
        return generic if generic is not None and repr(generic) == repr(type_) else type_
    if _compiled(generic, primary.dialect) == _compiled(type_, primary.dialect):
        return generic
    return generic.with_variant(type_, primary.name)


def _target_column(schema: PortableSchema, table: str, column: str) -> sa.Column[Any] | None:
    found = schema.metadata.tables.get(table)
    if found is None or column not in found.c or table not in schema.indexes:
        return None
    return found.c[column]


def _column_op(sub: ops.MigrateOperation, table: str, schema: PortableSchema) -> None:
    """The types and defaults of a column operation, for every backend."""
    primary = schema.primary
    if isinstance(sub, ops.AddColumnOp):
        column = sub.column
        target = _target_column(schema, table, column.name)
        if target is None:  # a dropped column, back in downgrade()
            column.type = _reflected_type(column.type, schema)
            return
        copy = target._copy()
        if target.server_default is None and column.server_default is not None:
            copy.server_default = column.server_default  # a temporary default
        sub.column = copy
    elif isinstance(sub, ops.AlterColumnOp):
        target = _target_column(schema, table, sub.column_name)
        own = primary.metadata.tables[table].c[sub.column_name] if target is not None else None
        if sub.modify_type is not None:
            sub.modify_type = (
                target.type if target is not None else _reflected_type(sub.modify_type, schema)
            )
        existing = sub.existing_type
        if existing is not None:
            if (
                own is not None
                and target is not None
                and _compiled(existing, primary.dialect) == _compiled(own.type, primary.dialect)
            ):
                sub.existing_type = target.type
            else:
                sub.existing_type = _reflected_type(existing, schema)
        if (
            target is not None
            and own is not None
            and sub.modify_server_default not in (False, None)
            and _default_sql(sub.modify_server_default) == _default_sql(own.server_default)
        ):
            sub.modify_server_default = target.server_default


def _index_ops(
    indexes: Sequence[sa.Index], *, create: bool, names: list[str]
) -> list[ops.MigrateOperation]:
    """Create (or drop) ``indexes``; those for some backends only inside ``if`` blocks."""

    def key(index: sa.Index) -> tuple[Any, ...]:
        dialects = index.info.get(DIALECTS)
        order = [names.index(n) for n in dialects] if dialects else []
        return (dialects is not None, order, str(index.name))

    made: list[ops.MigrateOperation] = []
    for index in sorted(indexes, key=key):
        op: ops.MigrateOperation = (
            ops.CreateIndexOp.from_index(index) if create else ops.DropIndexOp.from_index(index)
        )
        dialects = index.info.get(DIALECTS)
        if not dialects:
            made.append(op)
        elif made and isinstance(made[-1], render.DialectOps) and made[-1].dialects == dialects:
            made[-1].ops.append(op)
        else:
            made.append(render.DialectOps(dialects, [op]))
    if not create:
        made.reverse()
        for item in made:
            if isinstance(item, render.DialectOps):
                item.ops.reverse()
    return made


_INDEX_OPS = (ops.CreateIndexOp, ops.DropIndexOp)


def _existing_table_op(
    sub: ops.MigrateOperation, table: str, schema: PortableSchema
) -> list[ops.MigrateOperation]:
    _column_op(sub, table, schema)
    if isinstance(sub, ops.CreateIndexOp) and table in schema.indexes:
        same = [i for i in schema.indexes[table] if i.name == sub.index_name]
        if same:
            return _index_ops(same, create=True, names=schema.names)
    return [sub]


def make_portable(container: ops.OpContainer, schema: PortableSchema) -> None:
    """Rewrite ``container`` (an upgrade or a downgrade) to run on every backend of ``schema``.

    The target's new tables are created from :func:`portable_schema`'s
    tables and indexes (the indexes of a new table with ``op.create_index``
    on every backend: a new table needs no batch mode, so the same models
    give the same script whichever backend they were compared with); column
    operations get portable types and defaults; an index created on an
    existing table is created where the backends have it.
    """
    new = {
        op.table_name
        for op in container.ops
        if isinstance(op, (ops.CreateTableOp, ops.DropTableOp)) and op.table_name in schema.indexes
    }
    result: list[ops.MigrateOperation] = []
    for op in container.ops:
        table = getattr(op, "table_name", None)
        if isinstance(op, ops.CreateTableOp) and table in new:
            assert table is not None
            result.append(ops.CreateTableOp.from_table(schema.metadata.tables[table]))
            result += _index_ops(schema.indexes[table], create=True, names=schema.names)
        elif isinstance(op, ops.DropTableOp) and table in new:
            assert table is not None
            result += _index_ops(schema.indexes[table], create=False, names=schema.names)
            result.append(op)
        elif isinstance(op, _INDEX_OPS) and table in new:
            continue  # made above, with the table
        elif isinstance(op, ops.ModifyTableOps) and table in new:
            op.ops = [sub for sub in op.ops if not isinstance(sub, _INDEX_OPS)]
            if op.ops:
                result.append(op)
        elif isinstance(op, ops.ModifyTableOps):
            assert table is not None
            op.ops = [made for sub in op.ops for made in _existing_table_op(sub, table, schema)]
            result.append(op)
        elif isinstance(op, ops.CreateTableOp):  # a dropped table, back in downgrade()
            for item in op.columns:
                if isinstance(item, sa.Column):
                    item.type = _reflected_type(item.type, schema)
            result.append(op)
        else:
            result.append(op)
    container.ops = result

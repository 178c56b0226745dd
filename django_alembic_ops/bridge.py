"""Django's connection, seen by SQLAlchemy — with Django staying its owner.

Alembic needs a SQLAlchemy :class:`~sqlalchemy.engine.Connection`. We give it
one that wraps the DBAPI connection Django already holds for the alias, so the
test database, ``OPTIONS`` and SQLite in-memory databases just work.

A plain ``create_engine(creator=...)`` would treat that connection as its own:
its first-connect ``initialize()`` rolls back, ``dispose()``/``NullPool`` close
it, the pool resets it on return, and the SQLite dialect re-registers
``regexp``. Each of those silently breaks Django (rows written in ``atomic()``
vanish, an in-memory test database is destroyed). So the dialect used here is
a subclass of the real one whose connection-lifecycle hooks do nothing:
transactions are begun, committed and rolled back by Django's ``atomic()``
only (see :mod:`django_alembic_ops.runner`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from django.db import connections
from sqlalchemy.dialects import registry
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import NullPool

from . import state
from .errors import DatabaseUnavailable

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

#: Django ``connection.vendor`` -> SQLAlchemy dialect name.
VENDOR_DIALECTS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "oracle": "oracle",
}

_BORROWED_SUFFIX = "django_borrowed"
_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def _noop(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


def _borrowing_dialect(base: type[Dialect]) -> type[Dialect]:
    """Subclass ``base`` so that SQLAlchemy never manages the connection."""
    namespace: dict[str, Any] = {
        # Must be in the subclass's own body: SQLAlchemy does not inherit it
        # and warns on every statement otherwise.
        "supports_statement_cache": True,
        "on_connect": lambda self: None,
        "on_connect_url": lambda self, url: None,
        "do_begin": _noop,
        "do_commit": _noop,
        "do_rollback": _noop,
        "do_close": _noop,
        "do_terminate": _noop,
        "reset_isolation_level": _noop,
        "do_ping": lambda self, dbapi_connection: True,
        "__module__": __name__,
    }
    return type(f"DjangoBorrowed{base.__name__}", (base,), namespace)


#: Top-level module of the DBAPI Django loaded -> SQLAlchemy driver name.
_DBAPI_DRIVERS = {
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "MySQLdb": "mysqldb",
    "pymysql": "pymysql",  # pymysql.install_as_MySQLdb(): Django imports it as MySQLdb
    "oracledb": "oracledb",
    "cx_Oracle": "cx_oracle",
    "sqlite3": "pysqlite",
}
#: When the DBAPI module is none of those (a custom backend's): the vendor's usual driver.
_DEFAULT_DRIVERS = {
    "postgresql": "psycopg",
    "mysql": "mysqldb",
    "oracle": "oracledb",
    "sqlite": "pysqlite",
}


def _driver_for(connection: BaseDatabaseWrapper) -> str:
    """The SQLAlchemy ``dialect+driver`` of the DBAPI module Django loaded.

    ``connection.Database`` is the module Django connects with (psycopg or
    psycopg2, whichever Django's backend managed to import), never a guess
    from what is importable: a psycopg that is installed but cannot load
    libpq leaves Django on psycopg2, and so must it leave us.
    """
    dialect = VENDOR_DIALECTS.get(connection.vendor, "sqlite")
    database = getattr(connection, "Database", None)  # every backend sets it; stubs omit it
    module = getattr(database, "__name__", "").split(".")[0]
    driver = _DBAPI_DRIVERS.get(module) or _DEFAULT_DRIVERS.get(dialect, "pysqlite")
    return f"{dialect}+{driver}"


def _engine_for(alias: str) -> Engine:
    connection = connections[alias]
    driver = _driver_for(connection)
    key = (alias, driver)
    engine = _engines.get(key)
    if engine is not None:
        return engine
    # One engine per alias for every thread: its connections are looked up in
    # Django's (per-thread) connections at checkout.
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        base_url = sa.engine.make_url(f"{driver}://")
        base_dialect = base_url.get_dialect()
        name = f"{driver.replace('+', '_')}_{_BORROWED_SUFFIX}"
        dialect_cls = _borrowing_dialect(base_dialect)
        globals()[dialect_cls.__name__] = dialect_cls
        registry.register(f"{base_dialect.name}.{name}", __name__, dialect_cls.__name__)
        kwargs: dict[str, Any] = {}
        if connection.vendor == "postgresql":
            # Registering hstore would alter Django's connection adapters.
            kwargs["use_native_hstore"] = False
        engine = sa.create_engine(
            f"{base_dialect.name}+{name}://",
            # Looked up at checkout time: Django may have reconnected since.
            creator=lambda: connections[alias].connection,
            poolclass=NullPool,
            pool_reset_on_return=None,
            # A run's statements are almost all unique (DDL is not cached, and
            # Alembic writes each version number as a literal), so SQLAlchemy's
            # default cache of 500 compiled statements would hold hundreds of
            # dead entries: memory, and objects for the GC to walk. 100 still
            # covers the few statements a data migration repeats in a loop.
            query_cache_size=100,
            **kwargs,
        )
        _engines[key] = engine
        return engine


@contextmanager
def sqlalchemy_connection(alias: str) -> Iterator[Connection]:
    """Yield a SQLAlchemy connection over Django's DBAPI connection for ``alias``.

    Closing it closes nothing: the DBAPI connection stays Django's.
    """
    state.ensure_connection(alias)
    with _engine_for(alias).connect() as connection:
        yield connection


def offline_dialect_name(alias: str) -> str:
    """The SQLAlchemy dialect for ``--sql``, from ``ENGINE`` alone (no connection)."""
    vendor = state.vendor(alias)
    try:
        return VENDOR_DIALECTS[vendor]
    except KeyError:
        raise DatabaseUnavailable(
            f"Database '{alias}' uses an engine ({vendor}) that SQLAlchemy cannot render offline."
        ) from None

"""One ops migration run per database at a time.

PostgreSQL: a session-level advisory lock; MySQL: ``GET_LOCK``; both keyed on
the version table name, so databases that share a server but not a version
table do not block each other; the MySQL name also holds the database name,
because ``GET_LOCK`` names are server-wide (PostgreSQL's advisory locks
belong to one database already). SQLite: an exclusive transaction on a
small side database next to the database file (``<file>.opslock``) —
SQLite's own write lock, but on a file of its own, because the lock must
outlive the per-migration transactions on the real database — plus an
in-process lock per database, for threads of one process (an in-memory
database, which belongs to one process, has only that one). The side file
of a test database is removed with it (:func:`remove_side_files_with_test_databases`).

The lock is taken before the version table is read or created: concurrent
first runs would otherwise both try to create it, and a waiting run must
re-read what the other applied.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from django.db import connections

from . import conf, state
from .errors import LockTimeout

_POLL_SECONDS = 0.1
_thread_locks: dict[str, threading.RLock] = {}
_thread_locks_guard = threading.Lock()
#: MySQL/MariaDB refuse ``GET_LOCK`` names longer than this.
_MYSQL_LOCK_NAME_MAX = 64
_SIDE_SUFFIX = ".opslock"


def _lock_name() -> str:
    return f"django_alembic_ops:{conf.get().VERSION_TABLE}"


def _pg_key(schema: str | None = None) -> int:
    # A tenant schema has a version table, and so a lock, of its own.
    name = _lock_name() if schema is None else f"{_lock_name()}:{schema}"
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def mysql_lock_name(database_name: str, version_table: str) -> str:
    """The ``GET_LOCK`` name for ``version_table`` in the database ``database_name``.

    ``GET_LOCK`` names are server-wide: without the database name two
    unrelated databases on one server would wait for each other. A name
    longer than MySQL's limit becomes a digest (still one per database and
    table).
    """
    name = f"django_alembic_ops:{database_name}:{version_table}"
    if len(name) <= _MYSQL_LOCK_NAME_MAX:
        return name
    return f"django_alembic_ops:{hashlib.sha256(name.encode()).hexdigest()[:40]}"


def _mysql_database_name(alias: str) -> str:
    name = connections[alias].settings_dict.get("NAME")
    if name:
        return str(name)
    # The database may come from OPTIONS or an option file: ask the server.
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT DATABASE()")
        row = cursor.fetchone()
    return str(row[0] if row and row[0] is not None else "")


def sqlite_database_file(name: str | os.PathLike[str]) -> str | None:
    """The file a SQLite ``NAME`` opens, as Django opens it (``uri=True``); ``None``
    when it names an in-memory or temporary database, which has no file.

    A ``file:`` URI follows SQLite's rules (https://www.sqlite.org/uri.html):
    an empty or ``localhost`` authority, the path up to ``?`` or ``#``,
    percent-decoded; ``mode=memory`` or ``vfs=memdb`` in the query string
    mean memory (Django's test databases are
    ``file:memorydb_<alias>?mode=memory&cache=shared``). Anything else is a
    file name as written.
    """
    if isinstance(name, os.PathLike):
        return os.fspath(name)
    if name in ("", ":memory:"):
        return None
    if not name.startswith("file:"):  # SQLite only reads a lowercase prefix as a URI
        return name
    uri = name[len("file:") :].split("#", 1)[0]
    path, _, query = uri.partition("?")
    if path.startswith("//"):
        # An authority: SQLite accepts only none or "localhost".
        authority, slash, rest = path[2:].partition("/")
        path = slash + rest if authority in ("", "localhost") else path
    for parameter in query.split("&"):
        key, _, value = parameter.partition("=")
        if (unquote(key), unquote(value)) in (("mode", "memory"), ("vfs", "memdb")):
            return None
    path = unquote(path)
    return None if path in ("", ":memory:") else path


def sqlite_side_file(name: str | os.PathLike[str]) -> str | None:
    """The lock's side file for the SQLite database ``NAME`` (``None`` in memory)."""
    path = sqlite_database_file(name)
    return None if path is None else path + _SIDE_SUFFIX


def remove_side_files_with_test_databases() -> None:
    """Make Django remove a SQLite test database's side file together with it.

    Django's test runner and pytest-django destroy each file-backed test
    database they made (the clones of ``--parallel`` and pytest-xdist's
    ``_gwN`` databases too) through ``DatabaseCreation._destroy_test_db``;
    Django gives no signal for it, so the method is wrapped, once, for the
    SQLite backend and those built on it. Called from ``AppConfig.ready()``.
    """
    from django.db.backends.sqlite3 import creation

    # Any: django-stubs omit this private method (Django has it since 1.x).
    sqlite_creation: Any = creation.DatabaseCreation
    destroy: Callable[[Any, Any, int], None] = sqlite_creation._destroy_test_db
    if getattr(destroy, "removes_ops_side_file", False):
        return

    def _destroy_test_db(self: Any, test_database_name: Any, verbosity: int) -> None:
        destroy(self, test_database_name, verbosity)
        side = sqlite_side_file(test_database_name) if test_database_name else None
        if side is not None:
            with contextlib.suppress(FileNotFoundError):  # no ops migration ran on it
                os.remove(side)

    wrapper: Any = _destroy_test_db
    wrapper.removes_ops_side_file = True
    sqlite_creation._destroy_test_db = wrapper


def _wait(alias: str, try_acquire: Callable[[], bool], on_wait: Callable[[], None] | None) -> None:
    """Poll ``try_acquire`` until it succeeds or ``LOCK_TIMEOUT`` passes."""
    timeout = conf.get().LOCK_TIMEOUT
    deadline = time.monotonic() + timeout
    waited = False
    while not try_acquire():
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"Another opsmigrate run held the lock on database '{alias}' for more than "
                f"{timeout:g} seconds; try again later or raise ALEMBIC_OPS['LOCK_TIMEOUT']."
            )
        time.sleep(_POLL_SECONDS)


@contextmanager
def _server_lock(
    alias: str, acquire: str, release: str, param: Any, on_wait: Any
) -> Iterator[None]:
    connection = connections[alias]

    def try_acquire() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(acquire, [param])
            row = cursor.fetchone()
        return bool(row and row[0])

    _wait(alias, try_acquire, on_wait)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(release, [param])


def _thread_lock(name: str) -> threading.RLock:
    """The in-process lock of the SQLite database ``name``.

    Threads of one process open their own connections (Django's are per
    thread); a shared-cache in-memory database (Django's test database) is
    seen by all of them and has no file to lock. Re-entrant: a thread that
    holds it (a migration calling the API) meets the file lock, as before.
    """
    with _thread_locks_guard:
        return _thread_locks.setdefault(name, threading.RLock())


@contextmanager
def _sqlite_lock(alias: str, on_wait: Callable[[], None] | None) -> Iterator[None]:
    name = connections[alias].settings_dict["NAME"]
    thread_lock = _thread_lock(str(name))
    side: sqlite3.Connection | None = None
    side_file = sqlite_side_file(name)
    if side_file is not None:
        state.ensure_connection(alias)  # a path that cannot be opened: one line
        # As a URI of our own: the path may hold "?" or "%", and a name that
        # starts with "file:" is read as a URI even without uri=True.
        # isolation_level=None: we issue BEGIN EXCLUSIVE ourselves; timeout=0:
        # we poll, so we can say that we wait and give up after LOCK_TIMEOUT.
        side = sqlite3.connect(
            Path(os.path.abspath(side_file)).as_uri(),
            uri=True,
            timeout=0,
            isolation_level=None,
        )
    held = False

    def try_acquire() -> bool:
        nonlocal held
        if not thread_lock.acquire(blocking=False):
            return False
        if side is not None:
            try:
                side.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError:
                thread_lock.release()
                return False
        held = True
        return True

    try:
        _wait(alias, try_acquire, on_wait)
        yield
    finally:
        if side is not None:
            side.close()  # ends the transaction, releasing the lock
        if held:
            thread_lock.release()


@contextmanager
def migration_lock(
    alias: str, on_wait: Callable[[], None] | None = None, *, schema: str | None = None
) -> Iterator[None]:
    """Hold the database's migration lock; call ``on_wait`` once if it must wait.

    ``schema``: the lock of that PostgreSQL schema's version table (a tenant's),
    so that runs on different tenants of one database never wait for each other.

    Connects Django's alias (a one-line error when it cannot): for an
    in-memory SQLite database only once the lock is held — connecting runs
    PRAGMAs, which a shared-cache in-memory database refuses while another
    thread changes its schema.
    """
    vendor = connections[alias].vendor
    if vendor != "sqlite":
        state.ensure_connection(alias)
    if vendor == "postgresql":
        lock = _server_lock(
            alias,
            "SELECT pg_try_advisory_lock(%s)",
            "SELECT pg_advisory_unlock(%s)",
            _pg_key(schema),
            on_wait,
        )
    elif vendor == "mysql":
        lock = _server_lock(
            alias,
            "SELECT GET_LOCK(%s, 0)",
            "SELECT RELEASE_LOCK(%s)",
            mysql_lock_name(_mysql_database_name(alias), conf.get().VERSION_TABLE),
            on_wait,
        )
    elif vendor == "sqlite":
        lock = _sqlite_lock(alias, on_wait)
    else:
        lock = _no_lock()
    with lock:
        state.ensure_connection(alias)
        yield


@contextmanager
def _no_lock() -> Iterator[None]:
    yield

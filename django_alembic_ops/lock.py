"""One ops migration run per database at a time.

PostgreSQL: a session-level advisory lock; MySQL: ``GET_LOCK``; both keyed on
the version table name, so databases that share a server but not a version
table do not block each other. SQLite: an exclusive transaction on a small
side database next to the database file (``<NAME>.opslock``) — SQLite's own
write lock, but on a file of its own, because the lock must outlive the
per-migration transactions on the real database — plus an in-process lock
per database, for threads of one process (an in-memory database, which
belongs to one process, has only that one).

The lock is taken before the version table is read or created: concurrent
first runs would otherwise both try to create it, and a waiting run must
re-read what the other applied.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from . import conf, state
from .errors import LockTimeout

_POLL_SECONDS = 0.1
_thread_locks: dict[str, threading.RLock] = {}
_thread_locks_guard = threading.Lock()


def _lock_name() -> str:
    return f"django_alembic_ops:{conf.get().VERSION_TABLE}"


def _pg_key() -> int:
    digest = hashlib.sha256(_lock_name().encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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
    name = str(connections[alias].settings_dict["NAME"])
    thread_lock = _thread_lock(name)
    side: sqlite3.Connection | None = None
    if not (name == ":memory:" or "mode=memory" in name):  # Django's own test
        state.ensure_connection(alias)  # a path that cannot be opened: one line
        # isolation_level=None: we issue BEGIN EXCLUSIVE ourselves; timeout=0:
        # we poll, so we can say that we wait and give up after LOCK_TIMEOUT.
        side = sqlite3.connect(f"{name}.opslock", timeout=0, isolation_level=None)
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
def migration_lock(alias: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the database's migration lock; call ``on_wait`` once if it must wait.

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
            _pg_key(),
            on_wait,
        )
    elif vendor == "mysql":
        lock = _server_lock(
            alias,
            "SELECT GET_LOCK(%s, 0)",
            "SELECT RELEASE_LOCK(%s)",
            _lock_name()[:64],
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

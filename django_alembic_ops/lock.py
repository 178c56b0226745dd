"""One ops migration run per database at a time.

PostgreSQL: a session-level advisory lock; MySQL: ``GET_LOCK``. The key is
derived from the version table name, so databases that share a server but
not a version table do not block each other. The lock is taken before the
version table is read or created: concurrent first runs would otherwise both
try to create it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connections

from . import conf
from .errors import LockTimeout

_POLL_SECONDS = 0.2


def _lock_name() -> str:
    return f"django_alembic_ops:{conf.get().VERSION_TABLE}"


def _pg_key() -> int:
    digest = hashlib.sha256(_lock_name().encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def migration_lock(alias: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the database's migration lock; call ``on_wait`` once if it must wait."""
    connection = connections[alias]
    timeout = conf.get().LOCK_TIMEOUT
    if connection.vendor == "postgresql":
        key = _pg_key()
        acquire, release = "SELECT pg_try_advisory_lock(%s)", "SELECT pg_advisory_unlock(%s)"
        params: list[int | str] = [key]
    elif connection.vendor == "mysql":
        acquire, release = "SELECT GET_LOCK(%s, 0)", "SELECT RELEASE_LOCK(%s)"
        params = [_lock_name()[:64]]
    else:
        # SQLite serialises writers itself (its database-level write lock).
        yield
        return
    deadline = time.monotonic() + timeout
    waited = False
    with connection.cursor() as cursor:
        while True:
            cursor.execute(acquire, params)
            row = cursor.fetchone()
            if row and row[0]:
                break
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"Another opsmigrate run held the lock on database '{alias}' for more than "
                    f"{timeout:g} seconds; try again later or raise ALEMBIC_OPS['LOCK_TIMEOUT']."
                )
            time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(release, params)

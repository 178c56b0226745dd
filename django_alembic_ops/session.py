"""Hand Django's connection back with the session settings it had.

Migrations run on Django's own connection, so a script's ``SET
statement_timeout = '2min'``, ``SET search_path ...`` or ``SET ROLE ...``
would otherwise stay for whatever uses the connection next: the rest of a
deploy script, every test of a test session. ``RESET ALL`` is no cure: it
also undoes what Django set when it connected (``TimeZone``).

So :func:`preserved` takes a snapshot of the session's settings before a run
and, after it (success or failure), sets back only what changed. One
function per vendor; a vendor without one (SQLite, whose ``PRAGMA``\\ s are
out of scope; MySQL for now) is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from django.db import DatabaseError, connections

#: ``snapshot(connection)`` -> ``restore()``, per ``connection.vendor``.
Snapshot = Callable[[Any], Callable[[], None]]

# role and session_authorization are not in pg_settings. Only what a SET of
# this session gave a value is listed (source 'session'); SET LOCAL ends with
# its transaction and needs nothing.
_PG_SETTINGS = """
    SELECT name, setting, reset_val FROM pg_settings WHERE source = 'session'
    UNION ALL SELECT 'session_authorization', current_setting('session_authorization'), NULL
    UNION ALL SELECT 'role', current_setting('role'), NULL
"""
# Restored first, in this order: SET SESSION AUTHORIZATION resets the role,
# and settings reserved to superusers need the connection's own role back.
_PG_IDENTITY = ("session_authorization", "role")


def _postgresql(connection: Any) -> Callable[[], None]:
    def read() -> dict[str, tuple[str, str | None]]:
        with connection.cursor() as cursor:
            cursor.execute(_PG_SETTINGS)
            return {name: (setting, reset) for name, setting, reset in cursor.fetchall()}

    before = read()

    def restore() -> None:
        after = read()
        changed: dict[str, str] = {}
        for name in before.keys() | after.keys():
            was = before.get(name)
            now = after.get(name)
            if was is not None and (now is None or now[0] != was[0]):
                changed[name] = was[0]
            elif was is None and now is not None and now[1] is not None:
                changed[name] = now[1]  # set by the run only: its value at session start
        if not changed:
            return
        with connection.cursor() as cursor:
            for name in _PG_IDENTITY:
                if name in changed:
                    cursor.execute("SELECT set_config(%s, %s, false)", [name, changed.pop(name)])
            if changed:
                values = ", ".join(["(%s, %s)"] * len(changed))
                cursor.execute(
                    "SELECT set_config(name, value, false) "
                    f"FROM (VALUES {values}) AS settings(name, value)",
                    [item for pair in sorted(changed.items()) for item in pair],
                )

    return restore


_SNAPSHOTS: dict[str, Snapshot] = {"postgresql": _postgresql}


@contextmanager
def preserved(alias: str) -> Iterator[None]:
    """Put back, after the block, the session settings a script changed on ``alias``.

    If they cannot be put back (the connection broke), Django's connection is
    closed instead, so that the next query opens a fresh session — unless an
    enclosing ``atomic()`` block needs it, where the error is raised (or, when
    the block already failed, that failure is).
    """
    connection = connections[alias]
    snapshot = _SNAPSHOTS.get(connection.vendor)
    if snapshot is None:
        yield
        return
    restore = snapshot(connection)
    try:
        yield
    except BaseException:
        with suppress(DatabaseError):  # the run's own error is the one to report
            _restore(connection, restore)
        raise
    _restore(connection, restore)


def _restore(connection: Any, restore: Callable[[], None]) -> None:
    try:
        restore()
    except DatabaseError:
        if connection.in_atomic_block:
            raise
        connection.close()

"""``DDL_LOCK_TIMEOUT``, ``DDL_STATEMENT_TIMEOUT`` and ``DDL_RETRIES``.

On a busy database the danger of DDL is often not the statement but the wait
before it: an ``ALTER TABLE`` queued behind a long transaction holds its place
in the lock queue, and every query of the table queues behind it. A short
``lock_timeout`` turns that outage into a failed migration, which is rolled
back and tried again after a pause.

This module owns the policy; the runner (:mod:`.runner`) only calls it:

- the settings, parsed once per run (:func:`for_alias`; a bad value is a
  one-line :class:`~.errors.SettingError`, and the system check E006);
- the statements that start each migration's transaction (:func:`begin`):
  ``SET LOCAL`` on PostgreSQL, which ends with the transaction; ``SET
  SESSION`` on MySQL/MariaDB, which has no transaction-scoped settings, put
  back after the run (:func:`watched`);
- which failure is a lock timeout (:func:`is_lock_timeout`) and the pause
  before each retry (:meth:`Timeouts.pause`);
- on PostgreSQL, the session that holds the lock: :class:`LockWatch` asks
  ``pg_blocking_pids()`` from a second connection *while* a statement waits.
  Once the statement has given up, PostgreSQL keeps no trace of what it waited
  for, and the error does not name the table.

SQLite has none of this: a writer locks the whole database file, and its busy
timeout is a different setting (Django's ``OPTIONS["timeout"]``).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connections

from . import conf, state
from .errors import SettingError

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|h)\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
DURATION_HELP = (
    "use a string such as '200ms', '3s' or '1min' (units ms, s, min, h), "
    "a number of seconds, or None for no timeout"
)
RETRIES_HELP = "use a whole number of retries, 0 or more"

#: The longest pause between two attempts, in seconds.
MAX_PAUSE = 60.0

_PG_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout, NOWAIT
_MYSQL_LOCK_WAIT_TIMEOUT = 1205  # lock_wait_timeout (metadata), innodb_lock_wait_timeout (rows)


def parse_duration(key: str, value: Any) -> float | None:
    """``value`` of ``ALEMBIC_OPS[key]`` in seconds (``None``: no timeout).

    :raises SettingError: not ``None``, a positive number or a string such as
        ``"200ms"``.
    """
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None or not math.isfinite(seconds):
        raise SettingError(f"ALEMBIC_OPS[{key!r}] {value!r} is not a duration", DURATION_HELP)
    if seconds <= 0:
        raise SettingError(f"ALEMBIC_OPS[{key!r}] {value!r} is not more than zero", DURATION_HELP)
    return seconds


def parse_retries(value: Any) -> int:
    """``ALEMBIC_OPS["DDL_RETRIES"]``. :raises SettingError: not an ``int`` >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingError(f"ALEMBIC_OPS['DDL_RETRIES'] {value!r} is not valid", RETRIES_HELP)
    return value


@dataclass(frozen=True)
class Timeouts:
    """The parsed settings; times in seconds, ``None`` for none."""

    lock: float | None = None
    statement: float | None = None
    retries: int = 0
    lock_text: str = ""  # DDL_LOCK_TIMEOUT as written, for messages

    def pause(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...).

        The lock timeout (1 s without one), doubled for each further retry, at
        most :data:`MAX_PAUSE`: whoever holds the lock gets longer and longer
        to finish.
        """
        return min(MAX_PAUSE, (self.lock or 1.0) * 2.0 ** (retry - 1))


def configured() -> Timeouts:
    """The ``DDL_*`` settings. :raises SettingError: a value that cannot be used."""
    settings = conf.get()
    written = settings.DDL_LOCK_TIMEOUT
    lock = parse_duration("DDL_LOCK_TIMEOUT", written)
    return Timeouts(
        lock=lock,
        statement=parse_duration("DDL_STATEMENT_TIMEOUT", settings.DDL_STATEMENT_TIMEOUT),
        retries=parse_retries(settings.DDL_RETRIES),
        lock_text=written.strip() if isinstance(written, str) else f"{lock:g}s" if lock else "",
    )


def for_alias(alias: str) -> Timeouts | None:
    """What applies to ``alias``; ``None`` when nothing does (SQLite, nothing set).

    A bad value is refused on every backend, SQLite included: the same
    settings file usually serves production too.
    """
    timeouts = configured()
    if timeouts == Timeouts(lock_text=timeouts.lock_text):
        return None
    if connections[alias].vendor not in ("postgresql", "mysql"):
        return None
    return timeouts


def _mysql_seconds(seconds: float) -> int:
    # MySQL's lock timeouts are whole seconds, 1 at least.
    return max(1, math.ceil(seconds))


def set_statement(connection: Any, timeouts: Timeouts) -> str | None:
    """The statement that starts a migration's transaction on ``connection``.

    PostgreSQL: ``SET LOCAL``, which ends with the transaction. MySQL: ``SET
    SESSION`` (no transaction-scoped settings; :func:`watched` puts the old
    values back); the lock timeout is in whole seconds, for metadata locks
    (``lock_wait_timeout``, what DDL waits for) and row locks
    (``innodb_lock_wait_timeout``); the statement timeout is MariaDB's
    ``max_statement_time`` (MySQL's ``max_execution_time`` bounds only
    ``SELECT``, so it is not set there).
    """
    parts: list[str] = []
    if connection.vendor == "postgresql":
        for name, seconds in (
            ("lock_timeout", timeouts.lock),
            ("statement_timeout", timeouts.statement),
        ):
            if seconds is not None:
                parts.append(f"SET LOCAL {name} = '{max(1, round(seconds * 1000))}ms'")
        return "; ".join(parts) or None
    if connection.vendor == "mysql":
        if timeouts.lock is not None:
            whole = _mysql_seconds(timeouts.lock)
            parts += [f"lock_wait_timeout = {whole}", f"innodb_lock_wait_timeout = {whole}"]
        if timeouts.statement is not None and connection.mysql_is_mariadb:
            parts.append(f"max_statement_time = {timeouts.statement:g}")
        return f"SET SESSION {', '.join(parts)}" if parts else None
    return None


def begin(alias: str, timeouts: Timeouts) -> None:
    """Set the timeouts at the start of a migration's transaction on ``alias``."""
    connection = connections[alias]
    statement = set_statement(connection, timeouts)
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(statement)


_MYSQL_VARIABLES = ("lock_wait_timeout", "innodb_lock_wait_timeout", "max_statement_time")


@contextmanager
def _mysql_session_kept(connection: Any) -> Iterator[None]:
    """Put back the MySQL session timeouts that :func:`begin` sets."""
    names = _MYSQL_VARIABLES if connection.mysql_is_mariadb else _MYSQL_VARIABLES[:2]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"@@SESSION.{name}" for name in names))
        before = cursor.fetchone()
    try:
        yield
    finally:
        assignments = ", ".join(f"{name} = %s" for name in names)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SET SESSION {assignments}", list(before))
        except DatabaseError:
            if connection.in_atomic_block:
                raise
            connection.close()  # the next query gets a fresh session


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` (SQLAlchemy's, Django's or the driver's) is a lock-wait timeout."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        if candidate is None:
            continue
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code == _PG_LOCK_NOT_AVAILABLE:
            return True
        args = getattr(candidate, "args", ())
        if args and args[0] == _MYSQL_LOCK_WAIT_TIMEOUT:
            return True
    return False


@dataclass(frozen=True)
class Holder:
    """A session that held a lock ours waited for (from ``pg_stat_activity``)."""

    pid: int
    application: str
    state: str | None
    query_start: datetime | None
    query: str  # its first 80 characters

    def describe(self) -> str:
        started = (
            self.query_start.isoformat(sep=" ", timespec="seconds")
            if self.query_start is not None
            else "unknown"
        )
        query = " ".join(self.query.split())
        return (
            f"pid {self.pid} (application {self.application!r}, {self.state or 'state unknown'}, "
            f"query started {started}: {query!r})"
        )


# Sessions holding locks first, then those queued ahead of ours.
_BLOCKERS = """
    SELECT pid, application_name, state, query_start, left(query, 80)
    FROM pg_stat_activity
    WHERE pid = ANY(pg_blocking_pids(%s))
    ORDER BY coalesce(wait_event_type = 'Lock', false), query_start
"""


def _backend_pid(raw: Any) -> int:
    info = getattr(raw, "info", None)  # psycopg 3
    return int(info.backend_pid if info is not None else raw.get_backend_pid())


class LockWatch:
    """Names the sessions that a waiting statement of ``alias`` waits for.

    A daemon thread wakes every ``interval`` seconds; when a statement has run
    for that long it asks, on its own connection (opened then, so a run whose
    statements are quick opens none), ``pg_blocking_pids()`` of ours. The
    last answer that named someone is kept for the error message.
    """

    def __init__(self, alias: str, interval: float) -> None:
        self.alias = alias
        self.interval = interval
        state.ensure_connection(alias)  # a one-line error if it cannot connect
        self.pid = _backend_pid(connections[alias].connection)
        self.holders: list[Holder] = []
        self._since: float | None = None  # when the running statement started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ops-lock-watch", daemon=True)

    def statement_started(self, *args: Any) -> None:
        self._since = time.monotonic()

    def statement_ended(self, *args: Any) -> None:
        self._since = None

    def django_wrapper(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        """For ``connection.execute_wrapper()``: the ORM's statements in a script."""
        self.statement_started()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statement_ended()

    def _watch(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                since = self._since
                if since is None or time.monotonic() - since < self.interval:
                    continue
                # Django's connections are per thread: this one is the watcher's own.
                with connections[self.alias].cursor() as cursor:
                    cursor.execute(_BLOCKERS, [self.pid])
                    found = [Holder(*row) for row in cursor.fetchall()]
                if found:
                    self.holders = found
        except DatabaseError:
            pass  # the message then names no one; the migration is what matters
        finally:
            connections[self.alias].close()

    def __enter__(self) -> LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def watched(alias: str, timeouts: Timeouts | None) -> Iterator[LockWatch | None]:
    """Around a whole run (all its attempts): the :class:`LockWatch` on
    PostgreSQL with a lock timeout, MySQL's session timeouts put back after."""
    if timeouts is None:
        yield None
        return
    connection = connections[alias]
    if connection.vendor == "mysql":
        with _mysql_session_kept(connection):
            yield None
        return
    if timeouts.lock is None:
        yield None
        return
    # Well inside the timeout: the second connection and the question must
    # both fit in it.
    watch = LockWatch(alias, max(0.01, min(timeouts.lock / 4, 1.0)))
    with watch, connection.execute_wrapper(watch.django_wrapper):
        yield watch


def listen(sa_connection: Any, watch: LockWatch | None) -> None:
    """Tell ``watch`` when a statement of ``sa_connection`` (``op`` calls) starts and ends."""
    if watch is None:
        return
    from sqlalchemy import event

    event.listen(sa_connection, "before_cursor_execute", watch.statement_started)
    event.listen(sa_connection, "after_cursor_execute", watch.statement_ended)


def retry_event(forward: bool) -> str:
    """The progress event before a retry (``elapsed`` is then the pause)."""
    return "apply_retry" if forward else "unapply_retry"


def gave_up(
    message: str, timeouts: Timeouts, attempts: int, watch: LockWatch | None, vendor: str
) -> str:
    """The final one-line error after ``attempts`` lock timeouts: who held the lock, what next."""
    if timeouts.lock is not None and vendor == "mysql":
        waited = f"it waited {_mysql_seconds(timeouts.lock)}s (whole seconds on MySQL) for a lock"
    elif timeouts.lock is not None:
        waited = f"it waited {timeouts.lock_text} for a lock"
    else:
        waited = "it timed out waiting for a lock"
    waited += " once" if attempts == 1 else f" {attempts} times"
    waited += f" (DDL_RETRIES {timeouts.retries})"
    holders = watch.holders if watch is not None else []
    if holders:
        held = ", held by " + " and ".join(holder.describe() for holder in holders[:2])
        if len(holders) > 2:
            held += f" and {len(holders) - 2} more"
        pids = ", ".join(str(holder.pid) for holder in holders[:2])
        what_next = (
            f"wait for that session to finish, or end it (SELECT pg_terminate_backend({pids})), "
            "then run again"
        )
    elif vendor == "postgresql":
        held = ""
        what_next = "find the session holding it in pg_locks and pg_stat_activity, then run again"
    else:
        held = ""
        what_next = (
            "find the session holding it (SHOW PROCESSLIST: often an open transaction that used "
            "the table), then run again"
        )
    return f"{message}; {waited}{held}; {what_next}."

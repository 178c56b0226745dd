"""Run Alembic migration steps on Django's connection, inside Django's ``atomic()``.

This is the built-in ``env.py``: an :class:`~alembic.runtime.environment.EnvironmentContext`
configured on the SQLAlchemy view of Django's connection (:mod:`.bridge`),
whose :class:`~alembic.runtime.migration.MigrationContext` delegates every
transaction to Django:

- each migration (or the whole run, with ``TRANSACTION_PER_MIGRATION`` off)
  runs in ``transaction.atomic()``, which issues a real ``BEGIN`` even on
  SQLite (pysqlite would otherwise autocommit each DDL statement and leave a
  failed migration half-applied);
- on SQLite, foreign-key enforcement is switched off before that transaction,
  checked before commit (``PRAGMA foreign_key_check`` on the tables the
  migration could have broken: :mod:`.sqlite_fk`) and switched back on
  after — what Django's own schema editor does, so that a table rebuilt by
  ``batch_alter_table`` does not cascade-delete the rows that reference it
  (inside a Django migration, where that schema editor already switched it
  off, only the check is ours);
- ``op.get_context().autocommit_block()`` leaves the ``atomic()`` block and
  runs in Django's autocommit mode, so Django's view of the connection stays
  right (Alembic's own version flips the DBAPI isolation level behind
  Django's back);
- ``op.get_bind().commit()`` commits what the migration ran so far and opens
  a new ``atomic()`` block for the rest, as it does in plain Alembic (the
  borrowed dialect's own commit does nothing);
- a failure after either of those two says "not rolled back" and names the
  statements that had committed;
- a migration is reported (``apply_success``) only once its transaction has
  committed: an error raised by ``COMMIT`` (a deferred constraint), by the
  version-table update, or a transaction the script left marked for rollback
  (which ``atomic()`` would roll back without a word) is that migration's
  :class:`~.errors.MigrationFailed`;
- the session settings a script changes (``SET statement_timeout``, ``SET
  ROLE``, ...) are put back after the run (:mod:`.session`);
- each transaction starts with the ``DDL_LOCK_TIMEOUT`` /
  ``DDL_STATEMENT_TIMEOUT`` settings, and a migration rolled back after a
  lock timeout runs again, ``DDL_RETRIES`` times (:mod:`.ddl_timeouts`).
"""

from __future__ import annotations

import copy
import functools
import inspect
import io
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TextIO

from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.util import CommandError as AlembicCommandError
from django.db import DatabaseError as DjangoDatabaseError
from django.db import connections, transaction
from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError

from . import (
    bridge,
    conf,
    ddl_timeouts,
    headers,
    heap,
    history,
    proxies,
    session,
    sqlite_fk,
    sqlite_impl,
    state,
)
from .errors import MigrationFailed, OfflineNotSupported, TransactionError
from .scripts import OpsMigration, OpsScripts

#: ``progress(event, migration, fake, elapsed)``; events are ``apply_start``,
#: ``apply_success``, ``unapply_start`` and ``unapply_success`` (as Django's
#: ``MigrationExecutor`` reports them). ``elapsed`` is set on success only.
Progress = Callable[[str, OpsMigration, bool, "float | None"], None]


@dataclass
class Step:
    """One migration to apply (``forward``) or unapply."""

    migration: OpsMigration
    alembic_step: RevisionStep

    @property
    def forward(self) -> bool:
        return bool(self.alembic_step.is_upgrade)


_IN_FAILED_TRANSACTION = "25P02"  # PostgreSQL: "current transaction is aborted"

#: Stands for a tenant's schema in the ``Table`` objects of its version and
#: history tables; the run's connection maps it to the schema
#: (SQLAlchemy's ``schema_translate_map``). So each statement on them is
#: compiled once per process, not once per tenant: SQLAlchemy caches compiled
#: statements by ``Table`` object, and a fleet worker would otherwise build
#: and compile new ones for every schema (about a tenth of its CPU).
TENANT_SCHEMA = "__django_alembic_ops_tenant__"


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    # psycopg 3 names it sqlstate, psycopg2 pgcode.
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _first_failure(exc: BaseException) -> BaseException:
    """The statement that failed first, not one refused after it.

    After a failed statement PostgreSQL refuses every other one in the
    transaction; cleanup code that runs anyway (Alembic's batch mode drops its
    copy of the table) then raises that refusal, with the real error as its
    ``__context__``.
    """
    if _sqlstate(exc) != _IN_FAILED_TRANSACTION:
        return exc
    cause = exc.__context__
    while cause is not None:
        if isinstance(cause, DBAPIError) and _sqlstate(cause) != _IN_FAILED_TRANSACTION:
            return cause
        cause = cause.__context__
    return exc


# SQLAlchemy's words for a construct the dialect has no SQL for (an EXCLUDE
# constraint or a range type on MySQL or SQLite): a compiler's repr, with its
# memory address, and the class's full path.
_CANNOT_RENDER = re.compile(
    r"Compiler <[\w.]*?dialects\.(\w+)\.[^>]*> can't render element of type "
    r"(?:<class '(?:\w+\.)*(\w+)'>|(\w+))(?: \(Background on this error at: \S+\))?"
)


def _cannot_render(match: re.Match[str]) -> str:
    dialect, element = match.group(1), match.group(2) or match.group(3)
    return (
        f"the {dialect} dialect cannot render {element} (another database's feature: "
        "branch on op.get_context().dialect.name)"
    )


def describe_error(exc: BaseException) -> str:
    """One line: the exception and, for database errors, the failing statement."""
    exc = _first_failure(exc)
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        # psycopg2 ends its messages with a newline, psycopg 3 does not.
        reason = f"{type(orig).__name__}: {str(orig).strip()}" if orig is not None else str(exc)
        text = f"{reason}; statement: {exc.statement}"
    else:
        # Django wraps a driver's error (from COMMIT, or the ORM in a script)
        # in its own class: name the driver's, as for SQLAlchemy's errors.
        named = exc.__cause__ if isinstance(exc, DjangoDatabaseError) and exc.__cause__ else exc
        text = _CANNOT_RENDER.sub(_cannot_render, f"{type(named).__name__}: {exc}")
    return " ".join(text.split())


#: Why a migration whose script returned normally did not commit.
MARKED_FOR_ROLLBACK = (
    "the script left Django's transaction marked for rollback "
    "(transaction.set_rollback(True), or a database error caught inside atomic())"
)
_ABORTED = (
    "the script caught a database error and went on, but PostgreSQL had aborted the "
    "transaction at it (run a statement that may fail inside its own atomic() block)"
)
_CONTEXT_KEY = "django_alembic_ops.context"


def _database_error(context: ExceptionContext) -> None:
    """Engine-wide ``handle_error`` hook: tell the running migration (if any)."""
    connection = context.connection
    ops_context = connection.info.get(_CONTEXT_KEY) if connection is not None else None
    if ops_context is not None and context.sqlalchemy_exception is not None:
        ops_context.database_error(context.sqlalchemy_exception)


def _watch_errors(engine: Engine) -> None:
    # SQLAlchemy 2 takes handle_error listeners on the engine only, not on a
    # connection; the borrowed engine lives as long as the process.
    if not event.contains(engine, "handle_error", _database_error):
        event.listen(engine, "handle_error", _database_error)


def _foreign_keys_enforced(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        return bool(cursor.fetchone()[0])


_READS = ("SELECT", "PRAGMA", "SHOW", "EXPLAIN")
# Statements that MySQL/MariaDB commit implicitly, with the transaction before
# them, even inside atomic() (CREATE TEMPORARY TABLE is the exception).
_IMPLICIT_COMMIT = ("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE")


def _commits_implicitly(statement: str) -> bool:
    words = statement.split(None, 2)[:2]
    return (
        bool(words)
        and words[0].upper() in _IMPLICIT_COMMIT
        and (len(words) < 2 or words[1].upper() != "TEMPORARY")
    )


_NAMED = 10  # statements named in a failure message
_STATEMENT_CHARS = 100


class _Writes:
    """The statements of the running migration that change something.

    Split into those still in the open transaction and those that committed
    (by ``op.get_bind().commit()``, or in or before an ``autocommit_block()``),
    so that a failure says truthfully what stayed. Only the first few are kept:
    a data migration may run millions.
    """

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.pending_count = 0
        self.committed: list[str] = []
        self.committed_count = 0

    def executed(self, statement: str, *, committed: bool) -> None:
        if statement.lstrip()[:8].upper().startswith(_READS):
            return  # e.g. reflection before a batch operation
        if committed:
            self._add_committed([statement], 1)
        else:
            if len(self.pending) < _NAMED:
                self.pending.append(statement)
            self.pending_count += 1

    def commit(self) -> None:
        self._add_committed(self.pending, self.pending_count)
        self.pending, self.pending_count = [], 0

    def _add_committed(self, statements: list[str], count: int) -> None:
        self.committed += statements[: _NAMED - len(self.committed)]
        self.committed_count += count

    def describe_committed(self) -> str:
        """``CREATE TABLE a (...); ...`` on one line."""
        shown = []
        for statement in self.committed:
            text = " ".join(statement.split())
            if len(text) > _STATEMENT_CHARS:
                text = text[: _STATEMENT_CHARS - 3] + "..."
            shown.append(text)
        more = self.committed_count - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "")


class _Scope:
    """A Django transaction around one migration, or around the whole run."""

    def __init__(self, context: DjangoMigrationContext, transactional: bool) -> None:
        self.context = context
        self.transactional = transactional
        self.alias: str = context.opts["django_alias"]
        self._atomic: Any = None
        self._fk_disabled = False  # we switched enforcement off: switch it back on
        self._fk_check = False  # enforcement is off: check before committing
        self._written: sqlite_fk.WrittenTables | None = None  # what the check covers

    # Entering and leaving are also used by autocommit_block() to step out
    # of the transaction in the middle of a migration and back in.
    def open(self) -> None:
        if not self.transactional:
            return
        connection = connections[self.alias]
        if connection.vendor == "sqlite":
            # Inside a Django migration (RunOpsMigrations) Django's schema
            # editor has already switched enforcement off: leave it to Django
            # to switch back on, but still check before committing.
            if _foreign_keys_enforced(connection):
                if connection.in_atomic_block:
                    raise TransactionError(
                        "Ops migrations cannot run on SQLite inside an enclosing atomic() block: "
                        "foreign-key enforcement cannot be switched off inside a transaction. "
                        "Run them outside atomic() (in pytest, use the transactional_db fixture)."
                    )
                self._fk_disabled = connection.disable_constraint_checking()
            self._fk_check = True
        self._atomic = transaction.atomic(using=self.alias)
        self._atomic.__enter__()
        if self.context.ops_timeouts is not None:
            ddl_timeouts.begin(self.alias, self.context.ops_timeouts)
        if self._fk_check:
            ours = (self.context.opts["version_table"], history.TABLE)
            self._written = sqlite_fk.WrittenTables(connection, ignore=ours)
            self._written.start()
        self.context.ops_error = None  # a new transaction: nothing aborted it yet

    def close(self, exc: BaseException | None) -> None:
        """Leave the ``atomic()`` block: roll back after ``exc``, else commit.

        :raises MigrationFailed: the transaction did not commit — the script
            left it marked for rollback (``atomic()`` would roll back without
            a word), SQLite's foreign-key check found a violation, or
            ``COMMIT`` itself failed (PostgreSQL checks deferred constraints
            there). It has been rolled back.
        """
        if self._atomic is None:
            return
        connection = connections[self.alias]
        atomic, self._atomic = self._atomic, None
        written, self._written = self._written, None
        try:
            if written is not None:
                written.stop()
            if exc is not None:
                atomic.__exit__(type(exc), exc, exc.__traceback__)
                return
            failure, cause = None, None
            if connection.needs_rollback:
                failure = self.context.failure(None)
            elif written is not None:
                try:
                    written.check()
                except Exception as check_error:
                    failure, cause = self.context.failure(check_error), check_error
            if failure is not None:
                atomic.__exit__(type(failure), failure, None)
                raise failure from cause
            try:
                atomic.__exit__(None, None, None)
            except Exception as commit_error:
                # Django has rolled back (or dropped the connection).
                raise self.context.failure(commit_error, at_commit=True) from commit_error
        finally:
            self._fk_check = False
            if self._fk_disabled:
                connection.enable_constraint_checking()
                self._fk_disabled = False

    def __enter__(self) -> _Scope:
        self.open()
        self.context.ops_scopes.append(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        context = self.context
        context.ops_scopes.remove(self)
        if (
            isinstance(exc, Exception)
            and not isinstance(exc, MigrationFailed)
            and context.ops_current is not None
        ):
            # Raised after the script returned: by Alembic, recording the step
            # in the version table. Described while still in the transaction.
            failure = context.failure(exc)
            self.close(failure)
            raise failure from exc
        self.close(exc)
        if exc is None:
            context.step_done()
            if not context.open_scopes():
                context.confirm()


class DjangoMigrationContext(MigrationContext):
    """A MigrationContext whose transactions are Django's ``atomic()`` blocks."""

    ops_scopes: list[_Scope]
    ops_current: tuple[Step, float] | None
    #: The table the step is being recorded in, once its script has returned
    #: (the history table, then Alembic's version table); ``None`` before.
    ops_recording: str | None
    #: Steps done whose transaction has not committed yet (the run's, with
    #: TRANSACTION_PER_MIGRATION off), with their time and whether their
    #: start was reported: they are reported at COMMIT.
    ops_unconfirmed: list[tuple[Step, float, bool]]
    ops_progress: Progress | None
    ops_fake: bool
    ops_writes: _Writes
    ops_autocommit: bool  # inside autocommit_block(): each statement commits
    ops_error: DBAPIError | None  # the last database error of the transaction
    ops_implicit_commits: bool  # MySQL: DDL commits, and what ran before it
    ops_history_ready = False  # the history table exists (checked once per run)
    ops_timeouts: ddl_timeouts.Timeouts | None = None  # set at the start of each transaction
    ops_confirmed = 0  # steps committed so far (a retry runs the rest)
    ops_tables_schema: str | None  # of the history table's statements

    def ops_setup(self, progress: Progress | None, fake: bool, schema: str | None) -> None:
        """Set up what the subclass adds (Alembic built the object as its own class).

        ``schema``: a tenant's, mapped from :data:`TENANT_SCHEMA` by the connection.
        """
        if schema is not None:
            self._version = _tenant_version_table(self.impl, self.opts)
        self.ops_tables_schema = None if schema is None else TENANT_SCHEMA
        self.ops_scopes = []
        self.ops_current = None
        self.ops_recording = None
        self.ops_unconfirmed = []
        self.ops_progress = progress
        self.ops_fake = fake
        self.ops_writes = _Writes()
        self.ops_autocommit = False
        self.ops_error = None
        assert self.connection is not None
        self.ops_implicit_commits = not self.impl.transactional_ddl
        event.listen(self.connection, "before_cursor_execute", self._statement_starts)
        # After execution: a statement that failed changed nothing.
        event.listen(self.connection, "after_cursor_execute", self._statement_executed)
        event.listen(self.connection, "commit", self._commit_requested)
        self.connection.info[_CONTEXT_KEY] = self
        _watch_errors(self.connection.engine)

    def ops_teardown(self) -> None:
        assert self.connection is not None
        self.connection.info.pop(_CONTEXT_KEY, None)

    def database_error(self, exc: DBAPIError) -> None:
        """A statement failed (the script may catch it and go on)."""
        if _sqlstate(exc) != _IN_FAILED_TRANSACTION:
            self.ops_error = exc

    def _statement_starts(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.ops_implicit_commits and _commits_implicitly(statement):
            # MySQL commits the open transaction before DDL, even DDL that fails.
            if self.ops_unconfirmed:
                # With it the version rows of the steps done in this transaction
                # (TRANSACTION_PER_MIGRATION off): they are applied now, and the
                # statements of theirs this step carried over are no longer its.
                self.ops_writes.committed, self.ops_writes.committed_count = [], 0
                self.confirm()
            self.ops_writes.commit()

    def _statement_executed(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.ops_current is not None:
            committed = self.ops_autocommit or (
                self.ops_implicit_commits and _commits_implicitly(statement)
            )
            self.ops_writes.executed(statement, committed=committed)

    def open_scopes(self) -> list[_Scope]:
        """The scopes whose ``atomic()`` block is open (innermost last)."""
        return [scope for scope in self.ops_scopes if scope._atomic is not None]

    def _leave_transaction(self, what: str) -> list[_Scope]:
        """Commit the open scopes (innermost first); return them, to reopen.

        Refused, before anything is committed, inside an ``atomic()`` block
        that is not ours: leaving ours would only release a savepoint.
        """
        scopes = self.open_scopes()
        if len(connections[self.opts["django_alias"]].atomic_blocks) > len(scopes):
            raise TransactionError(
                f"{what} cannot run inside an enclosing atomic() block; run the migration "
                "outside atomic() (from RunOpsMigrations: set atomic = False on its Django "
                "migration)."
            )
        for scope in reversed(scopes):
            scope.close(None)
        self.ops_writes.commit()
        self.confirm()
        return scopes

    def _commit_requested(self, conn: Any) -> None:
        """``op.get_bind().commit()``: commit so far, go on in a new transaction.

        SQLAlchemy's own commit reaches only the borrowed dialect, whose
        ``do_commit`` does nothing: Django's ``atomic()`` owns the transaction.
        """
        if self.ops_autocommit or not self.open_scopes():
            return
        scopes = self._leave_transaction("op.get_bind().commit()")
        for scope in scopes:
            scope.open()

    def begin_transaction(self, _per_migration: bool = False) -> Any:
        if self.as_sql:
            return super().begin_transaction(_per_migration)
        per_migration = bool(self.opts.get("transaction_per_migration"))
        if _per_migration:
            # Always a scope, so progress is reported once the step is done.
            return _Scope(self, transactional=per_migration)
        return nullcontext() if per_migration else _Scope(self, transactional=True)

    @contextmanager
    def autocommit_block(self) -> Iterator[None]:
        if self.as_sql:
            with super().autocommit_block():
                yield
            return
        scopes = self._leave_transaction("op.get_context().autocommit_block()")
        outer, self.ops_autocommit = self.ops_autocommit, True
        try:
            yield
        finally:
            self.ops_autocommit = outer
            for scope in scopes:
                scope.open()

    # -- progress reporting (called by _Scope and the wrapped migration_fn) --

    def _reason(self, exc: BaseException | None, at_commit: bool) -> str:
        """Why the transaction failed: ``exc`` described, or what the script did."""
        if exc is None:  # the transaction was marked for rollback
            return MARKED_FOR_ROLLBACK
        first = _first_failure(exc)
        if _sqlstate(first) == _IN_FAILED_TRANSACTION:
            # PostgreSQL refused a statement after an earlier one failed, and
            # the script went on: say why, and name that earlier error.
            if connections[self.opts["django_alias"]].needs_rollback:
                return MARKED_FOR_ROLLBACK
            return f"{_ABORTED}: {describe_error(self.ops_error or first)}"
        text = describe_error(exc)
        if at_commit:
            return f"{text}; statement: COMMIT"
        if self.ops_recording:
            return f"recording it in {self.ops_recording} failed: {text}"
        return text

    def failure(self, exc: BaseException | None, *, at_commit: bool = False) -> MigrationFailed:
        """The one-line error of the running migration (or of the run's COMMIT).

        ``exc`` is ``None`` when the script left the transaction marked for
        rollback. Says "not rolled back", naming them, when statements of the
        migration had committed; names the migrations that shared its
        transaction (``TRANSACTION_PER_MIGRATION`` off), rolled back with it.
        """
        reason = self._reason(exc, at_commit)
        writes = self.ops_writes
        outcome = "not rolled back" if writes.committed_count else "rolled back"
        together = ", ".join(step.migration.full_name for step, _, _ in self.ops_unconfirmed)
        if self.ops_current is not None:
            step = self.ops_current[0]
            verb = "Applying" if step.forward else "Unapplying"
            what = f"{verb} {step.migration.full_name} failed and was {outcome}"
            if together:
                what += f" (in one transaction with {together}: TRANSACTION_PER_MIGRATION is off)"
        elif together:
            what = (
                f"Committing {together} failed and they were {outcome} "
                "(one transaction: TRANSACTION_PER_MIGRATION is off)"
            )
        else:
            return MigrationFailed(reason)
        if writes.committed_count:
            reason += f"; these statements had committed: {writes.describe_committed()}"
        return MigrationFailed(f"{what}: {reason}")

    def step_started(self, step: Step) -> None:
        self.ops_current = (step, time.perf_counter())
        self.ops_recording = None
        self.ops_error = None
        writes, self.ops_writes = self.ops_writes, _Writes()
        if self.ops_unconfirmed:
            # Earlier steps of this transaction are not recorded yet: what of
            # theirs committed (commit(), autocommit_block()) stays named.
            self.ops_writes.committed = writes.committed
            self.ops_writes.committed_count = writes.committed_count
        if self.ops_progress and self.opts.get("transaction_per_migration"):
            # Without, the step is reported when the run's transaction commits.
            event = "apply_start" if step.forward else "unapply_start"
            self.ops_progress(event, step.migration, self.ops_fake, None)

    def ensure_history(self) -> None:
        """Create the history table if missing (a database migrated before it existed).

        Checked once per run, at the first step's start, in its transaction:
        before the script, which may ``SET ROLE`` (the table would be that
        role's).
        """
        assert self.connection is not None
        if not self.ops_history_ready:
            history.ensure(self.connection, self.ops_tables_schema)
            self.ops_history_ready = True

    def record_history(self, step: Step, fake: bool) -> None:
        """Add the step's event to the history table, in the step's transaction.

        So the event exists iff the migration committed.
        """
        assert self.ops_current is not None and self.connection is not None
        # Unapplied, faked or not, it is no longer applied.
        event = (history.FAKE if fake else history.APPLY) if step.forward else history.UNAPPLY
        elapsed = time.perf_counter() - self.ops_current[1]
        self.ops_recording = history.TABLE
        history.record(self.connection, step.migration, event, elapsed, self.ops_tables_schema)
        self.ops_recording = self.opts["version_table"]  # Alembic's update follows

    def step_done(self) -> None:
        """The step ran and was recorded; reported by :meth:`confirm` once committed."""
        if self.ops_current is None:
            return
        step, started = self.ops_current
        self.ops_current = None
        reported = bool(self.opts.get("transaction_per_migration"))
        self.ops_unconfirmed.append((step, time.perf_counter() - started, reported))

    def confirm(self) -> None:
        """Report the steps done so far: their transaction has committed."""
        unconfirmed, self.ops_unconfirmed = self.ops_unconfirmed, []
        self.ops_confirmed += len(unconfirmed)
        if not self.ops_progress:
            return
        for step, elapsed, reported in unconfirmed:
            migration, fake = step.migration, self.ops_fake
            if not reported:
                self.ops_progress(
                    "apply_start" if step.forward else "unapply_start", migration, fake, None
                )
            self.ops_progress(
                "apply_success" if step.forward else "unapply_success", migration, fake, elapsed
            )


def _instrument(context: DjangoMigrationContext, step: Step, fake: bool) -> RevisionStep:
    """Wrap the step's migration function (Alembic sets it per instance).

    On a copy: a retried run wraps the caller's step again, not our wrapper.
    """
    alembic_step = copy.copy(step.alembic_step)
    original = alembic_step.migration_fn

    @functools.wraps(original)  # Alembic names the step after the function
    def migration_fn(**kw: Any) -> None:
        # Before the step starts: not one of the statements a failure names.
        context.ensure_history()
        context.step_started(step)
        if not fake:
            try:
                original(**kw)
            except MigrationFailed:
                raise
            except Exception as exc:
                raise context.failure(exc) from exc
        context.record_history(step, fake)

    alembic_step.migration_fn = migration_fn
    return alembic_step


_BATCH_PARAMETERS = inspect.signature(Operations.batch_alter_table)


class _Operations(Operations):
    """Alembic's ``op``, whose ``batch_alter_table`` reflects only the table it rebuilds.

    SQLAlchemy's reflection follows foreign keys: a rebuilt table's referenced
    tables are reflected too, and theirs, transitively. Alembic's batch mode
    uses none of them (it builds the new table's foreign keys from the
    referenced tables' names alone), so unless the script passes its own
    ``reflect_kwargs``, the reflection is asked not to (``resolve_fks=False``):
    the same rebuild, without reflecting a chain of referenced tables on
    every rebuild (over half the time of a 300-migration SQLite history whose
    tables each reference the one before).
    """

    def batch_alter_table(self, *args: Any, **kwargs: Any) -> Any:
        bound = _BATCH_PARAMETERS.bind(self, *args, **kwargs)
        reflect_kwargs = dict(bound.arguments.get("reflect_kwargs") or {})
        reflect_kwargs.setdefault("resolve_fks", False)
        bound.arguments["reflect_kwargs"] = reflect_kwargs
        return super().batch_alter_table(*bound.args[1:], **bound.kwargs)


class _EnvironmentContext(proxies.ThreadLocalEnvironmentContext):
    """Thread-local proxies (see :mod:`.proxies`), and :class:`_Operations` as ``op``."""

    def run_migrations(self, **kw: Any) -> None:
        context = self.get_context()
        with proxies.OP.installed(_Operations(context)):
            context.run_migrations(**kw)


def _environment(
    scripts: OpsScripts,
    steps_fn: Callable[[Any, MigrationContext], Sequence[RevisionStep]],
    *,
    as_sql: bool = False,
    starting_rev: Any = None,
) -> EnvironmentContext:
    # No alembic.ini, no env.py: the configuration is Django's. Thread-local
    # proxies: the API may run on several aliases at once.
    return _EnvironmentContext(
        Config(),
        scripts.directory,
        fn=steps_fn,
        as_sql=as_sql,
        starting_rev=starting_rev,
    )


def _configure_options(alias: str, schema: str | None = None) -> dict[str, Any]:
    settings = conf.get()
    options: dict[str, Any] = {
        "version_table": settings.VERSION_TABLE,
        "transaction_per_migration": settings.TRANSACTION_PER_MIGRATION,
        "django_alias": alias,
    }
    if schema is not None:
        # A tenant's version table lives in its schema (Alembic qualifies it).
        options["version_table_schema"] = schema
    if state.vendor(alias) in ("sqlite", "postgresql"):
        # Alembic assumes SQLite autocommits DDL; under Django's atomic() it
        # does not, and offline SQL should show the BEGIN/COMMIT we run.
        options["transactional_ddl"] = True
    return options


_tenant_version_tables: dict[tuple[type[Any], str, bool], Any] = {}


def _tenant_version_table(impl: Any, opts: dict[str, Any]) -> Any:
    """The version table of every tenant schema: one object, see :data:`TENANT_SCHEMA`."""
    primary_key = bool(opts.get("version_table_pk", True))
    key = (type(impl), opts["version_table"], primary_key)
    table = _tenant_version_tables.get(key)
    if table is None:  # two threads may both build it: either one will do
        # Alembic's hook for the version table's structure (a dialect may override it).
        table = impl.version_table_impl(
            version_table=opts["version_table"],
            version_table_schema=TENANT_SCHEMA,
            version_table_pk=primary_key,
        )
        _tenant_version_tables[key] = table
    return table


def run(
    alias: str,
    scripts: OpsScripts,
    steps: Sequence[Step],
    heads: Sequence[str],
    *,
    fake: bool = False,
    progress: Progress | None = None,
    schema: str | None = None,
) -> None:
    """Run ``steps`` (planned from ``heads``) on Django's connection for ``alias``.

    ``schema``: run in that PostgreSQL schema (a tenant's), with ``search_path``
    = ``"<schema>", public`` — an ``op`` call without ``schema=`` lands there,
    shared tables in ``public`` stay visible — and its own version table. The
    connection's ``search_path`` is put back afterwards, like every session
    setting.

    A migration that gave up waiting for a lock, and was rolled back, runs
    again after a pause, ``DDL_RETRIES`` times, with the steps after it (those
    committed before it are not run again); progress then reports
    ``apply_retry`` (or ``unapply_retry``) with the pause as ``elapsed``. The
    last failure (or the first, when part of the migration had committed)
    names the session that held the lock (:mod:`.ddl_timeouts`).
    """
    if not steps:
        return
    try:
        _run(alias, scripts, steps, heads, fake=fake, progress=progress, schema=schema)
    finally:
        headers.save_checksums()  # those the history rows needed, for the next run


def _run(
    alias: str,
    scripts: OpsScripts,
    steps: Sequence[Step],
    heads: Sequence[str],
    *,
    fake: bool,
    progress: Progress | None,
    schema: str | None,
) -> None:
    """:func:`run`, once there are steps: its retries after lock timeouts."""
    timeouts = ddl_timeouts.for_alias(alias)  # a bad setting: refused before anything runs
    retries = 0
    with ddl_timeouts.watched(alias, timeouts) as watch:
        while True:
            contexts: list[DjangoMigrationContext] = []
            try:
                # A retry starts where the committed steps left the version
                # table, still under the run's migration lock.
                expected = heads if retries == 0 else None
                _run_once(
                    alias,
                    scripts,
                    steps,
                    expected,
                    contexts,
                    fake=fake,
                    progress=progress,
                    schema=schema,
                    timeouts=timeouts,
                    watch=watch,
                )
                return
            except MigrationFailed as failure:
                if timeouts is None or not contexts or not _lock_timed_out(failure):
                    raise
                context = contexts[0]
                if watch is not None:
                    watch.statement_ended()  # the failed statement never reported its end
                # Part of it committed (commit(), autocommit_block(), MySQL's
                # DDL): running it again would not start from its start.
                rolled_back = not context.ops_writes.committed_count
                if not rolled_back or retries == timeouts.retries:
                    vendor = connections[alias].vendor
                    message = ddl_timeouts.gave_up(
                        str(failure), timeouts, retries + 1, watch, vendor
                    )
                    raise MigrationFailed(message) from failure.__cause__
                failed = context.ops_current[0] if context.ops_current else steps[0]
                steps = steps[context.ops_confirmed :]
                retries += 1
                pause = timeouts.pause(retries)
                if progress is not None:
                    progress(
                        ddl_timeouts.retry_event(failed.forward), failed.migration, fake, pause
                    )
                time.sleep(pause)


def _lock_timed_out(failure: MigrationFailed) -> bool:
    """Whether ``failure`` was caused by a lock timeout."""
    cause = failure.__cause__
    return cause is not None and ddl_timeouts.is_lock_timeout(_first_failure(cause))


def _run_once(
    alias: str,
    scripts: OpsScripts,
    steps: Sequence[Step],
    heads: Sequence[str] | None,
    contexts: list[DjangoMigrationContext],
    *,
    fake: bool,
    progress: Progress | None,
    schema: str | None,
    timeouts: ddl_timeouts.Timeouts | None,
    watch: ddl_timeouts.LockWatch | None,
) -> None:
    """One attempt of :func:`run`; its migration context is appended to ``contexts``."""

    def steps_fn(current_heads: Any, context: MigrationContext) -> list[RevisionStep]:
        if heads is not None and set(current_heads) != set(heads):
            raise TransactionError(
                f"Ops migrations on database '{alias}' changed while planning; run again."
            )
        assert isinstance(context, DjangoMigrationContext)
        return [_instrument(context, step, fake) for step in steps]

    env = _environment(scripts, steps_fn)
    # A fake run executes no script: nothing can change the session but ours.
    settings_kept = nullcontext() if fake and schema is None else session.preserved(alias)
    with settings_kept, bridge.sqlalchemy_connection(alias) as sa_connection, env:
        if schema is not None:
            # Outside the migrations' transactions (a SET in one would end with
            # it), inside the snapshot, which puts the old value back.
            with connections[alias].cursor() as cursor:
                cursor.execute(f"SET search_path = {state.quote_pg_identifier(schema)}, public")
            sa_connection.execution_options(schema_translate_map={TENANT_SCHEMA: schema})
        env.configure(connection=sa_connection, **_configure_options(alias, schema))
        context = env.get_context()
        # EnvironmentContext has no hook for a MigrationContext subclass;
        # ops_setup() sets up what the subclass adds.
        context.__class__ = DjangoMigrationContext
        assert isinstance(context, DjangoMigrationContext)
        sqlite_impl.adapt(context)
        context.ops_setup(progress, fake, schema)
        context.ops_timeouts = timeouts
        ddl_timeouts.listen(sa_connection, watch)
        contexts.append(context)
        try:
            with heap.long_lived_objects_frozen(), env.begin_transaction():
                env.run_migrations()
        finally:
            context.ops_teardown()


def render_sql(
    alias: str,
    scripts: OpsScripts,
    steps: Sequence[Step],
    starting_heads: Sequence[str],
    output: TextIO,
) -> None:
    """Write the SQL of ``steps`` to ``output`` without connecting (offline mode)."""
    dialect_name = bridge.offline_dialect_name(alias)
    # Alembic calls on_version_apply after each step: the one that fails is
    # steps[len(finished)] (cheaper than wrapping every migration function).
    finished: list[None] = []

    def failing() -> Step | None:
        return steps[len(finished)] if len(finished) < len(steps) else None

    env = _environment(
        scripts,
        lambda heads, context: [step.alembic_step for step in steps],
        as_sql=True,
        starting_rev=tuple(starting_heads) or None,
    )
    # Rendered into a buffer: a script that cannot run offline must not leave
    # half a SQL file behind.
    buffer = io.StringIO()
    try:
        with env:
            env.configure(
                dialect_name=dialect_name,
                output_buffer=buffer,
                # Bound values inline (IN ('a', 'b'), not a placeholder), as
                # Alembic's own env.py template renders offline SQL.
                literal_binds=True,
                # As that template does too: a driver's format/pyformat style
                # (MySQLdb, psycopg) would write '100%' as '100%%'.
                dialect_opts={"paramstyle": "named"},
                on_version_apply=lambda **kw: finished.append(None),
                **_configure_options(alias),
            )
            sqlite_impl.adapt(env.get_context())
            with heap.long_lived_objects_frozen(), env.begin_transaction():
                env.run_migrations()
    except (AlembicCommandError, NotImplementedError) as exc:
        step = failing()
        where = f"{step.migration.full_name}: " if step else ""
        raise OfflineNotSupported(f"{where}{' '.join(str(exc).split())}") from None
    except Exception as exc:
        # E.g. op.get_bind() is a mock offline, op.run_async() needs a live
        # async connection: the script itself cannot be rendered as SQL.
        step = failing()
        where = f"{step.migration.full_name} " if step else "A migration "
        raise OfflineNotSupported(
            f"{where}cannot be rendered as offline SQL: {describe_error(exc)}"
        ) from None
    sql = buffer.getvalue()
    buffer.close()
    _write_in_chunks(sql, output)


def _write_in_chunks(text: str, output: TextIO, size: int = 1 << 16) -> None:
    """Write ``text`` in pieces of about ``size`` characters ending at a newline.

    A single write would copy the whole SQL once more (Django's OutputWrapper
    appends its line ending to the message); a piece that ends with a newline
    gets nothing appended.
    """
    start = 0
    while start < len(text):
        end = text.find("\n", start + size) + 1 or len(text)
        output.write(text[start:end])
        start = end

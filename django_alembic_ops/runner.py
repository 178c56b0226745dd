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
  checked with ``PRAGMA foreign_key_check`` before commit and switched back on
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
- the session settings a script changes (``SET statement_timeout``, ``SET
  ROLE``, ...) are put back after the run (:mod:`.session`).
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TextIO

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.util import CommandError as AlembicCommandError
from django.db import connections, transaction
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from . import bridge, conf, heap, proxies, session, sqlite_impl, state
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


def describe_error(exc: BaseException) -> str:
    """One line: the exception and, for database errors, the failing statement."""
    exc = _first_failure(exc)
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        # psycopg2 ends its messages with a newline, psycopg 3 does not.
        reason = f"{type(orig).__name__}: {str(orig).strip()}" if orig is not None else str(exc)
        text = f"{reason}; statement: {exc.statement}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _foreign_keys_enforced(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        return bool(cursor.fetchone()[0])


_READS = ("SELECT", "PRAGMA", "SHOW", "EXPLAIN")
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

    def close(self, exc: BaseException | None) -> None:
        if self._atomic is None:
            return
        connection = connections[self.alias]
        atomic, self._atomic = self._atomic, None
        try:
            if exc is None and self._fk_check:
                try:
                    connection.check_constraints()
                except Exception as check_error:
                    exc = self.context.failure(check_error)
                    atomic.__exit__(type(exc), exc, exc.__traceback__)
                    raise exc from check_error
            if exc is None:
                atomic.__exit__(None, None, None)
            else:
                atomic.__exit__(type(exc), exc, exc.__traceback__)
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
        self.context.ops_scopes.remove(self)
        self.close(exc)
        if exc is None:
            self.context.step_done()


class DjangoMigrationContext(MigrationContext):
    """A MigrationContext whose transactions are Django's ``atomic()`` blocks."""

    ops_scopes: list[_Scope]
    ops_current: tuple[Step, float] | None
    ops_progress: Progress | None
    ops_fake: bool
    ops_writes: _Writes
    ops_autocommit: bool  # inside autocommit_block(): each statement commits

    def ops_setup(self, progress: Progress | None, fake: bool) -> None:
        """Set up what the subclass adds (Alembic built the object as its own class)."""
        self.ops_scopes = []
        self.ops_current = None
        self.ops_progress = progress
        self.ops_fake = fake
        self.ops_writes = _Writes()
        self.ops_autocommit = False
        assert self.connection is not None
        event.listen(self.connection, "before_cursor_execute", self._statement_executed)
        event.listen(self.connection, "commit", self._commit_requested)

    def _statement_executed(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # (On a database whose DDL commits implicitly, such a statement would
        # count as committed here too.)
        if self.ops_current is not None:
            self.ops_writes.executed(statement, committed=self.ops_autocommit)

    def _open_scopes(self) -> list[_Scope]:
        return [scope for scope in self.ops_scopes if scope._atomic is not None]

    def _leave_transaction(self, what: str) -> list[_Scope]:
        """Commit the open scopes (innermost first); return them, to reopen.

        Refused, before anything is committed, inside an ``atomic()`` block
        that is not ours: leaving ours would only release a savepoint.
        """
        scopes = self._open_scopes()
        if len(connections[self.opts["django_alias"]].atomic_blocks) > len(scopes):
            raise TransactionError(
                f"{what} cannot run inside an enclosing atomic() block; run the migration "
                "outside atomic() (from RunOpsMigrations: set atomic = False on its Django "
                "migration)."
            )
        for scope in reversed(scopes):
            scope.close(None)
        self.ops_writes.commit()
        return scopes

    def _commit_requested(self, conn: Any) -> None:
        """``op.get_bind().commit()``: commit so far, go on in a new transaction.

        SQLAlchemy's own commit reaches only the borrowed dialect, whose
        ``do_commit`` does nothing: Django's ``atomic()`` owns the transaction.
        """
        if self.ops_autocommit or not self._open_scopes():
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

    def failure(self, exc: BaseException) -> MigrationFailed:
        current = self.ops_current
        if current is None:
            return MigrationFailed(describe_error(exc))
        step, _ = current
        verb = "Applying" if step.forward else "Unapplying"
        writes = self.ops_writes
        if writes.committed_count:
            return MigrationFailed(
                f"{verb} {step.migration.full_name} failed and was not rolled back: "
                f"{describe_error(exc)}; these statements had committed: "
                f"{writes.describe_committed()}"
            )
        return MigrationFailed(
            f"{verb} {step.migration.full_name} failed and was rolled back: {describe_error(exc)}"
        )

    def step_started(self, step: Step) -> None:
        self.ops_current = (step, time.perf_counter())
        self.ops_writes = _Writes()
        if self.ops_progress:
            event = "apply_start" if step.forward else "unapply_start"
            self.ops_progress(event, step.migration, self.ops_fake, None)

    def step_done(self) -> None:
        if self.ops_current is None:
            return
        step, started = self.ops_current
        self.ops_current = None
        if self.ops_progress:
            event = "apply_success" if step.forward else "unapply_success"
            self.ops_progress(event, step.migration, self.ops_fake, time.perf_counter() - started)


def _instrument(context: DjangoMigrationContext, step: Step, fake: bool) -> RevisionStep:
    """Wrap the step's migration function (Alembic sets it per instance)."""
    alembic_step = step.alembic_step
    original = alembic_step.migration_fn

    @functools.wraps(original)  # Alembic names the step after the function
    def migration_fn(**kw: Any) -> None:
        context.step_started(step)
        if fake:
            return
        try:
            original(**kw)
        except MigrationFailed:
            raise
        except Exception as exc:
            raise context.failure(exc) from exc

    alembic_step.migration_fn = migration_fn
    return alembic_step


def _environment(
    scripts: OpsScripts,
    steps_fn: Callable[[Any, MigrationContext], Sequence[RevisionStep]],
    *,
    as_sql: bool = False,
    starting_rev: Any = None,
) -> EnvironmentContext:
    # No alembic.ini, no env.py: the configuration is Django's. Thread-local
    # proxies: the API may run on several aliases at once.
    return proxies.ThreadLocalEnvironmentContext(
        Config(),
        scripts.directory,
        fn=steps_fn,
        as_sql=as_sql,
        starting_rev=starting_rev,
    )


def _configure_options(alias: str) -> dict[str, Any]:
    settings = conf.get()
    options: dict[str, Any] = {
        "version_table": settings.VERSION_TABLE,
        "transaction_per_migration": settings.TRANSACTION_PER_MIGRATION,
        "django_alias": alias,
    }
    if state.vendor(alias) in ("sqlite", "postgresql"):
        # Alembic assumes SQLite autocommits DDL; under Django's atomic() it
        # does not, and offline SQL should show the BEGIN/COMMIT we run.
        options["transactional_ddl"] = True
    return options


def run(
    alias: str,
    scripts: OpsScripts,
    steps: Sequence[Step],
    heads: Sequence[str],
    *,
    fake: bool = False,
    progress: Progress | None = None,
) -> None:
    """Run ``steps`` (planned from ``heads``) on Django's connection for ``alias``."""
    if not steps:
        return

    def steps_fn(current_heads: Any, context: MigrationContext) -> list[RevisionStep]:
        if set(current_heads) != set(heads):
            raise TransactionError(
                f"Ops migrations on database '{alias}' changed while planning; run again."
            )
        assert isinstance(context, DjangoMigrationContext)
        return [_instrument(context, step, fake) for step in steps]

    env = _environment(scripts, steps_fn)
    # A fake run executes no script: nothing can change the session.
    settings_kept = nullcontext() if fake else session.preserved(alias)
    with settings_kept, bridge.sqlalchemy_connection(alias) as sa_connection, env:
        env.configure(connection=sa_connection, **_configure_options(alias))
        context = env.get_context()
        # EnvironmentContext has no hook for a MigrationContext subclass;
        # ops_setup() sets up what the subclass adds.
        context.__class__ = DjangoMigrationContext
        assert isinstance(context, DjangoMigrationContext)
        sqlite_impl.adapt(context)
        context.ops_setup(progress, fake)
        with heap.long_lived_objects_frozen(), env.begin_transaction():
            env.run_migrations()


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

"""Render one migration offline and record the ``op`` calls it makes.

The migration's ``upgrade()`` runs as ``opsmigrate --sql`` runs it (Alembic's
offline mode, :func:`~django_alembic_ops.runner.render_sql`), with a recording
:class:`~alembic.operations.Operations` installed as ``op`` for its duration.
Every directive reaches :meth:`~alembic.operations.Operations.invoke` as an
operation object (``CreateIndexOp``, ``AddColumnOp``, ...) that still carries
the intent (``postgresql_concurrently``, ``postgresql_not_valid``); each is
recorded with the part of the SQL it wrote, so that squawk's findings on that
SQL can be traced back to the ``op`` call.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from alembic.operations import BatchOperations, MigrateOperation, Operations
from alembic.runtime.migration import MigrationContext, MigrationStep
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy.engine import Dialect
from sqlalchemy.engine import url as sa_url

from .. import proxies, runner
from ..runner import Step
from ..scripts import OpsMigration, OpsScripts


@dataclass(frozen=True)
class Span:
    """The SQL (``start``/``end`` offsets) that ``operations`` wrote.

    One operation, or every operation of a ``batch_alter_table`` block (its
    SQL is written when the block ends).
    """

    start: int
    end: int
    operations: tuple[MigrateOperation, ...]


@dataclass
class Rendered:
    """One migration's offline SQL and the operations its ``upgrade()`` invoked."""

    migration: OpsMigration
    dialect: Dialect  # the offline run's: scripts may branch on its name
    sql: str = ""
    operations: list[MigrateOperation] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)

    def operations_at(self, offset: int) -> list[MigrateOperation]:
        """The operations whose SQL holds the character at ``offset``."""
        return [
            operation
            for span in self.spans
            if span.start <= offset < span.end
            for operation in span.operations
        ]


def _position(context: MigrationContext) -> int:
    """How much SQL the offline run has written so far."""
    buffer = context.impl.output_buffer
    assert buffer is not None  # offline mode always has one
    return buffer.tell()


def _invoke(
    rendered: Rendered,
    context: MigrationContext,
    operation: MigrateOperation,
    invoke: Callable[[MigrateOperation], Any],
) -> Any:
    start = _position(context)
    rendered.operations.append(operation)
    result = invoke(operation)
    rendered.spans.append(Span(start, _position(context), (operation,)))
    return result


class _RecordingBatch(BatchOperations):
    """``batch_op`` inside ``op.batch_alter_table()``: records what it invokes."""

    def __init__(self, context: MigrationContext, impl: Any, rendered: Rendered) -> None:
        super().__init__(context, impl=impl)
        self._ops_rendered = rendered

    def invoke(self, operation: MigrateOperation) -> Any:
        return _invoke(self._ops_rendered, self.migration_context, operation, super().invoke)


class _Recording(Operations):
    """``op`` while a migration is linted: records each operation, then runs it."""

    def __init__(self, context: MigrationContext, rendered: Rendered) -> None:
        super().__init__(context)
        self._ops_rendered = rendered

    def invoke(self, operation: MigrateOperation) -> Any:
        return _invoke(self._ops_rendered, self.migration_context, operation, super().invoke)

    @contextmanager
    def batch_alter_table(self, *args: Any, **kwargs: Any) -> Iterator[BatchOperations]:
        rendered = self._ops_rendered
        start, first = _position(self.migration_context), len(rendered.operations)
        block = super().batch_alter_table(*args, **kwargs)
        batch = block.__enter__()
        try:
            yield _RecordingBatch(self.migration_context, batch.impl, rendered)
        except BaseException as exc:
            block.__exit__(type(exc), exc, exc.__traceback__)
            raise
        # A table rebuild (SQLite) cannot be rendered offline without
        # copy_from; the rules need only the op calls, recorded already, and
        # squawk (PostgreSQL) never sees a rebuild.
        with suppress(AlembicCommandError):
            block.__exit__(None, None, None)  # writes the block's SQL
        end = _position(self.migration_context)
        rendered.spans.append(Span(start, end, tuple(rendered.operations[first:])))


def render(alias: str, scripts: OpsScripts, migration: OpsMigration) -> Rendered:
    """``migration``'s upgrade rendered as offline SQL for ``alias``'s dialect, recorded.

    :raises ~django_alembic_ops.errors.OfflineNotSupported: the script cannot
        run offline (it reads the database through ``op.get_bind()``).
    """
    from ..bridge import offline_dialect_name

    name = offline_dialect_name(alias)
    # The dialect offline mode builds from that name, before the script runs.
    rendered = Rendered(migration, sa_url.make_url(f"{name}://").get_dialect()())
    alembic_step = MigrationStep.upgrade_from_script(
        scripts.directory.revision_map, migration.script
    )
    upgrade = alembic_step.migration_fn

    @functools.wraps(upgrade)  # Alembic names the step after the function
    def recorded_upgrade(**kw: Any) -> None:
        installed = proxies.OP.current()  # the Operations of this offline run
        assert installed is not None
        with proxies.OP.installed(_Recording(installed.migration_context, rendered)):
            upgrade(**kw)

    alembic_step.migration_fn = recorded_upgrade
    output = io.StringIO()
    starting = tuple(migration.script._versioned_down_revisions)
    runner.render_sql(alias, scripts, [Step(migration, alembic_step)], starting, output)
    rendered.sql = output.getvalue()
    return rendered

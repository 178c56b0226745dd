"""A Django migration operation that applies ops migrations in the middle of Django's.

``migrate`` runs every Django migration first and the ops migrations after
them (through ``post_migrate``). That order fails when a Django migration
needs a table an ops migration creates — a managed model with a foreign key to
an ops-owned (unmanaged) model, on a database that checks the reference when
the constraint is created (PostgreSQL). Put :class:`RunOpsMigrations` before
that operation and the ops migrations it needs run first::

    operations = [
        RunOpsMigrations("legacy", "0001"),  # creates legacy_customer
        migrations.CreateModel("Order", ...),  # its foreign key references it
    ]

Django imports every migration module on every ``migrate``, so this module
imports nothing of Alembic or SQLAlchemy until the operation runs.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db.migrations.operations.base import Operation

from .errors import OpsError

try:  # Django 5.1+: the symbol makemigrations and migrate --plan show
    from django.db.migrations.operations.base import OperationCategory

    _PYTHON_CATEGORY: Any = OperationCategory.PYTHON
except ImportError:  # Django 4.2
    _PYTHON_CATEGORY = None


class RunOpsMigrations(Operation):
    """Apply ``app_label``'s ops migrations up to ``migration`` (its head when omitted).

    Never unapplies: on a database that is already at or past ``migration`` it
    does nothing, so it is safe to keep in a migration history for good.
    Unapplying the Django migration leaves the ops migrations applied (undo
    them with ``opsmigrate``), the way a ``RunPython`` with a no-op reverse does.
    It runs inside the Django migration's transaction: ops migrations that
    need ``autocommit_block()`` need ``atomic = False`` on that migration.
    """

    reduces_to_sql = False  # sqlmigrate prints "THIS OPERATION CANNOT BE WRITTEN AS SQL"
    reversible = True
    category = _PYTHON_CATEGORY

    def __init__(self, app_label: str, migration: str | None = None) -> None:
        self.app_label = app_label
        self.migration = migration

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # ops migrations change no Django model state

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        from . import executor  # Alembic and SQLAlchemy only when it runs

        alias = schema_editor.connection.alias
        target = executor.Target(self.app_label, self.migration, at_least=True)
        try:
            executor.migrate(target, database=alias)
        except OpsError as exc:
            raise CommandError(str(exc)) from exc

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        pass  # see the class docstring: ops migrations stay applied

    def describe(self) -> str:
        upto = f"up to {self.migration}" if self.migration is not None else "to its head"
        return f"Apply the ops migrations of {self.app_label} {upto}"

    @property
    def migration_name_fragment(self) -> str:
        return f"ops_{self.app_label}"

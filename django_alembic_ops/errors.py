"""Library exceptions. Each message is one line and says what to do next.

Management commands turn every :class:`OpsError` into a ``CommandError``
(see :mod:`django_alembic_ops.management.base`).
"""

from __future__ import annotations


class OpsError(Exception):
    """Base class of every user-facing error of django-alembic-ops."""


class UnknownApp(OpsError):
    """An app label that is not installed."""


class NoOpsMigrations(OpsError):
    """An installed app without a ``migrations_ops`` package."""


class UnknownMigration(OpsError):
    """A migration name, prefix or revision id that matches nothing."""


class AmbiguousMigration(OpsError):
    """A prefix that matches several migrations of one app."""


class MultipleHeads(OpsError):
    """An app whose revision graph has several heads."""


class ScriptError(OpsError):
    """A migration script that cannot be loaded, or a broken revision graph."""


class UnknownRecordedRevision(OpsError):
    """The version table records a revision that no script defines (a branch switch)."""


class DjangoDependencyNotApplied(OpsError):
    """A ``django_dependencies`` entry whose Django migration is not applied."""


class MigrationFailed(OpsError):
    """A migration failed and is not recorded.

    Raised for an error in the script, at ``COMMIT``, or while recording it in
    the version table, and for a script that left the transaction marked for
    rollback. The message says "rolled back" only when everything the
    migration did was; otherwise "not rolled back" and the statements that
    had committed (after ``op.get_bind().commit()`` or ``autocommit_block()``).
    """


class DatabaseUnavailable(OpsError):
    """The database of an alias cannot be reached."""


class TransactionError(OpsError):
    """Migrations cannot run in the current transaction state."""


class OfflineNotSupported(OpsError):
    """An operation that cannot be rendered as offline SQL."""


class LockTimeout(OpsError):
    """Another run held the migration lock for longer than ``LOCK_TIMEOUT``."""


class WriteError(OpsError):
    """A migration file that cannot be written."""


class FleetError(OpsError):
    """A fleet that cannot run as asked: ``TENANTS``, ``TENANT_APPS``, tenant names, options."""


class ChangedMigration(OpsError):
    """An applied script whose code changed since (its checksum in ``alembic_ops_history``)."""


class SettingError(OpsError):
    """An ``ALEMBIC_OPS`` value that cannot be used (``DDL_LOCK_TIMEOUT="3 secs"``).

    ``problem`` says what is wrong, ``accepted`` what the key takes (the
    system check shows them as its message and hint).
    """

    def __init__(self, problem: str, accepted: str) -> None:
        super().__init__(f"{problem}: {accepted}.")
        self.problem = problem
        self.accepted = accepted

"""User-facing names <-> revision ids: ``shop 0002``, full names, ids, ``zero``."""

from __future__ import annotations

from .errors import AmbiguousMigration, UnknownMigration
from .scripts import OpsMigration, OpsScripts

ZERO = "zero"


def resolve(scripts: OpsScripts, app_label: str, target: str) -> OpsMigration | None:
    """The migration of ``app_label`` that ``target`` names; ``None`` for ``zero``.

    ``target`` is a full revision id, a file name, or an unambiguous prefix of
    a file name (``"0002"``), as ``manage.py migrate shop 0002`` accepts.
    """
    if target == ZERO:
        return None
    migrations = scripts.by_app.get(app_label, [])
    for migration in migrations:
        if target in (migration.revision, migration.name):
            return migration
    candidates = [m for m in migrations if m.name.startswith(target)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = ", ".join(m.name for m in candidates)
        raise AmbiguousMigration(
            f"More than one ops migration matches '{target}' in app '{app_label}': {names}. "
            "Please be more specific."
        )
    raise UnknownMigration(
        f"Cannot find an ops migration matching '{target}' from app '{app_label}'. "
        f"Run 'python manage.py opsshowmigrations {app_label}' to list them."
    )


def resolve_reference(scripts: OpsScripts, reference: str) -> OpsMigration:
    """A migration of any app: ``"app_label.0002"`` (any prefix) or a revision id."""
    if reference in scripts.by_revision:
        return scripts.by_revision[reference]
    app_label, dot, target = reference.partition(".")
    if dot and app_label in scripts.by_app:
        migration = resolve(scripts, app_label, target)
        if migration is not None:
            return migration
    raise UnknownMigration(
        f"Cannot find an ops migration '{reference}'. Name it as 'app_label.0002' "
        "or by its full revision id."
    )

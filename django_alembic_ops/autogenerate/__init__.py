"""Autogenerate: an app's Django models -> SQLAlchemy metadata, compared by Alembic.

- :mod:`.target` - what an app's ops migrations own (unmanaged models, or
  ``target_metadata``);
- :mod:`.metadata` - Django models -> :class:`~sqlalchemy.schema.MetaData`,
  exactly as Django's schema editor would create them on the connection;
- :mod:`.compare` - Alembic's autogenerate, scoped to the app's own tables;
- :mod:`.sqlite` - what SQLite's batch rebuilds need restated;
- :mod:`.portable` - the script made to run on every backend (the target
  built for each, generic types with variants, what only some backends have);
- :mod:`.render` - Alembic's rendering, plus words for each change.

The public entry point is :func:`django_alembic_ops.api.autogenerate`.
"""

from __future__ import annotations

from .compare import Comparison, DatabaseNotAtHead, compare
from .metadata import UnsupportedModel, build_metadata, model_tables
from .target import NoTarget, has_target, target_apps

__all__ = [
    "Comparison",
    "DatabaseNotAtHead",
    "NoTarget",
    "UnsupportedModel",
    "build_metadata",
    "compare",
    "has_target",
    "model_tables",
    "target_apps",
]

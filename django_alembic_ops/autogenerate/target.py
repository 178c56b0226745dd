"""What an app's ops migrations own: its autogenerate target.

The target of an app is, in this order:

1. ``target_metadata`` (a SQLAlchemy :class:`~sqlalchemy.schema.MetaData`)
   defined in the app's ``migrations_ops/__init__.py``;
2. otherwise its Django models with ``Meta.managed = False`` - their tables
   and the auto-created join tables of their many-to-many fields - built by
   :mod:`.metadata` as Django would create them on the database compared.

An app with neither has no target: it can only get ``--empty`` migrations.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from django.apps import apps
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from sqlalchemy.engine import Connection

from .. import discovery
from ..errors import OpsError
from .metadata import EXTERNAL, build_metadata, model_tables

__all__ = ["AppTarget", "NoTarget", "app_target", "has_target", "target_apps"]


class NoTarget(OpsError):
    """An app with nothing to autogenerate from."""


@dataclass
class AppTarget:
    """The schema an app's ops migrations should produce."""

    app_label: str
    metadata: sa.MetaData
    source: str  # "models" or "target_metadata"
    tables: list[str] = field(default_factory=list)  # the app's own tables in the metadata


def unmanaged_models(app_label: str) -> list[type[models.Model]]:
    """The app's concrete models whose tables Django's migrations do not create."""
    app_config = discovery.get_app_config(app_label)
    return [
        model
        for model in app_config.get_models()
        if not model._meta.managed and not model._meta.proxy and not model._meta.swapped
    ]


def declared_metadata(app_label: str) -> sa.MetaData | None:
    """``target_metadata`` from the app's ``migrations_ops/__init__.py``, if defined."""
    ops_app = discovery.app_folder(app_label)
    if not ops_app.exists:
        return None
    module = importlib.import_module(ops_app.module)
    value = getattr(module, "target_metadata", None)
    if value is None:
        return None
    if not isinstance(value, sa.MetaData):
        raise OpsError(
            f"{ops_app.module}.target_metadata must be a sqlalchemy MetaData, "
            f"not {type(value).__name__}."
        )
    return value


def has_target(app_label: str) -> bool:
    """Whether ``opsmakemigration`` can autogenerate for the app."""
    return declared_metadata(app_label) is not None or bool(unmanaged_models(app_label))


def target_apps() -> list[str]:
    """Apps ``opsmakemigration`` with no labels compares, in ``INSTALLED_APPS`` order.

    Those with a target and a ``migrations_ops`` package: like
    ``makemigrations``, which only starts an app's migrations when the app
    is named, so a third-party app's package is never written into.
    """
    return [
        config.label
        for config in apps.get_app_configs()
        if discovery.app_folder(config.label).exists and has_target(config.label)
    ]


def no_target_message(app_label: str) -> str:
    return (
        f"App '{app_label}' has nothing to autogenerate from: it has no models with "
        "Meta.managed = False and its migrations_ops package defines no target_metadata. "
        f"Add one of them, or run 'python manage.py opsmakemigration {app_label} --empty' "
        "for an empty migration."
    )


def app_target(
    app_label: str,
    connection: BaseDatabaseWrapper,
    sa_connection: Connection,
    notes: list[str],
) -> AppTarget:
    """The target of ``app_label`` as it comes out on ``connection``."""
    declared = declared_metadata(app_label)
    if declared is not None:
        tables = [name for name, t in declared.tables.items() if not t.info.get(EXTERNAL)]
        return AppTarget(app_label, declared, "target_metadata", tables)
    unmanaged = unmanaged_models(app_label)
    if not unmanaged:
        raise NoTarget(no_target_message(app_label))
    views = set(sa.inspect(sa_connection).get_view_names())
    chosen = []
    for model in unmanaged:
        if model._meta.db_table in views:
            notes.append(
                f"{model._meta.label}: skipped, its table {model._meta.db_table!r} is a view."
            )
        else:
            chosen.append(model)
    owned = model_tables(chosen)
    metadata = build_metadata(owned, connection, sa_connection.dialect, notes)
    return AppTarget(app_label, metadata, "models", [m._meta.db_table for m in owned])

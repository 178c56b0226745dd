"""Which targets a fleet run migrates: ``TENANTS`` -> ``(alias, schema)`` pairs.

A target is one database alias and, on PostgreSQL, one schema in it:

- a *tenant* target, ``(alias, schema)``: the ``TENANT_APPS``' migrations,
  run in that schema (its ``search_path``, its version table, its lock);
- a *shared* target, ``(alias, None)`` of a database that has tenant schemas:
  every other app's migrations, once per database, before its tenants;
- a *database* target, ``(alias, None)`` listed by ``TENANTS`` (a database per
  tenant) or given by ``--all-databases``: every app's migrations, as a plain
  ``opsmigrate --database alias`` runs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.module_loading import import_string

from .. import conf, state
from ..errors import FleetError

TENANT = "tenant"
SHARED = "shared"
DATABASE = "database"

#: PostgreSQL truncates longer identifiers (NAMEDATALEN - 1).
_PG_MAX_IDENTIFIER = 63


@dataclass(frozen=True)
class FleetTarget:
    """One database alias, or one tenant schema in it (see the module's docstring)."""

    alias: str
    schema: str | None
    kind: str  # TENANT, SHARED or DATABASE
    label: str  # as output lines name it: the schema, or the alias

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class FleetJob:
    """What to do in every target: ``opsmigrate [app_label [migration]] [--fake]``."""

    app_label: str | None = None
    migration: str | None = None
    fake: bool = False


def setting_object(key: str, setting: Any) -> Any:
    """``ALEMBIC_OPS[key]``: imported when it is a dotted path, else as it is.

    :raises FleetError: the path cannot be imported.
    """
    if not isinstance(setting, str):
        return setting
    try:
        return import_string(setting)
    except ImportError as exc:
        raise FleetError(f"ALEMBIC_OPS[{key!r}] cannot be imported: {exc}.") from None


def tenant_pairs() -> list[tuple[str, str | None]]:
    """What ``ALEMBIC_OPS["TENANTS"]`` returns, checked, as ``(alias, schema)`` pairs.

    :raises FleetError: ``TENANTS`` is not set or cannot be called, or lists
        something that is not a tenant (an unknown alias, a schema on a
        database that is not PostgreSQL, a name PostgreSQL cannot hold).
    """
    setting = conf.get().TENANTS
    if setting is None:
        raise FleetError(
            "--tenants needs ALEMBIC_OPS['TENANTS']: a function that lists the tenant schemas "
            "(for django-tenants: 'django_alembic_ops.tenants.django_tenants_schemas')."
        )
    function = setting_object("TENANTS", setting)
    pairs: dict[tuple[str, str | None], None] = {}  # ordered, without duplicates
    for item in function():
        pair = _pair(item)
        pairs[pair] = None
    return list(pairs)


def _pair(item: Any) -> tuple[str, str | None]:
    if isinstance(item, str):
        alias, schema = DEFAULT_DB_ALIAS, item
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        alias, schema = item
    else:
        raise FleetError(
            f"ALEMBIC_OPS['TENANTS'] returned {item!r}; it must return schema names or "
            "(alias, schema) pairs."
        )
    if alias not in connections:
        raise FleetError(
            f"ALEMBIC_OPS['TENANTS'] lists database '{alias}', which is not in DATABASES."
        )
    if schema is None:
        return alias, None
    if not isinstance(schema, str) or not schema or len(schema) > _PG_MAX_IDENTIFIER:
        raise FleetError(
            f"ALEMBIC_OPS['TENANTS'] lists schema {schema!r}; a schema name is a string of "
            f"1 to {_PG_MAX_IDENTIFIER} characters."
        )
    vendor = state.vendor(alias)
    if vendor != "postgresql":
        raise FleetError(
            f"ALEMBIC_OPS['TENANTS'] lists schema '{schema}' on database '{alias}' ({vendor}); "
            f"tenant schemas need PostgreSQL: list ('{alias}', None) to migrate that whole "
            "database instead."
        )
    return alias, schema


def resolve(
    *,
    tenants: bool = False,
    names: Sequence[str] = (),
    all_databases: bool = False,
    database: str = DEFAULT_DB_ALIAS,
) -> list[FleetTarget]:
    """The targets of a fleet run, in the order they start.

    :param tenants: every target ``TENANTS`` lists, each database's shared
        target first.
    :param names: only these tenants (schema names, or the alias of a
        ``(alias, None)`` pair); implies ``tenants``, without shared targets.
    :param all_databases: every alias in ``DATABASES``; otherwise ``database`` only.
        Without ``tenants``, each alias is one database target.
    """
    aliases = list(connections) if all_databases else [database]
    if not tenants and not names:
        return [FleetTarget(alias, None, DATABASE, alias) for alias in aliases]
    pairs = [pair for pair in tenant_pairs() if pair[0] in aliases]
    if any(schema is not None for _, schema in pairs) and not conf.get().TENANT_APPS:
        raise FleetError(
            "ALEMBIC_OPS['TENANT_APPS'] is empty, so no app's ops migrations run in tenant "
            "schemas; list the apps whose tables every tenant has."
        )
    qualify = len({alias for alias, schema in pairs if schema is not None}) > 1
    targets: list[FleetTarget] = []
    for alias in aliases:
        schemas = [schema for a, schema in pairs if a == alias and schema is not None]
        whole = (alias, None) in pairs
        if whole and not schemas:
            targets.append(FleetTarget(alias, None, DATABASE, alias))
        elif schemas or not names:
            targets.append(FleetTarget(alias, None, SHARED, alias))
        targets += [
            FleetTarget(alias, schema, TENANT, f"{alias}.{schema}" if qualify else schema)
            for schema in schemas
        ]
    if names:
        targets = _named(targets, names, aliases)
    return targets


def _named(
    targets: Iterable[FleetTarget], names: Sequence[str], aliases: Sequence[str]
) -> list[FleetTarget]:
    chosen = []
    found = set()
    for target in targets:
        if target.kind == SHARED:
            continue
        keys = {target.label, target.schema if target.schema is not None else target.alias}
        matched = keys.intersection(names)
        if matched:
            chosen.append(target)
            found |= matched
    unknown = [name for name in names if name not in found]
    if unknown:
        where = ("database " if len(aliases) == 1 else "databases ") + ", ".join(
            f"'{alias}'" for alias in aliases
        )
        raise FleetError(
            f"ALEMBIC_OPS['TENANTS'] lists no tenant '{unknown[0]}' on {where}; "
            "'python manage.py opsshowmigrations --tenants -v 2' lists them."
        )
    return chosen

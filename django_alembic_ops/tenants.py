"""Ready ``TENANTS`` callables, and what a tenant schema needs from a tenancy package.

``ALEMBIC_OPS["TENANTS"] = "django_alembic_ops.tenants.django_tenants_schemas"``
makes ``opsmigrate --tenants`` migrate every tenant schema of a
`django-tenants <https://django-tenants.readthedocs.io/>`_ project. Nothing of
django-tenants is imported until that callable runs: it is an optional
integration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections


def django_tenants_schemas() -> list[tuple[str, str]]:
    """Every django-tenants tenant's ``schema_name`` except the public schema's.

    As ``(alias, schema)`` pairs on django-tenants' database alias
    (``TENANT_DB_ALIAS``, default ``"default"``), in schema-name order.
    """
    from django_tenants.utils import (
        get_public_schema_name,
        get_tenant_database_alias,
        get_tenant_model,
    )

    alias = get_tenant_database_alias()
    names = (
        get_tenant_model()
        .objects.using(alias)
        .exclude(schema_name=get_public_schema_name())
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )
    return [(alias, str(name)) for name in names]


@contextmanager
def activated(alias: str, schema: str | None) -> Iterator[None]:
    """Tell a tenancy-aware connection wrapper that ``schema`` is the current one.

    django-tenants' database backend sets ``search_path`` to its own idea of
    the current schema on every Django cursor, and its router allows an app
    on the database by that schema (``TENANT_APPS`` in a tenant's,
    ``SHARED_APPS`` in the public one). Both must see the tenant while its
    migrations run; afterwards the wrapper gets its previous tenant back.
    Other backends are left as they are (the runner sets ``search_path``).
    """
    connection = connections[alias]
    set_schema = getattr(connection, "set_schema", None)
    if schema is None or set_schema is None:
        yield
        return
    previous = getattr(connection, "tenant", None)
    set_schema(schema)
    try:
        yield
    finally:
        if previous is not None:
            connection.set_tenant(previous)  # type: ignore[attr-defined]
        else:
            connection.set_schema_to_public()  # type: ignore[attr-defined]

"""The ``ALEMBIC_OPS`` setting: defaults, validation data and a cached accessor."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "ALEMBIC_OPS"

#: Every key of ``ALEMBIC_OPS`` with its default and the type it must have.
DEFAULTS: dict[str, tuple[Any, type | tuple[type, ...]]] = {
    "MODULE_NAME": ("migrations_ops", str),
    "VERSION_TABLE": ("alembic_ops_version", str),
    "TRANSACTION_PER_MIGRATION": (True, bool),
    "RUN_WITH_MIGRATE": (True, bool),
    "EXTEND_MIGRATE": (True, bool),
    "LOCK_TIMEOUT": (300, (int, float)),
    # Fleets: a dotted path to a callable (or the callable) that lists the
    # tenant schemas; its value is checked by the system checks (E004).
    "TENANTS": (None, object),
    "TENANT_APPS": ([], (list, tuple)),
    # Safe deploys: durations ("200ms", "3s", a number of seconds) and a count,
    # parsed and checked by ddl_timeouts (system check E006). A bad value
    # refuses the run rather than falling back: it was meant to protect.
    "DDL_LOCK_TIMEOUT": (None, object),
    "DDL_STATEMENT_TIMEOUT": (None, object),
    "DDL_RETRIES": (0, object),
    # opsmigrate --executor celery: a dotted path to the Celery app (or the
    # app itself); None: Celery's current app.
    "CELERY_APP": (None, object),
}

#: ``TENANTS`` as a callable: it returns schema names (on the default alias),
#: or ``(alias, schema)`` pairs, ``schema`` ``None`` for a whole database.
TenantsCallable = Callable[[], Iterable[Any]]


@dataclass(frozen=True)
class OpsSettings:
    """The effective ``ALEMBIC_OPS`` values (defaults filled in)."""

    MODULE_NAME: str
    VERSION_TABLE: str
    TRANSACTION_PER_MIGRATION: bool
    RUN_WITH_MIGRATE: bool
    EXTEND_MIGRATE: bool
    LOCK_TIMEOUT: float
    TENANTS: str | TenantsCallable | None
    TENANT_APPS: Sequence[str]
    DDL_LOCK_TIMEOUT: Any  # as written; django_alembic_ops.ddl_timeouts parses them
    DDL_STATEMENT_TIMEOUT: Any
    DDL_RETRIES: Any
    CELERY_APP: Any


def raw_setting() -> Any:
    """The user's ``ALEMBIC_OPS`` value as written (``{}`` when absent)."""
    return getattr(settings, SETTING_NAME, {})


@lru_cache(maxsize=1)
def get() -> OpsSettings:
    """Return the effective settings; invalid values fall back to defaults.

    Wrong keys and types are reported by the system checks
    (:mod:`django_alembic_ops.checks`), not here, so a typo never stops a
    management command from starting.
    """
    user = raw_setting()
    if not isinstance(user, dict):
        user = {}
    values: dict[str, Any] = {}
    for key, (default, expected) in DEFAULTS.items():
        value = user.get(key, default)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            value = default
        values[key] = value
    return OpsSettings(**values)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    # override_settings() in tests must take effect immediately.
    if setting in (SETTING_NAME, "INSTALLED_APPS"):
        get.cache_clear()

"""System checks for the ``ALEMBIC_OPS`` setting (``manage.py check``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.apps import apps as django_apps
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from . import conf, ddl_timeouts
from .errors import SettingError

_TYPE_NAMES = {
    str: "a string",
    bool: "True or False",
    (int, float): "a number of seconds",
    (list, tuple): "a list of app labels",
}


@register()
def check_settings(
    *,
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """E001: not a dict; E002: a value of the wrong type; W001: an unknown key;
    E003: ``MODULE_NAME``; E004: ``TENANTS``; E005: ``TENANT_APPS``;
    E006: ``DDL_LOCK_TIMEOUT``, ``DDL_STATEMENT_TIMEOUT``, ``DDL_RETRIES``."""
    value = conf.raw_setting()
    if not isinstance(value, dict):
        return [
            Error(
                "ALEMBIC_OPS must be a dict.",
                hint="Set ALEMBIC_OPS = {} or remove it to use the defaults.",
                id="django_alembic_ops.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for key, item in value.items():
        if key not in conf.DEFAULTS:
            messages.append(
                Warning(
                    f"ALEMBIC_OPS has an unknown key {key!r}; it is ignored.",
                    hint="Known keys: " + ", ".join(conf.DEFAULTS) + ".",
                    id="django_alembic_ops.W001",
                )
            )
            continue
        expected = conf.DEFAULTS[key][1]
        wrong_bool = expected is not bool and isinstance(item, bool)
        if not isinstance(item, expected) or wrong_bool:
            messages.append(
                Error(
                    f"ALEMBIC_OPS[{key!r}] must be {_TYPE_NAMES[expected]}, "
                    f"not {type(item).__name__}.",
                    hint=f"The default is {conf.DEFAULTS[key][0]!r}.",
                    id="django_alembic_ops.E002",
                )
            )
    module_name = value.get("MODULE_NAME")
    if isinstance(module_name, str) and not module_name.isidentifier():
        messages.append(
            Error(
                f"ALEMBIC_OPS['MODULE_NAME'] {module_name!r} is not a Python identifier.",
                hint="Use a package name such as 'migrations_ops'.",
                id="django_alembic_ops.E003",
            )
        )
    messages += _check_tenants(value.get("TENANTS"))
    messages += _check_ddl_timeouts(value)
    tenant_apps = value.get("TENANT_APPS")
    if isinstance(tenant_apps, (list, tuple)):
        messages += _check_tenant_apps(tenant_apps)
    return messages


def _check_tenants(tenants: Any) -> list[CheckMessage]:
    if tenants is None or callable(tenants):
        return []
    problem = None
    if not isinstance(tenants, str):
        problem = f"must be a dotted path to a callable, not {type(tenants).__name__}"
    else:
        try:
            found = import_string(tenants)
        except ImportError as exc:
            problem = f"{tenants!r} cannot be imported ({exc})"
        else:
            if not callable(found):
                problem = f"{tenants!r} is not callable"
    if problem is None:
        return []
    return [
        Error(
            f"ALEMBIC_OPS['TENANTS'] {problem}.",
            hint="Name a function that returns the tenant schema names, e.g. "
            "'django_alembic_ops.tenants.django_tenants_schemas'.",
            id="django_alembic_ops.E004",
        )
    ]


def _check_tenant_apps(tenant_apps: Sequence[Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for label in tenant_apps:
        if isinstance(label, str) and label in django_apps.app_configs:
            continue
        messages.append(
            Error(
                f"ALEMBIC_OPS['TENANT_APPS'] lists {label!r}, which is not the label of an "
                "installed app.",
                hint="Use app labels (the last part of the app's name, e.g. 'billing') of apps "
                "in INSTALLED_APPS.",
                id="django_alembic_ops.E005",
            )
        )
    return messages


def _check_ddl_timeouts(value: dict[str, Any]) -> list[CheckMessage]:
    parsers = {
        "DDL_LOCK_TIMEOUT": lambda item: ddl_timeouts.parse_duration("DDL_LOCK_TIMEOUT", item),
        "DDL_STATEMENT_TIMEOUT": lambda item: ddl_timeouts.parse_duration(
            "DDL_STATEMENT_TIMEOUT", item
        ),
        "DDL_RETRIES": ddl_timeouts.parse_retries,
    }
    messages: list[CheckMessage] = []
    for key, parse in parsers.items():
        if key not in value:
            continue
        try:
            parse(value[key])
        except SettingError as exc:
            messages.append(
                Error(
                    f"{exc.problem}.",
                    hint=exc.accepted[0].upper() + exc.accepted[1:] + ".",
                    id="django_alembic_ops.E006",
                )
            )
    return messages

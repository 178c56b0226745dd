"""System checks for the ``ALEMBIC_OPS`` setting (``manage.py check``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning, register

from . import conf

_TYPE_NAMES = {str: "a string", bool: "True or False", (int, float): "a number of seconds"}


@register()
def check_settings(
    *,
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """E001: not a dict; E002: a value of the wrong type; W001: an unknown key."""
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
    return messages

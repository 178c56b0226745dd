"""Installed apps -> their ``migrations_ops`` folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.apps import AppConfig, apps

from . import conf
from .errors import NoOpsMigrations, UnknownApp


@dataclass(frozen=True)
class OpsApp:
    """A Django app and the folder that holds (or will hold) its ops scripts."""

    label: str
    module: str  # dotted name of the scripts package, e.g. "shop.migrations_ops"
    path: Path

    @property
    def exists(self) -> bool:
        return (self.path / "__init__.py").is_file()


def _ops_app(app_config: AppConfig) -> OpsApp:
    module_name = conf.get().MODULE_NAME
    return OpsApp(
        label=app_config.label,
        module=f"{app_config.name}.{module_name}",
        path=Path(app_config.path) / module_name,
    )


def get_app_config(app_label: str) -> AppConfig:
    """The installed app for ``app_label``, or :class:`UnknownApp`."""
    try:
        return apps.get_app_config(app_label)
    except LookupError:
        raise UnknownApp(
            f"No installed app with label '{app_label}'; check INSTALLED_APPS."
        ) from None


def app_folder(app_label: str) -> OpsApp:
    """The ops folder of an installed app, whether or not it exists yet."""
    return _ops_app(get_app_config(app_label))


def ops_apps() -> list[OpsApp]:
    """Every installed app that has an ops scripts package, in INSTALLED_APPS order."""
    found = (_ops_app(app_config) for app_config in apps.get_app_configs())
    return [ops_app for ops_app in found if ops_app.exists]


def require_ops_app(app_label: str) -> OpsApp:
    """Like :func:`app_folder`, but the package must exist."""
    ops_app = app_folder(app_label)
    if not ops_app.exists:
        raise NoOpsMigrations(
            f"App '{app_label}' does not have ops migrations (no {ops_app.module} package). "
            f"Create one with 'python manage.py opsmakemigration {app_label} --empty'."
        )
    return ops_app

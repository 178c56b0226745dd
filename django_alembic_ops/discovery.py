"""Installed apps -> their ``migrations_ops`` folders."""

from __future__ import annotations

import functools
import site
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import django
from django.apps import AppConfig, apps

from . import conf
from .errors import NoOpsMigrations, UnknownApp, WriteError


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


def writable_app_folder(app_label: str) -> OpsApp:
    """:func:`app_folder`, refused for an app installed as a package.

    A script written into site-packages (or Django's own apps) would be lost
    on the next install, and would change a package the project does not own.
    """
    app_config = get_app_config(app_label)
    if not inside_project(Path(app_config.path)):
        raise WriteError(installed_package_message(app_config))
    return _ops_app(app_config)


def installed_package_message(app_config: AppConfig) -> str:
    """Why an app that is an installed package gets no ops migrations, and what to do."""
    return (
        f"App '{app_config.label}' is an installed package ({app_config.name}), not part of "
        "this project; ops migrations cannot be written into it. Put ops migrations that "
        "change its tables in one of your own apps."
    )


def ops_apps() -> list[OpsApp]:
    """Every installed app that has an ops scripts package, in INSTALLED_APPS order."""
    found = (_ops_app(app_config) for app_config in apps.get_app_configs())
    return [ops_app for ops_app in found if ops_app.exists]


@functools.cache
def _installed_code_roots() -> tuple[Path, ...]:
    """Folders that hold installed packages: the interpreter's, the user's, Django's."""
    roots = [sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib", "platstdlib")]
    roots += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    roots.append(site.getusersitepackages())
    # Django itself may be a checkout on sys.path rather than installed.
    roots.append(str(Path(django.__file__).parent))
    return tuple(dict.fromkeys(Path(root).resolve() for root in roots if root))


def inside_project(path: Path) -> bool:
    """Whether code at ``path`` is the project's own, not an installed package.

    An app installed with pip (into any site-packages or dist-packages
    folder), the standard library and Django's own apps are not: writing a
    migration into them would be lost on the next install.
    """
    resolved = path.resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return False
    return not any(resolved.is_relative_to(root) for root in _installed_code_roots())


def require_ops_app(app_label: str) -> OpsApp:
    """Like :func:`app_folder`, but the package must exist."""
    app_config = get_app_config(app_label)
    ops_app = _ops_app(app_config)
    if ops_app.exists:
        return ops_app
    if not inside_project(Path(app_config.path)):
        raise NoOpsMigrations(
            f"App '{app_label}' does not have ops migrations: {app_config.name} is an installed "
            "package, not part of this project, and ships none. Put ops migrations that change "
            "its tables in one of your own apps."
        )
    raise NoOpsMigrations(
        f"App '{app_label}' does not have ops migrations (no {ops_app.module} package). "
        f"Create one with 'python manage.py opsmakemigration {app_label} --empty'."
    )

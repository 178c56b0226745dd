"""pytest plugin: the ``ops_migrator`` fixture and the ``--ops-stairway``/``--ops-checks`` tests.

Registered through the ``pytest11`` entry point, so it is active wherever the
package is installed. It changes nothing unless asked: the fixture only runs
when a test requests it, and test items are only added with the options.
Without pytest-django, or without configured Django settings, asking for
either is a clear error; otherwise the plugin stays out of the way.

Nothing here imports Django at import time: pytest loads plugins before
pytest-django has configured the settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import OpsMigrator

#: The checks of ``--ops-checks``, in the order they are collected per app.
CHECKS = (
    "test_ops_single_head",
    "test_ops_upgrade",
    "test_ops_models_match_ddl",
    "test_ops_stairway",
    "test_ops_lint",
)
#: The node the added items hang off: their ids are ``django_alembic_ops::test_ops_...[app]``.
NODE_NAME = "django_alembic_ops"

#: The pytest-django fixtures that open database access, transactional first.
_DB_FIXTURES = ("transactional_db", "live_server", "db")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("django_alembic_ops", "ops migrations (django-alembic-ops)")
    group.addoption(
        "--ops-stairway",
        action="store_true",
        default=False,
        help="Add test_ops_stairway[<app_label>] per app with ops migrations: upgrade, "
        "downgrade, upgrade each migration, checking the downgrade restores the schema.",
    )
    group.addoption(
        "--ops-checks",
        action="store_true",
        default=False,
        help="Add test_ops_single_head, test_ops_upgrade, test_ops_models_match_ddl, "
        "test_ops_stairway and test_ops_lint per app with ops migrations ([<app_label>]).",
    )
    group.addoption(
        "--ops-database",
        default="default",
        metavar="ALIAS",
        help="The database alias the tests of --ops-stairway/--ops-checks run on "
        "(default: default). Apps the routers keep off it are skipped.",
    )


def _django_problem(config: pytest.Config) -> str | None:
    """Why the plugin cannot reach Django, or ``None`` when it can."""
    if not config.pluginmanager.hasplugin("django"):
        return "pytest-django is not installed (pip install pytest-django)"
    from django.conf import settings

    if not settings.configured:
        return "Django settings are not configured (set DJANGO_SETTINGS_MODULE or pass --ds)"
    return None


# -- the ops_migrator fixture ---------------------------------------------------------


def _enable_database(request: pytest.FixtureRequest) -> None:
    """Set up the test's database fixture before ours, so that ours is torn down first.

    The migrator restores the heads while the database is still reachable
    (and, with ``transactional_db``, before the tables are flushed).
    """
    for name in _DB_FIXTURES:
        if name in request.fixturenames:
            request.getfixturevalue(name)
            return
    if request.node.get_closest_marker("django_db") is not None:
        return  # pytest-django's autouse fixture has already opened it
    pytest.fail(
        "The ops_migrator fixture needs database access: request the transactional_db "
        "fixture (or db, on PostgreSQL), or mark the test "
        "@pytest.mark.django_db(transaction=True).",
        pytrace=False,
    )


@pytest.fixture
def ops_migrator(request: pytest.FixtureRequest) -> Iterator[OpsMigrator]:
    """Move an app to an exact ops migration: ``ops_migrator.migrate("shop", "0002")``.

    ``ops_migrator.applied("shop")`` lists the applied ones. After the test,
    each database it migrated is back at the heads. Use it with
    ``transactional_db`` (or ``db`` on PostgreSQL).
    """
    problem = _django_problem(request.config)
    if problem is not None:
        pytest.fail(f"The ops_migrator fixture cannot run: {problem}.", pytrace=False)
    _enable_database(request)
    from .testing import PYTEST_HINT, OpsMigrator

    migrator = OpsMigrator(hint=PYTEST_HINT)
    yield migrator
    migrator.restore()


# -- --ops-stairway / --ops-checks ------------------------------------------------------


class OpsChecks(pytest.Collector):
    """Collects the checks asked for, per app with ops migrations."""

    ops_checks: tuple[str, ...]

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        from . import discovery

        database = self.config.getoption("ops_database")
        apps = [app for app in discovery.ops_apps() if _has_scripts(app.path)]
        return [
            _item(self, name, app.label, app.path, database)
            for name in self.ops_checks
            for app in apps
        ]


class OpsCheckItem(pytest.Function):
    """One check for one app, e.g. ``test_ops_stairway[shop]``."""

    ops_location: Path

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        # Point at the app's scripts rather than at this plugin.
        return self.ops_location, None, self.name

    def repr_failure(  # type: ignore[override]  # as pytest.Function's own
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> Any:
        # The checks say in their message which migration failed and why; a
        # traceback through this package would only bury that (--tb=long shows it).
        if isinstance(excinfo.value, AssertionError) and self.config.getoption("tbstyle") != "long":
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _run(check: Callable[[], object]) -> None:
    import unittest

    try:
        check()
    except unittest.SkipTest as exc:
        pytest.skip(str(exc))


#: The checks that touch the database (``_item`` gives them database access);
#: the lint renders offline.
_DATABASE_CHECKS = frozenset(CHECKS) - {"test_ops_single_head", "test_ops_lint"}


def _check_functions(app_label: str, database: str) -> dict[str, Callable[..., None]]:
    """The checks of ``--ops-checks`` for one app, as pytest test functions."""
    from . import testing

    def test_ops_single_head() -> None:
        _run(lambda: testing.check_single_head(app_label))

    def test_ops_upgrade() -> None:
        _run(lambda: testing.check_upgrade(app_label, database))

    def test_ops_models_match_ddl() -> None:
        _run(lambda: testing.check_models_match_ddl(app_label, database))

    def test_ops_stairway() -> None:
        _run(lambda: testing.check_stairway(app_label, database))

    def test_ops_lint() -> None:
        _run(lambda: testing.check_lint(app_label, database))

    functions = (test_ops_single_head, test_ops_upgrade, test_ops_models_match_ddl)
    return {
        function.__name__: function for function in (*functions, test_ops_stairway, test_ops_lint)
    }


def _has_scripts(folder: Path) -> bool:
    return any(
        path.suffix == ".py" and path.name != "__init__.py" and not path.name.startswith(".")
        for path in folder.iterdir()
    )


def _item(
    parent: pytest.Collector, name: str, app_label: str, location: Path, database: str
) -> pytest.Item:
    # No originalname: pytest >= 9.2 builds the node id from it (and a callspec).
    item = OpsCheckItem.from_parent(
        parent, name=f"{name}[{app_label}]", callobj=_check_functions(app_label, database)[name]
    )
    if name in _DATABASE_CHECKS:
        # What transactional_db gives, on the chosen alias: pytest-django reads the
        # marker when the test is set up. "default" too: Django sets up another
        # alias's test database only after default's (TEST["DEPENDENCIES"]).
        databases = sorted({database, "default"})
        item.add_marker(pytest.mark.django_db(transaction=True, databases=databases))
    item.ops_location = location
    return item


def _requested_checks(config: pytest.Config) -> tuple[str, ...]:
    if config.getoption("ops_checks"):
        return CHECKS
    if config.getoption("ops_stairway"):
        return ("test_ops_stairway",)
    return ()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # trylast: after pytest-django has configured Django.
    if not _requested_checks(config):
        return
    option = "--ops-checks" if config.getoption("ops_checks") else "--ops-stairway"
    problem = _django_problem(config)
    if problem is not None:
        raise pytest.UsageError(f"{option} needs Django: {problem}.")
    from django.conf import settings

    database = config.getoption("ops_database")
    if database not in settings.DATABASES:
        known = ", ".join(sorted(settings.DATABASES))
        raise pytest.UsageError(
            f"--ops-database: no database '{database}' in DATABASES (known: {known})."
        )


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    # The checks hang off the session, next to the collected test files, so
    # that -k, --deselect, --collect-only, xdist and pytest-django's
    # reordering treat them like any other test.
    report = yield
    checks = _requested_checks(collector.config)
    if checks and isinstance(collector, pytest.Session) and report.passed:
        node = OpsChecks.from_parent(collector, name=NODE_NAME, nodeid=NODE_NAME)
        node.ops_checks = checks
        report.result.append(node)
    return report

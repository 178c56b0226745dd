"""What is different about a test database.

Django's test runner and pytest-django set up Django's test environment
(:func:`django.test.utils.setup_test_environment`) before they create the
test databases, and every database a test can reach is then one of those:
disposable, and built by the migrations alone. Three things follow:

- a flush may empty every table of it that is not Django's own or a version
  table (:mod:`.flush`);
- built with ``TEST["MIGRATE"] = False``, it records no Django migration, so
  ``django_dependencies`` count as satisfied (as under pytest-django's
  ``--nomigrations``, where Django's loader sees no migrations at all);
- kept from an earlier run (``--keepdb``, ``--reuse-db``) with a recorded
  revision whose script is gone (a branch switch), it is to be rebuilt by
  the test runner, not repaired with the commands meant for the development
  database: the error says how.

Importing this module imports nothing beyond Django's settings.
"""

from __future__ import annotations

import sys

from django.db import connections


def in_test_environment() -> bool:
    """Whether Django's test environment is set up in this process.

    ``setup_test_environment()`` records what it changed on
    ``django.test.utils._TestState`` and refuses to run twice while that is
    there; it is the one marker both test runners leave.
    """
    utils = sys.modules.get("django.test.utils")  # never imported: not testing
    return utils is not None and hasattr(getattr(utils, "_TestState", None), "saved_data")


def built_without_migrations(alias: str) -> bool:
    """Whether ``alias`` is a test database that Django built from the models.

    With ``TEST["MIGRATE"] = False`` Django creates the test database's tables
    from the current models (as ``migrate --run-syncdb`` does) and records no
    migration; afterwards its loader sees the migration files again, so every
    Django migration looks unapplied there although the tables are complete.
    """
    test_settings = connections[alias].settings_dict.get("TEST") or {}
    return test_settings.get("MIGRATE") is False and in_test_environment()


def reusing_test_database(alias: str) -> bool:
    """Whether Django is setting up a kept test database of ``alias`` right now.

    That is ``create_test_db(keepdb=True)`` (``manage.py test --keepdb``,
    pytest-django's ``--reuse-db``), which calls ``migrate`` on the database
    left by an earlier run; ``post_migrate`` then runs the ops migrations.
    Django gives no signal for it, so this looks at the call stack: only
    called on an error path, it costs nothing in the usual case.
    """
    from django.db.backends.base.creation import BaseDatabaseCreation

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "create_test_db":
            creation = frame.f_locals.get("self")
            if isinstance(creation, BaseDatabaseCreation) and creation.connection.alias == alias:
                return bool(frame.f_locals.get("keepdb"))
        frame = frame.f_back  # type: ignore[assignment]
    return False


def kept_database_message(alias: str, revisions: str, noun: str) -> str:
    """The one line for a kept test database that records ``revisions`` no script defines."""
    name = connections[alias].settings_dict["NAME"]
    return (
        f"The test database '{name}' (alias '{alias}') was kept from an earlier run and "
        f"records ops {noun} {revisions}, which no script defines (a branch switch?). "
        "It is disposable: recreate it with 'pytest --create-db', or run 'manage.py test' "
        "without '--keepdb'."
    )

"""Settings for the test suite: SQLite always, PostgreSQL when configured.

``scripts/test.sh`` starts a private PostgreSQL server and exports the
``OPS_TEST_PG_*`` variables; without them PostgreSQL tests are skipped (or
fail, when ``OPS_REQUIRE_POSTGRES`` is set, as in CI).
"""

import os

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_alembic_ops",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "ops_tests.sqlite3",
        # In-memory test database, as Django's test runner makes by default.
        "TEST": {"NAME": None},
    },
    # A second SQLite database, for routers and --database.
    "other": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "ops_tests_other.sqlite3",
        "TEST": {"NAME": None},
    },
}

PG_PORT = os.environ.get("OPS_TEST_PG_PORT")
if PG_PORT:
    DATABASES["postgres"] = {
        "ENGINE": "django.db.backends.postgresql",
        # Per process, so that parallel runs on one server never share a test database.
        "NAME": f"ops_tests_{os.getpid()}",
        "HOST": os.environ.get("OPS_TEST_PG_HOST", "127.0.0.1"),
        "PORT": PG_PORT,
        "USER": os.environ.get("OPS_TEST_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("OPS_TEST_PG_PASSWORD", ""),
    }

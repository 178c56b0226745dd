"""Settings for the test suite: SQLite always, PostgreSQL and MariaDB when configured.

``scripts/test.sh`` starts private PostgreSQL and MariaDB servers and exports
the ``OPS_TEST_PG_*`` and ``OPS_TEST_MYSQL_*`` variables; without them those
backends' tests are skipped (or fail, when ``OPS_REQUIRE_POSTGRES`` /
``OPS_REQUIRE_MYSQL`` is set, as in CI).
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

MYSQL_PORT = os.environ.get("OPS_TEST_MYSQL_PORT")
if MYSQL_PORT:
    DATABASES["mysql"] = {
        "ENGINE": "django.db.backends.mysql",
        # Per process, like PostgreSQL's; Django's test database is test_<NAME>.
        "NAME": f"ops_tests_{os.getpid()}",
        "HOST": os.environ.get("OPS_TEST_MYSQL_HOST", "127.0.0.1"),
        "PORT": MYSQL_PORT,
        "USER": os.environ.get("OPS_TEST_MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("OPS_TEST_MYSQL_PASSWORD", ""),
        # Full Unicode, as Django's docs recommend for MySQL.
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }

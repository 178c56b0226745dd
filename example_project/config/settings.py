"""Settings of the django-alembic-ops example project (SQLite, no web server needed).

Set ``EXAMPLE_PG_NAME`` to run it on PostgreSQL instead.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-project-only-not-a-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []

INSTALLED_APPS = [
    "django_alembic_ops",
    "shop",
    "reports",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}

# Every key is optional; these are the defaults.
ALEMBIC_OPS = {
    "MODULE_NAME": "migrations_ops",
    "VERSION_TABLE": "alembic_ops_version",
    "TRANSACTION_PER_MIGRATION": True,
    "RUN_WITH_MIGRATE": True,
    "LOCK_TIMEOUT": 300,
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

if os.environ.get("EXAMPLE_PG_NAME"):
    # The same project on PostgreSQL; libpq reads PGHOST, PGPORT, PGUSER, PGPASSWORD.
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["EXAMPLE_PG_NAME"],
    }

"""A third-party-style backend: Django's SQLite one under another ENGINE name."""

from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper


class DatabaseWrapper(SQLiteDatabaseWrapper):
    pass

"""What every ops management command shares: the one place where library
errors become ``CommandError`` (one line, exit status 1)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from ..errors import OpsError


class OpsCommand(BaseCommand):
    """A BaseCommand whose ``OpsError`` s are reported as ``CommandError`` s."""

    #: The command only prints SQL (as ``opsmigrate --sql``, whose
    #: ``options["sql"]`` says so): it needs no database connection.
    offline = False

    def add_database_argument(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help='Nominates a database to use. Defaults to the "default" database.',
        )

    def get_check_kwargs(self, options: Any) -> Any:  # called by Django >= 5.2
        kwargs = dict(super().get_check_kwargs(options))
        database = options.get("database")
        if database is not None:
            # As Django's migrate does: the system checks ask only the database
            # the command works on. Since Django 6.1 they otherwise ask every
            # alias (MySQL's connect, to read the server's version).
            kwargs["databases"] = [database]
        if self.offline or options.get("sql"):
            # As Django's sqlmigrate: none. Asking one imports its backend and
            # driver (psycopg: 0.1 s, 11 MB) and, on MySQL, connects.
            kwargs["databases"] = []
        return kwargs

    def execute(self, *args: Any, **options: Any) -> str | None:
        database = options.get("database")
        if database is not None and database not in connections:
            raise CommandError(
                f"Unknown database alias '{database}'; it must be a key of DATABASES."
            )
        try:
            return super().execute(*args, **options)
        except OpsError as exc:
            raise CommandError(str(exc)) from exc

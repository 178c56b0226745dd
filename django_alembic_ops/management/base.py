"""What every ops management command shares: the one place where library
errors become ``CommandError`` (one line, exit status 1)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from ..errors import OpsError


class OpsCommand(BaseCommand):
    """A BaseCommand whose ``OpsError`` s are reported as ``CommandError`` s."""

    def add_database_argument(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help='Nominates a database to use. Defaults to the "default" database.',
        )

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

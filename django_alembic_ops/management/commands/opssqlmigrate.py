"""``manage.py opssqlmigrate app_label migration [--backwards]``."""

from __future__ import annotations

from typing import Any, TextIO, cast

from django.core.management.base import CommandParser

from ... import api
from ..base import OpsCommand


class Command(OpsCommand):
    help = "Prints the SQL statements of the named ops migration (no database connection)."
    offline = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "app_label", help="App label of the application containing the migration."
        )
        parser.add_argument(
            "migration_name", help="Migration name, unambiguous prefix or revision id."
        )
        self.add_database_argument(parser)
        parser.add_argument(
            "--backwards",
            action="store_true",
            help="Creates SQL to unapply the migration, rather than to apply it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        api.sqlmigrate(
            options["app_label"],
            options["migration_name"],
            backwards=options["backwards"],
            database=options["database"],
            output=cast(TextIO, self.stdout),
        )

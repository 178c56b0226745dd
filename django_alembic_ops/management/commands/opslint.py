"""``manage.py opslint [app_label ...] [--all] [--database DB]``."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser

from ... import api
from ..base import OpsCommand


class Command(OpsCommand):
    help = (
        "Reports what in the pending ops migrations (--all: every one) locks or rewrites a "
        "busy table; exits with status 1 when anything is found."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "app_label", nargs="*", help="App labels of apps with ops migrations (default: all)."
        )
        parser.add_argument(
            "--all",
            action="store_true",
            dest="all_migrations",
            help="Lint every ops migration, not only those not applied on the database.",
        )
        self.add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        report = api.lint(
            options["app_label"],
            all_migrations=options["all_migrations"],
            database=options["database"],
        )
        for finding in report.findings:
            self.stdout.write(str(finding))
        for note in report.notes:
            self.stderr.write(note, self.style.WARNING)
        if report.findings:
            sys.exit(1)
        if options["verbosity"] >= 1:
            count = len(report.migrations)
            if count == 0 and options["all_migrations"]:
                self.stdout.write("No ops migrations to lint.")
            elif count == 0:
                self.stdout.write("No pending ops migrations to lint (--all lints every one).")
            else:
                noun = "migration" if count == 1 else "migrations"
                self.stdout.write(f"No findings in {count} ops {noun}.")

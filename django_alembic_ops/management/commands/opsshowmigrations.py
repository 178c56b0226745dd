"""``manage.py opsshowmigrations [app_label ...] [--plan]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ... import api, conf
from ..base import OpsCommand


class Command(OpsCommand):
    help = "Shows all ops migrations in a project and whether they are applied."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="*", help="App labels to show (default: all).")
        self.add_database_argument(parser)
        parser.add_argument(
            "--plan",
            "-p",
            action="store_true",
            help="Shows all ops migrations in the order they will be applied.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        labels = options["app_label"]
        database = options["database"]
        # A recorded revision with no script (a branch switch) is shown, not a
        # crash; whatever the labels asked for, as no file says whose it is.
        unknown = api.unknown_revisions(database=database)
        if options["plan"]:
            entries = api.showplan(labels, database=database)
            if not entries and not unknown:
                self.stdout.write("(no ops migrations)", self.style.ERROR)
            for entry in entries:
                mark = "[X]" if entry.applied else "[ ]"
                line = f"{mark}  {entry.migration.full_name}"
                if options["verbosity"] >= 2 and entry.depends_on:
                    line += f" ... (depends on {', '.join(entry.depends_on)})"
                self.stdout.write(line)
            for revision in unknown:
                self.stdout.write(f"[?]  {self._unknown(revision)}", self.style.WARNING)
            return
        for label, migrations in api.showmigrations(labels, database=database).items():
            self.stdout.write(label, self.style.MIGRATE_LABEL)
            if not migrations:
                self.stdout.write(" (no ops migrations)", self.style.ERROR)
            for name, applied in migrations:
                if applied:
                    self.stdout.write(f" [X] {name}")
                else:
                    self.stdout.write(f" [ ] {name}")
        if unknown:
            self.stdout.write("(unknown recorded revisions)", self.style.MIGRATE_LABEL)
            for revision in unknown:
                self.stdout.write(f" [?] {self._unknown(revision)}", self.style.WARNING)

    def _unknown(self, revision: str) -> str:
        table = conf.get().VERSION_TABLE
        return f"{revision} (recorded in {table}, no script: a branch switch or a deleted file?)"

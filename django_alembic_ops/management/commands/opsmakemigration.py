"""``manage.py opsmakemigration [app_label ...]``."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ... import api
from ..base import OpsCommand


def _display(path: str) -> str:
    # Like makemigrations: relative to the current directory when inside it.
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


class Command(OpsCommand):
    help = "Creates a new ops (Alembic) migration script for the given apps."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="*", help="Apps to create ops migrations for.")
        parser.add_argument(
            "-m",
            "--name",
            dest="message",
            help="Use this name (and description) for the migration.",
        )
        parser.add_argument("--empty", action="store_true", help="Create an empty migration.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the script; write nothing."
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit with a non-zero status if model changes are missing ops migrations.",
        )
        parser.add_argument(
            "--merge", action="store_true", help="Write a merge migration for an app's heads."
        )
        parser.add_argument(
            "--depends-on",
            action="append",
            default=[],
            metavar="REV",
            help="A migration of another app that must run first (app_label.0002 or a "
            "revision id). Repeatable.",
        )
        self.add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        labels: list[str] = options["app_label"]
        self.verbosity = options["verbosity"]
        if options["merge"]:
            self._merge(labels or api.validate(), options)
            return
        if not labels:
            raise CommandError(
                "You must supply at least one app label (autogenerate for all apps is not "
                "available yet)."
            )
        if not options["empty"]:
            raise CommandError(
                f"App '{labels[0]}' has no autogenerate target; pass --empty to write an empty "
                "migration and fill in its op.* calls."
            )
        if options["check"]:
            return
        for label in labels:
            written = api.makemigration(
                label,
                message=options["message"],
                depends_on=options["depends_on"],
                dry_run=options["dry_run"],
            )
            self._report(written, options["dry_run"])

    def _merge(self, labels: list[str], options: dict[str, Any]) -> None:
        merged = False
        for label in labels:
            written = api.merge(label, message=options["message"], dry_run=options["dry_run"])
            if written is not None:
                merged = True
                self._report(written, options["dry_run"])
        if not merged and self.verbosity >= 1:
            self.stdout.write("No conflicts detected to merge.")

    def _report(self, written: api.Written, dry_run: bool) -> None:
        if self.verbosity >= 1:
            self.stdout.write(
                self.style.MIGRATE_HEADING(f"Ops migrations for '{written.app_label}':")
            )
            self.stdout.write(f"  {_display(written.path)}")
        if dry_run and self.verbosity >= 1:
            self.stdout.write(written.source)
        sys.stdout.flush()

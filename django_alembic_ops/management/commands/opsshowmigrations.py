"""``manage.py opsshowmigrations [app_label ...] [--plan]``."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ... import api, conf, history
from ..base import OpsCommand
from ..fleet import add_fleet_arguments, fleet_selection, is_fleet


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
        add_fleet_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        labels = options["app_label"]
        database = options["database"]
        if is_fleet(options):
            self._fleet(labels, options)
            return
        # A recorded revision with no script (a branch switch) is shown, not a
        # crash; whatever the labels asked for, as no file says whose it is.
        unknown = api.unknown_revisions(database=database)
        post = api.post_deploy()
        recorded = history.status(database)
        if options["plan"]:
            entries = api.showplan(labels, database=database)
            if not entries and not unknown:
                self.stdout.write("(no ops migrations)", self.style.ERROR)
            for entry in entries:
                mark = "[X]" if entry.applied else "[ ]"
                line = f"{mark}  {entry.migration.full_name}"
                if entry.migration.full_name in post:
                    line += " (post)"
                # As Django's --plan: dependencies at -v 2, not when applied.
                found = recorded.get(entry.migration.full_name)
                line += " (changed)" if found is not None and found.changed else ""
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
                mark = "[X]" if applied else "[ ]"
                phase = " (post)" if f"{label}.{name}" in post else ""
                found = recorded.get(f"{label}.{name}") if applied else None
                self.stdout.write(f" {mark} {name}{phase}{self._recorded(found, options)}")
        if unknown:
            self.stdout.write("(unknown recorded revisions)", self.style.MIGRATE_LABEL)
            for revision in unknown:
                self.stdout.write(f" [?] {self._unknown(revision)}", self.style.WARNING)

    def _fleet(self, labels: list[str], options: dict[str, Any]) -> None:
        from ...fleet import report

        if len(labels) > 1 or options["plan"]:
            raise CommandError(
                "With --tenants, --tenant or --all-databases give at most one app label, "
                "and no --plan."
            )
        started = time.perf_counter()
        states = api.show_fleet(labels[0] if labels else None, **fleet_selection(options))
        behind = 0
        for state in states:
            label = state.target.label
            if state.error is not None:
                behind += 1
                self.stdout.write(f"  {label}: {state.error}", self.style.ERROR)
            elif state.pending:
                behind += 1
                self.stdout.write(report.pending_line(label, state.pending))
            elif options["verbosity"] >= 2:
                self.stdout.write(f"  {label}: at head")
        elapsed = time.perf_counter() - started
        self.stdout.write(report.show_summary(len(states), behind, elapsed))

    def _recorded(self, found: history.Status | None, options: dict[str, Any]) -> str:
        """`` (changed)`` and, at ``-v 2``, when it was applied (from the history table).

        At ``-v 2`` Django's ``showmigrations`` shows when each was applied too.
        """
        if found is None:
            return ""
        text = " (changed)" if found.changed else ""
        if options["verbosity"] >= 2:
            when = found.entry.applied_at.strftime("%Y-%m-%d %H:%M:%S")
            text += f" (applied at {when} UTC, {found.entry.duration:.2f}s, on {found.entry.host})"
        return text

    def _unknown(self, revision: str) -> str:
        table = conf.get().VERSION_TABLE
        return f"{revision} (recorded in {table}, no script: a branch switch or a deleted file?)"

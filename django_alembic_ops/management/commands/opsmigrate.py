"""``manage.py opsmigrate [app_label] [migration]``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO, cast

from django.core.management.base import CommandError, CommandParser

from ... import history, state
from ...discovery import ops_apps
from ...report import RunReporter, print_plan
from ..base import OpsCommand
from ..fleet import FleetPrinter, add_fleet_arguments, fleet_selection, is_fleet

if TYPE_CHECKING:
    from ...runner import Step


class Command(OpsCommand):
    help = "Updates the database schema by applying or unapplying ops (Alembic) migrations."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="?", help="App label of an app with ops migrations.")
        parser.add_argument(
            "migration_name",
            nargs="?",
            help='Database state will be brought to the state after that migration. Use "zero" '
            "to unapply all of the app's ops migrations.",
        )
        self.add_database_argument(parser)
        parser.add_argument(
            "--plan", action="store_true", help="Shows a list of the ops migrations that would run."
        )
        parser.add_argument(
            "--sql",
            action="store_true",
            help="Prints the SQL from an empty database to the target, without connecting.",
        )
        parser.add_argument(
            "--fake", action="store_true", help="Mark ops migrations as run without running them."
        )
        parser.add_argument(
            "--check",
            action="store_true",
            dest="check_unapplied",
            help="Exits with a non-zero status if unapplied ops migrations exist; changes nothing.",
        )
        parser.add_argument(
            "--phase",
            choices=["pre", "post"],
            metavar="{pre,post}",
            help="Deploys: 'pre' applies only pre-deploy migrations (before the new code "
            "starts), 'post' the rest (after the old code is gone).",
        )
        add_fleet_arguments(parser)
        parser.add_argument(
            "--jobs",
            type=int,
            help="Fleets: worker processes, each migrating many targets (default 1); with "
            "--executor celery, targets in flight at once (default: the workers' total "
            "concurrency).",
        )
        parser.add_argument(
            "--executor",
            choices=["local", "celery"],
            default="local",
            metavar="{local,celery}",
            help="Fleets: 'local' runs targets here (--jobs worker processes); 'celery' sends "
            "each to the Celery workers of ALEMBIC_OPS['CELERY_APP'] (default local).",
        )
        parser.add_argument(
            "--canary",
            type=int,
            default=0,
            metavar="K",
            help="Fleets: migrate the first K targets alone; the others only if all K succeeded.",
        )
        parser.add_argument(
            "--max-failures",
            type=int,
            default=1,
            metavar="F",
            help="Fleets: start no new target after F failures (default 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        app_label, name = options["app_label"], options["migration_name"]
        database = options["database"]
        if name is not None and app_label is None:  # pragma: no cover - argparse order
            name = None
        phase = options["phase"]
        if phase is not None and (options["sql"] or is_fleet(options)):
            raise CommandError(
                "--phase runs or plans one database: use it without --sql, --tenants, "
                "--tenant and --all-databases."
            )
        if is_fleet(options):
            self._fleet(app_label, name, options)
            return
        if options["jobs"] not in (None, 1) or options["canary"] or options["max_failures"] != 1:
            raise CommandError(
                "--jobs, --canary and --max-failures run a fleet: add --tenants, --tenant NAME "
                "or --all-databases."
            )
        if options["executor"] != "local":
            raise CommandError(
                "--executor runs a fleet: add --tenants, --tenant NAME or --all-databases."
            )
        if name is None and not options["sql"] and state.up_to_date(database, app_label):
            # Nothing to do: answered without importing Alembic or any script.
            if options["check_unapplied"]:
                history.check_unchanged(database)
            if options["plan"]:
                self._print_plan([])
            elif not options["check_unapplied"] and self.verbosity >= 1:
                self._print_operations([app.label for app in ops_apps()], app_label, name)
                RunReporter(self.stdout, self.style, self.verbosity).running([])
            return
        from ... import api  # Alembic and SQLAlchemy: only when there is work

        if options["sql"]:
            api.sql(app_label, name, database=database, output=cast(TextIO, self.stdout))
            return
        if options["plan"] or options["check_unapplied"]:
            if options["check_unapplied"]:
                history.check_unchanged(database)
            steps = api.plan(app_label, name, database=database, phase=phase)
            if options["plan"]:
                self._print_plan(steps)
            if options["check_unapplied"] and steps:
                if not options["plan"] and self.verbosity >= 1:
                    for step in steps:
                        self.stdout.write(f"  Unapplied: {step.migration.full_name}")
                sys.exit(1)
            return
        labels = api.validate(app_label, name)
        if not options["fake"]:
            # A branch switch: refuse before printing a plan header. (--fake
            # with a migration name is the way out, so it goes on.)
            api.check_recorded(database=database)
        if self.verbosity >= 1:
            # Like migrate: "Target specific migration: 0002_name", not the prefix typed.
            target = api.resolve(app_label, name) if app_label and name else None
            self._print_operations(labels, app_label, target.name if target else name)
        reporter = RunReporter(self.stdout, self.style, self.verbosity)
        forgotten: list[str] = []

        def on_forget(revisions: list[str]) -> None:
            forgotten.extend(revisions)
            if self.verbosity >= 1:
                self.stdout.write(self.style.MIGRATE_HEADING("Running ops migrations:"))
                for revision in revisions:
                    self.stdout.write(
                        f"  Removing unknown recorded revision {revision}..."
                        + self.style.SUCCESS(" OK")
                    )

        def on_plan(steps: list[Step]) -> None:
            if not forgotten:  # otherwise the heading is out already
                reporter.running(steps)

        try:
            api.migrate(
                app_label,
                name,
                database=database,
                fake=options["fake"],
                progress=reporter.progress,
                on_wait=lambda: reporter.waiting(database),
                on_plan=on_plan,
                on_forget=on_forget,
                phase=phase,
            )
        finally:
            reporter.end_line()
        if options["fake"] and app_label and name:
            # The way to accept applied scripts' new code: no step runs for a
            # migration applied already, so their checksums are recorded here.
            history.acknowledge(database, app_label)

    def _fleet(self, app_label: str | None, name: str | None, options: dict[str, Any]) -> None:
        if options["plan"] or options["sql"]:
            raise CommandError(
                "--plan and --sql show one database; for a fleet run 'python manage.py "
                "opsshowmigrations --tenants' (or with --all-databases)."
            )
        from ... import api
        from ...fleet import report

        if options["check_unapplied"]:
            states = api.show_fleet(app_label, **fleet_selection(options))
            behind = [state for state in states if state.pending or state.error]
            if self.verbosity >= 1:
                for state in behind:
                    label = state.target.label
                    self.stdout.write(
                        f"  {label}: {state.error}"
                        if state.error
                        else report.pending_line(label, state.pending)
                    )
            if behind:
                sys.exit(1)
            return
        printer = FleetPrinter(self.stdout, self.style, self.verbosity)
        results = api.migrate_fleet(
            app_label,
            name,
            **fleet_selection(options),
            jobs=options["jobs"],
            canary=options["canary"],
            max_failures=options["max_failures"],
            executor=options["executor"],
            fake=options["fake"],
            on_result=printer.result,
            on_targets=printer.targets,
        )
        printer.summary(results)
        failed = sum(result.status == "failed" for result in results)
        not_started = sum(result.status == "not started" for result in results)
        if failed or not_started:
            raise CommandError(
                f"The fleet is not done: {failed} failed, {not_started} not started. Fix the "
                "failure and run the same command again: it migrates only the targets still "
                "behind."
            )

    def _print_operations(self, labels: list[str], app_label: str | None, name: str | None) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("Operations to perform:"))
        if app_label is None:
            self.stdout.write(
                self.style.MIGRATE_LABEL("  Apply all ops migrations: ")
                + (", ".join(sorted(labels)) or "(none)")
            )
        elif name is None:
            self.stdout.write(self.style.MIGRATE_LABEL("  Apply all ops migrations: ") + app_label)
        elif name == "zero":
            self.stdout.write(
                self.style.MIGRATE_LABEL("  Unapply all ops migrations: ") + app_label
            )
        else:
            self.stdout.write(
                self.style.MIGRATE_LABEL("  Target specific ops migration: ")
                + f"{name}, from {app_label}"
            )

    def _print_plan(self, steps: list[Step]) -> None:
        print_plan(self.stdout, self.style, steps)

"""What ``opsmigrate`` and ``opsshowmigrations`` share for fleets: the options
that choose the targets, and the printing of results as they arrive."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandParser, OutputWrapper
from django.core.management.color import Style

if TYPE_CHECKING:
    from ..fleet import FleetTarget, TargetResult


def add_fleet_arguments(parser: CommandParser) -> None:
    """``--tenants``, ``--tenant NAME`` (repeatable) and ``--all-databases``."""
    parser.add_argument(
        "--tenants",
        action="store_true",
        help="Fleets: every tenant ALEMBIC_OPS['TENANTS'] lists (each database's shared apps "
        "first).",
    )
    parser.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="Fleets: only this tenant schema (repeatable).",
    )
    parser.add_argument(
        "--all-databases",
        action="store_true",
        help="Fleets: every database in DATABASES (with --tenants: their tenants).",
    )


def is_fleet(options: dict[str, Any]) -> bool:
    return bool(options["tenants"] or options["tenant"] or options["all_databases"])


def fleet_selection(options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``api.migrate_fleet`` / ``api.show_fleet`` that choose targets."""
    return {
        "tenants": options["tenants"],
        "tenant": options["tenant"],
        "all_databases": options["all_databases"],
        "database": options["database"],
    }


class FleetPrinter:
    """Prints a fleet run: a line per target as results arrive, a progress bar on a
    terminal, the summary."""

    def __init__(self, stdout: OutputWrapper, style: Style, verbosity: int) -> None:
        self.stdout = stdout
        self.style = style
        self.verbosity = verbosity
        self.started = time.perf_counter()
        self.total = 0
        self.done = 0
        self.bar = verbosity >= 1 and stdout.isatty()

    def targets(self, targets: Sequence[FleetTarget]) -> None:
        self.total = len(targets)

    def result(self, result: TargetResult) -> None:
        from ..fleet import report

        self.done += 1
        if self.verbosity < 1:
            return
        line = report.target_line(result, self.verbosity)
        if self.bar:
            self.stdout.write("\r\033[K", ending="")  # clear the bar
        if line is not None:
            self.stdout.write(line, self.style.ERROR if result.status == "failed" else None)
        if self.bar:
            self.stdout.write(report.progress_bar(self.done, self.total), ending="")
            self.stdout.flush()

    def summary(self, results: Sequence[TargetResult]) -> None:
        from ..fleet import report

        if self.verbosity < 1:
            return
        if self.bar:
            self.stdout.write("\r\033[K", ending="")
        self.stdout.write(report.summary(results, time.perf_counter() - self.started))

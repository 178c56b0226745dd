"""How a run and a plan look on the terminal, shared by ``opsmigrate`` and ``migrate``.

Django's ``migrate`` prints ``  Applying app.0001_x... OK`` (timings at
``-v 2``); both entry points print ops migrations the same way, through this
one reporter, which the executor drives with its progress callbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.management.base import OutputWrapper
from django.core.management.color import Style

from . import conf

if TYPE_CHECKING:
    from .runner import Step
    from .scripts import OpsMigration


def print_plan(
    stdout: OutputWrapper,
    style: Style,
    steps: list[Step],
    *,
    heading: str = "Planned operations:",
) -> None:
    """The ``--plan`` listing: a heading, then ``  Apply app.0002_name`` per step."""
    stdout.write(style.MIGRATE_HEADING(heading))
    if not steps:
        stdout.write("  No planned ops migration operations.")
    for step in steps:
        verb = "Apply" if step.forward else "Unapply"
        stdout.write(f"  {verb} {step.migration.full_name}")


class RunReporter:
    """Prints the progress of one ops migration run, like Django's ``migrate``."""

    def __init__(self, stdout: OutputWrapper, style: Style, verbosity: int) -> None:
        self.stdout = stdout
        self.style = style
        self.verbosity = verbosity
        self._line_open = False
        self._retries: dict[str, int] = {}

    def running(self, steps: list[Step], *, say_when_empty: bool = True) -> None:
        if self.verbosity < 1 or (not steps and not say_when_empty):
            return
        self.stdout.write(self.style.MIGRATE_HEADING("Running ops migrations:"))
        if not steps:
            self.stdout.write("  No ops migrations to apply.")

    def waiting(self, database: str) -> None:
        if self.verbosity < 1:  # like every other line: -v 0 prints only errors
            return
        self.stdout.write(f"Waiting for another opsmigrate run on database '{database}'...")

    def progress(
        self, event: str, migration: OpsMigration, fake: bool, elapsed: float | None
    ) -> None:
        if self.verbosity < 1:
            return
        if event.endswith("_retry"):
            self._retry(event, migration, elapsed or 0.0)
            return
        if event.endswith("_start"):
            verb = "Applying" if event == "apply_start" else "Unapplying"
            self.stdout.write(f"  {verb} {migration.full_name}...", ending="")
            self.stdout.flush()
            self._line_open = True
            return
        self._line_open = False
        result = self.style.SUCCESS(" FAKED" if fake else " OK")
        if self.verbosity >= 2 and elapsed is not None:
            result += f" ({elapsed:.3f}s)"
        self.stdout.write(result)

    def _retry(self, event: str, migration: OpsMigration, pause: float) -> None:
        """``  Applying x... lock timeout, retry 1 of 2 in 0.2s`` (the line is printed again)."""
        if not self._line_open:  # TRANSACTION_PER_MIGRATION off: its start was not printed
            verb = "Applying" if event == "apply_retry" else "Unapplying"
            self.stdout.write(f"  {verb} {migration.full_name}...", ending="")
        self._line_open = False
        retry = self._retries[migration.full_name] = self._retries.get(migration.full_name, 0) + 1
        total = conf.get().DDL_RETRIES
        self.stdout.write(
            self.style.WARNING(f" lock timeout, retry {retry} of {total} in {pause:.1f}s")
        )

    def end_line(self) -> None:
        """After a failure: end an ``  Applying x...`` line that never got its OK."""
        if self._line_open:
            self.stdout.write("")
            self._line_open = False

"""How a run and a plan look on the terminal, shared by ``opsmigrate`` and ``migrate``.

Django's ``migrate`` prints ``  Applying app.0001_x... OK`` (timings at
``-v 2``); both entry points print ops migrations the same way, through this
one reporter, which the executor drives with its progress callbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.management.base import OutputWrapper
from django.core.management.color import Style

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

    def end_line(self) -> None:
        """After a failure: end an ``  Applying x...`` line that never got its OK."""
        if self._line_open:
            self.stdout.write("")
            self._line_open = False

"""squawk, the PostgreSQL migration linter, on a migration's rendered SQL.

``squawk-cli`` from PyPI is a wheel that carries squawk's binary; it is found
next to the running interpreter first, like the writer's formatters
(:func:`~django_alembic_ops.tools.executable`). Its JSON report is read into
:class:`Diagnostic` s. squawk looks for its own configuration
(``.squawk.toml``) from the current directory up, as it does when run by hand.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from .. import tools
from ..errors import OpsError

#: The one line ``opslint`` prints when squawk is not there to check the SQL.
NOT_INSTALLED = (
    "squawk is not installed: only opslint's own rules ran "
    '(pip install "django-alembic-ops[lint]")'
)

#: squawk's rules that are about style or habits, not about what locks or
#: rewrites a busy table: the type to prefer in a new table, ``IF NOT
#: EXISTS``, and a ``SET lock_timeout`` / ``statement_timeout`` at the top of
#: every file (timeouts belong to the run, not to each script). Filtered out
#: here rather than passed as ``--exclude``: squawk refuses a rule name its
#: version does not know.
IGNORED = frozenset(
    {
        "ban-char-field",
        "prefer-big-int",
        "prefer-bigint-over-int",
        "prefer-bigint-over-smallint",
        "prefer-identity",
        "prefer-robust-stmts",
        "prefer-text-field",
        "prefer-timestamp-tz",
        "prefer-timestamptz",
        "require-lock-timeout",
        "require-statement-timeout",
        "require-timeout-settings",
    }
)


class SquawkFailed(OpsError):
    """squawk did not produce a report."""


@dataclass(frozen=True)
class Diagnostic:
    """One of squawk's findings."""

    rule: str  # squawk's name, e.g. "adding-required-field"
    message: str
    help: str | None
    line: int  # 0-based, in the SQL given
    column: int


def executable() -> str | None:
    """squawk's executable, or ``None`` when ``squawk-cli`` is not installed."""
    return tools.executable("squawk")


def check(sql: str, *, filename: str, command: str) -> list[Diagnostic]:
    """squawk's findings on ``sql`` (PostgreSQL), less :data:`IGNORED`.

    :param filename: the name squawk reports the SQL under.
    :param command: squawk's executable (:func:`executable`).
    :raises SquawkFailed: squawk could not run, or gave no report.
    """
    arguments = [command, "--reporter", "json", "--stdin-filepath", filename]
    try:
        done = subprocess.run(
            arguments, input=sql, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SquawkFailed(f"Cannot run squawk ({command}): {exc}.") from None
    # Exit status 1 means "found something"; the report is on stdout either way.
    try:
        report = json.loads(done.stdout) if done.returncode in (0, 1) else None
    except ValueError:
        report = None
    if not isinstance(report, list):
        said = " ".join((done.stderr or done.stdout).split())[:300]
        raise SquawkFailed(
            f"squawk ({command}) failed on {filename} with exit status {done.returncode}: "
            f"{said or 'no output'}. Check the squawk-cli installation, or uninstall it to "
            "lint with opslint's own rules only."
        )
    return [
        Diagnostic(
            rule=str(item["rule_name"]),
            message=str(item["message"]),
            help=item.get("help") or None,
            line=int(item.get("line") or 0),
            column=int(item.get("column") or 0),
        )
        for item in report
        if item.get("rule_name") not in IGNORED
    ]

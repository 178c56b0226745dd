"""``opslint``: what in an ops migration locks or rewrites a busy table.

Each migration is rendered offline (as ``opsmigrate --sql`` does) with its
``op`` calls recorded (:mod:`.render`). Our rules judge the calls
(:mod:`.rules`), where the intent is visible; on PostgreSQL, squawk judges the
SQL (:mod:`.squawk`). Where both say the same about one ``op`` call, our line
is kept. A script silences a rule with ``lint_ignore = ["<rule>"]``
(squawk's rules as ``"squawk/<rule>"``).

Example::

    from django_alembic_ops import api

    report = api.lint(["shop"], all_migrations=True, database="default")
    for finding in report.findings:
        print(finding)   # shop.0004_x: index-without-concurrently: ...; ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from alembic.operations import ops

from ..errors import ScriptError
from ..scripts import OpsMigration, OpsScripts
from . import rules, squawk
from .render import Rendered, render

__all__ = ["Finding", "Report", "run", "RULES", "SQUAWK_PREFIX"]

RULES = rules.RULES
#: How squawk's rules are named in findings and in ``lint_ignore``.
SQUAWK_PREFIX = "squawk/"


@dataclass(frozen=True)
class Finding:
    """One finding: ``shop.0004_x: <rule>: <why>; <the safe pattern>``."""

    migration: str  # "shop.0004_x"
    rule: str  # one of RULES, or "squawk/<squawk's rule>"
    why: str
    fix: str | None  # the safe pattern (squawk does not always give one)

    def __str__(self) -> str:
        line = f"{self.migration}: {self.rule}: {self.why}"
        return f"{line}; {self.fix}" if self.fix else line


@dataclass(frozen=True)
class Report:
    """What opslint found (:func:`django_alembic_ops.api.lint` returns it)."""

    migrations: list[str]  # the migrations linted, in order ("shop.0004_x")
    findings: list[Finding]
    #: Lines to show besides the findings (squawk is not installed); they
    #: are not findings and never fail a run.
    notes: list[str] = field(default_factory=list)


def _ignored(migration: OpsMigration) -> set[str]:
    declared = getattr(migration.script.module, "lint_ignore", None) or []
    if isinstance(declared, str) or not all(isinstance(name, str) for name in declared):
        raise ScriptError(
            f"{migration.full_name}: lint_ignore must be a list of rule names, "
            f'e.g. lint_ignore = ["index-without-concurrently"].'
        )
    for name in declared:
        if name not in RULES and not (
            name.startswith(SQUAWK_PREFIX) and len(name) > len(SQUAWK_PREFIX)
        ):
            raise ScriptError(
                f"{migration.full_name}: lint_ignore names '{name}', which is no opslint rule "
                f"(its rules: {', '.join(RULES)}; squawk's are 'squawk/<rule>')."
            )
    return set(declared)


def _own_findings(rendered: Rendered, ignored: set[str]) -> list[Finding]:
    name = rendered.migration.full_name
    seen = rules.Seen(rendered.dialect)
    found = []
    for operation in rendered.operations:
        for each, (why, fix) in rules.judge(operation, seen):
            if each.name not in ignored:
                found.append(Finding(name, each.name, why, fix))
        seen.after(operation)
    return found


def _drops_its_own(rendered: Rendered, operations: list[ops.MigrateOperation]) -> bool:
    """Whether ``operations`` drop constraints the migration added before them.

    Such a constraint is no guarantee that clients had (autogenerate's check
    that stands in for ``NOT NULL`` while it is validated): squawk's
    ``ban-drop-constraint`` does not apply.
    """

    def added_before(drop: ops.DropConstraintOp) -> bool:
        earlier = rendered.operations[: rendered.operations.index(drop)]
        return any(
            isinstance(op, ops.AddConstraintOp)
            and getattr(op, "constraint_name", None) == drop.constraint_name
            and getattr(op, "table_name", None) == drop.table_name
            for op in earlier
        )

    return bool(operations) and all(
        isinstance(op, ops.DropConstraintOp) and added_before(op) for op in operations
    )


def _squawk_findings(rendered: Rendered, ignored: set[str], command: str) -> list[Finding]:
    name = rendered.migration.full_name
    dialect = rendered.dialect.name
    sql = rendered.sql
    line_starts = [0] + [match.end() for match in re.finditer("\n", sql)]
    found: list[Finding] = []
    for diagnostic in squawk.check(sql, filename=f"{name}.sql", command=command):
        rule = SQUAWK_PREFIX + diagnostic.rule
        if rule in ignored:
            continue
        index = min(diagnostic.line, len(line_starts) - 1)
        offset = min(line_starts[index] + diagnostic.column, max(len(sql) - 1, 0))
        operations = rendered.operations_at(offset)
        if any(rules.covered_by(diagnostic.rule, op, dialect) for op in operations):
            continue  # our rule judged that op call, knowing its intent
        if diagnostic.rule == "ban-drop-constraint" and _drops_its_own(rendered, operations):
            continue
        # squawk's sentences end with a period; a finding line goes on after them.
        why = diagnostic.message.rstrip().rstrip(".")
        fix = diagnostic.help.rstrip().rstrip(".") if diagnostic.help else None
        finding = Finding(name, rule, why, fix)
        if finding not in found:
            found.append(finding)
    return found


def run(alias: str, scripts: OpsScripts, migrations: Sequence[OpsMigration]) -> Report:
    """Lint ``migrations`` (rendered for ``alias``'s database, offline).

    :raises ~django_alembic_ops.errors.OfflineNotSupported: a script cannot
        be rendered offline.
    :raises ~django_alembic_ops.errors.ScriptError: a script's ``lint_ignore``
        names no rule.
    """
    findings: list[Finding] = []
    notes: list[str] = []
    command = squawk.executable()
    for migration in migrations:
        ignored = _ignored(migration)
        rendered = render(alias, scripts, migration)
        findings += _own_findings(rendered, ignored)
        if rendered.dialect.name != "postgresql":
            continue  # squawk reads PostgreSQL's SQL only
        if command is None:
            if squawk.NOT_INSTALLED not in notes:
                notes.append(squawk.NOT_INSTALLED)
            continue
        findings += _squawk_findings(rendered, ignored, command)
    return Report([m.full_name for m in migrations], findings, notes)

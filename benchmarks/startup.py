"""The ``startup`` scenario: what each tool imports before its first migration, timed alone.

Each cell is a whole process that only imports what the tool's command
imports before it runs anything (no database, no script), in the real
scenario's projects:

- **ops**: ``django.setup()`` with ``django_alembic_ops`` installed, and the
  ``opsmigrate`` command with what it imports (the package's API,
  SQLAlchemy, Alembic's runtime and ``op``);
- **alembic**: Alembic's command line, runtime and ``op`` (SQLAlchemy);
- **django**: ``django.setup()`` and the ``migrate`` command with its
  migration executor;
- **floor**: the bare interpreter (``python -c pass``).

It is the part of every ratio that no work on the migrations themselves can
change: the difference between ops and plain Alembic here is what Django
costs ops before the first migration.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from benchmarks import generate

if TYPE_CHECKING:
    from benchmarks.run import Bench, Database

SCENARIO = "startup"
_DJANGO = (
    "import os, sys; sys.path.insert(0, os.getcwd()); "
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'benchsettings'); "
    "import django; django.setup(); "
)
STATEMENTS = {
    "ops": _DJANGO + "import django_alembic_ops.management.commands.opsmigrate, "
    "django_alembic_ops.api, alembic.operations, alembic.runtime.environment",
    "alembic": "import alembic.config, alembic.command, alembic.operations, "
    "alembic.runtime.environment",
    "django": _DJANGO + "import django.core.management.commands.migrate, "
    "django.db.migrations.executor",
    "floor": "pass",
}


def scenario(bench: Bench, db: Database, n: int) -> None:
    """One row: each tool's start-up, ``--runs`` times, in rotating order."""
    from benchmarks.run import measure

    project = generate.real_history(bench.workdir, n, db.backend)
    row = bench.collect(SCENARIO, db.backend, None, None)
    for run in range(bench.args.runs):
        bench.log(f"  start-up (imports only), run {run + 1}/{bench.args.runs}")
        for tool in bench.tools_in_order(run):
            cwd = project / tool if tool != "floor" else project
            argv = [sys.executable, "-c", STATEMENTS[tool]]
            outcome = measure(argv, cwd=cwd, env=bench.env(db), timeout=bench.args.timeout)
            if outcome.returncode != 0:
                last = outcome.last_line
                bench.record(row, tool, {"status": "error", "reason": f"exit: {last}"})
                continue
            bench.record(
                row,
                tool,
                outcome.cells(),
            )

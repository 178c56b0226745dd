"""The ``real`` scenario: a full upgrade of the real-shaped history, four tools side by side.

The history (``generate.real_history``, N = 300 by default: ``--real-n``)
mixes what real projects run: new tables filled with rows, columns added,
back-filled by a data ``UPDATE`` and made ``NOT NULL``, indexes and foreign
keys on tables that hold rows, ``batch_alter_table`` (a table rebuild on
SQLite), a dropped column, and a merge every thirty migrations. Each run of
each tool starts on a fresh database and is checked afterwards (every table,
its columns and its rows). Tools:

- **ops**: ``manage.py opsmigrate``; **alembic**: ``alembic upgrade heads``
  (``transaction_per_migration=True``); **django**: ``manage.py migrate``;
- **floor**: the statements plain Alembic sends, captured once per database
  from an untimed run (``replay.py capture``), replayed by the bare driver
  one transaction per migration (``replay.py floor``): the database's own
  work, which no tool can skip.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import generate

if TYPE_CHECKING:
    from benchmarks.run import Bench, Database

HERE = Path(__file__).resolve().parent
SCENARIO = "real"
#: Per harness process: runs side by side (tests, other sessions) never share one.
PG_DATABASE = f"ops_bench_real_{os.getpid()}"


def command(tool: str, backend: str, project: Path, floor_json: Path) -> tuple[list[str], Path]:
    """(argv, cwd) of ``tool``'s full upgrade."""
    py = sys.executable
    if tool == "floor":
        return [py, str(HERE / "replay.py"), "floor", backend, str(floor_json)], project
    argv = {
        "ops": [py, "manage.py", "opsmigrate"],
        "alembic": [py, "-m", "alembic", "-c", "alembic.ini", "upgrade", "heads"],
        "django": [py, "manage.py", "migrate", generate.REAL_APP_DJANGO],
    }[tool]
    return argv, project / tool


def columns(db: Database) -> dict[str, tuple[set[str], int]]:
    """Every ``real_t*`` table in the database: (its columns, its row count)."""
    found: dict[str, tuple[set[str], int]] = {}
    if db.backend == "sqlite":
        connection = sqlite3.connect(db.path)
        try:
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'real_t%'"
                )
            ]
            for name in names:
                cols = {row[1] for row in connection.execute(f'PRAGMA table_info("{name}")')}
                rows = connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                found[name] = (cols, rows)
        finally:
            connection.close()
        return found
    if db.backend == "mysql":
        assert db.my is not None
        connection = db.my.connect(db.name)
        try:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name LIKE 'real\\_t%'"
            )
            my_cols: dict[str, set[str]] = {}
            for table, column in cursor.fetchall():
                my_cols.setdefault(table, set()).add(column)
            for table, cols in my_cols.items():
                cursor.execute(f"SELECT count(*) FROM `{table}`")
                found[table] = (cols, int(cursor.fetchone()[0]))
        finally:
            connection.close()
        return found
    assert db.pg is not None
    with db.pg.connect(db.name) as connection:
        listed = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name LIKE 'real_t%'"
        ).fetchall()
        cols_of: dict[str, set[str]] = {}
        for table, column in listed:
            cols_of.setdefault(table, set()).add(column)
        for table, cols in cols_of.items():
            rows = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            found[table] = (cols, rows)
    return found


def check_schema(db: Database, n: int) -> str:
    """Why the database does not hold the whole history ('' when it does)."""
    expected = generate.real_expected(n)
    found = columns(db)
    if set(found) != set(expected):
        return f"database has {len(found)} real_t tables, expected {len(expected)}"
    for table, cols in expected.items():
        have, rows = found[table]
        if have != cols:
            return f"{table} has columns {sorted(have)}, expected {sorted(cols)}"
        if rows != generate.REAL_ROWS:
            return f"{table} has {rows} rows, expected {generate.REAL_ROWS}"
    return ""


def scenario(bench: Bench, db: Database, n: int) -> None:
    """One row: the full upgrade of the ``n``-migration real-shaped history, every tool."""
    from benchmarks.run import measure

    project = generate.real_history(bench.workdir, n, db.backend)
    floor_json = project / f"floor-{db.backend}.json"
    row = bench.collect(SCENARIO, db.backend, n, None)
    timeout = bench.args.timeout
    if "floor" in bench.args.tools:
        # Untimed: plain Alembic's statements for this database, for the floor.
        db.fresh()
        argv = [sys.executable, str(HERE / "replay.py"), "capture", str(floor_json)]
        outcome = measure(argv, cwd=project / "alembic", env=bench.env(db), timeout=timeout)
        if outcome.returncode != 0:
            last = outcome.last_line
            row["tools"]["floor"] = {"status": "error", "reason": f"capture failed: {last}"}
    for run in range(bench.args.runs):
        bench.log(f"  {db.backend} N={n}: real-shaped upgrade, run {run + 1}/{bench.args.runs}")
        for tool in bench.tools_in_order(run):
            if row["tools"].get(tool, {}).get("status") == "error":
                continue
            argv, cwd = command(tool, db.backend, project, floor_json)
            db.fresh()
            outcome = measure(argv, cwd=cwd, env=bench.env(db), timeout=timeout)
            result: dict[str, Any]
            if outcome.returncode != 0:
                last = outcome.last_line
                result = {"status": "error", "reason": f"exit {outcome.returncode}: {last}"}
            elif problem := check_schema(db, n):
                result = {"status": "error", "reason": problem}
            else:
                result = outcome.cells()
            bench.record(row, tool, result)

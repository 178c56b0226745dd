"""The ``keepdb`` scenario: what the app adds to ``manage.py test --keepdb`` with one test.

One project (the N-migration history's ops project, ``--keepdb-n``, default
1000, plus ``contenttypes``, ``auth`` and a test app whose one
``TransactionTestCase`` writes a row to an ops table), two settings modules:
with ``django_alembic_ops`` in ``INSTALLED_APPS`` and without it. Both use
the same kept test database (a file on SQLite), built once, untimed, by a
first run with the app (which applies the N ops migrations).

Timed, alternately, ``--keepdb-runs`` times each: ``python manage.py test
benchkeepdb --keepdb`` with each settings module, each a whole process
(start-up, system checks, the kept database's ``migrate`` and its
``post_migrate``, the test, its flush and the ``post_migrate`` after it).
In the row, **ops** is the run with the app, **django** the run without;
``added`` holds the medians of the per-pair differences (with − without) of
CPU time (user + system: steadier on a loaded machine) and of wall time.

With ``--keepdb-valgrind`` (and valgrind installed) one more run of each is
made under callgrind, which counts the instructions the process executes:
a measure that load cannot disturb (``added["instructions"]``; the server's
work, on PostgreSQL, is not in it). It is about 50 times slower.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import generate

if TYPE_CHECKING:
    from benchmarks.run import Bench, Database

SCENARIO = "keepdb"
#: Per harness process: runs side by side (tests, other sessions) never share one.
PG_DATABASE = f"ops_bench_keepdb_{os.getpid()}"
PG_TEST_DATABASE = f"test_{PG_DATABASE}"


def _test_database(db: Database) -> str:
    if db.backend == "sqlite":
        return str(db.path.parent / "test_keepdb.sqlite3")
    return PG_TEST_DATABASE


def _drop_test_database(db: Database) -> None:
    if db.backend == "sqlite":
        for suffix in ("", "-journal", "-wal", "-shm", ".opslock"):
            Path(f"{_test_database(db)}{suffix}").unlink(missing_ok=True)
        return
    if db.backend == "mysql":
        assert db.my is not None
        db.my.query(f"DROP DATABASE IF EXISTS `{PG_TEST_DATABASE}`")
        return
    assert db.pg is not None
    with db.pg.connect() as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {PG_TEST_DATABASE} WITH (FORCE)")


def _problem(outcome: Any) -> str:
    """Why the test run did not run its one test successfully ('' when it did)."""
    if outcome.returncode != 0:
        last = outcome.last_line
        return f"exit {outcome.returncode}: {last}"
    if "Ran 1 test" not in outcome.stderr:
        return "the test runner did not run the one test"
    return ""


_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> int | None:
    """Instructions executed by ``argv`` under callgrind (``None`` when it did not run)."""
    from benchmarks.run import measure

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    wrapped = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    outcome = measure(wrapped, cwd=cwd, env=env, timeout=timeout)
    found = _COLLECTED.search(outcome.stderr)
    return int(found.group(1)) if outcome.returncode == 0 and found else None


def scenario(bench: Bench, db: Database, n: int) -> None:
    """One row: ``manage.py test --keepdb`` with and without the app, and what it adds."""
    from benchmarks.run import measure

    project = generate.keepdb_project(bench.workdir, n)
    env = {**bench.env(db), "BENCH_TEST_DB_NAME": _test_database(db)}
    timeout = bench.args.timeout
    row = bench.collect(SCENARIO, db.backend, n, None)
    for tool in ("alembic", "floor"):
        row["tools"][tool] = {"status": "n/a", "reason": f"no {tool} equivalent"}

    def test_argv(module: str) -> list[str]:
        argv = [sys.executable, "manage.py", "test", generate.KEEPDB_APP, "--keepdb"]
        return argv + ["--settings", module]

    def test_run(module: str) -> Any:
        return measure(test_argv(module), cwd=project, env=env, timeout=timeout)

    with_app, without = list(generate.KEEPDB_SETTINGS)
    _drop_test_database(db)
    bench.log(f"  {db.backend} N={n}: keepdb, building the kept test database")
    first = test_run(with_app)
    if problem := _problem(first):
        for tool in ("ops", "django"):
            bench.record(row, tool, {"status": "error", "reason": f"first run: {problem}"})
        _drop_test_database(db)
        return
    pairs: list[dict[str, float]] = []
    runs = bench.args.keepdb_runs
    for run in range(runs):
        bench.log(f"  {db.backend} N={n}: keepdb, run {run + 1}/{runs}")
        order = [("ops", with_app), ("django", without)]
        if run % 2:
            order.reverse()
        pair: dict[str, Any] = {}
        for tool, module in order:
            outcome = test_run(module)
            if problem := _problem(outcome):
                bench.record(row, tool, {"status": "error", "reason": problem})
                continue
            pair[tool] = outcome
            bench.record(
                row,
                tool,
                outcome.cells(),
            )
        if len(pair) == 2:
            pairs.append(
                {
                    "cpu_s": pair["ops"].cpu_s - pair["django"].cpu_s,
                    "wall_s": pair["ops"].wall_s - pair["django"].wall_s,
                }
            )
    counted = {}
    if bench.args.keepdb_valgrind:
        bench.log(f"  {db.backend} N={n}: keepdb, instructions under callgrind")
        for tool, module in (("ops", with_app), ("django", without)):
            counted[tool] = _instructions(test_argv(module), project, env, timeout * 50)
    _drop_test_database(db)
    if pairs:
        row["added"] = {
            "cpu_s": round(statistics.median(p["cpu_s"] for p in pairs), 4),
            "wall_s": round(statistics.median(p["wall_s"] for p in pairs), 4),
            "first_run_s": round(first.wall_s, 3),
            "pairs": [{key: round(value, 4) for key, value in p.items()} for p in pairs],
        }
        if counted.get("ops") and counted.get("django"):
            more = counted["ops"] - counted["django"]
            row["added"]["instructions"] = {
                "with": counted["ops"],
                "without": counted["django"],
                "added": more,
                "added_pct": round(100 * more / counted["django"], 2),
            }
        added = row["added"]
        bench.log(
            f"    keepdb       added cpu {added['cpu_s']:+.3f}s, wall {added['wall_s']:+.3f}s"
        )

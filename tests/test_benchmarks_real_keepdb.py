"""Keep the harness's ``real``, ``keepdb`` and ``startup`` scenarios working, at tiny sizes.

The numbers are not checked: only that every tool ran and did the whole
work (the harness checks each database afterwards), the shape of the JSON,
that every goal of those scenarios was evaluated, and that the harness's
PostgreSQL and MariaDB databases are gone afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import generate
from benchmarks import run as harness

REPO = Path(__file__).resolve().parent.parent
TOOLS = {"ops", "alembic", "django", "floor"}


def _harness(tmp_path: Path, backend: str, *extra: str) -> tuple[dict, int]:
    out = tmp_path / f"{backend}.json"
    argv = [sys.executable, "-m", "benchmarks", "-q", "--scenarios", "real", "keepdb", "startup"]
    argv += ["--backends", backend, "--runs", "1", "--real-n", "10", "--keepdb-n", "10"]
    argv += ["--keepdb-runs", "1", "--json", str(out), *extra]
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-2000:]
    assert "full upgrade, real-shaped" in stdout and "test --keepdb" in stdout
    return json.loads(out.read_text()), process.pid


def _assert_rows(result: dict, backend: str) -> None:
    rows = {row["scenario"]: row for row in result["results"]}
    assert set(rows) == {"real", "keepdb", "startup"}
    for value in rows["startup"]["tools"].values():  # imports only, every tool
        assert value["status"] == "ok" and value["cpu_s"] > 0, value

    real = rows["real"]
    assert (real["backend"], real["n"]) == (backend, 10)
    assert set(real["tools"]) == TOOLS
    for value in real["tools"].values():
        assert value["status"] == "ok", value
        assert value["wall_s"] > 0 and value["cpu_s"] > 0 and value["maxrss_mb"] > 0
    assert set(real["ratios"]) >= {"ops/alembic", "ops/django", "ops/floor"}

    keepdb = rows["keepdb"]
    assert keepdb["n"] == 10
    for tool in ("ops", "django"):  # with the app, without it
        assert keepdb["tools"][tool]["status"] == "ok", keepdb["tools"][tool]
        assert len(keepdb["tools"][tool]["runs"]) == 1
    assert keepdb["tools"]["alembic"]["status"] == "n/a"
    added = keepdb["added"]
    assert isinstance(added["cpu_s"], float) and isinstance(added["wall_s"], float)
    assert len(added["pairs"]) == 1 and added["first_run_s"] > 0

    goals = {goal["goal"] for goal in result["goals"]}
    assert goals == {
        "real upgrade: ops/alembic",
        "real upgrade: ops/django",
        "keepdb added: cpu",
        "keepdb added: wall",
    }
    assert all(goal["value"] is not None for goal in result["goals"])


def test_real_and_keepdb_scenarios_on_sqlite(tmp_path: Path) -> None:
    result, _ = _harness(tmp_path, "sqlite")
    _assert_rows(result, "sqlite")


def test_real_and_keepdb_scenarios_on_postgresql(tmp_path: Path, pg_alias: str) -> None:
    # The harness reaches PostgreSQL through psycopg 3 (the lowest leg has psycopg2 only).
    pytest.importorskip("psycopg")
    from .conftest import pg_execute

    result, pid = _harness(tmp_path, "postgresql")
    _assert_rows(result, "postgresql")
    left = pg_execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s OR datname LIKE %s",
        [f"%ops\\_bench\\_real\\_{pid}", f"%ops\\_bench\\_keepdb\\_{pid}"],
    )
    assert left == []


def test_real_and_keepdb_scenarios_on_mysql(tmp_path: Path, mysql_alias: str) -> None:
    """The four forms of the real-shaped history run on MariaDB and end with every table,
    its columns and its rows (the harness checks each run); keepdb and startup run too."""
    pytest.importorskip("MySQLdb")
    from django.conf import settings

    from .conftest import mysql_execute

    server = settings.DATABASES[mysql_alias]
    where = ["--mysql-host", server["HOST"], "--mysql-port", str(server["PORT"])]
    result, pid = _harness(tmp_path, "mysql", *where, "--mysql-user", server["USER"])
    _assert_rows(result, "mysql")
    assert result["meta"]["database_servers"]["mysql"]  # the server's version
    left = mysql_execute(
        "SELECT schema_name FROM information_schema.schemata "
        "WHERE schema_name LIKE %s OR schema_name LIKE %s",
        [f"%ops\\_bench\\_real\\_{pid}", f"%ops\\_bench\\_keepdb\\_{pid}"],
    )
    assert left == []


def test_real_history_on_mysql_seeds_without_pipes_or_deep_recursion() -> None:
    """MySQL's ``||`` is OR and its recursive CTEs stop at 1,000 rows by default: the
    MySQL history seeds with CONCAT from two short sequences; the others are unchanged."""
    mysql = generate.real_migrations(10, "mysql")[0].upgrade[-1]
    other = generate.real_migrations(10)[0].upgrade[-1]
    assert "CONCAT('name ', x)" in mysql and "||" not in mysql and "x < 49" in mysql
    assert "'name ' || x" in other and f"x < {generate.REAL_ROWS}" in other
    assert [m.slug for m in generate.real_migrations(30, "mysql")] == [
        m.slug for m in generate.real_migrations(30)
    ]


def test_real_history_has_merges_and_whole_cycles() -> None:
    migrations = generate.real_migrations(30)
    merges = [m for m in migrations if len(m.down) == 2]
    assert [m.i for m in merges] == [29]  # every third cycle of ten
    assert not merges[0].upgrade and not merges[0].django  # a merge runs nothing
    # 4 a cycle (NOT NULL, foreign key, wider name, dropped column); the first has no wider name
    assert sum(1 for m in migrations if any("batch_alter_table" in x for x in m.upgrade)) == 11
    with pytest.raises(ValueError, match="whole cycles of 10"):
        generate.real_migrations(25)


def test_ratio_memory_seconds_and_cpu_goals() -> None:
    def row(scenario: str, backend: str, n: int, **extra: object) -> dict:
        return {"scenario": scenario, "backend": backend, "n": n, "tools": {}, **extra}

    def ratios(alembic: float, django: float) -> dict:
        return {"ops/alembic": {"wall_s": alembic}, "ops/django": {"wall_s": django}}

    def ok(rss: float) -> dict:
        return {"status": "ok", "maxrss_mb": rss}

    rows = [
        row("real", "sqlite", 300, ratios=ratios(0.85, 0.6)),
        row("real", "postgresql", 300, ratios=ratios(0.95, 0.4)),
        row("real", "mysql", 300, ratios=ratios(1.0, 0.5)),
        row("sql", "sqlite", 100, ratios=ratios(1.5, 1.0)),  # below min_n: not judged
        row("sql", "sqlite", 1000, ratios=ratios(0.99, 0.3)),
        row("keepdb", "sqlite", 1000, added={"cpu_s": 0.05, "wall_s": 0.12}),
        row("post_migrate", "sqlite", 1000),
    ]
    warm = {"status": "ok", "median_ms": 6.0, "cpu_median_ms": 4.0}
    rows[-1]["tools"] = {"ops": warm}
    rows[4]["tools"] = {"ops": ok(80.0), "alembic": ok(55.0)}  # the sql row at N = 1000

    verdicts = {
        (g["goal"], g["backend"], g["n"]): (g["value"], g["met"]) for g in harness.check_goals(rows)
    }

    assert verdicts == {
        ("real upgrade: ops/alembic", "sqlite", 300): (0.85, True),  # limit 0.9 on SQLite
        ("real upgrade: ops/alembic", "postgresql", 300): (0.95, True),  # 1.0 on PostgreSQL
        ("real upgrade: ops/django", "sqlite", 300): (0.6, False),
        ("real upgrade: ops/django", "postgresql", 300): (0.4, True),
        ("real upgrade: ops/alembic", "mysql", 300): (1.0, True),  # 1.0 on MySQL too
        ("real upgrade: ops/django", "mysql", 300): (0.5, True),
        ("offline SQL: ops/alembic", "sqlite", 1000): (0.99, True),
        ("offline SQL: memory over alembic", "sqlite", 1000): (25.0, False),
        ("keepdb added: cpu", "sqlite", 1000): (0.05, True),
        ("keepdb added: wall", "sqlite", 1000): (0.12, False),
        ("post_migrate warm call", "sqlite", 1000): (6.0, True),  # the older 20 ms
        ("post_migrate warm call, N >= 1000", "sqlite", 1000): (6.0, False),
        ("post_migrate warm call, cpu", "sqlite", 1000): (4.0, True),
    }
    text = harness.render_goals(harness.check_goals(rows))
    assert "0.600 x  <=  0.5 x  NOT MET" in text and "25.000 MiB  <=   20 MiB  NOT MET" in text

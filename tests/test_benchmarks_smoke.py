"""Keep the benchmark harness (benchmarks/) working: its CI-sized run in CI.

``--short`` is N = 100, SQLite, one run. Two harness processes run side by
side (each with its own temporary projects and database), one for the
process scenarios and one for offline SQL, autogenerate and the flush; the
numbers are not checked, only the shape of the JSON, the fact that every tool
ran, and that every goal was evaluated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import run as harness

REPO = Path(__file__).resolve().parent.parent
TOOLS = {"ops", "alembic", "django", "floor"}
COMMON = ["--short", "-q"]


def _run_harness(tmp_path: Path) -> dict[str, dict]:
    halves = {
        "processes": ["upgrade", "noop", "post_migrate"],
        "offline": ["sql", "autogenerate", "flush"],
    }
    running = {}
    for name, scenarios in halves.items():
        argv = [sys.executable, "-m", "benchmarks", *COMMON, "--scenarios", *scenarios]
        argv += ["--json", str(tmp_path / f"{name}.json")]
        running[name] = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    results = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, f"{name}: {stderr[-2000:]}"
        assert "full upgrade" in stdout or "offline SQL" in stdout
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    return results


def _rows(result: dict) -> dict[str, dict]:
    return {row["scenario"]: row for row in result["results"]}


def _assert_measured(value: dict, *keys: str) -> None:
    assert value["status"] == "ok", value
    for key in keys:
        assert value[key] > 0, (key, value)


def test_short_harness_writes_complete_json(tmp_path: Path) -> None:
    results = _run_harness(tmp_path)

    meta = results["processes"]["meta"]
    assert meta["n"] == [100] and meta["runs"] == 1 and meta["backends"] == ["sqlite"]
    machine = meta["machine"]
    for key in ("nproc", "cpu_model", "ram_gb", "python", "django", "sqlalchemy", "alembic"):
        assert machine[key], key
    assert meta["django_alembic_ops"]["source"] == "working tree"
    assert "full upgrade" in results["processes"]["table"]

    rows = _rows(results["processes"])
    assert set(rows) == {"upgrade", "noop", "post_migrate", "post_migrate_first"}
    for scenario in ("upgrade", "noop"):
        row = rows[scenario]
        assert row["backend"] == "sqlite" and row["n"] == 100
        assert set(row["tools"]) == TOOLS
        for value in row["tools"].values():
            _assert_measured(value, "wall_s", "maxrss_mb")
            assert len(value["runs"]) == 1
        for pair in ("ops/alembic", "ops/django", "ops/floor", "alembic/floor", "django/floor"):
            assert row["ratios"][pair]["wall_s"] > 0
            assert row["ratios"][pair]["maxrss_mb"] > 0
    for value in rows["post_migrate"]["tools"].values():
        _assert_measured(value, "median_ms")
    assert rows["post_migrate"]["ratios"]["ops/floor"]["median_ms"] > 0

    rows = _rows(results["offline"])
    assert set(rows) == {"sql", "autogenerate", "flush"}
    for value in rows["sql"]["tools"].values():
        _assert_measured(value, "wall_s", "maxrss_mb")
    autogenerate = rows["autogenerate"]
    assert autogenerate["m"] == 200
    for tool in ("alembic", "django"):
        _assert_measured(autogenerate["tools"][tool], "wall_s", "maxrss_mb")
    assert autogenerate["tools"]["floor"]["status"] == "n/a"
    ops = autogenerate["tools"]["ops"]
    if ops["status"] != "ok":  # autogenerate is not in every version of the package
        assert ops["status"] == "n/a" and "autogenerate target" in ops["reason"], ops

    # The flush of a TransactionTestCase teardown: the package's command against
    # Django's own, on a test database with the 100 ops tables and auth's 7.
    flush = rows["flush"]
    assert flush["n"] == 100
    for tool in ("ops", "django"):
        _assert_measured(flush["tools"][tool], "median_ms")
    assert flush["ratios"]["ops/django"]["median_ms"] > 0
    added = flush["added"]
    assert (added["ops_tables"], added["django_tables"], added["calls"]) == (100, 7, 20)
    for key in ("total_ms", "lookup_ms", "ops_sql_ms", "django_sql_ms"):
        assert isinstance(added[key], float), key
    goals = {(goal["goal"], goal["backend"]) for goal in results["offline"]["goals"]}
    assert goals == {
        ("flush added: lookup + SQL", "sqlite"),
        ("flush added: total", "sqlite"),
    }
    assert "Goals (median ms" in results["offline"]["table"]
    assert {goal["goal"] for goal in results["processes"]["goals"]} == {"post_migrate warm call"}


def test_goals_are_met_only_when_measured_within_the_limit() -> None:
    def flush_row(backend: str, added: dict[str, float]) -> dict:
        return {"scenario": "flush", "backend": backend, "n": 100, "tools": {}, "added": added}

    rows = [
        flush_row("sqlite", {"lookup_ms": 0.3, "total_ms": 5.0}),
        flush_row("postgresql", {"lookup_ms": 1.0, "total_ms": 5.01}),
        {"scenario": "flush", "backend": "mysql", "n": 100, "tools": {}},  # failed: no "added"
    ]

    verdicts = {(g["goal"], g["backend"]): g["met"] for g in harness.check_goals(rows)}

    assert verdicts == {
        ("flush added: lookup + SQL", "sqlite"): True,
        ("flush added: lookup + SQL", "postgresql"): True,
        ("flush added: lookup + SQL", "mysql"): False,
        ("flush added: total", "sqlite"): True,
        ("flush added: total", "postgresql"): False,
        ("flush added: total", "mysql"): False,
    }
    text = harness.render_goals(harness.check_goals(rows))
    assert "5.010 ms  <=    5 ms  NOT MET" in text and "not measured" in text

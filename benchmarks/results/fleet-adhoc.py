"""Ad hoc side by side: chosen fleet apply commands at one T, in turn, with the harness's code.

    python benchmarks/results/fleet-adhoc.py T RUNS "tool,tool,..." OUT.json

Tools: the fleet scenario's apply tools ("ops --jobs 2", "ops --executor celery",
"django-tenants multiprocessing", ...) and "alembic" (benchmarks/alembic_fleet.py, two
processes). Each run takes the tools in turn (every other run in reverse order), each on a
fresh copy of the template. Prints: tool, wall s, CPU s of the command's process tree,
PostgreSQL server CPU s. Needs OPS_TEST_PG_PORT (a server on 127.0.0.1, user postgres) and
OPS_TEST_REDIS_URL.
"""

from __future__ import annotations

import compileall
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.fleet import FleetBench, _sample, measure  # noqa: E402
from benchmarks.run import PgServer, parse_args  # noqa: E402


def main() -> None:
    tenants, runs, tools, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    argv = ["--scenarios", "fleet", "--tenants", str(tenants), "--runs", "1"]
    args = parse_args([*argv, "--redis-url", os.environ["OPS_TEST_REDIS_URL"]])
    pg = PgServer("127.0.0.1", os.environ["OPS_TEST_PG_PORT"], "postgres")
    workdir = Path(tempfile.mkdtemp(prefix="ops-fleet-"))
    bench = FleetBench(args, pg, workdir, dict(os.environ), print)
    template = bench.db.template_name
    bench.db.template(tenants, lambda *command: bench.manage(*command, database=template))
    compileall.compile_dir(str(bench.project), quiet=2)
    chosen = tools.split(",")
    results: list[dict[str, Any]] = []
    try:
        for run in range(runs):
            for tool in chosen if run % 2 == 0 else chosen[::-1]:
                bench.db.fresh()
                if tool == "alembic":
                    result = _alembic(bench, tenants)
                else:
                    result = bench._apply(tool, tenants)
                results.append({"tool": tool, "run": run + 1, **result})
                shown = [result.get(key, "") for key in ("wall_s", "cpu_s", "server_cpu_s")]
                print(tool, *shown, result.get("reason", ""), flush=True)
    finally:
        bench.db.drop()
    Path(out).write_text(json.dumps(results, indent=1))


def _alembic(bench: FleetBench, tenants: int) -> dict[str, Any]:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{bench.pg.port}/{bench.db.name}"
    scripts = bench.project / "fleetops" / "migrations_ops"
    outcome = measure(
        [sys.executable, "-m", "benchmarks.alembic_fleet", "--url", url, "--scripts", str(scripts)]
        + ["--tenants", str(tenants), "--jobs", "2"],
        cwd=REPO,
        env=dict(os.environ),
        timeout=3600,
        postmaster=bench.postmaster,
    )
    print(outcome.stdout.strip())
    if outcome.returncode != 0:
        return {"status": "error", "reason": outcome.stderr[-500:]}
    return _sample(outcome)


if __name__ == "__main__":
    main()

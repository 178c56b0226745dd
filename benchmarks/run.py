"""Side-by-side benchmark: opsmigrate vs plain Alembic vs Django migrate vs the bare driver.

    python -m benchmarks [--short] [--n 100 1000] [--backends sqlite postgresql mysql]
                         [--runs 3] [--json out.json] [--table out.txt]
                         [--pg-host H --pg-port P --pg-user U]
                         [--mysql-host H --mysql-port P --mysql-user U]

Also the flush a ``TransactionTestCase`` teardown runs: the package's ``flush``
command against Django's own, in-process on a test database. Goals (``GOALS``)
are checked on the measured rows and printed under the table. Fleets
(``--scenarios fleet``, not run by default): ``opsmigrate --tenants`` against
django-tenants' ``migrate_schemas``, see ``fleet.py``.

See benchmarks/README.md for what is measured and what each column means.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import fleet, generate, keepdb, real, startup  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOOLS = ("ops", "alembic", "django", "floor")
SCENARIOS = (
    *("upgrade", "noop", "sql", "autogenerate", "post_migrate", "flush", "real", "keepdb"),
    *("startup", "fleet"),
)
DEFAULT_SCENARIOS = SCENARIOS[:-1]  # the fleet takes an hour or more at T = 1000
PEERS = ("alembic", "django", "floor")
PG_DATABASE = "ops_bench"
#: The database servers the harness can use (SQLite needs none).
SERVER_BACKENDS = ("postgresql", "mysql")
NO_TARGET = "no autogenerate target"


# -- configuration -----------------------------------------------------------------------


@dataclass
class PgServer:
    host: str
    port: str
    user: str
    password: str = field(default="", repr=False)

    def connect(self, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname,
            autocommit=True,
        )


@dataclass
class MyServer:
    """A MySQL or MariaDB server (the package's ``mysql`` backend), reached with mysqlclient."""

    host: str
    port: str
    user: str
    password: str = field(default="", repr=False)

    def connect(self, dbname: str | None = None) -> Any:
        import MySQLdb

        connection = MySQLdb.connect(
            host=self.host,
            port=int(self.port),
            user=self.user,
            password=self.password,
            charset="utf8mb4",
            **({"database": dbname} if dbname else {}),
        )
        connection.autocommit(True)
        return connection

    def query(self, sql: str, dbname: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) and return its rows."""
        connection = self.connect(dbname)
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time opsmigrate against plain Alembic, Django migrate and the bare "
        "DBAPI driver on one generated history of N migrations.",
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="CI mode: N=100, SQLite only, 1 run (explicit flags still win).",
    )
    parser.add_argument("--n", type=int, nargs="+", help="History sizes (default: 100 1000).")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["sqlite", *SERVER_BACKENDS],
        help="Databases (default: sqlite postgresql; mysql: MySQL or MariaDB).",
    )
    parser.add_argument("--runs", type=int, help="Timed runs per measurement (default: 3).")
    parser.add_argument(
        "--m", type=int, default=200, help="Models for the autogenerate scenario (default: 200)."
    )
    parser.add_argument(
        "--post-migrate-calls",
        type=int,
        default=50,
        help="Calls timed in the post_migrate scenario (default: 50).",
    )
    parser.add_argument(
        "--flush-n",
        type=int,
        nargs="+",
        default=[100],
        help="History sizes of the flush scenario (default: 100, where its goal is set).",
    )
    parser.add_argument(
        "--flush-calls",
        type=int,
        default=20,
        help="Flushes timed per run of the flush scenario, per command (default: 20).",
    )
    parser.add_argument(
        "--real-n",
        type=int,
        nargs="+",
        help="History sizes of the real scenario, multiples of 10 (default: 300; --short: 30).",
    )
    parser.add_argument(
        "--keepdb-n",
        type=int,
        nargs="+",
        help="History sizes of the keepdb scenario (default: 1000; --short: 100).",
    )
    parser.add_argument(
        "--keepdb-runs",
        type=int,
        help="Timed pairs of test runs in the keepdb scenario (default: 7; --short: 1).",
    )
    parser.add_argument(
        "--keepdb-valgrind",
        action="store_true",
        help="keepdb: also count each run's instructions under callgrind (slow, load-proof).",
    )
    parser.add_argument(
        "--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="Subset of tools."
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(DEFAULT_SCENARIOS),
        help="Subset of scenarios (default: all but fleet).",
    )
    parser.add_argument(
        "--skip-autogenerate", action="store_true", help="Same as leaving it out of --scenarios."
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=HERE / "results" / "latest.json",
        help="Where to write the results (default: benchmarks/results/latest.json).",
    )
    parser.add_argument("--table", type=Path, help="Also write the printed table to this file.")
    parser.add_argument(
        "--ops-rev",
        help="Benchmark django_alembic_ops as committed at this git revision (e.g. HEAD) "
        "instead of the working tree.",
    )
    parser.add_argument(
        "--workdir", type=Path, help="Where to generate projects (default: a new temp dir)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the generated projects.")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="Seconds before a process is killed."
    )
    parser.add_argument("--pg-host", default=os.environ.get("OPS_TEST_PG_HOST"))
    parser.add_argument("--pg-port", default=os.environ.get("OPS_TEST_PG_PORT"))
    parser.add_argument(
        "--pg-user", default=os.environ.get("OPS_TEST_PG_USER") or None, help="(default: postgres)"
    )
    parser.add_argument("--mysql-host", default=os.environ.get("OPS_TEST_MYSQL_HOST"))
    parser.add_argument("--mysql-port", default=os.environ.get("OPS_TEST_MYSQL_PORT"))
    parser.add_argument(
        "--mysql-user",
        default=os.environ.get("OPS_TEST_MYSQL_USER") or None,
        help="(default: root; the password, if any, only from OPS_TEST_MYSQL_PASSWORD)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="Only print the table.")
    parser.add_argument(
        "--check-goals",
        action="store_true",
        help="Exit with status 1 when a measured row misses its goal (see GOALS).",
    )
    fleet.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.short:
        args.n = args.n or [100]
        args.backends = args.backends or ["sqlite"]
        args.runs = args.runs or 1
    args.n = args.n or [100, 1000]
    args.real_n = args.real_n or [30 if args.short else 300]
    args.keepdb_n = args.keepdb_n or [100 if args.short else 1000]
    args.keepdb_runs = args.keepdb_runs or (1 if args.short else 7)
    args.backends = args.backends or ["sqlite", "postgresql"]
    args.runs = args.runs or 3
    if args.skip_autogenerate and "autogenerate" in args.scenarios:
        args.scenarios.remove("autogenerate")
    return args


# -- process measurement ------------------------------------------------------------------


@dataclass
class Outcome:
    wall_s: float
    cpu_s: float
    maxrss_kb: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        """The last line of stderr: what a failed process said last."""
        return (self.stderr.strip().splitlines() or ["(no output)"])[-1]

    def cells(self) -> dict[str, Any]:
        """The figures a tool's cell shows: wall and CPU seconds, peak memory."""
        return {
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 4),
            "maxrss_mb": round(self.maxrss_kb / 1024, 1),
        }


def measure(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> Outcome:
    """Run ``cmd`` to completion: wall time, and the child's own CPU time and peak RSS.

    ``os.wait4`` gives the resource usage of exactly that child (not of the
    harness, nor of earlier children as ``RUSAGE_CHILDREN`` would).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        timer = threading.Timer(timeout, os.kill, (process.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Outcome(wall, cpu, usage.ru_maxrss, process.returncode, out.read(), err.read())


# -- databases ------------------------------------------------------------------------------


class Database:
    """One benchmark database, recreated empty before every timed process.

    ``pg`` / ``my``: the PostgreSQL / MySQL server, for those backends.
    """

    def __init__(
        self,
        backend: str,
        workdir: Path,
        pg: PgServer | None,
        name: str = PG_DATABASE,
        *,
        my: MyServer | None = None,
    ) -> None:
        self.backend = backend
        self.pg = pg
        self.my = my
        self.name = name  # the server's database; SQLite's file is named after it
        self.path = workdir / "db" / f"{name}.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def fresh(self) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-journal", "-wal", "-shm", ".opslock"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        if self.backend == "mysql":
            assert self.my is not None
            self.my.query(f"DROP DATABASE IF EXISTS `{self.name}`")
            self.my.query(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
            return
        assert self.pg is not None
        with self.pg.connect() as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {self.name}")

    def drop(self) -> None:
        if self.backend == "postgresql" and self.pg is not None:
            with self.pg.connect() as connection:
                connection.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        elif self.backend == "mysql" and self.my is not None:
            self.my.query(f"DROP DATABASE IF EXISTS `{self.name}`")

    def env(self) -> dict[str, str]:
        if self.backend == "sqlite":
            return {
                "BENCH_DB_BACKEND": "sqlite",
                "BENCH_DB_NAME": str(self.path),
                "BENCH_ALEMBIC_URL": f"sqlite:///{self.path}",
            }
        if self.backend == "mysql":
            assert self.my is not None
            my = self.my
            auth = my.user + (f":{my.password}" if my.password else "")
            return {
                "BENCH_DB_BACKEND": "mysql",
                "BENCH_DB_NAME": self.name,
                "BENCH_MYSQL_HOST": my.host,
                "BENCH_MYSQL_PORT": str(my.port),
                "BENCH_MYSQL_USER": my.user,
                "BENCH_MYSQL_PASSWORD": my.password,
                # mysqlclient, the driver Django's backend uses (and the package's).
                "BENCH_ALEMBIC_URL": (
                    f"mysql+mysqldb://{auth}@{my.host}:{my.port}/{self.name}?charset=utf8mb4"
                ),
            }
        assert self.pg is not None
        auth = self.pg.user + (f":{self.pg.password}" if self.pg.password else "")
        return {
            "BENCH_DB_BACKEND": "postgresql",
            "BENCH_DB_NAME": self.name,
            "BENCH_PG_HOST": self.pg.host,
            "BENCH_PG_PORT": str(self.pg.port),
            "BENCH_PG_USER": self.pg.user,
            "BENCH_PG_PASSWORD": self.pg.password,
            "BENCH_ALEMBIC_URL": (
                f"postgresql+psycopg://{auth}@{self.pg.host}:{self.pg.port}/{self.name}"
            ),
        }

    def schema_counts(self) -> tuple[int, int]:
        """(bench tables, bench name indexes) now in the database."""
        if self.backend == "sqlite":
            with sqlite3.connect(self.path) as connection:
                rows = connection.execute(
                    "SELECT type, name FROM sqlite_master WHERE name LIKE 'bench_t%'"
                ).fetchall()
            connection.close()
            tables = sum(1 for kind, _ in rows if kind == "table")
            indexes = sum(1 for kind, name in rows if kind == "index" and name.endswith("_idx"))
            return tables, indexes
        if self.backend == "mysql":
            assert self.my is not None
            where = f"table_schema = '{self.name}' AND table_name LIKE 'bench\\_t%'"
            tables = self.my.query(f"SELECT count(*) FROM information_schema.tables WHERE {where}")
            indexes = self.my.query(
                "SELECT count(DISTINCT table_name, index_name) FROM information_schema.statistics "
                f"WHERE {where} AND index_name LIKE 'bench\\_t%\\_name\\_idx'"
            )
            return int(tables[0][0]), int(indexes[0][0])
        assert self.pg is not None
        with self.pg.connect(self.name) as connection:
            tables = connection.execute(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_t%'"
            ).fetchone()[0]
            indexes = connection.execute(
                "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'bench_t%_name_idx'"
            ).fetchone()[0]
        return tables, indexes

    def server_version(self) -> str:
        if self.backend == "sqlite":
            return sqlite3.sqlite_version
        if self.backend == "mysql":
            assert self.my is not None
            return str(self.my.query("SELECT VERSION()")[0][0])
        assert self.pg is not None
        with self.pg.connect() as connection:
            return str(connection.execute("SHOW server_version").fetchone()[0])


# -- the commands of each tool ---------------------------------------------------------------


AUTOGENERATE_FLOOR = (
    "import os, sys; sys.path.insert(0, os.getcwd()); "
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'benchsettings'); "
    "import django; django.setup(); import sqlalchemy, alembic.autogenerate"
)


def commands(
    scenario: str, tool: str, backend: str, n: int, project: Path
) -> tuple[list[str], Path] | None:
    """(argv, cwd) for one tool in one scenario; ``None`` when it has no equivalent."""
    py = sys.executable
    if tool == "floor" and scenario == "autogenerate":
        # What any autogenerate inside a Django project pays before it
        # compares anything: Django's setup (the models loaded) and importing
        # SQLAlchemy and Alembic's autogenerate. Plain Alembic pays no Django.
        return [py, "-c", AUTOGENERATE_FLOOR], project / "ops"
    if tool == "floor":
        mode = {"upgrade": "upgrade", "noop": "noop", "sql": "sql"}.get(scenario)
        if mode is None:
            return None
        return [py, str(HERE / "floor.py"), mode, backend, str(n)], project
    where = project / tool
    if scenario in ("upgrade", "noop"):
        argv = {
            "ops": [py, "manage.py", "opsmigrate"],
            "alembic": [py, "-m", "alembic", "-c", "alembic.ini", "upgrade", "heads"],
            "django": [py, "manage.py", "migrate", generate.DJANGO_APP],
        }[tool]
    elif scenario == "sql":
        argv = {
            "ops": [py, "manage.py", "opsmigrate", "--sql"],
            "alembic": [py, "-m", "alembic", "-c", "alembic.ini", "upgrade", "heads", "--sql"],
            "django": [py, "manage.py", "bench_sqlall"],
        }[tool]
    else:  # autogenerate
        app = generate.AUTOGEN_APP
        argv = {
            "ops": [py, "manage.py", "opsmakemigration", app, "--dry-run"],
            "alembic": [py, "-m", "alembic", "-c", "alembic.ini"]
            + ["revision", "--autogenerate", "-m", "auto"],
            # -v 3 prints the whole migration file, as opsmakemigration --dry-run does.
            "django": [py, "manage.py", "makemigrations", app, "--dry-run", "-v", "3"],
        }[tool]
    return argv, where


_CREATE_TABLE = re.compile(r'CREATE TABLE ["`]?bench_t\d{4}', re.IGNORECASE)
_CREATE_TABLE_OP = re.compile(r"(op\.create_table|migrations\.CreateModel)\(")


def check_output(scenario: str, tool: str, outcome: Outcome, project: Path, count: int) -> str:
    """Why the run did not do the work it was timed for ('' when it did)."""
    if scenario == "sql":
        found = len(_CREATE_TABLE.findall(outcome.stdout))
        return "" if found == count else f"SQL has {found} CREATE TABLE, expected {count}"
    if scenario == "autogenerate":
        if tool == "floor":
            return ""  # compares nothing: start-up only
        text = outcome.stdout
        if tool == "alembic":
            written = list((project / "alembic" / "versions").glob("*.py"))
            text = "".join(path.read_text() for path in written)
            for path in written:
                path.unlink()
            shutil.rmtree(project / "alembic" / "versions" / "__pycache__", ignore_errors=True)
        found = len(_CREATE_TABLE_OP.findall(text))
        return "" if found == count else f"found {found} create operations, expected {count}"
    return ""


# -- results ---------------------------------------------------------------------------------


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [s["wall_s"] for s in samples]
    cpus = [s["cpu_s"] for s in samples]
    rss = [s["maxrss_mb"] for s in samples]
    return {
        "status": "ok",
        "wall_s": statistics.median(walls),
        "wall_s_min": min(walls),
        "cpu_s": round(statistics.median(cpus), 4),
        "maxrss_mb": statistics.median(rss),
        "runs": samples,
    }


def ratios(tools: dict[str, dict[str, Any]], metric_keys: tuple[str, ...]) -> dict[str, Any]:
    """``a/b`` for ops against every peer, and every peer against the floor."""
    pairs = [("ops", peer) for peer in PEERS] + [(peer, "floor") for peer in PEERS[:-1]]
    out: dict[str, Any] = {}
    for a, b in pairs:
        ta, tb = tools.get(a, {}), tools.get(b, {})
        if ta.get("status") != "ok" or tb.get("status") != "ok":
            continue
        values = {}
        for key in metric_keys:
            if ta.get(key) and tb.get(key):
                values[key] = round(ta[key] / tb[key], 3)
        out[f"{a}/{b}"] = values
    return out


def child_environment(ops_src: Path) -> dict[str, str]:
    """The environment of every timed process, before the database variables are added."""
    pythonpath = [str(ops_src)]  # floor.py and inproc.py are run by path
    if os.environ.get("PYTHONPATH"):
        pythonpath.append(os.environ["PYTHONPATH"])
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DJANGO_SETTINGS_MODULE" and not key.startswith("BENCH_")
    }
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    return env


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, ops_src: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rows: list[dict[str, Any]] = []
        self.ops_imported_from = ""
        self.base_env = child_environment(ops_src)

    def log(self, message: str) -> None:
        if not self.args.quiet:
            print(message, file=sys.stderr, flush=True)

    def env(self, db: Database) -> dict[str, str]:
        return {**self.base_env, **db.env()}

    def run_one(
        self,
        scenario: str,
        tool: str,
        db: Database,
        n: int,
        project: Path,
        *,
        count: int,
        fresh: bool = True,
    ) -> dict[str, Any]:
        """One timed process; returns a sample or a status dict."""
        spec = commands(scenario, tool, db.backend, n, project)
        if spec is None:
            return {"status": "n/a", "reason": f"no {tool} equivalent"}
        argv, cwd = spec
        if fresh:
            db.fresh()
        outcome = measure(argv, cwd=cwd, env=self.env(db), timeout=self.args.timeout)
        if outcome.returncode != 0:
            last = outcome.last_line
            if scenario == "autogenerate" and tool == "ops" and NO_TARGET in outcome.stderr:
                return {"status": "n/a", "reason": last}
            return {"status": "error", "reason": f"exit {outcome.returncode}: {last}"}
        problem = check_output(scenario, tool, outcome, project, count)
        if not problem and scenario == "upgrade":
            counts = db.schema_counts()
            if counts != (count, count):
                problem = f"database has {counts[0]} tables, {counts[1]} indexes; expected {count}"
        if problem:
            return {"status": "error", "reason": problem}
        return outcome.cells()

    def collect(self, scenario: str, backend: str, n: int | None, m: int | None) -> dict[str, Any]:
        row = {"scenario": scenario, "backend": backend, "n": n, "m": m, "tools": {}}
        self.rows.append(row)
        return row

    def record(self, row: dict[str, Any], tool: str, result: dict[str, Any]) -> None:
        tools = row["tools"]
        current = tools.get(tool)
        if "status" in result:
            if current is None or current.get("status") != "error":
                tools[tool] = result
            self.log(f"    {row['scenario']:<12} {tool:<8} {result['status']}: {result['reason']}")
            return
        if current is None or "samples" in current:
            current = tools.setdefault(tool, {"samples": []})
            current["samples"].append(result)
        self.log(
            f"    {row['scenario']:<12} {tool:<8} {result['wall_s']:8.3f}s "
            f"(cpu {result['cpu_s']:7.3f}s) {result['maxrss_mb']:7.1f} MB"
        )

    def finish(self) -> None:
        for row in self.rows:
            for tool, value in list(row["tools"].items()):
                if "samples" in value:
                    row["tools"][tool] = summarize(value["samples"])
            in_process = row["scenario"].startswith("post_migrate") or row["scenario"] == "flush"
            keys = ("median_ms",) if in_process else ("wall_s", "cpu_s", "maxrss_mb")
            row["ratios"] = ratios(row["tools"], keys)

    def tools_in_order(self, run: int) -> list[str]:
        tools = [t for t in TOOLS if t in self.args.tools]
        shift = run % len(tools) if tools else 0
        return tools[shift:] + tools[:shift]  # rotate so no tool always goes first

    # -- scenarios ----------------------------------------------------------------------

    def history(self, db: Database, n: int) -> None:
        args = self.args
        project = generate.history(self.workdir, n)
        wanted = set(args.scenarios)
        if wanted & {"upgrade", "noop", "post_migrate"}:
            upgrade = self.collect("upgrade", db.backend, n, None)
            noop = self.collect("noop", db.backend, n, None)
            cold = self.collect("post_migrate_first", db.backend, n, None)
            warm = self.collect("post_migrate", db.backend, n, None)
            for run in range(args.runs):
                self.log(f"  {db.backend} N={n}: upgrade + no-op, run {run + 1}/{args.runs}")
                for tool in self.tools_in_order(run):
                    result = self.run_one("upgrade", tool, db, n, project, count=n)
                    self.record(upgrade, tool, result)
                    if "status" in result:
                        continue
                    if "noop" in wanted:
                        again = self.run_one("noop", tool, db, n, project, count=n, fresh=False)
                        self.record(noop, tool, again)
                    if "post_migrate" in wanted and run == args.runs - 1:
                        self.post_migrate(db, n, project, tool, cold, warm)
            for row, scenario in ((upgrade, "upgrade"), (noop, "noop")):
                if scenario not in wanted:
                    self.rows.remove(row)
            if "post_migrate" not in wanted:
                self.rows.remove(cold)
                self.rows.remove(warm)
        if "sql" in wanted:
            sql = self.collect("sql", db.backend, n, None)
            for run in range(args.runs):
                self.log(f"  {db.backend} N={n}: offline SQL, run {run + 1}/{args.runs}")
                for tool in self.tools_in_order(run):
                    self.record(sql, tool, self.run_one("sql", tool, db, n, project, count=n))

    def post_migrate(
        self,
        db: Database,
        n: int,
        project: Path,
        tool: str,
        cold_row: dict[str, Any],
        warm_row: dict[str, Any],
    ) -> None:
        where = project / tool if tool != "floor" else project
        argv = [sys.executable, str(HERE / "inproc.py"), tool, str(n)]
        argv += [str(self.args.post_migrate_calls), str(where)]
        outcome = measure(argv, cwd=where, env=self.env(db), timeout=self.args.timeout)
        if outcome.returncode != 0:
            last = outcome.last_line
            failed = {"status": "error", "reason": f"exit {outcome.returncode}: {last}"}
            cold_row["tools"][tool] = warm_row["tools"][tool] = failed
            return
        data = json.loads(outcome.stdout.strip().splitlines()[-1])
        for line in outcome.stderr.splitlines():
            if line.startswith("django_alembic_ops from "):
                self.ops_imported_from = line.split(" from ", 1)[1]
        warm_row["tools"][tool] = {
            "status": "ok",
            "median_ms": round(data["median_ms"], 4),
            "min_ms": round(data["min_ms"], 4),
            "cpu_median_ms": round(data["cpu_median_ms"], 4),
            "calls": data["calls"],
        }
        cold_row["tools"][tool] = {"status": "ok", "median_ms": round(data["cold_ms"], 3)}
        self.log(
            f"    post_migrate {tool:<8} {data['median_ms']:8.3f} ms/call "
            f"(cpu {data['cpu_median_ms']:.3f} ms; first call {data['cold_ms']:.1f} ms)"
        )

    def flush(self, db: Database, n: int) -> None:
        """The flush of a ``TransactionTestCase`` teardown: the package's vs Django's command.

        Each run is one ``inproc.py flush`` process on a new test database of
        the N-migration history; the row holds the medians over runs of each
        run's medians, and ``added`` the cost the package adds per flush.
        """
        project = generate.history(self.workdir, n) / "ops"
        row = self.collect("flush", db.backend, n, None)
        for tool in ("alembic", "floor"):
            row["tools"][tool] = {"status": "n/a", "reason": f"no {tool} equivalent"}
        argv = [sys.executable, str(HERE / "inproc.py"), "flush", str(n)]
        argv += [str(self.args.flush_calls), str(project)]
        runs: list[dict[str, Any]] = []
        for run in range(self.args.runs):
            self.log(f"  {db.backend} N={n}: flush, run {run + 1}/{self.args.runs}")
            db.fresh()
            outcome = measure(argv, cwd=project, env=self.env(db), timeout=self.args.timeout)
            if outcome.returncode != 0:
                last = outcome.last_line
                failed = {"status": "error", "reason": f"exit {outcome.returncode}: {last}"}
                row["tools"]["ops"] = row["tools"]["django"] = failed
                self.log(f"    flush        {failed['reason']}")
                return
            data = json.loads(outcome.stdout.strip().splitlines()[-1])
            runs.append(data)
            self.log(
                f"    flush        ops {data['ops_ms']:.2f} ms, django {data['django_ms']:.2f} ms"
                f" per flush; added {data['added_ms']:.2f} ms"
                f" (lookup and SQL {data['lookup_ms']:.3f} ms)"
            )

        def median(key: str) -> float:
            return round(statistics.median(data[key] for data in runs), 4)

        for tool in ("ops", "django"):
            row["tools"][tool] = {
                "status": "ok",
                "median_ms": median(f"{tool}_ms"),
                "runs_ms": [round(data[f"{tool}_ms"], 4) for data in runs],
                "calls": self.args.flush_calls,
            }
        row["added"] = {
            "total_ms": median("added_ms"),
            "lookup_ms": median("lookup_ms"),
            "ops_sql_ms": median("ops_sql_ms"),
            "django_sql_ms": median("django_sql_ms"),
            "ops_tables": runs[0]["ops_tables"],
            "django_tables": runs[0]["django_tables"],
            "calls": self.args.flush_calls,
            "runs": runs,
        }

    def autogenerate(self, db: Database, m: int) -> None:
        project = generate.autogen(self.workdir, m)
        row = self.collect("autogenerate", db.backend, None, m)
        for run in range(self.args.runs):
            self.log(f"  {db.backend} M={m}: autogenerate, run {run + 1}/{self.args.runs}")
            for tool in self.tools_in_order(run):
                if row["tools"].get(tool, {}).get("status") == "n/a":
                    continue  # e.g. ops autogenerate not available: do not retry
                result = self.run_one("autogenerate", tool, db, 0, project, count=m)
                self.record(row, tool, result)


# -- machine and version info ----------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "nproc": os.cpu_count(),
        "nproc_available": (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        ),
        "cpu_model": cpu or platform.processor(),
        "ram_gb": ram_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "django": _version("Django"),
        "sqlalchemy": _version("SQLAlchemy"),
        "alembic": _version("alembic"),
        "psycopg": _version("psycopg"),
        "mysqlclient": _version("mysqlclient"),
        "sqlite": sqlite3.sqlite_version,
    }


def ops_source(args: argparse.Namespace, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Where the children import django_alembic_ops from, and how to name that version.

    Byte-compiled there, as an installed package is (and as the generated
    projects are): with ``PYTHONDONTWRITEBYTECODE`` set, an ops process would
    otherwise compile every module it imports from source, every time (about
    50 ms for the modules ``django.setup()`` alone imports).
    """
    target, info = _ops_source(args, workdir)
    compileall.compile_dir(str(target / "django_alembic_ops"), quiet=2)
    return target, info


def _ops_source(args: argparse.Namespace, workdir: Path) -> tuple[Path, dict[str, Any]]:
    head = _git("rev-parse", "HEAD")
    if args.ops_rev:
        rev = _git("rev-parse", args.ops_rev)
        if not rev:
            raise SystemExit(f"benchmarks: unknown git revision {args.ops_rev!r}")
        target = workdir / f"ops-src-{rev[:12]}"
        if not target.exists():
            archive = subprocess.run(
                ["git", "archive", "--format=tar", rev, "django_alembic_ops"],
                cwd=REPO,
                capture_output=True,
                check=True,
            ).stdout
            target.mkdir(parents=True)
            archive_path = workdir / "ops-src.tar"
            archive_path.write_bytes(archive)
            with tarfile.open(archive_path) as tar:
                tar.extractall(target, filter="data")
            archive_path.unlink()
        return target, {"source": f"git {rev}", "git_rev": rev, "dirty": False}
    dirty = bool(_git("status", "--porcelain", "--", "django_alembic_ops"))
    return REPO, {"source": "working tree", "git_rev": head, "dirty": dirty}


# -- the table -----------------------------------------------------------------------------

LABELS = {
    "upgrade": "full upgrade",
    "noop": "no-op (up to date)",
    "sql": "offline SQL",
    "autogenerate": "autogenerate",
    "post_migrate": "post_migrate, per call",
    "post_migrate_first": "post_migrate, 1st call",
    "flush": "flush (test teardown)",
    "real": "full upgrade, real-shaped",
    "keepdb": "test --keepdb, 1 test",
    "startup": "start-up (imports only)",
}


def _seconds(value: float) -> str:
    return f"{value:.3f}s" if value < 10 else f"{value:.1f}s"


def _cell(row: dict[str, Any], tool: str) -> str:
    value = row["tools"].get(tool)
    if value is None:
        return "-"
    if value.get("status") != "ok":
        return "n/a" if value.get("status") == "n/a" else "ERROR"
    if "median_ms" in value:
        ms = value["median_ms"]
        return f"{ms:.3f}ms" if ms < 100 else f"{ms:.0f}ms"
    return f"{_seconds(value['wall_s'])}/{_seconds(value['cpu_s'])} {value['maxrss_mb']:.0f}MB"


def _ratio(row: dict[str, Any], pair: str) -> str:
    value = row.get("ratios", {}).get(pair)
    if not value:
        return "-"
    if "median_ms" in value:
        return f"{value['median_ms']:.2f}x"
    parts = [value.get(key) for key in ("wall_s", "cpu_s", "maxrss_mb")]
    return "/".join(f"{part:.2f}" if part else "?" for part in parts)


def render_table(rows: list[dict[str, Any]]) -> str:
    order = {name: i for i, name in enumerate(LABELS)}
    rows = sorted(
        rows,
        key=lambda r: (order[r["scenario"]], r["backend"] != "sqlite", r["n"] or r["m"] or 0),
    )
    header = ["scenario", "db", "N", *TOOLS, "ops/alembic", "ops/django", "ops/floor"]
    header += ["alembic/floor", "django/floor"]
    lines = [header]
    for row in rows:
        size = f"{row['n']}" if row["n"] is not None else f"M={row['m']}" if row["m"] else "-"
        cells = [LABELS[row["scenario"]], row["backend"], size]
        cells += [_cell(row, tool) for tool in TOOLS]
        cells += [_ratio(row, f"ops/{peer}") for peer in PEERS]
        cells += [_ratio(row, f"{peer}/floor") for peer in ("alembic", "django")]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    notes = [
        "",
        "Tool cells: median wall time / median CPU time (user+sys) of the whole process, "
        "and its median peak RSS. post_migrate and flush rows: ms per in-process call "
        "(flush: ops = the package's flush command, django = Django's own).",
        "Ratio cells: left tool over right tool, as wall/cpu/memory (above 1: the left one "
        "is slower or bigger). n/a: no equivalent or not available; ERROR: see below.",
    ]
    errors = [
        f"  {LABELS[row['scenario']]} {row['backend']} {row['n'] or row['m']} {tool}: "
        f"{value['reason']}"
        for row in rows
        for tool, value in row["tools"].items()
        if value.get("status") == "error"
        or (value.get("status") == "n/a" and "equivalent" not in value.get("reason", ""))
    ]
    if errors:
        notes += ["Not measured:", *errors]
    return "\n".join(line.rstrip() for line in text + notes) + "\n"


# -- goals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """An upper limit on one value of every row of one scenario.

    ``unit``: ``ms``, ``s``, ``MiB`` or ``x`` (a ratio); ``backend``: only that
    database's rows; ``min_n``: only rows of histories at least that long.
    """

    name: str
    scenario: str
    limit: float
    value: Callable[[dict[str, Any]], float | None]
    unit: str = "ms"
    backend: str | None = None
    min_n: int = 0


def _ops_ms(row: dict[str, Any]) -> float | None:
    ops = row["tools"].get("ops", {})
    return ops.get("median_ms") if ops.get("status") == "ok" else None


def _ops_cpu_ms(row: dict[str, Any]) -> float | None:
    ops = row["tools"].get("ops", {})
    return ops.get("cpu_median_ms") if ops.get("status") == "ok" else None


def _added(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda row: row.get("added", {}).get(key)


def _ratio_of(pair: str, key: str = "wall_s") -> Callable[[dict[str, Any]], float | None]:
    return lambda row: row.get("ratios", {}).get(pair, {}).get(key)


def _memory_over_alembic(row: dict[str, Any]) -> float | None:
    ops, alembic = row["tools"].get("ops", {}), row["tools"].get("alembic", {})
    if ops.get("status") != "ok" or alembic.get("status") != "ok":
        return None
    return float(ops["maxrss_mb"] - alembic["maxrss_mb"])


#: The goals the harness checks (docs/performance.rst says where they come from).
GOALS = (
    Goal("post_migrate warm call", "post_migrate", 20.0, _ops_ms),
    # Issue 19: each flush's added cost <= 5 ms. Read two ways: what the package
    # spends finding the ops tables and building the statement, and the whole
    # difference, which also holds emptying the ops tables (Django's flush does not).
    Goal("flush added: lookup + SQL", "flush", 5.0, _added("lookup_ms")),
    Goal("flush added: total", "flush", 5.0, _added("total_ms")),
    # Issue 17: a real-shaped history (wall time: what a deploy waits for) ...
    Goal("real upgrade: ops/alembic", "real", 0.9, _ratio_of("ops/alembic"), "x", "sqlite"),
    Goal("real upgrade: ops/alembic", "real", 1.0, _ratio_of("ops/alembic"), "x", "postgresql"),
    Goal("real upgrade: ops/alembic", "real", 1.0, _ratio_of("ops/alembic"), "x", "mysql"),
    Goal("real upgrade: ops/django", "real", 0.5, _ratio_of("ops/django"), "x"),
    # ... offline SQL of the full history (N = 1000) ...
    Goal("offline SQL: ops/alembic", "sql", 1.0, _ratio_of("ops/alembic"), "x", min_n=1000),
    Goal("offline SQL: memory over alembic", "sql", 20, _memory_over_alembic, "MiB", min_n=1000),
    # ... the post_migrate warm call at N = 1000 (wall, and CPU: steadier when loaded) ...
    Goal("post_migrate warm call, N >= 1000", "post_migrate", 5.0, _ops_ms, min_n=1000),
    Goal("post_migrate warm call, cpu", "post_migrate", 5.0, _ops_cpu_ms, min_n=1000),
    # ... and what the app adds to `manage.py test --keepdb` with one TransactionTestCase.
    Goal("keepdb added: cpu", "keepdb", 0.1, _added("cpu_s"), "s"),
    Goal("keepdb added: wall", "keepdb", 0.1, _added("wall_s"), "s"),
)


def check_goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every goal against every measured row of its scenario (``met``: False when unmeasured)."""
    checked = []
    for goal in GOALS:
        for row in rows:
            if row["scenario"] != goal.scenario or goal.backend not in (None, row["backend"]):
                continue
            if (row["n"] or 0) < goal.min_n:
                continue
            value = goal.value(row)
            verdict = {
                "goal": goal.name,
                "scenario": goal.scenario,
                "backend": row["backend"],
                "n": row["n"],
                "unit": goal.unit,
                "limit": goal.limit,
                "value": None if value is None else round(value, 4),
                "met": value is not None and value <= goal.limit,
            }
            if goal.unit == "ms":
                verdict["limit_ms"], verdict["value_ms"] = verdict["limit"], verdict["value"]
            checked.append(verdict)
    return checked


def render_goals(goals: list[dict[str, Any]]) -> str:
    if not goals:
        return ""
    lines = ["", "Goals (median ms, s, MiB, or x: a wall-time ratio; met when at most the limit):"]
    name_width = max(len(goal["goal"]) for goal in goals)
    for goal in goals:
        value, unit = goal["value"], goal["unit"]
        shown = "not measured" if value is None else f"{value:.3f} {unit}"
        verdict = "met" if goal["met"] else "NOT MET"
        lines.append(
            f"  {goal['goal']:<{name_width}}  {goal['backend']:<10}  N={goal['n']:<5}  "
            f"{shown:>12}  <= {goal['limit']:>4g} {unit}  {verdict}"
        )
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------


def pg_server(args: argparse.Namespace) -> PgServer | None:
    if not (args.pg_host and args.pg_port):
        return None
    return PgServer(
        args.pg_host,
        str(args.pg_port),
        args.pg_user or "postgres",
        os.environ.get("OPS_TEST_PG_PASSWORD", ""),
    )


def my_server(args: argparse.Namespace) -> MyServer | None:
    if not (args.mysql_host and args.mysql_port):
        return None
    return MyServer(
        args.mysql_host,
        str(args.mysql_port),
        args.mysql_user or "root",
        os.environ.get("OPS_TEST_MYSQL_PASSWORD", ""),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    pg = pg_server(args)
    my = my_server(args)
    backends = list(args.backends)
    skipped = []
    if "postgresql" in backends and pg is None:
        backends.remove("postgresql")
        skipped.append("postgresql: no server given (--pg-host/--pg-port or OPS_TEST_PG_*)")
        print(
            "benchmarks: skipping PostgreSQL: set OPS_TEST_PG_HOST/OPS_TEST_PG_PORT "
            "(and OPS_TEST_PG_USER) or pass --pg-host/--pg-port.",
            file=sys.stderr,
        )
    if "mysql" in backends and my is None:
        backends.remove("mysql")
        skipped.append("mysql: no server given (--mysql-host/--mysql-port or OPS_TEST_MYSQL_*)")
        print(
            "benchmarks: skipping MySQL: set OPS_TEST_MYSQL_HOST/OPS_TEST_MYSQL_PORT "
            "(and OPS_TEST_MYSQL_USER) or pass --mysql-host/--mysql-port.",
            file=sys.stderr,
        )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ops-bench-"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if workdir == REPO or REPO in workdir.parents:
        raise SystemExit("benchmarks: --workdir must be outside the repository")
    ops_src, ops_info = ops_source(args, workdir)
    bench = Bench(args, workdir, ops_src)
    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine_info()
    bench.log(f"benchmarks: projects in {workdir}; django_alembic_ops from {ops_info['source']}")
    # Warm the page cache for the libraries every tool imports.
    subprocess.run(
        [sys.executable, "-c", "import django, sqlalchemy, alembic, django_alembic_ops"],
        env=bench.base_env,
        check=True,
    )
    servers = {}
    fleet_result = None
    try:
        for backend in backends if set(args.scenarios) - {"fleet"} else []:
            db = Database(backend, workdir, pg, my=my)
            servers[backend] = db.server_version()
            for n in args.n:
                bench.history(db, n)
            if "autogenerate" in args.scenarios:
                bench.autogenerate(db, args.m)
            if "flush" in args.scenarios:
                for n in args.flush_n:
                    bench.flush(db, n)
            db.drop()
            if "real" in args.scenarios:
                db = Database(backend, workdir, pg, real.PG_DATABASE, my=my)
                for n in args.real_n:
                    real.scenario(bench, db, n)
                db.drop()
            if "startup" in args.scenarios:
                startup.scenario(bench, db, args.real_n[0])
            if "keepdb" in args.scenarios:
                for n in args.keepdb_n:
                    keepdb_db = Database(backend, workdir, pg, keepdb.PG_DATABASE, my=my)
                    keepdb.scenario(bench, keepdb_db, n)
        if "fleet" in args.scenarios:
            fleet_result = fleet.run_scenario(args, pg, workdir, bench.base_env, bench.log)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    bench.finish()
    if bench.ops_imported_from:
        ops_info["imported_from"] = bench.ops_imported_from
    finished = datetime.datetime.now(datetime.timezone.utc)
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round((finished - started).total_seconds(), 1),
            "command": " ".join(
                ["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)]
            ),
            "n": args.n,
            "m": args.m,
            "runs": args.runs,
            "backends": backends,
            "skipped": skipped,
            "post_migrate_calls": args.post_migrate_calls,
            "flush_n": args.flush_n,
            "flush_calls": args.flush_calls,
            "django_alembic_ops": ops_info,
            "database_servers": servers,
            "machine": info,
        },
        "results": bench.rows,
    }
    goals = check_goals(bench.rows)
    result["goals"] = goals
    table = render_table(bench.rows) + render_goals(goals) if bench.rows else ""
    if fleet_result is not None:
        result["fleet"] = fleet_result
        table += fleet_result["table"]
        goals = goals + fleet_result["goals"]
    result["table"] = table
    sys.stderr.flush()
    print(table, end="", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        bench.log(f"benchmarks: results written to {args.json}")
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table)
    if args.check_goals and not all(goal["met"] for goal in goals):
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()

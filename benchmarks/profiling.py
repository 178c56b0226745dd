"""Profile ``opsmigrate`` (full upgrade, the no-op run, the post_migrate handler) with cProfile.

    python -m benchmarks.profiling [--n 1000] [--backend sqlite] [--ops-rev HEAD] [--top 25]
                                   [--history synthetic|real]

Generates the same history as the harness (``--history real``: the
real-shaped one of the ``real`` scenario, N a multiple of 10), runs ``manage.py opsmigrate``
under ``python -m cProfile`` on an empty database and again when up to date,
then ``run_after_migrate`` in one process (as the harness's ``post_migrate``
row does), prints the top functions by cumulative and by own time, and keeps the
``.prof`` files (open them with ``python -m pstats`` or snakeviz).
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/profiling.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import generate  # noqa: E402
from benchmarks.run import (  # noqa: E402
    Database,
    child_environment,
    measure,
    my_server,
    ops_source,
    pg_server,
)


def report(path: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    out.write(f"== {path.name}: by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write(f"== {path.name}: by own time ==\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--history", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mysql"], default="sqlite")
    parser.add_argument("--ops-rev", help="Profile django_alembic_ops as committed at this rev.")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--calls", type=int, default=50, help="post_migrate calls profiled.")
    parser.add_argument("--out", type=Path, help="Directory for the .prof files (default: temp).")
    parser.add_argument("--pg-host", default=os.environ.get("OPS_TEST_PG_HOST"))
    parser.add_argument("--pg-port", default=os.environ.get("OPS_TEST_PG_PORT"))
    parser.add_argument("--pg-user", default=os.environ.get("OPS_TEST_PG_USER") or None)
    parser.add_argument("--mysql-host", default=os.environ.get("OPS_TEST_MYSQL_HOST"))
    parser.add_argument("--mysql-port", default=os.environ.get("OPS_TEST_MYSQL_PORT"))
    parser.add_argument("--mysql-user", default=os.environ.get("OPS_TEST_MYSQL_USER") or None)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ops-profile-"))
    out = (args.out or workdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pg = pg_server(args)
    if args.backend == "postgresql" and pg is None:
        raise SystemExit("profiling: PostgreSQL needs --pg-host/--pg-port or OPS_TEST_PG_*")
    my = my_server(args)
    if args.backend == "mysql" and my is None:
        raise SystemExit("profiling: MySQL needs --mysql-host/--mysql-port or OPS_TEST_MYSQL_*")
    ops_src, info = ops_source(args, workdir)
    if args.history == "real":
        project = generate.real_history(workdir, args.n, args.backend) / "ops"
    else:
        project = generate.history(workdir, args.n) / "ops"
    db = Database(args.backend, workdir, pg, f"ops_bench_profile_{os.getpid()}", my=my)
    env = {**child_environment(ops_src), **db.env()}
    db.fresh()
    inproc = str(Path(__file__).resolve().parent / "inproc.py")
    runs = {
        "upgrade": ["manage.py", "opsmigrate"],
        "noop": ["manage.py", "opsmigrate"],
        # the post_migrate handler, called 1 + --calls times in one process
        "post_migrate": [inproc, "ops", str(args.n), str(args.calls), str(project)],
    }
    for name, command in runs.items():
        prof = out / f"opsmigrate-{name}-{args.history}-{args.backend}-{args.n}.prof"
        argv_ = [sys.executable, "-m", "cProfile", "-o", str(prof), *command]
        outcome = measure(argv_, cwd=project, env=env, timeout=3600)
        if outcome.returncode != 0:
            raise SystemExit(f"profiling: {name} failed: {outcome.stderr.strip()[-500:]}")
        print(f"# {name}, {args.history} N={args.n}, {args.backend}, {info['source']}: ", end="")
        print(f"{outcome.wall_s:.2f}s under cProfile, {outcome.maxrss_kb / 1024:.0f} MB")
        print(report(prof, args.top))
    db.drop()
    if args.out:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"profiles kept in {out}")


if __name__ == "__main__":
    main()

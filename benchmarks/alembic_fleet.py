"""Plain Alembic over a fleet of tenant schemas, as fast as a hand-written loop drives it.

Not one of the harness's tools: a bound for the fleet's apply row. It runs the
fleet project's ops scripts (plain Alembic scripts) in every tenant schema
with Alembic alone — no Django, no lock, no history table — the way Alembic's
cookbook recipe for schema-level multi-tenancy does per schema
(``search_path`` set to the tenant, ``version_table_schema`` the tenant,
``transaction_per_migration=True``), but in ``--jobs`` long-lived processes
that each loop over their share of the schemas on one connection, instead of
the recipe's one ``alembic -x tenant=...`` process per tenant. What it takes
is what Alembic and SQLAlchemy need to build, compile and send the same
migrations: ``opsmigrate --tenants`` runs them through the same calls.

Usage (the database as the fleet benchmark leaves it: a fresh copy of its
template, the tenant schemas empty)::

    python -m benchmarks.alembic_fleet --url postgresql+psycopg://u@h:p/db \
        --scripts /path/to/fleet-20/fleetops/migrations_ops --tenants 1000 --jobs 2

It prints the wall time, and the CPU time of the processes (the parent and
the workers it waited for), and checks that every schema reached the head.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from typing import Any


def schema_name(i: int) -> str:
    return f"tenant_{i:04d}"  # as benchmarks.fleet names them


def _config(scripts: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", scripts)
    config.set_main_option("version_locations", scripts)  # the scripts are not in versions/
    return config


def _migrate(url: str, scripts: str, schemas: list[str]) -> None:
    import sqlalchemy as sa
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = _config(scripts)
    script = ScriptDirectory.from_config(config)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        for schema in schemas:
            connection.exec_driver_sql(f'SET search_path TO "{schema}", public')
            connection.commit()

            def upgrade(rev: Any, context: Any) -> Any:
                return script._upgrade_revs("heads", rev)

            with EnvironmentContext(
                config, script, fn=upgrade, as_sql=False, destination_rev="heads"
            ) as env:
                env.configure(
                    connection=connection,
                    version_table_schema=schema,
                    transaction_per_migration=True,
                )
                with env.begin_transaction():
                    env.run_migrations()
            connection.commit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alembic_fleet")
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the fleet database")
    parser.add_argument("--scripts", required=True, help="the fleet project's migrations_ops")
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    import alembic.runtime.environment  # noqa: F401
    import sqlalchemy as sa  # imported before the clock starts, as by the workers' fork

    schemas = [schema_name(i) for i in range(1, args.tenants + 1)]
    shares = [schemas[job :: args.jobs] for job in range(args.jobs)]
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_migrate, args=(args.url, args.scripts, share)) for share in shares
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise SystemExit(f"a worker failed (exit {worker.exitcode})")
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    from alembic.script import ScriptDirectory

    (head,) = ScriptDirectory.from_config(_config(args.scripts)).get_heads()
    engine = sa.create_engine(args.url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        at_head = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_namespace WHERE nspname = ANY(%(schemas)s) AND "
            "(xpath('/row/v/text()', query_to_xml(format("
            "'SELECT version_num AS v FROM %%I.alembic_version', nspname), false, true, '')))"
            "[1]::text = %(head)s",
            {"head": head, "schemas": schemas},
        ).scalar()
    if at_head != args.tenants:
        raise SystemExit(f"only {at_head} of {args.tenants} schemas are at the head {head}")
    print(
        f"plain Alembic, {args.tenants} schemas, {args.jobs} processes: "
        f"wall {wall:.2f}s, cpu {cpu:.2f}s"
    )


if __name__ == "__main__":
    main()

"""The floor: the same DDL and version-table writes through the bare DBAPI driver.

Run as a script (imports nothing but the driver)::

    python benchmarks/floor.py upgrade|noop|sql sqlite|postgresql|mysql N

The database comes from the ``BENCH_*`` variables the harness sets. ``upgrade``
runs one transaction per migration (``BEGIN``; ``CREATE TABLE``; ``CREATE
INDEX``; create/``INSERT``/``UPDATE`` the version table; ``COMMIT``) with the DDL
Alembic renders for the ops scripts; ``noop`` reads the version table and
compares it with the head; ``sql`` prints the same statements without
connecting (on MySQL without ``BEGIN``/``COMMIT``, as Alembic renders them
there: its DDL commits by itself). Names must match :mod:`generate` (kept separate so that this
process imports nothing else).
"""

from __future__ import annotations

import os
import sys

VERSION_TABLE = "alembic_version"
CREATE_VERSION = (
    f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
    f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
)


def revision(i: int) -> str:
    return f"{i:012x}"


def ddl(i: int, backend: str) -> list[str]:
    table = f"bench_t{i:04d}"
    id_type = {"postgresql": "SERIAL NOT NULL", "mysql": "INTEGER NOT NULL AUTO_INCREMENT"}.get(
        backend, "INTEGER NOT NULL"
    )
    return [
        f"CREATE TABLE {table} (\n    id {id_type}, \n    name VARCHAR(100) NOT NULL, "
        f"\n    value INTEGER NOT NULL, \n    PRIMARY KEY (id)\n)",
        f"CREATE INDEX {table}_name_idx ON {table} (name)",
    ]


def version_sql(i: int) -> str:
    if i == 1:
        return f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{revision(1)}')"
    return (
        f"UPDATE {VERSION_TABLE} SET version_num='{revision(i)}' "
        f"WHERE {VERSION_TABLE}.version_num = '{revision(i - 1)}'"
    )


def connect(backend: str):  # type: ignore[no-untyped-def]
    """A DBAPI connection to the ``BENCH_*`` database, not in autocommit mode.

    psycopg and mysqlclient open a transaction at the first statement (end it
    with ``commit()``); SQLite's is in autocommit: send ``BEGIN``/``COMMIT``.
    """
    if backend == "mysql":
        import MySQLdb

        return MySQLdb.connect(
            host=os.environ["BENCH_MYSQL_HOST"],
            port=int(os.environ["BENCH_MYSQL_PORT"]),
            user=os.environ["BENCH_MYSQL_USER"],
            password=os.environ.get("BENCH_MYSQL_PASSWORD", ""),
            database=os.environ["BENCH_DB_NAME"],
            charset="utf8mb4",
        )
    if backend == "postgresql":
        import psycopg

        return psycopg.connect(
            host=os.environ["BENCH_PG_HOST"],
            port=os.environ["BENCH_PG_PORT"],
            user=os.environ["BENCH_PG_USER"],
            password=os.environ.get("BENCH_PG_PASSWORD") or None,
            dbname=os.environ["BENCH_DB_NAME"],
        )
    import sqlite3

    # Autocommit at the driver level; transactions are explicit BEGIN/COMMIT.
    return sqlite3.connect(os.environ["BENCH_DB_NAME"], isolation_level=None)


def upgrade(backend: str, n: int) -> None:
    connection = connect(backend)
    cursor = connection.cursor()
    server = backend != "sqlite"
    for i in range(1, n + 1):
        if not server:
            cursor.execute("BEGIN")  # psycopg and mysqlclient open the transaction themselves
        if i == 1:
            cursor.execute(CREATE_VERSION)
        for statement in ddl(i, backend):
            cursor.execute(statement)
        cursor.execute(version_sql(i))
        if server:
            connection.commit()
        else:
            cursor.execute("COMMIT")
        print(f"  Applying {i:04d}... OK")
    connection.close()


def noop(backend: str, n: int) -> None:
    connection = connect(backend)
    cursor = connection.cursor()
    cursor.execute(f"SELECT version_num FROM {VERSION_TABLE}")
    heads = {row[0] for row in cursor.fetchall()}
    connection.close()
    if heads != {revision(n)}:
        sys.exit(f"floor: not up to date: {sorted(heads)}")
    print("No migrations to apply.")


def sql(backend: str, n: int) -> None:
    out = [CREATE_VERSION + ";\n"]
    transactional = backend != "mysql"
    for i in range(1, n + 1):
        if transactional:
            out.append("BEGIN;\n")
        out.extend(statement + ";\n" for statement in ddl(i, backend))
        out.append(version_sql(i) + ";\n")
        if transactional:
            out.append("COMMIT;\n")
    sys.stdout.write("\n".join(out))


def main(argv: list[str]) -> None:
    mode, backend, n = argv[0], argv[1], int(argv[2])
    {"upgrade": upgrade, "noop": noop, "sql": sql}[mode](backend, n)


if __name__ == "__main__":
    main(sys.argv[1:])

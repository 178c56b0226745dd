"""The floor of the real-shaped history: Alembic's own statements, replayed by the bare driver.

The real-shaped history (``generate.real_history``) has no hand-written
floor: its statements depend on what Alembic's batch mode reflects. So they
are captured once per database from a run of the plain Alembic form, then
replayed::

    python benchmarks/replay.py capture OUT.json    # in the Alembic project, untimed
    python benchmarks/replay.py floor sqlite|postgresql|mysql IN.json   # timed: the floor

``capture`` runs ``alembic upgrade heads`` in this process with SQLAlchemy
listeners on every engine: each statement that writes (not ``SELECT``,
``PRAGMA``, ``SHOW``, ``DESCRIBE``: reflection and version reads are the
tools' own business, not the work) with its parameters, grouped by the transaction
that committed it (one per migration: ``transaction_per_migration=True``).
``floor`` imports nothing but ``json``, ``floor.py``'s ``connect`` and the
driver and runs each group in one transaction (``BEGIN`` ... ``COMMIT``, as
opsmigrate and Django do; on MySQL each DDL statement commits by itself
all the same), on the database the ``BENCH_*`` variables name.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_READS = ("SELECT", "PRAGMA", "SHOW", "DESCRIBE")


def _jsonable(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return dict(parameters)
    if isinstance(parameters, (list, tuple)):
        return [_jsonable(p) if isinstance(p, (list, tuple, dict)) else p for p in parameters]
    return parameters


def capture(out: str) -> None:
    from alembic.config import main as alembic
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    transactions: list[list[list[Any]]] = []
    current: list[list[Any]] = []

    def executed(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:  # fmt: skip
        if not statement.lstrip().upper().startswith(_READS):
            current.append([statement, _jsonable(parameters), executemany])

    def committed(conn: Any) -> None:
        if current:
            transactions.append(list(current))
            current.clear()

    event.listen(Engine, "before_cursor_execute", executed)
    event.listen(Engine, "commit", committed)
    alembic(["-c", "alembic.ini", "upgrade", "heads"])
    if current:
        transactions.append(list(current))
    with open(out, "w") as handle:
        json.dump({"transactions": transactions}, handle)


def floor(backend: str, path: str) -> None:
    from floor import connect  # benchmarks/floor.py: this script's directory is on sys.path

    with open(path) as handle:
        transactions = json.load(handle)["transactions"]
    connection = connect(backend)
    cursor = connection.cursor()
    server = backend != "sqlite"
    for i, statements in enumerate(transactions, start=1):
        if not server:
            cursor.execute("BEGIN")  # psycopg and mysqlclient open the transaction themselves
        for statement, parameters, many in statements:
            if many:
                cursor.executemany(statement, parameters)
            else:
                cursor.execute(statement, parameters)
        if server:
            connection.commit()
        else:
            cursor.execute("COMMIT")
        print(f"  Applying {i:04d}... OK")
    connection.close()


def main(argv: list[str]) -> None:
    if argv[0] == "capture":
        capture(argv[1])
    else:
        floor(argv[1], argv[2])


if __name__ == "__main__":
    main(sys.argv[1:])

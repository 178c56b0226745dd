"""``op.batch_alter_table`` reflects only the table it rebuilds, not what its foreign keys reach.

SQLite rebuilds the table (the other backends alter it in place): the new
table keeps its foreign keys and rows, and no statement of the run reads the
tables at the far end of the chain of references.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from django_alembic_ops import bridge

from .conftest import Project, inspect_db, query, run

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

CHAIN = """
    op.create_table("ops_a", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("ops_b", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("a_id", sa.Integer, sa.ForeignKey("ops_a.id")))
    op.create_table("ops_c", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("b_id", sa.Integer, sa.ForeignKey("ops_b.id")),
                    sa.Column("note", sa.String(20), nullable=True))
    op.execute("INSERT INTO ops_a (id) VALUES (1)")
    op.execute("INSERT INTO ops_b (id, a_id) VALUES (1, 1)")
    op.execute("INSERT INTO ops_c (id, b_id, note) VALUES (1, 1, 'x')")
"""


@contextmanager
def statements(alias: str) -> Iterator[list[str]]:
    """Every statement (with its parameters) run on ``alias``'s borrowed engine in the block."""
    seen: list[str] = []
    engine = bridge._engine_for(alias)

    def executed(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append(f"{statement} {parameters!r}")

    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", executed)


@pytest.mark.parametrize("passed", [None, {"resolve_fks": True}], ids=["default", "script's own"])
def test_batch_rebuild_reflects_only_its_table(
    project: Project, alias: str, passed: dict[str, bool] | None
) -> None:
    project.app("shop")
    drop = 'op.drop_table("ops_c")\nop.drop_table("ops_b")\nop.drop_table("ops_a")'
    project.script("shop", "0001_chain", revision="r1", upgrade=CHAIN, downgrade=drop)
    reflect = "" if passed is None else f", reflect_kwargs={passed!r}"
    project.script(
        "shop",
        "0002_note_not_null",
        revision="r2",
        down="r1",
        upgrade=f"""
            with op.batch_alter_table("ops_c"{reflect}) as batch:
                batch.alter_column("note", existing_type=sa.String(20), nullable=False)
        """,
    )
    run("opsmigrate", "shop", "0001", database=alias)

    with statements(alias) as seen:
        run("opsmigrate", database=alias)

    with inspect_db(alias) as insp:
        [fk] = insp.get_foreign_keys("ops_c")
        note = {c["name"]: c for c in insp.get_columns("ops_c")}["note"]
    assert (fk["referred_table"], fk["constrained_columns"]) == ("ops_b", ["b_id"])
    assert note["nullable"] is False
    assert query(alias, "SELECT id, b_id, note FROM ops_c") == [(1, 1, "x")]
    reached_a = [s for s in seen if "ops_a" in s]
    if passed is None:
        assert reached_a == []
    elif alias == "default":  # SQLite rebuilds, reflecting what the script asked for
        assert reached_a

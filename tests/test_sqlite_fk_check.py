"""The foreign-key check before each migration commits finds what the migration broke.

On SQLite a migration runs with enforcement off and is checked before it
commits, on the tables it could have broken (``django_alembic_ops.sqlite_fk``):
those it wrote and those referencing them. The first tests hold on every
backend (the others refuse the statement itself); the rest pin SQLite's
scope: triggers, renames, temporary tables, and a violation that was there
before in a table the migration did not touch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connections

from .conftest import Project, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@contextmanager
def sqlite_statements(alias: str) -> Iterator[list[str]]:
    """Every statement SQLite runs on ``alias``'s connection meanwhile (its trace callback)."""
    statements: list[str] = []
    connection = connections[alias]
    connection.connection.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        connection.connection.set_trace_callback(None)


PARENT_AND_CHILD = """
    op.create_table("ops_parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("ops_child", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("parent_id", sa.Integer, sa.ForeignKey("ops_parent.id")))
    op.create_table("ops_other", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO ops_parent (id) VALUES (1), (2)")
    op.execute("INSERT INTO ops_child (id, parent_id) VALUES (10, 1), (11, 2)")
"""
DROP_ALL = """
    op.drop_table("ops_other")
    op.drop_table("ops_child")
    op.drop_table("ops_parent")
"""


def parent_and_child(project: Project, second: str, *, header: str = "") -> None:
    project.app("shop")
    project.script(
        "shop", "0001_initial", revision="k1", upgrade=PARENT_AND_CHILD, downgrade=DROP_ALL
    )
    project.script("shop", "0002_change", revision="k2", down="k1", upgrade=second, header=header)


def test_deleting_a_referenced_row_fails(project: Project, alias: str) -> None:
    """The migration writes only the parent table; the orphan is in the child table."""
    parent_and_child(project, 'op.execute("DELETE FROM ops_parent WHERE id = 1")')

    message = run_error("opsmigrate", database=alias)

    assert message.startswith("Applying shop.0002_change failed and was rolled back:")
    assert query(alias, "SELECT id FROM ops_parent ORDER BY id") == [(1,), (2,)]
    assert query(alias, "SELECT version_num FROM alembic_ops_version") == [("k1",)]


def test_renamed_parent_that_lost_a_row_fails(project: Project, alias: str) -> None:
    """SQLite renames the reference in ops_child too: the check finds the new name."""
    parent_and_child(
        project,
        """
        op.execute("DELETE FROM ops_parent WHERE id = 1")
        op.rename_table("ops_parent", "ops_parent2")
        """,
    )

    message = run_error("opsmigrate", database=alias)

    assert message.startswith("Applying shop.0002_change failed and was rolled back:")
    assert {"ops_parent", "ops_child"} <= table_names(alias)
    assert "ops_parent2" not in table_names(alias)


def test_row_written_by_a_trigger_is_checked(project: Project) -> None:
    alias = "default"  # SQLite's trigger syntax
    parent_and_child(
        project,
        """
        op.execute(
            "CREATE TRIGGER ops_other_added AFTER INSERT ON ops_other BEGIN "
            "INSERT INTO ops_child (id, parent_id) VALUES (NEW.id, 999); END"
        )
        op.execute("INSERT INTO ops_other (id) VALUES (12)")
        """,
    )

    message = run_error("opsmigrate", database=alias)

    assert message.startswith("Applying shop.0002_change failed and was rolled back:")
    assert "ops_child.parent_id contains a value '999'" in message
    assert query(alias, "SELECT id FROM ops_child ORDER BY id") == [(10,), (11,)]


def orphan_in_child(alias: str) -> None:
    """A violation from before: ops_child row 13 references a parent that does not exist."""
    query(alias, "PRAGMA foreign_keys = OFF")
    try:
        query(alias, "INSERT INTO ops_child (id, parent_id) VALUES (13, 999)")
    finally:
        query(alias, "PRAGMA foreign_keys = ON")


def test_violation_from_before_in_an_untouched_table_does_not_fail(project: Project) -> None:
    """Only what the migration could have broken is checked: ops_child is not written."""
    alias = "default"
    parent_and_child(project, 'op.execute("INSERT INTO ops_other (id) VALUES (1)")')
    run("opsmigrate", "shop", "0001", database=alias)
    orphan_in_child(alias)

    out = run("opsmigrate", database=alias)

    assert "  Applying shop.0002_change... OK" in out
    assert query(alias, "SELECT id FROM ops_other") == [(1,)]


def test_migration_writing_the_table_with_the_violation_fails(project: Project) -> None:
    alias = "default"
    parent_and_child(project, 'op.execute("UPDATE ops_child SET id = id + 100 WHERE id = 10")')
    run("opsmigrate", "shop", "0001", database=alias)
    orphan_in_child(alias)

    message = run_error("opsmigrate", database=alias)

    assert "ops_child.parent_id contains a value '999'" in message
    assert query(alias, "SELECT id FROM ops_child ORDER BY id") == [(10,), (11,), (13,)]


def test_write_to_a_temporary_table_checks_every_table(project: Project) -> None:
    """A write outside the main schema: every table is checked, as Django does."""
    alias = "default"
    parent_and_child(
        project,
        """
        op.execute("CREATE TEMPORARY TABLE ops_scratch (id INTEGER)")
        op.execute("INSERT INTO ops_scratch (id) VALUES (1)")
        op.execute("DROP TABLE ops_scratch")
        """,
    )
    run("opsmigrate", "shop", "0001", database=alias)
    orphan_in_child(alias)

    message = run_error("opsmigrate", database=alias)

    assert "ops_child.parent_id contains a value '999'" in message


def test_check_reads_the_schema_only_when_rows_may_have_gone(project: Project) -> None:
    """A migration that only creates tables checks them, reading no other table's foreign
    keys; one that writes rows (even inserts: see the next test) asks which tables
    reference the table."""
    alias = "default"
    parent_and_child(
        project,
        """
        op.create_table("ops_more", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("parent_id", sa.Integer, sa.ForeignKey("ops_parent.id")))
        """,
    )
    project.script(
        "shop",
        "0003_insert",
        revision="k3",
        down="k2",
        upgrade='op.execute("INSERT INTO ops_other (id) VALUES (7)")',
    )
    run("opsmigrate", "shop", "0001", database=alias)
    with sqlite_statements(alias) as statements:
        run("opsmigrate", "shop", "0002", database=alias)
        created = list(statements)
        statements.clear()
        run("opsmigrate", database=alias)

    assert 'PRAGMA foreign_key_check("ops_more")' in created
    assert not [s for s in created if "pragma_foreign_key_list" in s]
    assert not [s for s in created if s.strip() == "PRAGMA foreign_key_check"]
    assert [s for s in statements if "pragma_foreign_key_list" in s]
    assert 'PRAGMA foreign_key_check("ops_other")' in statements


def test_insert_or_replace_that_deletes_a_referenced_row_fails(project: Project) -> None:
    """SQLite's authorizer reports INSERT OR REPLACE as an insert, but the rows it replaces
    are deleted: the tables referencing the table are checked too."""
    alias = "default"  # SQLite's INSERT OR REPLACE
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="r1",
        upgrade="""
            op.create_table("ops_parent", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("code", sa.String(5), unique=True))
            op.create_table("ops_child", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("parent_id", sa.Integer, sa.ForeignKey("ops_parent.id")))
            op.execute("INSERT INTO ops_parent (id, code) VALUES (1, 'a')")
            op.execute("INSERT INTO ops_child (id, parent_id) VALUES (10, 1)")
        """,
    )
    project.script(
        "shop",
        "0002_replace",
        revision="r2",
        down="r1",
        upgrade="op.execute(\"INSERT OR REPLACE INTO ops_parent (id, code) VALUES (5, 'a')\")",
    )
    run("opsmigrate", "shop", "0001", database=alias)

    message = run_error("opsmigrate", database=alias)

    assert message.startswith("Applying shop.0002_replace failed and was rolled back:")
    assert "ops_child.parent_id contains a value '1'" in message
    assert query(alias, "SELECT id, code FROM ops_parent") == [(1, "a")]
    assert query(alias, "SELECT version_num FROM alembic_ops_version") == [("r1",)]


def test_batch_rebuild_of_a_mixed_case_table_is_checked_table_by_table(project: Project) -> None:
    """Alembic's copy is renamed to the table it dropped: known, so no whole-database check;
    the table and the one referencing it are checked (SQLite's names ignore case)."""
    alias = "default"
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="m1",
        upgrade="""
            op.create_table("OpsParent", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("name", sa.String(20)))
            op.create_table("ops_kid", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("parent_id", sa.Integer, sa.ForeignKey("OpsParent.id")))
            op.execute('INSERT INTO "OpsParent" (id, name) VALUES (1, \\'p\\')')
            op.execute("INSERT INTO ops_kid (id, parent_id) VALUES (10, 1)")
        """,
        downgrade='op.drop_table("ops_kid")\nop.drop_table("OpsParent")',
    )
    project.script(
        "shop",
        "0002_rebuild",
        revision="m2",
        down="m1",
        upgrade="""
            with op.batch_alter_table("OpsParent", recreate="always") as batch:
                batch.alter_column("name", existing_type=sa.String(20), nullable=False)
        """,
    )
    run("opsmigrate", "shop", "0001", database=alias)
    with sqlite_statements(alias) as statements:
        run("opsmigrate", database=alias)

    checks = sorted(s for s in statements if s.startswith("PRAGMA foreign_key_check"))
    assert checks == [
        'PRAGMA foreign_key_check("OpsParent")',
        'PRAGMA foreign_key_check("ops_kid")',
    ]
    assert query(alias, "SELECT id, parent_id FROM ops_kid") == [(10, 1)]

"""The foreign-key check before each migration commits finds what the migration broke.

On SQLite a migration runs with enforcement off and is checked before it
commits, on the tables it could have broken (``django_alembic_ops.sqlite_fk``):
those it wrote and those referencing them. The first tests hold on every
backend (the others refuse the statement itself); the rest pin SQLite's
scope: triggers, renames, temporary tables, and a violation that was there
before in a table the migration did not touch.
"""

from __future__ import annotations

import pytest

from .conftest import Project, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

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

"""Deploy phases: ``phase = "post"`` scripts and ``opsmigrate --phase pre|post``.

The release under test renames a column the safe way: two pre-deploy
migrations add the new column and its index while the old code still writes
the old one; one post-deploy migration drops the old column once no code
uses it.
"""

from __future__ import annotations

import pytest
from django.db import connections

from django_alembic_ops import api

from .conftest import Project, inspect_db, query, run, run_error

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

POST = 'phase = "post"\n'


@pytest.fixture
def release(project: Project) -> Project:
    """shop 0001 (deployed before); the release: 0002, 0003 pre, 0004 post."""
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="s1",
        upgrade="""
            op.create_table(
                "shop_item",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("title", sa.String(50), nullable=True),
            )
        """,
        downgrade='op.drop_table("shop_item")',
    )
    project.script(
        "shop",
        "0002_add_name",
        revision="s2",
        down="s1",
        upgrade='op.add_column("shop_item", sa.Column("name", sa.String(50), nullable=True))',
        downgrade="""
            with op.batch_alter_table("shop_item") as batch:
                batch.drop_column("name")
        """,
    )
    project.script(
        "shop",
        "0003_index_name",
        revision="s3",
        down="s2",
        upgrade='op.create_index("shop_item_name", "shop_item", ["name"])',
        downgrade='op.drop_index("shop_item_name", table_name="shop_item")',
    )
    project.script(
        "shop",
        "0004_drop_title",
        revision="s4",
        down="s3",
        header=POST,
        upgrade="""
            with op.batch_alter_table("shop_item") as batch:
                batch.drop_column("title")
        """,
        downgrade='op.add_column("shop_item", sa.Column("title", sa.String(50), nullable=True))',
    )
    return project


def applying(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("  Applying")]


def execute(alias: str, sql: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)


def item_columns(alias: str) -> list[str]:
    with inspect_db(alias) as insp:
        return [column["name"] for column in insp.get_columns("shop_item")]


def test_two_phase_deploy(release: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0001", database=alias)  # the release before

    out = run("opsmigrate", "--phase", "pre", database=alias)
    assert applying(out) == [
        "Applying shop.0002_add_name... OK",
        "Applying shop.0003_index_name... OK",
    ]
    # Old and new code both work on this schema: the old one writes title, the new one name.
    execute(alias, "INSERT INTO shop_item (id, title) VALUES (1, 'old code')")
    execute(alias, "INSERT INTO shop_item (id, name) VALUES (2, 'new code')")
    assert item_columns(alias) == ["id", "title", "name"]
    # Running the pre phase again: nothing left for it.
    assert applying(run("opsmigrate", "--phase", "pre", database=alias)) == []

    out = run("opsmigrate", "--phase", "post", database=alias)
    assert applying(out) == ["Applying shop.0004_drop_title... OK"]
    assert item_columns(alias) == ["id", "name"]
    assert query(alias, "SELECT id, name FROM shop_item ORDER BY id") == [
        (1, None),
        (2, "new code"),
    ]


def test_post_phase_applies_every_pending_migration(release: Project, alias: str) -> None:
    out = run("opsmigrate", "--phase", "post", database=alias)
    assert len(applying(out)) == 4
    assert item_columns(alias) == ["id", "name"]


def test_pre_migration_on_an_unapplied_post_one_is_refused(release: Project, alias: str) -> None:
    release.script("shop", "0005_more", revision="s5", down="s4")
    run("opsmigrate", "shop", "0001", database=alias)
    message = run_error("opsmigrate", "--phase", "pre", database=alias)
    assert message == (
        "Pre-deploy migration shop.0005_more needs post-deploy migration shop.0004_drop_title, "
        "which is not applied: run 'python manage.py opsmigrate --phase post' first (once the "
        "old code is gone)."
    )
    # Refused before anything ran.
    assert item_columns(alias) == ["id", "title"]
    # Once the post phase has run, the next release's pre migration is fine.
    run("opsmigrate", "shop", "0004", database=alias)
    assert applying(run("opsmigrate", "--phase", "pre", database=alias)) == [
        "Applying shop.0005_more... OK"
    ]


def test_depends_on_a_post_migration_of_another_app_is_refused(
    release: Project, alias: str
) -> None:
    release.app("orders")
    release.script("orders", "0001_initial", revision="o1", depends_on="s4")
    message = run_error("opsmigrate", "--phase", "pre", database=alias)
    assert message.startswith(
        "Pre-deploy migration orders.0001_initial needs post-deploy migration "
        "shop.0004_drop_title, which is not applied"
    )
    assert "shop_item" not in {name for name in _tables(alias)}


def _tables(alias: str) -> list[str]:
    with inspect_db(alias) as insp:
        return list(insp.get_table_names())


def test_showmigrations_marks_post(release: Project, alias: str) -> None:
    run("opsmigrate", "--phase", "pre", database=alias)
    assert run("opsshowmigrations", "shop", database=alias) == (
        "shop\n"
        " [X] 0001_initial\n"
        " [X] 0002_add_name\n"
        " [X] 0003_index_name\n"
        " [ ] 0004_drop_title (post)\n"
    )
    assert run("opsshowmigrations", "--plan", database=alias).splitlines() == [
        "[X]  shop.0001_initial",
        "[X]  shop.0002_add_name",
        "[X]  shop.0003_index_name",
        "[ ]  shop.0004_drop_title (post)",
    ]


def test_plan_and_check_with_phase(release: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0001", database=alias)
    out = run("opsmigrate", "--plan", "--phase", "pre", database=alias)
    assert "shop.0002_add_name" in out and "shop.0003_index_name" in out
    assert "0004" not in out
    assert [s.migration.name for s in api.plan(database=alias, phase="pre")] == [
        "0002_add_name",
        "0003_index_name",
    ]
    with pytest.raises(SystemExit):
        run("opsmigrate", "--check", "--phase", "pre", database=alias)

    run("opsmigrate", "--phase", "pre", database=alias)
    run("opsmigrate", "--check", "--phase", "pre", database=alias)  # no SystemExit: pre is done
    with pytest.raises(SystemExit):
        run("opsmigrate", "--check", "--phase", "post", database=alias)
    out = run("opsmigrate", "--plan", "--phase", "post", database=alias)
    assert "shop.0004_drop_title" in out


def test_phase_is_for_applying_one_database(release: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    assert run_error("opsmigrate", "shop", "0001", "--phase", "post", database=alias) == (
        "--phase applies migrations and this target unapplies some; run it without --phase."
    )
    assert run_error("opsmigrate", "--sql", "--phase", "pre", database=alias).startswith(
        "--phase runs or plans one database"
    )


def test_bad_phase_in_a_script_is_one_line(release: Project, alias: str) -> None:
    path = release.script("shop", "0005_bad", revision="s5", down="s4", header='phase = "later"\n')
    message = run_error("opsmigrate", database=alias)
    assert message == (
        f"{path}: phase = 'later' is not a deploy phase; use phase = \"pre\" (the default, "
        'before the new code starts) or phase = "post" (after the old code is gone).'
    )
    assert "\n" not in message

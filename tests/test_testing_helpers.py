"""django_alembic_ops.testing in-process: OpsMigrator, stairway, the checks, schema diffs.

The pytest plugin (fixture, ``--ops-*`` options) and ``manage.py test`` are
exercised in real subprocesses in ``test_testing_plugin.py``.
"""

from __future__ import annotations

import unittest
from typing import Any

import pytest
from django.db import connections, transaction
from django.test.utils import override_settings

from django_alembic_ops import api, testing
from django_alembic_ops.errors import (
    AmbiguousMigration,
    NoOpsMigrations,
    TransactionError,
    UnknownMigration,
)
from django_alembic_ops.testing import OpsMigrator, schema_differences, stairway

from .conftest import Project, _objects, one_table, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

SHOP = ["shop.0001_initial", "shop.0002_status", "shop.0003_totals_view"]
TOTALS_VIEW = (
    "CREATE VIEW shop_totals AS SELECT status, SUM(qty) AS qty FROM shop_order GROUP BY status"
)


def with_shop(project: Project) -> Project:
    """shop: a table with constraints, a column and index, a view; billing needs shop 0002."""
    project.app("shop")
    project.app("billing")
    project.script(
        "shop",
        "0001_initial",
        revision="s1",
        upgrade="""
            op.create_table(
                "shop_order",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("qty", sa.Integer, nullable=False),
                sa.Column("code", sa.String(20), nullable=False, unique=True),
                sa.CheckConstraint("qty > 0", name="shop_order_qty_positive"),
            )
        """,
        downgrade='op.drop_table("shop_order")',
    )
    project.script(
        "shop",
        "0002_status",
        revision="s2",
        down="s1",
        upgrade="""
            with op.batch_alter_table("shop_order") as batch:
                batch.add_column(sa.Column("status", sa.String(10), nullable=False,
                                           server_default="new"))
            op.create_index("shop_order_status", "shop_order", ["status"])
        """,
        downgrade="""
            op.drop_index("shop_order_status", "shop_order")
            with op.batch_alter_table("shop_order") as batch:
                batch.drop_column("status")
        """,
    )
    project.script(
        "shop",
        "0003_totals_view",
        revision="s3",
        down="s2",
        upgrade=f"op.execute({TOTALS_VIEW!r})",
        downgrade='op.execute("DROP VIEW shop_totals")',
    )
    project.script(
        "billing",
        "0001_initial",
        revision="b1",
        depends_on="s2",
        upgrade="""
            op.create_table(
                "billing_invoice",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("order_id", sa.Integer,
                          sa.ForeignKey("shop_order.id", ondelete="CASCADE"), nullable=False),
            )
        """,
        downgrade='op.drop_table("billing_invoice")',
    )
    return project


# -- OpsMigrator -------------------------------------------------------------------


def test_migrator_moves_app_up_and_down(project: Project, alias: str) -> None:
    with_shop(project)
    migrator = OpsMigrator()
    assert migrator.applied("shop", database=alias) == []
    assert migrator.migrate("shop", "0002", database=alias) == [
        "shop.0001_initial",
        "shop.0002_status",
    ]
    assert migrator.applied("shop", database=alias) == SHOP[:2]
    migrator.migrate("billing", None, database=alias)
    assert migrator.applied("billing", database=alias) == ["billing.0001_initial"]
    # Down: the app that depends on shop 0002 goes first.
    assert migrator.migrate("shop", "0001_initial", database=alias) == [
        "billing.0001_initial",
        "shop.0002_status",
    ]
    assert migrator.applied("billing", database=alias) == []
    assert migrator.migrate("shop", "s3", database=alias) == SHOP[1:]  # a revision id
    assert "shop_totals" in project_views(alias)
    migrator.migrate("shop", "zero", database=alias)
    assert migrator.applied("shop", database=alias) == []
    assert "shop_order" not in table_names(alias)
    migrator.restore()
    assert migrator.applied("shop", database=alias) == SHOP
    assert migrator.applied("billing", database=alias) == ["billing.0001_initial"]


def project_views(alias: str) -> set[str]:
    return _objects(alias)[1]


def test_migrator_bad_names(project: Project) -> None:
    with_shop(project)
    project.script("shop", "0004_a", revision="s4", down="s3")
    project.script("shop", "0005_b", revision="s5", down="s4")
    migrator = OpsMigrator()
    with pytest.raises(UnknownMigration, match="'0009' from app 'shop'"):
        migrator.migrate("shop", "0009")
    with pytest.raises(AmbiguousMigration, match="0004_a, 0005_b"):
        migrator.migrate("shop", "000")
    project.app("plain", ops=False)
    with pytest.raises(NoOpsMigrations):
        migrator.applied("plain")
    migrator.restore()  # nothing was migrated: nothing to do


def test_migrator_refuses_sqlite_inside_a_transaction(project: Project) -> None:
    with_shop(project)
    migrator = OpsMigrator(hint="Use the transactional_db fixture.")
    with transaction.atomic(), pytest.raises(TransactionError) as info:
        migrator.migrate("shop", "0001")
    assert "inside the test's transaction" in str(info.value)
    assert str(info.value).endswith("Use the transactional_db fixture.")
    with transaction.atomic(), pytest.raises(TransactionError, match="transactional_db"):
        stairway(["shop"])
    assert "shop_order" not in table_names("default")


def test_migrator_refuses_mysql_inside_a_transaction(project: Project, mysql_alias: str) -> None:
    """MySQL's DDL would commit the test's transaction (the db fixture's): refused first."""
    with_shop(project)
    migrator = OpsMigrator(hint="Use the transactional_db fixture.")
    with transaction.atomic(using=mysql_alias), pytest.raises(TransactionError) as info:
        migrator.migrate("shop", "0001", database=mysql_alias)
    assert str(info.value) == (
        "Ops migrations cannot run on MySQL database 'mysql' inside the test's transaction "
        "(pytest-django's db fixture, or django.test.TestCase): MySQL commits DDL at once, and "
        "the test's transaction with it. Use the transactional_db fixture."
    )
    with (
        transaction.atomic(using=mysql_alias),
        pytest.raises(TransactionError, match="transactional_db"),
    ):
        stairway(["shop"], database=mysql_alias)
    assert "shop_order" not in table_names(mysql_alias)


def test_migrator_inside_a_postgresql_transaction(project: Project, pg_alias: str) -> None:
    """What the db fixture does on PostgreSQL: DDL is transactional, the rollback undoes it."""
    with_shop(project)
    migrator = OpsMigrator()
    migrator.migrate("shop", None, database=pg_alias)
    with transaction.atomic(using=pg_alias):
        migrator.migrate("shop", "zero", database=pg_alias)
        assert "shop_order" not in table_names(pg_alias)
        migrator.restore()
        assert migrator.applied("shop", database=pg_alias) == SHOP
        transaction.set_rollback(True, using=pg_alias)
    assert migrator.applied("shop", database=pg_alias) == SHOP


# -- stairway ---------------------------------------------------------------------


def test_stairway_passes_and_ends_at_heads(project: Project, alias: str) -> None:
    with_shop(project)
    OpsMigrator().migrate("shop", "0001", database=alias)  # start anywhere
    checked = stairway(database=alias)
    assert checked == [*SHOP[:2], "billing.0001_initial", SHOP[2]]
    assert OpsMigrator().applied("shop", database=alias) == SHOP
    assert OpsMigrator().applied("billing", database=alias) == ["billing.0001_initial"]


def test_stairway_of_one_app_applies_what_it_needs(project: Project, alias: str) -> None:
    with_shop(project)
    assert stairway(["billing"], database=alias) == ["billing.0001_initial"]
    assert OpsMigrator().applied("shop", database=alias) == SHOP


def test_stairway_with_branches_and_a_merge(project: Project, alias: str) -> None:
    """Each downgrade unapplies exactly one migration, not the sibling branch too."""
    project.app("shop")
    for name, revision, down in [
        ("0001_initial", "s1", None),
        ("0002_a", "s2a", "s1"),
        ("0002_b", "s2b", "s1"),
        ("0003_merge", "s3", ("s2a", "s2b")),
    ]:
        table = f"shop_{revision}"
        project.script(
            "shop",
            name,
            revision=revision,
            down=down,
            upgrade=f'op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))',
            downgrade=f'op.drop_table("{table}")',
        )
    checked = stairway(["shop"], database=alias)
    assert sorted(checked) == sorted(
        ["shop.0001_initial", "shop.0002_a", "shop.0002_b", "shop.0003_merge"]
    )
    assert {"shop_s1", "shop_s2a", "shop_s2b", "shop_s3"} <= table_names(alias)


def broken_shop(project: Project, upgrade: str, downgrade: str) -> None:
    with_shop(project)
    project.script(
        "shop", "0004_broken", revision="s4", down="s3", upgrade=upgrade, downgrade=downgrade
    )


@pytest.mark.parametrize(
    ("upgrade", "downgrade", "expected"),
    [
        (
            'op.add_column("shop_order", sa.Column("note", sa.Text))\n'
            'op.create_index("shop_order_qty", "shop_order", ["qty"])',
            "pass",
            [
                "table shop_order: column note was left behind (TEXT)",
                "table shop_order: index shop_order_qty was left behind (INDEX (qty))",
            ],
        ),
        (
            'op.create_table("shop_log", sa.Column("id", sa.Integer, primary_key=True))',
            'op.drop_table("shop_log")\nop.execute("DROP VIEW shop_totals")',
            ["view shop_totals is missing"],
        ),
        (
            # (SQLite cannot rebuild a table that a view reads.)
            'op.execute("DROP VIEW shop_totals")\n'
            'with op.batch_alter_table("shop_order") as batch:\n'
            '    batch.alter_column("qty", existing_type=sa.Integer, nullable=True)\n'
            f"op.execute({TOTALS_VIEW!r})",
            "pass",
            ["table shop_order: column qty was INTEGER NOT NULL, is now INTEGER"],
        ),
    ],
    ids=["left-behind", "too-much", "changed"],
)
def test_stairway_names_migration_and_difference(
    project: Project, alias: str, upgrade: str, downgrade: str, expected: list[str]
) -> None:
    broken_shop(project, upgrade, downgrade)
    with pytest.raises(AssertionError) as info:
        stairway(["shop"], database=alias)
    lines = str(info.value).splitlines()
    assert lines[0] == (
        f"shop.0004_broken: downgrade did not restore the schema on database '{alias}':"
    )
    if connections[alias].vendor == "mysql":
        # As MySQL reflects it: INT with its display width.
        expected = [line.replace("INTEGER", "INTEGER(11)") for line in expected]
    assert lines[1:] == [f"  - {line}" for line in expected]


def test_stairway_names_failing_upgrade_and_downgrade(project: Project, alias: str) -> None:
    broken_shop(project, 'op.execute("SELECT * FROM no_such_table")', "pass")
    with pytest.raises(AssertionError) as info:
        stairway(["shop"], database=alias)
    message = str(info.value)
    assert message.startswith(
        "shop.0004_broken: upgrade failed: Applying shop.0004_broken failed and was rolled back:"
    )
    assert "no_such_table" in message


def test_stairway_names_failing_downgrade(project: Project, alias: str) -> None:
    broken_shop(project, "pass", 'op.execute("DROP TABLE no_such_table")')
    with pytest.raises(AssertionError) as info:
        stairway(["shop"], database=alias)
    assert str(info.value).startswith(
        "shop.0004_broken: downgrade failed: Unapplying shop.0004_broken failed"
    )


def test_stairway_names_downgrade_that_left_a_view_behind(project: Project, alias: str) -> None:
    """The database starts at the heads (as a test database does): the stairway's
    first unapply already runs the faulty downgrade, and upgrading again fails."""
    broken_shop(project, 'op.execute("CREATE VIEW shop_names AS SELECT 1 AS one")', "pass")
    api.migrate(database=alias)
    try:
        with pytest.raises(AssertionError) as info:
            stairway(["shop"], database=alias)
        message = str(info.value)
        assert message.startswith(
            f"shop.0004_broken: downgrade did not restore the schema on database '{alias}': "
            "upgrading it again failed: Applying shop.0004_broken failed and was rolled back: "
        )
        assert "shop_names" in message and "already exists" in message
        # Back at the heads: the schema is as it was, so 0004 is recorded as applied
        # again (otherwise the flush after each later test would fail applying it).
        assert OpsMigrator().applied("shop", database=alias) == [*SHOP, "shop.0004_broken"]
        assert api.unapplied(database=alias) == []
        # A migration the stairway did not unapply first is just a failing upgrade.
        OpsMigrator().migrate("shop", "zero", database=alias)
        with connections[alias].cursor() as cursor:
            cursor.execute("DROP VIEW shop_names")
        project.script(
            "shop", "0004_broken", revision="s4", down="s3", upgrade="op.execute('DROP VIEW v')"
        )
        with pytest.raises(AssertionError, match=r"^shop\.0004_broken: upgrade failed: Applying"):
            stairway(["shop"], database=alias)
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("DROP VIEW IF EXISTS shop_names")


def test_stairway_names_downgrade_when_upgrading_again_fails(
    project: Project, pg_alias: str
) -> None:
    """A leftover the reflected schema does not show (a PostgreSQL type) is caught
    when the migration is upgraded again after its downgrade."""
    broken_shop(project, "op.execute(\"CREATE TYPE shop_mood AS ENUM ('ok')\")", "pass")
    try:
        with pytest.raises(AssertionError) as info:
            stairway(["shop"], database=pg_alias)
        message = str(info.value)
        assert message.startswith(
            "shop.0004_broken: downgrade did not restore the schema on database 'postgres': "
            "upgrading it again failed: Applying shop.0004_broken failed and was rolled back: "
        )
        assert 'type "shop_mood" already exists' in message
    finally:
        with connections[pg_alias].cursor() as cursor:
            cursor.execute("DROP TYPE IF EXISTS shop_mood")


def test_stairway_sees_other_postgresql_schemas(project: Project, pg_alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="s1",
        upgrade="""
            op.execute("CREATE SCHEMA shop_extra")
            op.create_table("t", sa.Column("id", sa.Integer, primary_key=True),
                            schema="shop_extra")
            op.execute("CREATE MATERIALIZED VIEW shop_mv AS SELECT 1 AS one")
        """,
        downgrade='op.execute("DROP MATERIALIZED VIEW shop_mv")',
    )
    try:
        with pytest.raises(AssertionError) as info:
            stairway(["shop"], database=pg_alias)
        message = str(info.value)
        assert "  - table shop_extra.t was left behind" in message
        assert "materialized view" not in message
    finally:
        with connections[pg_alias].cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS shop_extra CASCADE")
            cursor.execute("DROP MATERIALIZED VIEW IF EXISTS shop_mv")


def test_schema_differences() -> None:
    before = {
        "table a": {"column x": "INTEGER", "index ix": "INDEX (x)"},
        "view v": {"definition": "SELECT 1"},
    }
    after = {
        "table a": {"column x": "TEXT", "column y": "INTEGER"},
        "table b": {},
    }
    assert schema_differences(before, before) == []
    assert schema_differences(before, after) == [
        "view v is missing",
        "table b was left behind",
        "table a: index ix is missing",
        "table a: column y was left behind (INTEGER)",
        "table a: column x was INTEGER, is now TEXT",
    ]


# -- the other checks --------------------------------------------------------------


def test_check_single_head(project: Project) -> None:
    with_shop(project)
    testing.check_single_head("shop")
    project.script("shop", "0003_other", revision="s3x", down="s2")
    with pytest.raises(AssertionError, match="opsmakemigration --merge shop"):
        testing.check_single_head("shop")


def test_check_upgrade(project: Project, alias: str) -> None:
    with_shop(project)
    OpsMigrator().migrate("billing", None, database=alias)
    testing.check_upgrade("shop", database=alias)
    assert OpsMigrator().applied("billing", database=alias) == ["billing.0001_initial"]
    project.script(
        "shop", "0004_bad", revision="s4", down="s3", upgrade='op.execute("SELECT * FROM nope")'
    )
    with pytest.raises(AssertionError, match="^Upgrading 'shop' from empty to its head failed: "):
        testing.check_upgrade("shop", database=alias)


UNMANAGED = """
from django.db import models

class Order(models.Model):
    qty = models.IntegerField()

    class Meta:
        managed = False
        db_table = "shop_order"
"""


class ShopOnlyOnOther:
    """Keeps app 'shop' off every database but 'other'."""

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        return db == "other" if app_label == "shop" else None


@pytest.mark.parametrize(
    "check", [testing.check_upgrade, testing.check_models_match_ddl, testing.check_stairway]
)
def test_checks_skip_apps_the_routers_keep_off(project: Project, check: Any) -> None:
    project.app("shop", models=UNMANAGED)
    project.script("shop", "0001_initial", revision="s1")
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.ShopOnlyOnOther"]):
        with pytest.raises(unittest.SkipTest) as info:
            check("shop", database="default")
        assert str(info.value) == (
            "the database routers do not allow app 'shop' on database 'default'"
        )
        testing._skip_unless_allowed("shop", "other")  # not kept off there


def test_check_models_match_ddl_skips_without_target(project: Project) -> None:
    with_shop(project)
    with pytest.raises(unittest.SkipTest) as info:
        testing.check_models_match_ddl("shop")
    assert str(info.value) == (
        "app 'shop' has no autogenerate target (no models with Meta.managed = False, "
        "no target_metadata in its ops package)"
    )


def test_check_models_match_ddl(project: Project, alias: str) -> None:
    project.app("shop", models=UNMANAGED)
    api.autogenerate("shop", database=alias)  # writes 0001 from the model
    testing.check_models_match_ddl("shop", database=alias)
    project.script(
        "shop",
        "0002_note",
        revision="s2",
        down=api.showplan(["shop"], database=alias)[0].migration.revision,
        upgrade='op.add_column("shop_order", sa.Column("note", sa.Text))',
        downgrade='op.drop_column("shop_order", "note")',
    )
    with pytest.raises(AssertionError) as info:
        testing.check_models_match_ddl("shop", database=alias)
    message = str(info.value)
    assert message.startswith(
        "The models of 'shop' do not match its ops migrations; autogenerate found:\n  - "
    )
    assert "note" in message
    assert message.endswith("Run 'python manage.py opsmakemigration shop' to write the migration.")


REFERENCED = """
from django.db import models

class Thing(models.Model):
    class Meta:
        managed = False
        db_table = "shop_thing"

class Note(models.Model):
    thing = models.ForeignKey(Thing, on_delete=models.CASCADE)
"""


def test_checks_skip_when_a_django_table_references_an_ops_table(
    project: Project, alias: str
) -> None:
    """On PostgreSQL and MySQL an ops table that a Django table references cannot
    be dropped: check_upgrade and check_stairway skip, saying why, and leave the
    database at the heads; on SQLite they run."""
    project.app("shop", models=REFERENCED)
    project.script("shop", "0001_initial", revision="r1", **one_table("shop_thing"))
    api.migrate(database=alias)
    from django.apps import apps

    with connections[alias].schema_editor() as editor:  # what Django's migration creates
        editor.create_model(apps.get_model("shop", "Note"))
    vendor = connections[alias].vendor
    for check in (testing.check_upgrade, testing.check_stairway):
        if vendor != "sqlite":
            with pytest.raises(unittest.SkipTest) as info:
                check("shop", database=alias)
            assert str(info.value) == (
                "Django's tables reference tables of the ops migrations by foreign key "
                f"(shop_note -> shop_thing), so on {vendor} the ops migrations of 'shop' "
                "cannot be unapplied while those tables exist"
            )
        else:
            check("shop", database=alias)
        assert api.unapplied(database=alias) == []
        assert "shop_thing" in table_names(alias)


def test_checks_report_other_dependent_objects(project: Project, pg_alias: str) -> None:
    """A view of another app on an ops table (no depends_on) is the app's own
    mistake: reported, not skipped."""
    project.app("shop")
    project.app("reports")
    project.script("shop", "0001_initial", revision="r1", **one_table("shop_thing"))
    project.script(
        "reports",
        "0001_initial",
        revision="v1",
        upgrade='op.execute("CREATE VIEW reports_things AS SELECT id FROM shop_thing")',
        downgrade='op.execute("DROP VIEW reports_things")',
    )
    api.migrate("shop", database=pg_alias)
    api.migrate("reports", database=pg_alias)
    with pytest.raises(AssertionError, match="DependentObjectsStillExist"):
        testing.check_upgrade("shop", database=pg_alias)

"""``RunOpsMigrations``: ops migrations that a Django migration needs, run in its middle.

The case it exists for: a managed model with a foreign key to an ops-owned
(unmanaged) model. ``migrate`` runs ops migrations after every Django
migration, too late for the foreign key, which PostgreSQL checks when the
constraint is created.
"""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.db.migrations.writer import OperationWriter

from django_alembic_ops.operations import RunOpsMigrations
from django_alembic_ops.testing import stairway

from .conftest import Project, inspect_db, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

LEGACY_MODELS = """
from django.db import models

class Customer(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        managed = False
        db_table = "legacy_customer"
"""

LEGACY_DJANGO_0001 = """
from django.db import migrations, models

class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            "Customer",
            [("id", models.AutoField(primary_key=True)), ("name", models.CharField(max_length=50))],
            options={"managed": False, "db_table": "legacy_customer"},
        ),
    ]
"""

SHOP_MODELS = """
from django.db import models

class Order(models.Model):
    customer = models.ForeignKey("legacy.Customer", on_delete=models.CASCADE)
"""

SHOP_DJANGO_0001 = """
from django.db import migrations, models
{import_line}

class Migration(migrations.Migration):
    initial = True
    dependencies = [("legacy", "0001_initial")]
    operations = [
        {operation}
        migrations.CreateModel("Order", [
            ("id", models.AutoField(primary_key=True)),
            ("customer", models.ForeignKey("legacy.Customer", on_delete=models.CASCADE)),
        ]),
    ]
"""

CUSTOMER_TABLE = {
    "upgrade": """
        op.create_table(
            "legacy_customer",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(50), nullable=False),
        )
    """,
    "downgrade": 'op.drop_table("legacy_customer")',
}

NOTE_TABLE = {
    "upgrade": 'op.create_table("legacy_note", sa.Column("id", sa.Integer, primary_key=True))',
    "downgrade": 'op.drop_table("legacy_note")',
}


RUN_LEGACY_0001 = 'RunOpsMigrations("legacy", "0001"),'


def make_apps(project: Project, operation: str | None = RUN_LEGACY_0001) -> None:
    """App legacy: ops-owned customer table (+ a later note table); app shop: Order → Customer."""
    project.app("legacy", models=LEGACY_MODELS)
    project.write("legacy/migrations/__init__.py", "")
    project.write("legacy/migrations/0001_initial.py", LEGACY_DJANGO_0001)
    project.script("legacy", "0001_customer", revision="c1", **CUSTOMER_TABLE)
    project.script("legacy", "0002_note", revision="c2", down="c1", **NOTE_TABLE)
    project.app("shop", models=SHOP_MODELS, ops=False)
    project.write("shop/migrations/__init__.py", "")
    import_line = "from django_alembic_ops.operations import RunOpsMigrations" if operation else ""
    project.write(
        "shop/migrations/0001_initial.py",
        SHOP_DJANGO_0001.format(import_line=import_line, operation=operation or ""),
    )


def order_foreign_keys(alias: str) -> list[tuple[list[str], str, list[str]]]:
    with inspect_db(alias) as insp:
        return [
            (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
            for fk in insp.get_foreign_keys("shop_order")
        ]


def applied(alias: str) -> list[str]:
    return sorted(row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version"))


def test_migrate_creates_the_ops_table_before_the_foreign_key(project: Project, alias: str) -> None:
    make_apps(project)
    out = run("migrate", database=alias)
    assert "Applying shop.0001_initial... OK" in out
    assert order_foreign_keys(alias) == [(["customer_id"], "legacy_customer", ["id"])]
    # The rest of legacy's ops migrations still come after Django's, as always.
    assert "  Applying legacy.0002_note... OK" in out
    assert "legacy.0001_customer" not in out  # it ran inside shop.0001_initial
    assert {"legacy_customer", "legacy_note", "shop_order"} <= table_names(alias)
    assert applied(alias) == ["c2"]
    shown = run("opsshowmigrations", "legacy", database=alias)
    assert shown == "legacy\n [X] 0001_customer\n [X] 0002_note\n"


def test_without_it_postgresql_refuses_the_foreign_key(project: Project, pg_alias: str) -> None:
    # Why the operation exists: the same apps without it cannot migrate.
    make_apps(project, operation=None)
    try:
        with pytest.raises(DatabaseError, match="legacy_customer"):
            run("migrate", database=pg_alias)
    finally:
        # The failure is in the schema editor's deferred SQL, which Django runs
        # in __exit__ before leaving its atomic(): the transaction stays open.
        # Closing the connection ends it; the next connect() resets Django's state.
        connection = connections[pg_alias]
        connection.in_atomic_block = False
        connection.close()


def test_never_unapplies_when_the_database_is_further_on(project: Project, alias: str) -> None:
    make_apps(project)
    run("migrate", "legacy", database=alias)
    run("opsmigrate", "legacy", database=alias)  # legacy at 0002, before shop's migration
    assert applied(alias) == ["c2"]
    run("migrate", "shop", database=alias)
    assert applied(alias) == ["c2"]
    assert "legacy_note" in table_names(alias)
    assert order_foreign_keys(alias) == [(["customer_id"], "legacy_customer", ["id"])]


def test_unapplying_the_django_migration_leaves_ops_applied(project: Project, alias: str) -> None:
    make_apps(project)
    run("migrate", database=alias)
    run("migrate", "shop", "zero", database=alias)
    assert "shop_order" not in table_names(alias)
    assert applied(alias) == ["c2"]
    run("migrate", "shop", database=alias)  # and forward again
    assert order_foreign_keys(alias) == [(["customer_id"], "legacy_customer", ["id"])]


def test_a_failing_ops_migration_fails_the_django_migration(project: Project, alias: str) -> None:
    make_apps(project)
    # A row that breaks a foreign key: SQLite, whose enforcement Django's schema
    # editor has switched off, must still find it before committing.
    project.script(
        "legacy",
        "0001_customer",
        revision="c1",
        upgrade=CUSTOMER_TABLE["upgrade"]
        + """
        op.create_table(
            "legacy_address",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", sa.Integer, sa.ForeignKey("legacy_customer.id")),
        )
        op.execute("INSERT INTO legacy_address (id, customer_id) VALUES (1, 99)")
        """,
    )
    mysql = connections[alias].vendor == "mysql"
    # MySQL commits DDL at once: the tables stay, and the error names them.
    outcome = "not rolled back" if mysql else "rolled back"
    left = {"legacy_customer", "legacy_address"} if mysql else set()
    with pytest.raises(
        CommandError,
        match=rf"^Applying legacy\.0001_customer failed and was {outcome}: .*legacy_address",
    ) as info:
        run("migrate", database=alias)
    if mysql:
        assert "; these statements had committed: CREATE TABLE legacy_customer (" in str(info.value)
    assert {"legacy_customer", "legacy_address", "shop_order"} & table_names(alias) == left
    assert query(alias, "SELECT name FROM django_migrations WHERE app = 'shop'") == []


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (
            'RunOpsMigrations("legacy", "0009"),',
            "Cannot find an ops migration matching '0009' from app 'legacy'. "
            "Run 'python manage.py opsshowmigrations legacy' to list them.",
        ),
        (
            'RunOpsMigrations("legcy", "0001"),',
            "No installed app with label 'legcy'; check INSTALLED_APPS.",
        ),
    ],
    ids=["migration", "app"],
)
def test_an_unknown_name_is_one_line_and_changes_nothing(
    project: Project, alias: str, operation: str, expected: str
) -> None:
    make_apps(project, operation=operation)
    message = run_error("migrate", database=alias)
    assert message == expected
    assert "shop_order" not in table_names(alias)
    assert "legacy_customer" not in table_names(alias)


def test_sqlmigrate_and_plan_describe_it(project: Project, alias: str) -> None:
    make_apps(project)
    sql = run("sqlmigrate", "shop", "0001", database=alias)
    assert "-- Apply the ops migrations of legacy up to 0001\n" in sql
    assert "-- THIS OPERATION CANNOT BE WRITTEN AS SQL" in sql
    assert "Apply the ops migrations of legacy up to 0001" in run(
        "migrate", "--plan", database=alias
    )
    assert "legacy_customer" not in table_names(alias)  # neither ran anything


def test_makemigrations_writes_it_back_unchanged() -> None:
    operation = RunOpsMigrations("legacy", "0001")
    written, imports = OperationWriter(operation, indentation=0).serialize()
    assert written == (
        "django_alembic_ops.operations.RunOpsMigrations(\n"
        "    app_label='legacy',\n"
        "    migration='0001',\n"
        "),"
    )
    assert imports == {"import django_alembic_ops.operations"}


def test_stairway_stops_where_a_django_table_references_the_ops_table(
    project: Project, alias: str
) -> None:
    make_apps(project)
    run("migrate", database=alias)
    vendor = connections[alias].vendor
    if vendor == "sqlite":  # SQLite drops a referenced table (no rows point at it)
        stairway(["legacy"], database=alias)
    else:
        refused = "depend" if vendor == "postgresql" else "a foreign key constraint fails"
        with pytest.raises(AssertionError, match=rf"legacy\.0001_customer.*{refused}"):
            stairway(["legacy"], database=alias)
    assert applied(alias) == ["c2"]  # and it leaves the app at its head


CONCURRENT_INDEX = {
    "upgrade": """
        with op.get_context().autocommit_block():
            op.create_index(
                "legacy_customer_name_idx",
                "legacy_customer",
                ["name"],
                postgresql_concurrently=True,
            )
    """,
    "downgrade": 'op.drop_index("legacy_customer_name_idx", table_name="legacy_customer")',
}


@pytest.mark.parametrize("atomic", [True, False])
def test_autocommit_block_needs_a_non_atomic_django_migration(
    project: Project, pg_alias: str, atomic: bool
) -> None:
    make_apps(project, operation='RunOpsMigrations("legacy", "0002"),')
    project.script("legacy", "0002_note", revision="c2", down="c1", **CONCURRENT_INDEX)
    path = project.root / "shop" / "migrations" / "0001_initial.py"
    path.write_text(path.read_text().replace("    initial = True", f"    atomic = {atomic}"))
    if atomic:
        message = run_error("migrate", database=pg_alias)
        assert message == (
            "Applying legacy.0002_note failed and was rolled back: TransactionError: "
            "op.get_context().autocommit_block() cannot run inside an enclosing atomic() "
            "block; run the migration outside atomic() (from RunOpsMigrations: set "
            "atomic = False on its Django migration)."
        )
        assert not {"legacy_customer", "shop_order"} & table_names(pg_alias)
    else:
        run("migrate", database=pg_alias)
        with inspect_db(pg_alias) as insp:
            indexes = [i["name"] for i in insp.get_indexes("legacy_customer")]
        assert indexes == ["legacy_customer_name_idx"]
        assert "shop_order" in table_names(pg_alias)


def test_in_a_non_atomic_django_migration(project: Project, alias: str) -> None:
    make_apps(project)
    path = project.root / "shop" / "migrations" / "0001_initial.py"
    path.write_text(path.read_text().replace("    initial = True", "    atomic = False"))
    run("migrate", database=alias)
    assert order_foreign_keys(alias) == [(["customer_id"], "legacy_customer", ["id"])]
    assert applied(alias) == ["c2"]
    if alias == "default":  # enforcement is Django's again once its schema editor is done
        assert query(alias, "PRAGMA foreign_keys") == [(1,)]

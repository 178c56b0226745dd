"""opsmakemigration's autogenerate: round trips, scope, command options."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from io import StringIO
from pathlib import Path

import pytest
import sqlalchemy as sa
from django.apps import apps
from django.core.management import call_command
from django.db import connections

from django_alembic_ops import writer

from .conftest import Project, inspect_db, needs_django_51, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def reinstall(project: Project, label: str) -> None:
    """Import app ``label``'s edited models afresh."""
    for name in list(sys.modules):
        if name == label or name.startswith(f"{label}."):
            del sys.modules[name]
    apps.all_models.pop(label, None)
    apps.clear_cache()
    project._install()


def edit_models(project: Project, label: str, source: str) -> None:
    (project.root / label / "models.py").write_text(textwrap.dedent(source))
    # A same-size edit within the second would import the old bytecode.
    shutil.rmtree(project.root / label / "__pycache__", ignore_errors=True)
    reinstall(project, label)


def scripts(package: Path) -> list[Path]:
    return sorted((package / "migrations_ops").glob("0*.py"))


def autogenerate(label: str, alias: str) -> tuple[str, str]:
    """opsmakemigration + opsmigrate; returns what it printed and the new script."""
    out = run("opsmakemigration", label, database=alias)
    lines = out.splitlines()
    heading = lines.index(f"Ops migrations for '{label}':")
    path = Path(lines[heading + 1].strip())
    run("opsmigrate", label, database=alias)
    return out, path.read_text()


def assert_no_changes(label: str, alias: str) -> None:
    out = run("opsmakemigration", label, "--check", database=alias)
    # Notes (what autogenerate cannot compare) may come first.
    assert out.strip().splitlines()[-1] == f"No changes detected in app '{label}'", out


def execute(alias: str, sql: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)


def table_sql(alias: str, table: str) -> str:
    return str(query(alias, "SELECT sql FROM sqlite_master WHERE name = %s", [table])[0][0])


# -- the round trip ------------------------------------------------------------

BASE = """
from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        managed = False


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    qty = models.PositiveIntegerField()
    note = models.CharField(max_length=20, null=True)
    data = models.JSONField(default=dict)

    class Meta:
        managed = False
"""

# Columns added, one with a CHECK (PositiveSmallIntegerField).
ADD_COLUMNS = BASE.replace(
    "    data = models.JSONField(default=dict)\n",
    "    data = models.JSONField(default=dict)\n"
    "    total = models.DecimalField(max_digits=8, decimal_places=2, db_default=0)\n"
    "    priority = models.PositiveSmallIntegerField(null=True)\n",
)

# Altered: longer, NOT NULL, a database default.
ALTER_COLUMN = ADD_COLUMNS.replace(
    "note = models.CharField(max_length=20, null=True)",
    'note = models.CharField(max_length=40, db_default="")',
)


def with_order_meta(source: str, meta: str) -> str:
    """``source`` with Order's ``Meta`` body replaced by ``meta``."""
    head, _, order = source.partition("class Order(models.Model):")
    body, _, _ = order.partition("    class Meta:")
    return head + "class Order(models.Model):" + body + "    class Meta:\n" + meta


INDEXES_META = """\
        managed = False
        indexes = [
            models.Index(fields=["qty", "-total"], name="shop_order_qty_idx"),
            models.Index(
                fields=["note"], name="shop_order_open_idx", condition=models.Q(qty__gt=0)
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(qty__lte=1000), name="shop_order_qty_lte"),
            models.UniqueConstraint(fields=["customer", "note"], name="shop_order_customer_note"),
        ]
        unique_together = [("customer", "qty")]
"""

COUPON = """

class Coupon(models.Model):
    code = models.SlugField(max_length=12, unique=True)
    order = models.ForeignKey(Order, null=True, on_delete=models.SET_NULL)
    customers = models.ManyToManyField(Customer)

    class Meta:
        managed = False
"""


@needs_django_51
def test_round_trip(project: Project, alias: str) -> None:
    package = project.app("shop", models=BASE)
    vendor = connections[alias].vendor

    # Initial.
    out, script = autogenerate("shop", alias)
    assert "Create table shop_order" in out
    assert {"shop_customer", "shop_order"} <= table_names(alias)
    assert_no_changes("shop", alias)
    execute(alias, "INSERT INTO shop_customer (name) VALUES ('Ada')")
    execute(alias, "INSERT INTO shop_order (customer_id, qty, note, data) VALUES (1, 2, 'x', '{}')")

    # Add columns.
    edit_models(project, "shop", ADD_COLUMNS)
    out, script = autogenerate("shop", alias)
    assert "Add column shop_order.total" in out and "Add column shop_order.priority" in out
    assert_no_changes("shop", alias)
    if vendor == "sqlite":
        assert "batch_alter_table" in script
        sql = table_sql(alias, "shop_order")
        assert '"priority" >= 0' in sql and "JSON_VALID" in sql and '"qty" >= 0' in sql
        assert "AUTOINCREMENT" in sql
    else:
        assert "op.create_check_constraint" in script and "shop_order_priority_check" in script

    # Alter a column.
    edit_models(project, "shop", ALTER_COLUMN)
    out, script = autogenerate("shop", alias)
    assert "Alter column shop_order.note" in out
    assert_no_changes("shop", alias)
    with inspect_db(alias) as inspector:
        note = {c["name"]: c for c in inspector.get_columns("shop_order")}["note"]
    assert note["nullable"] is False and note["type"].length == 40

    # Add indexes and constraints.
    edit_models(
        project,
        "shop",
        with_order_meta(ALTER_COLUMN, INDEXES_META).replace(
            "name = models.CharField(max_length=50)",
            "name = models.CharField(max_length=50, unique=True)",
        ),
    )
    out, script = autogenerate("shop", alias)
    assert "Create index shop_order_qty_idx on shop_order" in out
    assert "shop_order_qty_lte" in out and "shop_order_customer_note" in out
    assert_no_changes("shop", alias)
    with inspect_db(alias) as inspector:
        indexes = {i["name"] for i in inspector.get_indexes("shop_order")}
        checks = {c["name"] for c in inspector.get_check_constraints("shop_order")}
    assert {"shop_order_qty_idx", "shop_order_open_idx"} <= indexes
    assert "shop_order_qty_lte" in checks

    # Drop them again, and a column.
    without_priority = ALTER_COLUMN.replace(
        "    priority = models.PositiveSmallIntegerField(null=True)\n", ""
    )
    edit_models(project, "shop", without_priority)
    out, script = autogenerate("shop", alias)
    assert "Remove index shop_order_qty_idx from shop_order" in out
    assert "Remove column shop_order.priority" in out
    assert_no_changes("shop", alias)
    with inspect_db(alias) as inspector:
        indexes = {i["name"] for i in inspector.get_indexes("shop_order")}
        checks = {c["name"] for c in inspector.get_check_constraints("shop_order")}
    assert "shop_order_qty_idx" not in indexes and "shop_order_qty_lte" not in checks

    # Add a table (with a join table), then drop it.
    edit_models(project, "shop", without_priority + COUPON)
    out, script = autogenerate("shop", alias)
    assert "Create table shop_coupon" in out and "Create table shop_coupon_customers" in out
    assert_no_changes("shop", alias)
    edit_models(project, "shop", without_priority)
    out, script = autogenerate("shop", alias)
    assert "Drop table shop_coupon_customers" in out and "Drop table shop_coupon" in out
    assert "shop_coupon" not in table_names(alias)
    assert_no_changes("shop", alias)

    # The rows survived every rebuild.
    assert query(alias, "SELECT name FROM shop_customer") == [("Ada",)]
    assert query(alias, "SELECT qty, note FROM shop_order") == [(2, "x")]

    # Every downgrade works: back to zero, and up again.
    execute(alias, "DELETE FROM shop_order")
    run("opsmigrate", "shop", "zero", database=alias)
    assert not {"shop_customer", "shop_order"} & table_names(alias)
    run("opsmigrate", "shop", database=alias)
    assert_no_changes("shop", alias)
    assert len(scripts(package)) == 7


# -- a new NOT NULL column on a table with rows ---------------------------------


def test_new_not_null_column_fills_existing_rows(project: Project, alias: str) -> None:
    """As Django's add_field(): added with DEFAULT <effective default>, which is then dropped."""
    project.app("shop", models=BASE)
    autogenerate("shop", alias)
    execute(alias, "INSERT INTO shop_customer (name) VALUES ('Ada')")
    edit_models(
        project,
        "shop",
        BASE.replace(
            "    name = models.CharField(max_length=50)\n",
            "    name = models.CharField(max_length=50)\n"
            '    tier = models.CharField(max_length=10, default="basic")\n'
            "    notes = models.TextField(blank=True)\n"
            "    vip = models.BooleanField(default=False)\n",
        ),
    )
    out, script = autogenerate("shop", alias)
    assert "Add column shop_customer.tier" in out
    assert query(alias, "SELECT name, tier, notes, vip FROM shop_customer") == [
        ("Ada", "basic", "", False)
    ]
    with inspect_db(alias) as inspector:
        columns = {c["name"]: c for c in inspector.get_columns("shop_customer")}
    assert all(columns[name]["default"] is None for name in ("tier", "notes", "vip"))
    assert_no_changes("shop", alias)
    run("opsmigrate", "shop", "0001", database=alias)
    assert "tier" not in {c["name"] for c in _columns(alias, "shop_customer")}


def test_notes_for_not_null_columns_without_a_default(project: Project, alias: str) -> None:
    """Both directions are noted: adding one, and downgrade() adding a dropped one back."""
    project.app("shop", models=BASE)
    autogenerate("shop", alias)
    with_code = BASE.replace(
        "    name = models.CharField(max_length=50)\n",
        "    name = models.CharField(max_length=50)\n    code = models.IntegerField()\n",
    )
    edit_models(project, "shop", with_code)
    out, _ = autogenerate("shop", alias)
    assert (
        "Note (shop): shop_customer.code: a NOT NULL column without a default; adding it "
        "fails on a table with rows" in out
    )
    execute(alias, "INSERT INTO shop_customer (name, code) VALUES ('Ada', 7)")
    edit_models(project, "shop", BASE)
    out, script = autogenerate("shop", alias)
    assert (
        "Note (shop): shop_customer.code: downgrade() adds this dropped NOT NULL column back "
        "without a default, which fails on a table with rows" in out
    )
    assert "drop_column" in script
    if connections[alias].vendor == "mysql":
        # MySQL fills a new NOT NULL column with its type's implicit default
        # instead: the note is for the script's other backends.
        run("opsmigrate", "shop", "0002", database=alias)
        assert query(alias, "SELECT name, code FROM shop_customer") == [("Ada", 0)]
        return
    message = run_error("opsmigrate", "shop", "0002", database=alias)
    assert message.startswith("Unapplying shop.0003_") and "rolled back" in message
    assert " [X] 0003_" in run("opsshowmigrations", "shop", database=alias)
    assert query(alias, "SELECT name FROM shop_customer") == [("Ada",)]


def _columns(alias: str, table: str) -> list[dict[str, object]]:
    with inspect_db(alias) as inspector:
        return list(inspector.get_columns(table))


# -- scope: only the app's own tables ------------------------------------------

OTHER = """
from django.db import models


class Thing(models.Model):
    name = models.CharField(max_length=20)
"""

INVENTORY = """
from django.db import models


class Stock(models.Model):
    qty = models.IntegerField()

    class Meta:
        managed = False
"""

SHOP_WITH_FKS = """
from django.conf import settings
from django.db import models


class Sale(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    thing = models.ForeignKey("other.Thing", on_delete=models.CASCADE)
    stock = models.ForeignKey("inventory.Stock", on_delete=models.CASCADE)

    class Meta:
        managed = False
"""

FOREIGN = ("auth_", "django_", "other_", "inventory_", "alembic_ops_version")


def test_only_the_apps_own_tables(project: Project, alias: str) -> None:
    other = project.app("other", models=OTHER, ops=False)
    (other / "migrations").mkdir()
    (other / "migrations" / "__init__.py").write_text("")
    run("makemigrations", "other")
    run("migrate", "other", database=alias)
    project.app("inventory", models=INVENTORY)
    autogenerate("inventory", alias)
    package = project.app("shop", models=SHOP_WITH_FKS)
    # A table of the app's own, made by hand with op.execute(): not modelled, kept.
    project.script(
        "shop",
        "0001_audit",
        revision="a1",
        upgrade="op.execute('CREATE TABLE shop_audit (id integer PRIMARY KEY)')",
        downgrade="op.execute('DROP TABLE shop_audit')",
    )
    run("opsmigrate", "shop", database=alias)
    before = table_names(alias)

    out, script = autogenerate("shop", alias)
    assert out.count("Create table") == 1 and "Create table shop_sale" in out
    body = script[script.index("def upgrade") :]
    for prefix in FOREIGN:
        assert f'op.create_table("{prefix}' not in body
        assert f'batch_alter_table("{prefix}' not in body
        assert f'drop_table("{prefix}' not in body
    assert "shop_audit" not in body
    assert '["auth_user.id"]' in body and '["other_thing.id"]' in body
    assert '["inventory_stock.id"]' in body
    # It runs after what creates those tables, as makemigrations' dependencies.
    inventory_head = scripts(project.root / "inventory")[-1]
    namespace: dict[str, object] = {}
    exec(inventory_head.read_text(), namespace)
    assert f'depends_on = "{namespace["revision"]}"' in script
    assert '("other", "0001_initial")' in script and '("auth", "' in script

    # The model goes: its table is dropped, nothing else is.
    edit_models(project, "shop", "from django.db import models\n")
    project.write("shop/models.py", "from django.db import models\n\n\nclass Keep:\n    pass\n")
    reinstall(project, "shop")
    out = run("opsmakemigration", "shop", database=alias)
    assert out.count("Drop table") == 1 and "Drop table shop_sale" in out, out
    run("opsmigrate", "shop", database=alias)
    assert table_names(alias) == before
    assert len(scripts(package)) == 3


# -- the command ---------------------------------------------------------------


def test_check_and_dry_run(project: Project, alias: str) -> None:
    package = project.app("shop", models=BASE)
    with pytest.raises(SystemExit) as exit_info:
        run("opsmakemigration", "shop", "--check", database=alias)
    assert exit_info.value.code == 1
    assert scripts(package) == []

    out = run("opsmakemigration", "shop", "--dry-run", database=alias)
    assert "Ops migrations for 'shop':" in out and "- Create table shop_order" in out
    assert 'op.create_table(\n        "shop_order",' in out
    assert scripts(package) == []

    autogenerate("shop", alias)
    out = run("opsmakemigration", "shop", "--check", database=alias)
    assert out.strip() == "No changes detected in app 'shop'"
    out = run("opsmakemigration", "shop", "--dry-run", database=alias)
    assert out.strip() == "No changes detected in app 'shop'"
    assert len(scripts(package)) == 1


@needs_django_51
def test_check_prints_the_changes(project: Project, alias: str) -> None:
    project.app("shop", models=BASE)
    autogenerate("shop", alias)
    edit_models(project, "shop", ADD_COLUMNS)
    out = ""
    with pytest.raises(SystemExit):
        from io import StringIO

        from django.core.management import call_command

        buffer = StringIO()
        try:
            call_command("opsmakemigration", "shop", "--check", database=alias, stdout=buffer)
        finally:
            out = buffer.getvalue()
    assert "Ops migrations for 'shop':" in out
    assert "- Add column shop_order.total" in out


def check_output(label: str, alias: str) -> str:
    """What ``opsmakemigration <label> --check`` prints; it must exit 1."""
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("opsmakemigration", label, "--check", database=alias, stdout=out)
    assert exit_info.value.code == 1
    return out.getvalue()


def test_check_names_the_file_it_would_write(project: Project, alias: str) -> None:
    package = project.app("shop", models=BASE)
    autogenerate("shop", alias)
    edit_models(
        project,
        "shop",
        BASE.replace("name = ", "code = models.CharField(max_length=5, null=True)\n    name = "),
    )
    out = check_output("shop", alias)
    path = package / "migrations_ops" / "0002_shop_customer_code.py"
    # As makemigrations --check prints it: heading, the file, the changes.
    assert out.splitlines() == [
        "Ops migrations for 'shop':",
        f"  {path}",
        "    - Add column shop_customer.code",
    ]
    assert not path.exists()
    assert "0002_shop_customer_code.py" in run("opsmakemigration", "shop", database=alias)
    assert path.is_file()


TAG = """

class Tag(models.Model):
    label = models.CharField(max_length=20)

    class Meta:
        managed = False
"""


def test_files_are_named_after_the_change(project: Project, alias: str) -> None:
    """As makemigrations names them (Django's Migration.suggest_name())."""
    package = project.app("shop", models=BASE)
    models = BASE
    steps = [
        # (new models.py, expected file name)
        (BASE, "0001_initial.py"),
        (
            BASE.replace(
                "name = ", "code = models.CharField(max_length=5, null=True)\n    name = "
            ),
            "0002_shop_customer_code.py",
        ),
        (None, "0003_remove_shop_order_note.py"),
        (None, "0004_shop_tag.py"),
        # Several: the first ones within 52 characters, then "_and_more".
        (None, "0005_shop_customer_email_shop_customer_phone_and_more.py"),
        (None, "0006_delete_shop_tag.py"),
    ]
    for index, (source, expected) in enumerate(steps):
        if index == 2:
            source = models.replace("    note = models.CharField(max_length=20, null=True)\n", "")
        elif index == 3:
            source = models + TAG
        elif index == 4:
            source = models.replace(
                "    name = models.CharField(max_length=50)\n",
                "    name = models.CharField(max_length=80)\n"
                "    email = models.CharField(max_length=80, null=True)\n"
                "    phone = models.CharField(max_length=20, null=True)\n",
            )
        elif index == 5:
            source = models.replace(TAG, "")
        assert source is not None
        if index:
            edit_models(project, "shop", source)
        models = source
        out, _ = autogenerate("shop", alias)
        assert scripts(package)[-1].name == expected, out
    # -m wins.
    edit_models(
        project, "shop", models.replace("max_length=80)\n    email", "max_length=90)\n    email")
    )
    out = run("opsmakemigration", "shop", "-m", "longer names", database=alias)
    assert scripts(package)[-1].name == "0007_longer_names.py", out


def test_suggested_names() -> None:
    from alembic.operations import ops

    from django_alembic_ops.autogenerate import render

    def name(*operations: ops.MigrateOperation) -> str | None:
        return render.suggested_name(ops.UpgradeOps(list(operations)))

    column = sa.Column("total", sa.Integer())
    assert name(ops.AddColumnOp("shop_order", column)) == "shop_order_total"
    assert name(ops.DropColumnOp("shop_order", "total")) == "remove_shop_order_total"
    assert name(ops.AlterColumnOp("shop_order", "total")) == "alter_shop_order_total"
    assert name(ops.DropTableOp("shop_tag")) == "delete_shop_tag"
    assert name(ops.CreateIndexOp("shop_order_total_idx", "shop_order", ["total"])) == (
        "shop_order_total_idx"
    )
    # A new table is named after itself, not after its indexes.
    assert (
        name(
            ops.CreateTableOp("shop_sale", [sa.Column("id", sa.Integer())]),
            ops.CreateIndexOp("shop_sale_stock_id_696d11cc", "shop_sale", ["stock_id"]),
        )
        == "shop_sale"
    )
    assert name(
        *[ops.AddColumnOp("shop_order", sa.Column(f"c{i}", sa.Integer())) for i in range(5)]
    ) == ("shop_order_c0_shop_order_c1_shop_order_c2_and_more")
    # An operation with no name (here: SQL), like Django's RunSQL: a dated name.
    assert name(ops.AddColumnOp("shop_order", column), ops.ExecuteSQLOp("SELECT 1")) is None
    assert name() is None


def test_empty_still_writes_an_empty_migration(project: Project, alias: str) -> None:
    package = project.app("shop", models=BASE)
    run("opsmakemigration", "shop", "--empty", "-m", "by hand")
    (path,) = scripts(package)
    assert path.name == "0001_by_hand.py"
    assert "create_table" not in path.read_text()


def test_several_labels_and_no_labels(project: Project, alias: str) -> None:
    shop = project.app("shop", models=BASE)
    billing = project.app("billing", models=INVENTORY.replace("Stock", "Invoice"))
    unstarted = project.app("later", models=INVENTORY.replace("Stock", "Thing"), ops=False)

    out = run("opsmakemigration", "shop", "billing", database=alias)
    assert "Ops migrations for 'shop':" in out and "Ops migrations for 'billing':" in out
    assert len(scripts(shop)) == 1 and len(scripts(billing)) == 1
    run("opsmigrate", database=alias)
    out = run("opsmakemigration", "shop", "billing", database=alias)
    assert out.strip() == "No changes detected in apps 'shop', 'billing'"

    # No labels: every app with a target and a migrations_ops package (an
    # app's first migration needs its label, as with makemigrations).
    assert run("opsmakemigration", database=alias).strip() == "No changes detected"
    assert not (unstarted / "migrations_ops").exists()
    edit_models(project, "billing", INVENTORY.replace("Stock", "Invoice") + COUPON_PLAIN)
    out = run("opsmakemigration", database=alias)
    assert "Ops migrations for 'billing':" in out and "shop" not in out
    assert len(scripts(billing)) == 2


COUPON_PLAIN = """

class Coupon(models.Model):
    code = models.CharField(max_length=12)

    class Meta:
        managed = False
"""


def test_no_target_is_a_clear_error(project: Project) -> None:
    project.app("shop", models=OTHER)
    message = run_error("opsmakemigration", "shop")
    assert "\n" not in message
    assert "Meta.managed = False" in message and "target_metadata" in message
    assert "--empty" in message


def test_database_must_be_at_the_apps_head(project: Project, alias: str) -> None:
    project.app("shop", models=BASE)
    run("opsmakemigration", "shop", database=alias)
    message = run_error("opsmakemigration", "shop", database=alias)
    assert message == (
        f"Database '{alias}' is not at the head of the ops migrations of app 'shop'; "
        f"run 'python manage.py opsmigrate shop --database {alias}' first."
    )


def test_database_option_chooses_the_database(project: Project, pg_alias: str) -> None:
    # The database compared is the one --database names (the script runs
    # on every backend: see test_autogenerate_portable).
    project.app("shop", models=BASE)
    out = run("opsmakemigration", "shop", database=pg_alias)
    assert "postgresql.JSONB" in out or "Ops migrations for 'shop':" in out
    run("opsmigrate", "shop", database=pg_alias)
    assert_no_changes("shop", pg_alias)
    assert "opsmigrate shop --database default" in run_error("opsmakemigration", "shop", "--check")


# -- target_metadata -----------------------------------------------------------

TARGET_METADATA = """
import sqlalchemy as sa

target_metadata = sa.MetaData()

sa.Table(
    "shop_event",
    target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False, index=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("auth_user.id")),
)
# Only there for the foreign key: Django's table, never compared.
sa.Table("auth_user", target_metadata, sa.Column("id", sa.Integer, primary_key=True))
"""


def test_target_metadata(project: Project, alias: str) -> None:
    package = project.app("shop", models=OTHER)  # a managed model: not the target
    (package / "migrations_ops" / "__init__.py").write_text(TARGET_METADATA)
    reinstall(project, "shop")
    out, script = autogenerate("shop", alias)
    assert out.count("Create table") == 1 and "Create table shop_event" in out
    assert "auth_user" not in out and "shop_thing" not in out
    assert_no_changes("shop", alias)

    (package / "migrations_ops" / "__init__.py").write_text(
        TARGET_METADATA.replace(
            '    sa.Column("user_id"', '    sa.Column("note", sa.Text),\n    sa.Column("user_id"'
        )
    )
    reinstall(project, "shop")
    out, script = autogenerate("shop", alias)
    assert "Add column shop_event.note" in out
    assert_no_changes("shop", alias)


def test_target_metadata_must_be_metadata(project: Project) -> None:
    package = project.app("shop", models=BASE)
    (package / "migrations_ops" / "__init__.py").write_text("target_metadata = 'nope'\n")
    reinstall(project, "shop")
    message = run_error("opsmakemigration", "shop")
    assert message == "shop.migrations_ops.target_metadata must be a sqlalchemy MetaData, not str."


# -- the written script --------------------------------------------------------


def test_imports_only_what_is_used(project: Project, alias: str) -> None:
    project.app("shop", models=BASE)
    out, script = autogenerate("shop", alias)
    # PostgreSQL's JSONB variant, whichever backend it was compared with.
    assert "postgresql.JSONB" in script
    assert "from sqlalchemy.dialects import postgresql" in script
    assert "import sqlalchemy as sa" in script

    edit_models(
        project,
        "shop",
        with_order_meta(
            BASE,
            "        managed = False\n"
            '        indexes = [models.Index(fields=["qty"], name="shop_qty")]\n',
        ),
    )
    out, script = autogenerate("shop", alias)
    assert "Create index shop_qty on shop_order" in out
    head = script[: script.index("revision =")]
    assert "from alembic import op" in head
    assert "sqlalchemy" not in head


def ruff_command() -> list[str]:
    command = writer.formatter_command("ruff")
    if command is None:
        pytest.skip("ruff is not installed (pip install -e .[dev])")
    return command


def test_script_is_formatted(project: Project, alias: str) -> None:
    package = project.app("shop", models=BASE)
    autogenerate("shop", alias)
    (path,) = scripts(package)
    checked = subprocess.run(
        [*ruff_command(), "format", "--check", str(path)], capture_output=True, cwd=path.parent
    )
    assert checked.returncode == 0, checked.stdout
    assert "\n\n\n\n" not in path.read_text()


# A foreign key to Django's user (a long django_dependencies entry), indexes.
WITH_USER = BASE.replace(
    "    qty = models.PositiveIntegerField()\n",
    "    qty = models.PositiveIntegerField()\n"
    "    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)\n",
).replace(
    "from django.db import models\n",
    "from django.conf import settings\nfrom django.db import models\n",
)


def test_script_reads_like_hand_written_code(
    project: Project, alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ruff = ruff_command()
    monkeypatch.setattr(writer, "formatter_command", lambda tool: None)  # none installed
    package = project.app("shop", models=WITH_USER)
    autogenerate("shop", alias)
    # Columns added and altered, indexes and constraints: batch_alter_table on SQLite.
    edit_models(project, "shop", with_order_meta(ALTER_COLUMN, INDEXES_META))
    autogenerate("shop", alias)
    first, second = scripts(package)
    assert "django_dependencies: list[tuple[str, str]] = [\n" in first.read_text()
    if connections[alias].vendor == "sqlite":
        assert "with op.batch_alter_table(" in second.read_text()
    for path in (first, second):
        source = path.read_text()
        # Already as ruff formats it (its defaults: no project config here).
        formatted = subprocess.run(
            [*ruff, "format", "--isolated", "-"],
            input=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert source == formatted
        assert "\n\n\n\n" not in source and "    # ### end" in source
        linted = subprocess.run(
            [*ruff, "check", "--isolated", "--select", "E,F,W", str(path)],
            capture_output=True,
            text=True,
        )
        assert linted.returncode == 0, linted.stdout


def test_script_is_laid_out_when_the_formatter_fails(
    project: Project, alias: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Alembic renders one line an op call; the writer lays the code out itself only
    when no formatter will. A formatter that fails must not leave those lines."""
    ruff = ruff_command()
    broken = tmp_path / "broken-ruff"
    broken.write_text("#!/bin/sh\nexit 2\n")
    broken.chmod(0o755)
    monkeypatch.setattr(writer, "formatter_command", lambda tool: [str(broken)])
    package = project.app("shop", models=WITH_USER)
    autogenerate("shop", alias)
    (path,) = scripts(package)
    source = path.read_text()
    formatted = subprocess.run(
        [*ruff, "format", "--isolated", "-"], input=source, capture_output=True, text=True
    ).stdout
    assert source == formatted


# -- SQLite: what a table rebuild must keep ------------------------------------

FRAGILE = """
from django.db import models
from django.db.models.functions import Lower


class Customer(models.Model):
    name = models.CharField(max_length=50)
    rank = models.IntegerField()
    code = models.CharField(max_length=10, unique=True)

    class Meta:
        managed = False
        indexes = [
            models.Index(Lower("name"), name="shop_customer_lower_name"),
            models.Index(fields=["-rank", "name"], name="shop_customer_rank_desc"),
        ]
"""


def test_rebuild_keeps_what_reflection_cannot_see(project: Project, alias: str) -> None:
    project.app("shop", models=FRAGILE)
    autogenerate("shop", alias)
    indexes_before = _index_sql(alias)
    # A change that rebuilds the table on SQLite.
    edit_models(project, "shop", FRAGILE.replace("max_length=50", "max_length=80"))
    out, script = autogenerate("shop", alias)
    assert "Alter column shop_customer.name" in out
    assert _index_sql(alias) == indexes_before
    assert_no_changes("shop", alias)
    if connections[alias].vendor == "sqlite":
        assert "AUTOINCREMENT" in table_sql(alias, "shop_customer")
        # The unique column is still unique.
        execute(alias, "INSERT INTO shop_customer (name, rank, code) VALUES ('a', 1, 'x')")
        with pytest.raises(Exception, match="UNIQUE"):
            execute(alias, "INSERT INTO shop_customer (name, rank, code) VALUES ('b', 2, 'x')")
    # And downgrade gives them back as they were.
    run("opsmigrate", "shop", "0001", database=alias)
    assert _index_sql(alias) == indexes_before


def mysql_index_definitions(alias: str, table_pattern: str) -> list[tuple[str, str]]:
    """MySQL keeps no statement: each index as ``information_schema`` describes it.

    ``[UNIQUE ]INDEX <name> ON <table> USING <type> (<column>[(<prefix>)][ DESC], ...)``,
    for the tables whose names are ``LIKE table_pattern``.
    """
    sql = (
        "SELECT table_name, index_name, non_unique, index_type, column_name, sub_part, "
        "collation FROM information_schema.statistics WHERE table_schema = DATABASE() "
        "AND table_name LIKE %s ORDER BY table_name, index_name, seq_in_index"
    )
    indexes: dict[tuple[str, str, int, str], list[str]] = {}
    for table, name, non_unique, kind, column, prefix, collation in query(
        alias, sql, [table_pattern]
    ):
        part = f"{column}({prefix})" if prefix else column
        indexes.setdefault((table, name, non_unique, kind), []).append(
            f"{part} DESC" if collation == "D" else part
        )
    return [
        (
            name,
            f"{'' if non_unique else 'UNIQUE '}INDEX {name} ON {table} USING {kind} "
            f"({', '.join(columns)})",
        )
        for (table, name, non_unique, kind), columns in indexes.items()
    ]


def _index_sql(alias: str) -> dict[str, str]:
    if connections[alias].vendor == "mysql":
        return dict(mysql_index_definitions(alias, "shop_customer"))
    if connections[alias].vendor == "sqlite":
        rows = query(
            alias,
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
            "AND sql IS NOT NULL",
            ["shop_customer"],
        )
    else:
        rows = query(
            alias,
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            ["shop_customer"],
        )
    return {str(name): str(sql) for name, sql in rows}


class _ShopElsewhere:
    """A router that keeps app 'shop' off the default database."""

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        return db != "default" if app_label == "shop" else None


def test_routers(project: Project) -> None:
    from django.test.utils import override_settings

    project.app("shop", models=BASE)
    with override_settings(DATABASE_ROUTERS=[_ShopElsewhere()]):
        assert run("opsmakemigration").strip() == "No changes detected"
        message = run_error("opsmakemigration", "shop")
    assert "routers do not allow app 'shop' on database 'default'" in message


LITERALS = """
from django.db import models
from django.db.models import F, Q


class Item(models.Model):
    price = models.IntegerField()
    qty = models.IntegerField()
    total = models.GeneratedField(
        expression=F("price") * F("qty"), output_field=models.IntegerField(), db_persist=True
    )
    label = models.CharField(max_length=20, db_default="100%", db_collation="{collation}")

    class Meta:
        managed = False
        indexes = [
            models.Index(fields=["label"], condition=Q(label__startswith="a%b"), name="lbl")
        ]
        constraints = [models.CheckConstraint(condition=Q(label__contains="%"), name="pct")]
"""


@needs_django_51
def test_sql_text_is_kept_as_written(project: Project, alias: str) -> None:
    """'%' in defaults, conditions and checks; collations; generated columns."""
    collation = {"sqlite": "NOCASE", "mysql": "utf8mb4_bin"}.get(connections[alias].vendor, "C")
    project.app("shop", models=LITERALS.replace("{collation}", collation))
    out, script = autogenerate("shop", alias)
    assert "server_default=sa.text(\"'100%'\")" in script
    assert_no_changes("shop", alias)
    execute(alias, "INSERT INTO shop_item (price, qty) VALUES (2, 3)")
    assert query(alias, "SELECT label, total FROM shop_item") == [("100%", 6)]
    with pytest.raises(Exception, match="pct|CHECK"):
        execute(alias, "INSERT INTO shop_item (price, qty, label) VALUES (1, 1, 'none')")
    # Offline SQL, as a DBA runs it: '%' as written whatever the driver's
    # parameter style (MySQLdb's and psycopg's would double it).
    sql = run("opssqlmigrate", "shop", "0001", database=alias)
    assert "DEFAULT '100%'" in sql and "'100%%'" not in sql

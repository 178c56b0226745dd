"""opsmakemigration's autogenerate: round trips, scope, command options."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connections

from .conftest import Project, inspect_db, query, run, table_names

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
    assert out.strip() == f"No changes detected in app '{label}'"


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

"""``manage.py migrate`` runs ops migrations after Django's (post_migrate)."""

from __future__ import annotations

import pytest
from django.test.utils import override_settings

from .conftest import Project, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MODELS = """
from django.db import models

class Product(models.Model):
    name = models.CharField(max_length=50)
"""

DJANGO_0001 = """
from django.db import migrations, models

class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel("Product", [
            ("id", models.AutoField(primary_key=True)),
            ("name", models.CharField(max_length=50)),
        ]),
    ]
"""

DJANGO_0002 = """
from django.db import migrations, models

class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [
        migrations.AddField("Product", "price", models.IntegerField(default=0)),
    ]
"""

VIEW = {
    "upgrade": 'op.execute("CREATE VIEW shop_product_names AS SELECT name FROM shop_product")',
    "downgrade": 'op.execute("DROP VIEW shop_product_names")',
}


@pytest.fixture
def shop(project: Project) -> Project:
    """App shop: Django model + 2 Django migrations; an ops view needing Django 0001."""
    project.app("shop", models=MODELS)
    project.write("shop/migrations/__init__.py", "")
    project.write("shop/migrations/0001_initial.py", DJANGO_0001)
    project.write("shop/migrations/0002_price.py", DJANGO_0002)
    project.script(
        "shop",
        "0001_names_view",
        revision="v1",
        django_dependencies=[("shop", "0001_initial")],
        **VIEW,
    )
    return project


def views(alias: str) -> set[str]:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        infos = connections[alias].introspection.get_table_list(cursor)
    return {info.name for info in infos if info.type == "v"}


def test_migrate_runs_ops_after_django(shop: Project, alias: str) -> None:
    out = run("migrate", database=alias)
    assert out.index("Applying shop.0002_price... OK") < out.index("Running ops migrations:")
    assert "  Applying shop.0001_names_view... OK" in out
    assert "shop_product_names" in views(alias)
    # Up to date: a second migrate is silent about ops.
    assert "ops" not in run("migrate", database=alias)


def test_run_with_migrate_off(shop: Project, alias: str) -> None:
    with override_settings(ALEMBIC_OPS={"RUN_WITH_MIGRATE": False}):
        out = run("migrate", database=alias)
    assert "Running ops migrations" not in out
    assert "shop_product_names" not in views(alias)
    assert "shop_product" in table_names(alias)


def test_unapplied_django_dependency_refused(shop: Project, alias: str) -> None:
    message = run_error("opsmigrate", database=alias)
    assert message == (
        "Ops migration shop.0001_names_view depends on Django migration shop.0001_initial, "
        f"which is not applied on database '{alias}'. "
        "Run 'python manage.py migrate shop 0001_initial' first."
    )
    assert "alembic_ops_version" not in table_names(alias)


def test_partial_migrate_skips_ops_with_a_notice(shop: Project, alias: str) -> None:
    shop.script(
        "shop",
        "0002_needs_price",
        revision="v2",
        down="v1",
        django_dependencies=[("shop", "0002_price")],
    )
    out = run("migrate", "shop", "0001", database=alias)
    assert "Ops migrations not applied: Ops migration shop.0002_needs_price depends on" in out
    assert "shop_product_names" not in views(alias)
    out = run("migrate", database=alias)
    assert "  Applying shop.0001_names_view... OK" in out
    assert "  Applying shop.0002_needs_price... OK" in out


def test_migrate_reports_ops_failure_as_command_error(shop: Project, alias: str) -> None:
    shop.script(
        "shop",
        "0002_broken",
        revision="v2",
        down="v1",
        upgrade='op.execute("SELECT * FROM missing_table")',
    )
    message = run_error("migrate", database=alias)
    assert message.startswith("Applying shop.0002_broken failed and was rolled back:")
    assert "shop_product_names" in views(alias)

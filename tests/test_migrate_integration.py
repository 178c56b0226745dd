"""``manage.py migrate`` runs ops migrations after Django's (post_migrate)."""

from __future__ import annotations

import pytest
from django.test.utils import override_settings

from .conftest import Project, one_table, query, run, run_error, table_names

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


def applied(alias: str) -> list[str]:
    if "alembic_ops_version" not in table_names(alias):
        return []
    return sorted(row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version"))


def test_partial_migrate_runs_what_it_can(shop: Project, alias: str) -> None:
    """migrate shop 0001: ops migrations whose Django migrations are applied run, the rest wait."""
    # A table, not the view: on SQLite Django's 0002 rebuilds shop_product,
    # which a view reading it would stop.
    shop.script(
        "shop",
        "0001_names_view",
        revision="v1",
        django_dependencies=[("shop", "0001_initial")],
        **one_table("shop_extra"),
    )
    shop.script(
        "shop",
        "0002_needs_price",
        revision="v2",
        down="v1",
        django_dependencies=[("shop", "0002_price")],
    )
    shop.script("shop", "0003_after", revision="v3", down="v2")
    shop.app("depot")
    shop.script("depot", "0001_free", revision="d1", **one_table("depot_free"))
    shop.script("depot", "0002_needs_shop", revision="d2", down="d1", depends_on="v2")
    out = run("migrate", "shop", "0001", database=alias)
    lines = out.splitlines()
    assert lines[-7] == "Running ops migrations:"
    # Both apps' runnable migrations, in an order Alembic chooses.
    assert sorted(lines[-6:-4]) == [
        "  Applying depot.0001_free... OK",
        "  Applying shop.0001_names_view... OK",
    ]
    assert lines[-4:] == [
        "Ops migrations waiting for Django migrations:",
        "  depot.0002_needs_shop needs shop.0002_price",
        "  shop.0002_needs_price needs shop.0002_price",
        "  shop.0003_after needs shop.0002_price",
    ]
    assert {"shop_extra", "depot_free"} <= table_names(alias)
    assert applied(alias) == ["d1", "v1"]
    out = run("migrate", database=alias)
    assert "  Applying shop.0002_needs_price... OK" in out
    assert "  Applying depot.0002_needs_shop... OK" in out
    assert "waiting" not in out
    assert applied(alias) == ["d2", "v3"]


@pytest.mark.parametrize("verbosity", [0, 1])
def test_missing_django_dependency_fails_through_post_migrate(
    shop: Project, alias: str, verbosity: int
) -> None:
    """Also with EXTEND_MIGRATE off: one line, exit 1, no ops migration of any app runs."""
    shop.script(
        "shop", "0002_typo", revision="v2", down="v1", django_dependencies=[("shop", "0009_nope")]
    )
    shop.app("depot")
    shop.script("depot", "0001_free", revision="d1", **one_table("depot_free"))
    with override_settings(ALEMBIC_OPS={"EXTEND_MIGRATE": False}):
        message = run_error("migrate", database=alias, verbosity=verbosity)
    assert message == (
        "Ops migration shop.0002_typo depends on Django migration shop.0009_nope, "
        "which does not exist. Fix django_dependencies in 0002_typo.py."
    )
    assert applied(alias) == []
    assert "depot_free" not in table_names(alias)
    assert "shop_product_names" not in views(alias)


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


SQUASHED = """
from django.db import migrations, models

class Migration(migrations.Migration):
    initial = True
    replaces = [("shop", "0001_initial"), ("shop", "0002_price")]
    dependencies = []
    operations = [
        migrations.CreateModel("Product", [
            ("id", models.AutoField(primary_key=True)),
            ("name", models.CharField(max_length=50)),
            ("price", models.IntegerField(default=0)),
        ]),
    ]
"""

DJANGO_0003_RUNS_OPS = """
from django.db import migrations
from django_alembic_ops.operations import RunOpsMigrations

class Migration(migrations.Migration):
    dependencies = [("shop", "0002_price")]
    operations = [RunOpsMigrations("shop")]
"""


@pytest.mark.parametrize("dependency", ["0001_squashed_0002_price", "0002_price"])
def test_dependency_on_a_squashed_migration(project: Project, alias: str, dependency: str) -> None:
    """The squashed name counts as applied before Django records it (at the end of migrate)."""
    project.app("shop", models=MODELS)
    project.write("shop/migrations/__init__.py", "")
    project.write("shop/migrations/0001_initial.py", DJANGO_0001)
    project.write("shop/migrations/0002_price.py", DJANGO_0002)
    project.write("shop/migrations/0001_squashed_0002_price.py", SQUASHED)
    project.write("shop/migrations/0003_ops.py", DJANGO_0003_RUNS_OPS)
    project.script(
        "shop",
        "0001_extra",
        revision="s1",
        django_dependencies=[("shop", dependency)],
        **one_table("shop_extra"),
    )
    out = run("migrate", database=alias)
    assert "  Applying shop.0001_squashed_0002_price... OK" in out
    assert "  Applying shop.0003_ops... OK" in out
    assert "shop_extra" in table_names(alias)
    assert applied(alias) == ["s1"]


def test_receiver_runs_only_for_its_own_app_config(shop: Project, alias: str) -> None:
    """Django keys post_migrate senders by id(): after override_settings(INSTALLED_APPS)
    a receiver connected for an old registry can fire for another app's config."""
    from django.apps import apps

    from django_alembic_ops.integration import run_after_migrate

    with override_settings(ALEMBIC_OPS={"RUN_WITH_MIGRATE": False}):
        run("migrate", database=alias)
    run_after_migrate(apps.get_app_config("auth"), using=alias, verbosity=0)
    assert applied(alias) == []
    run_after_migrate(apps.get_app_config("django_alembic_ops"), using=alias, verbosity=0)
    assert applied(alias) == ["v1"]

"""Broken scripts and graphs: one clear line naming the file, nothing changed."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import django
import pytest
from django.test.utils import override_settings

from django_alembic_ops import discovery

from .conftest import Project, one_table, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def shop(project: Project) -> Project:
    project.app("shop")
    project.script("shop", "0001_initial", revision="r1", **one_table("shop_a"))
    return project


def assert_nothing_changed(alias: str) -> None:
    assert not {"shop_a", "alembic_ops_version"} & table_names(alias)


def test_syntax_error_names_file_and_line(shop: Project, alias: str) -> None:
    path = shop.write(
        "shop/migrations_ops/0002_bad.py", "revision = 'r2'\ndown_revision = 'r1'\ndef (:\n"
    )
    message = run_error("opsmigrate", database=alias)
    # Once: Python's own text of a SyntaxError repeats "(0002_bad.py, line 3)".
    assert message == f"{path}, line 3: SyntaxError: invalid syntax"
    assert_nothing_changed(alias)
    path.write_text("revision = 'r2'\ndown_revision = 'r1'\ndef upgrade():\n    pass\n  pass\n")
    message = run_error("opsmigrate", database=alias)
    assert (
        message
        == f"{path}, line 5: IndentationError: unindent does not match any outer indentation level"
    )
    # A syntax error in a module the script imports: the script's line, then Python's text.
    shop.write("shop/helper.py", "x = (\n")
    path.write_text("revision = 'r2'\ndown_revision = 'r1'\nfrom shop import helper\n")
    message = run_error("opsmigrate", database=alias)
    assert message == f"{path}, line 3: SyntaxError: '(' was never closed (helper.py, line 1)"


def test_import_error_names_file_and_line(shop: Project, alias: str) -> None:
    shop.write(
        "shop/migrations_ops/0002_bad.py",
        "revision = 'r2'\ndown_revision = 'r1'\nimport not_a_module_anywhere\n",
    )
    message = run_error("opsmigrate", database=alias)
    assert "0002_bad.py, line 3: ModuleNotFoundError: No module named 'not_a_module_anywhere'" in (
        message
    )
    assert_nothing_changed(alias)


def test_missing_revision_variable(shop: Project, alias: str) -> None:
    shop.write("shop/migrations_ops/0002_bad.py", "down_revision = 'r1'\n")
    message = run_error("opsmigrate", database=alias)
    assert "0002_bad.py" in message and "revision" in message
    assert_nothing_changed(alias)


def test_duplicate_revision_ids(shop: Project, alias: str) -> None:
    shop.script("shop", "0002_again", revision="r1", down=None, branch_labels=None)
    message = run_error("opsmigrate", database=alias)
    assert "Revision id 'r1' is used by two scripts:" in message
    assert "0001_initial.py" in message and "0002_again.py" in message
    assert_nothing_changed(alias)


def test_missing_down_revision(shop: Project, alias: str) -> None:
    shop.script("shop", "0002_orphan", revision="r2", down="nope")
    message = run_error("opsmigrate", database=alias)
    assert message.startswith("Broken ops migration graph:")
    assert "nope" in message
    assert_nothing_changed(alias)


def test_cycle(project: Project, alias: str) -> None:
    project.app("shop")
    project.script("shop", "0001_a", revision="a", down="b", branch_labels=None)
    project.script("shop", "0002_b", revision="b", down="a", branch_labels=None)
    message = run_error("opsmigrate", database=alias)
    assert "Broken ops migration graph:" in message or "ycle" in message
    assert "\n" not in message


def test_cross_app_down_revision_refused(shop: Project, alias: str) -> None:
    shop.app("orders")
    shop.script("orders", "0001_initial", revision="o1", down="r1", branch_labels=("orders",))
    message = run_error("opsmigrate", database=alias)
    assert message == (
        "orders.0001_initial has down_revision shop.0001_initial of another app; "
        "use depends_on = 'r1' for cross-app order."
    )


def test_fixed_script_is_picked_up(shop: Project, alias: str) -> None:
    path = shop.write("shop/migrations_ops/0002_bad.py", "revision = 'r2'\ndef (:\n")
    run_error("opsmigrate", database=alias)
    path.write_text(
        path.read_text().replace(
            "def (:", "down_revision = 'r1'\ndef upgrade(): pass\ndef downgrade(): pass"
        )
    )
    out = run("opsmigrate", database=alias)
    assert "Applying shop.0002_bad... OK" in out


class OnlyDefault:
    """Routes app 'shop' to the default database only."""

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        if app_label == "shop":
            return db == "default"
        return None


def test_router_excludes_app(shop: Project, pg_alias: str) -> None:
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.OnlyDefault"]):
        out = run("opsmigrate", database=pg_alias)
        assert "No ops migrations to apply." in out
        assert "shop_a" not in table_names(pg_alias)
        run("opsmigrate", "shop", database=pg_alias)
        assert "shop_a" not in table_names(pg_alias)
        run("opsmigrate")
        assert "shop_a" in table_names("default")


def test_router_refuses_dependency_on_excluded_app(shop: Project, pg_alias: str) -> None:
    shop.app("orders")
    shop.script("orders", "0001_initial", revision="o1", depends_on="r1", **one_table("orders_a"))
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.OnlyDefault"]):
        message = run_error("opsmigrate", database=pg_alias)
    assert "shop.0001_initial would run on database 'postgres'" in message
    assert "orders_a" not in table_names(pg_alias)


def test_unknown_database_alias(shop: Project) -> None:
    assert "Unknown database alias 'nope'" in run_error("opsmigrate", database="nope")
    # --sql finds the vendor without a connection; a bad alias is still one line.
    message = run_error("opsmigrate", "--sql", database="nope")
    assert message == "Unknown database alias 'nope'; it must be a key of DATABASES."


class ShopToOtherOrdersToDefault:
    """shop only on 'other', orders only on 'default'."""

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        if app_label == "shop":
            return db == "other"
        if app_label == "orders":
            return db == "default"
        return None


def test_router_two_sqlite_databases(shop: Project) -> None:
    shop.app("orders")
    shop.script("orders", "0001_initial", revision="o1", **one_table("orders_a"))
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.ShopToOtherOrdersToDefault"]):
        run("opsmigrate")
        run("opsmigrate", database="other")
        assert "orders_a" in table_names("default") and "shop_a" not in table_names("default")
        assert "shop_a" in table_names("other") and "orders_a" not in table_names("other")
        shown = run("opsshowmigrations", database="other")
        assert " [X] 0001_initial" in shown


def test_depends_on_unknown_revision(shop: Project, alias: str) -> None:
    shop.app("orders")
    shop.script("orders", "0001_initial", revision="o1", depends_on="nope", **one_table("orders_a"))
    message = run_error("opsmigrate", database=alias)
    assert message.startswith("Broken ops migration graph:")
    assert "nope" in message
    assert_nothing_changed(alias)


def test_zero_on_app_without_migrations(shop: Project, alias: str) -> None:
    shop.app("orders")  # an empty migrations_ops package
    message = run_error("opsmigrate", "orders", "zero", database=alias)
    assert message == (
        "App 'orders' has no ops migrations yet (its orders.migrations_ops package is empty). "
        "Create one with 'python manage.py opsmakemigration orders'."
    )
    assert_nothing_changed(alias)


def test_unknown_django_dependency(shop: Project, alias: str) -> None:
    shop.script(
        "shop", "0002_x", revision="r2", down="r1", django_dependencies=[("auth", "0999_nope")]
    )
    message = run_error("opsmigrate", database=alias)
    assert message == (
        "Ops migration shop.0002_x depends on Django migration auth.0999_nope, which does not "
        "exist. Fix django_dependencies in 0002_x.py."
    )
    assert_nothing_changed(alias)
    shop.script("shop", "0002_x", revision="r2", down="r1", django_dependencies=[("nope", "0001")])
    assert "no installed app has the label 'nope'" in run_error("opsmigrate", database=alias)


def test_app_without_ops_package(project: Project, alias: str) -> None:
    """Creating the package is suggested only for the project's own apps."""
    project.app("orders", ops=False)
    assert run_error("opsmigrate", "orders", database=alias) == (
        "App 'orders' does not have ops migrations (no orders.migrations_ops package). "
        "Create one with 'python manage.py opsmakemigration orders --empty'."
    )
    # Django's own app lives in site-packages: opsmakemigration would write there.
    assert run_error("opsmigrate", "auth", database=alias) == (
        "App 'auth' does not have ops migrations: django.contrib.auth is an installed package, "
        "not part of this project, and ships none. Put ops migrations that change its tables "
        "in one of your own apps."
    )


def test_no_script_is_written_into_an_installed_package(project: Project, alias: str) -> None:
    """opsmakemigration never writes into site-packages (nor suggests it)."""
    expected = (
        "App 'auth' is an installed package (django.contrib.auth), not part of this project; "
        "ops migrations cannot be written into it. Put ops migrations that change its tables "
        "in one of your own apps."
    )
    auth_folder = Path(django.__file__).parent / "contrib" / "auth" / "migrations_ops"
    assert run_error("opsmakemigration", "auth", "--empty", database=alias) == expected
    assert run_error("opsmakemigration", "auth", database=alias) == expected
    assert not auth_folder.exists()


def test_which_apps_are_the_projects(tmp_path: Path) -> None:
    paths = sysconfig.get_paths()
    for outside in [
        Path(paths["purelib"]) / "someapp",
        Path(paths["platlib"]) / "someapp",
        Path(paths["stdlib"]) / "json",
        Path(django.__file__).parent / "contrib" / "admin",
        Path("/usr/lib/python3/dist-packages/someapp"),
        Path("/opt/elsewhere/site-packages/someapp"),
    ]:
        assert not discovery.inside_project(outside), outside
    assert discovery.inside_project(tmp_path / "shop")
    assert discovery.inside_project(Path.cwd() / "example_project" / "shop")


def test_empty_message_gets_default_name(project: Project) -> None:
    package = project.app("shop", ops=False)
    run("opsmakemigration", "shop", "-m", "", "--empty")
    run("opsmakemigration", "shop", "-m", "!!!", "--empty")
    names = sorted(p.name for p in (package / "migrations_ops").glob("0*.py"))
    assert names[0] == "0001_initial.py"
    assert names[1].startswith("0002_auto_")

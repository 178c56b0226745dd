"""opsmigrate end to end: apply, target, zero, plan, fake, check, output."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from .conftest import Project, inspect_db, one_table, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def two_apps(project: Project) -> Project:
    """shop: 0001..0003; orders: 0001 (depends on shop 0002), 0002."""
    project.app("shop")
    project.app("orders")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script("shop", "0002_b", revision="s2", down="s1", **one_table("shop_b"))
    project.script("shop", "0003_c", revision="s3", down="s2", **one_table("shop_c"))
    project.script(
        "orders", "0001_initial", revision="o1", depends_on="s2", **one_table("orders_a")
    )
    project.script("orders", "0002_x", revision="o2", down="o1", **one_table("orders_b"))
    return project


def applied(alias: str) -> dict[str, list[str]]:
    out = run("opsshowmigrations", database=alias)
    result: dict[str, list[str]] = {}
    label = ""
    for line in out.splitlines():
        if not line.startswith(" "):
            label = line
            result[label] = []
        elif line.startswith(" [X] "):
            result[label].append(line[5:])
    return result


def test_migrate_all_in_dependency_order(two_apps: Project, alias: str) -> None:
    out = run("opsmigrate", database=alias)
    assert "Operations to perform:\n  Apply all ops migrations: orders, shop\n" in out
    assert "Running ops migrations:\n" in out
    lines = [line for line in out.splitlines() if line.startswith("  Applying")]
    assert lines == [
        "  Applying shop.0001_initial... OK",
        "  Applying shop.0002_b... OK",
        "  Applying orders.0001_initial... OK",
        "  Applying orders.0002_x... OK",
        "  Applying shop.0003_c... OK",
    ]
    assert {"shop_a", "shop_b", "shop_c", "orders_a", "orders_b"} <= table_names(alias)
    again = run("opsmigrate", database=alias)
    assert "  No ops migrations to apply." in again


def test_app_label_brings_dependencies(two_apps: Project, alias: str) -> None:
    run("opsmigrate", "orders", database=alias)
    assert applied(alias) == {
        "shop": ["0001_initial", "0002_b"],
        "orders": ["0001_initial", "0002_x"],
    }
    assert "shop_c" not in table_names(alias)


def test_target_up_and_down(two_apps: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0002", database=alias)
    assert applied(alias)["shop"] == ["0001_initial", "0002_b"]
    run("opsmigrate", database=alias)
    out = run("opsmigrate", "shop", "0001", database=alias)
    assert "  Target specific ops migration: 0001_initial, from shop" in out
    # Dependents in other apps go first.
    assert [line for line in out.splitlines() if "Unapplying" in line] == [
        "  Unapplying shop.0003_c... OK",
        "  Unapplying orders.0002_x... OK",
        "  Unapplying orders.0001_initial... OK",
        "  Unapplying shop.0002_b... OK",
    ]
    assert applied(alias) == {"shop": ["0001_initial"], "orders": []}
    assert table_names(alias) & {"shop_b", "shop_c", "orders_a", "orders_b"} == set()


def test_zero_unapplies_dependents_first(two_apps: Project, alias: str) -> None:
    run("opsmigrate", "orders", database=alias)
    out = run("opsmigrate", "shop", "zero", database=alias)
    assert "  Unapply all ops migrations: shop" in out
    assert out.index("Unapplying orders.0001_initial") < out.index("Unapplying shop.0002_b")
    assert applied(alias) == {"shop": [], "orders": []}
    assert table_names(alias) & {"shop_a", "shop_b", "orders_a", "orders_b"} == set()


def test_target_by_full_name_and_revision_id(two_apps: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0002_b", database=alias)
    assert applied(alias)["shop"] == ["0001_initial", "0002_b"]
    run("opsmigrate", "shop", "s1", database=alias)
    assert applied(alias)["shop"] == ["0001_initial"]


def test_plan_changes_nothing(two_apps: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0001", database=alias)
    out = run("opsmigrate", "--plan", database=alias)
    assert out.splitlines() == [
        "Planned operations:",
        "  Apply shop.0002_b",
        "  Apply orders.0001_initial",
        "  Apply orders.0002_x",
        "  Apply shop.0003_c",
    ]
    assert applied(alias)["shop"] == ["0001_initial"]
    out = run("opsmigrate", "shop", "zero", "--plan", database=alias)
    assert out.splitlines() == ["Planned operations:", "  Unapply shop.0001_initial"]
    assert "shop_a" in table_names(alias)


def test_fake_records_without_running(two_apps: Project, alias: str) -> None:
    out = run("opsmigrate", "shop", "0001", "--fake", database=alias)
    assert "  Applying shop.0001_initial... FAKED" in out
    assert applied(alias)["shop"] == ["0001_initial"]
    assert "shop_a" not in table_names(alias)
    run("opsmigrate", "shop", "zero", "--fake", database=alias)
    assert applied(alias)["shop"] == []


def test_check_exit_status(two_apps: Project, alias: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("opsmigrate", "--check", database=alias)
    assert exit_info.value.code == 1
    assert "shop_a" not in table_names(alias)
    run("opsmigrate", database=alias)
    run("opsmigrate", "--check", database=alias)  # no SystemExit


def test_verbosity_two_prints_timings(two_apps: Project, alias: str) -> None:
    out = run("opsmigrate", "shop", "0001", database=alias, verbosity=2)
    assert "  Applying shop.0001_initial... OK (" in out
    assert run("opsmigrate", "shop", "zero", database=alias, verbosity=0) == ""


def test_version_table_holds_heads(two_apps: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    assert sorted(
        row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version")
    ) == [
        "o2",
        "s3",
    ]


def test_errors_are_one_line_and_change_nothing(two_apps: Project, alias: str) -> None:
    assert (
        run_error("opsmigrate", "nope", database=alias)
        == "No installed app with label 'nope'; check INSTALLED_APPS."
    )
    assert "does not have ops migrations" in run_error("opsmigrate", "auth", database=alias)
    message = run_error("opsmigrate", "shop", "00", database=alias)
    assert message == (
        "More than one ops migration matches '00' in app 'shop': 0001_initial, 0002_b, 0003_c. "
        "Please be more specific."
    )
    assert "Cannot find an ops migration matching '9' from app 'shop'" in run_error(
        "opsmigrate", "shop", "9", database=alias
    )
    assert "alembic_ops_version" not in table_names(alias)


def test_multiple_heads_refused(project: Project, alias: str) -> None:
    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script("shop", "0002_a", revision="s2a", down="s1", **one_table("shop_b"))
    project.script("shop", "0002_b", revision="s2b", down="s1", **one_table("shop_c"))
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("opsmigrate", database=alias, stdout=out)
    message = str(info.value)
    assert out.getvalue() == ""  # refused before "Operations to perform:"
    assert "multiple heads in app 'shop': 0002_a, 0002_b" in message
    assert "opsmakemigration --merge shop" in message
    assert "shop_a" not in table_names(alias)


def test_sql_needs_no_connection(two_apps: Project, alias: str) -> None:
    out = run("opsmigrate", "shop", "0002", "--sql", database=alias)
    assert "CREATE TABLE alembic_ops_version" in out
    assert "CREATE TABLE shop_a" in out and "CREATE TABLE shop_b" in out
    assert "shop_c" not in out
    assert "shop_a" not in table_names(alias)


def test_inspector_sees_created_table(two_apps: Project, alias: str) -> None:
    run("opsmigrate", "shop", "0001", database=alias)
    with inspect_db(alias) as insp:
        assert [c["name"] for c in insp.get_columns("shop_a")] == ["id"]


def test_unapply_exactly_one_head(project: Project, alias: str) -> None:
    from django_alembic_ops import api
    from django_alembic_ops.errors import ScriptError

    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script("shop", "0002_a", revision="s2a", down="s1", **one_table("shop_b"))
    project.script("shop", "0002_b", revision="s2b", down="s1", **one_table("shop_c"))
    project.script("shop", "0003_merge", revision="s3", down=("s2a", "s2b"))
    run("opsmigrate", "shop", "0003", database=alias)
    with pytest.raises(ScriptError, match="shop.0002_a is not a head"):
        api.unapply("shop", "0002_a", database=alias)
    api.unapply("shop", "0003", database=alias)
    api.unapply("shop", "0002_a", database=alias)
    # Only 0002_a's downgrade ran: its sibling branch is still applied.
    assert applied(alias)["shop"] == ["0001_initial", "0002_b"]
    assert "shop_c" in table_names(alias) and "shop_b" not in table_names(alias)

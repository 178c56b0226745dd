"""When the files and the database disagree: a recorded revision with no script.

A branch switch (or a deleted file) leaves the version table holding a
revision no script defines. Showing is not a crash; every command that plans
refuses in one line naming the revision and the way out; ``opsmigrate <app>
<migration> --fake`` records the real state and forgets the unknown revision.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import override_settings

from django_alembic_ops import conf

from .conftest import Project, one_table, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# shop_a is the ops-owned table of an unmanaged model: autogenerate has a target.
MODELS = """
from django.db import models


class A(models.Model):
    class Meta:
        managed = False
        db_table = "shop_a"
"""


def refusal(alias: str, revision: str = "s2") -> str:
    database = "" if alias == "default" else f" --database {alias}"
    return (
        f"Database '{alias}' records ops revision '{revision}', which no script defines "
        "(a branch switch or a deleted file?). Record the state the database is really in "
        f"with 'python manage.py opsmigrate <app_label> <migration> --fake{database}'."
    )


def recorded(alias: str) -> list[str]:
    table = conf.get().VERSION_TABLE
    return sorted(row[0] for row in query(alias, f"SELECT version_num FROM {table}"))


@pytest.fixture
def switched(project: Project, alias: str) -> Path:
    """shop 0001 and 0002 applied, then 0002's file deleted (as a branch switch does)."""
    project.app("shop", models=MODELS)
    project.app("orders")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    second = project.script("shop", "0002_b", revision="s2", down="s1", **one_table("shop_b"))
    project.script("orders", "0001_initial", revision="o1", **one_table("orders_a"))
    run("opsmigrate", database=alias)
    second.unlink()
    return second


def test_showmigrations_lists_the_unknown_revision(switched: Path, alias: str) -> None:
    out = run("opsshowmigrations", database=alias)
    assert out.splitlines() == [
        "shop",
        # Not applied as far as the files can tell: only s2, unknown, was recorded.
        " [ ] 0001_initial",
        "orders",
        " [X] 0001_initial",
        "(unknown recorded revisions)",
        " [?] s2 (recorded in alembic_ops_version, no script: a branch switch or a deleted file?)",
    ]
    # Asked for one app, the unknown revision is still shown: no file says whose it is.
    assert run("opsshowmigrations", "orders", database=alias).splitlines() == [
        "orders",
        " [X] 0001_initial",
        "(unknown recorded revisions)",
        " [?] s2 (recorded in alembic_ops_version, no script: a branch switch or a deleted file?)",
    ]


def test_showmigrations_plan_lists_the_unknown_revision(switched: Path, alias: str) -> None:
    out = run("opsshowmigrations", "--plan", database=alias)
    assert out.splitlines() == [
        "[X]  orders.0001_initial",
        "[ ]  shop.0001_initial",
        "[?]  s2 (recorded in alembic_ops_version, no script: a branch switch or a deleted file?)",
    ]


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("shop",),
        ("orders",),
        ("shop", "0001"),
        ("--plan",),
        ("--check",),
        ("shop", "zero", "--plan"),
        ("orders", "--check"),
    ],
    ids=lambda args: " ".join(args) or "all",
)
def test_planning_commands_refuse_in_one_line(
    switched: Path, alias: str, args: tuple[str, ...]
) -> None:
    assert run_error("opsmigrate", *args, database=alias) == refusal(alias)
    assert recorded(alias) == ["o1", "s2"]
    assert {"shop_a", "shop_b", "orders_a"} <= table_names(alias)


def test_refusal_comes_before_any_output(switched: Path, alias: str) -> None:
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("opsmigrate", database=alias, stdout=out, stderr=out)
    assert out.getvalue() == ""  # no "Operations to perform:" header before the error


@pytest.mark.parametrize("args", [(), ("--check",), ("--plan",), ("--fake",)], ids=str)
def test_migrate_refuses_in_one_line(switched: Path, alias: str, args: tuple[str, ...]) -> None:
    # Django's migrate runs ops migrations (through post_migrate) and its flags see them.
    assert run_error("migrate", *args, database=alias, verbosity=0) == refusal(alias)
    assert recorded(alias) == ["o1", "s2"]


def test_autogenerate_refuses_in_one_line(switched: Path, alias: str) -> None:
    assert run_error("opsmakemigration", "shop", "--check", database=alias) == refusal(alias)
    assert run_error("opsmakemigration", "shop", "--dry-run", database=alias) == refusal(alias)


def test_fake_records_the_state_and_forgets_the_unknown_revision(
    switched: Path, alias: str
) -> None:
    out = run("opsmigrate", "shop", "0001", "--fake", database=alias)
    assert out.splitlines() == [
        "Operations to perform:",
        "  Target specific ops migration: 0001_initial, from shop",
        "Running ops migrations:",
        "  Removing unknown recorded revision s2... OK",
        "  Applying shop.0001_initial... FAKED",
    ]
    # orders' head stays; nothing ran (shop_b, which only s2 knew about, is still there).
    assert recorded(alias) == ["o1", "s1"]
    assert {"shop_a", "shop_b", "orders_a"} <= table_names(alias)
    assert "No ops migrations to apply." in run("opsmigrate", database=alias)
    assert run("opsmigrate", "--check", database=alias) == ""
    assert run("opsshowmigrations", database=alias).splitlines() == [
        "shop",
        " [X] 0001_initial",
        "orders",
        " [X] 0001_initial",
    ]


def test_fake_after_several_deleted_files(project: Project, alias: str) -> None:
    # Only the last recorded revision is a head: the one to remove.
    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    second = project.script("shop", "0002_b", revision="s2", down="s1", **one_table("shop_b"))
    third = project.script("shop", "0003_c", revision="s3", down="s2", **one_table("shop_c"))
    run("opsmigrate", database=alias)
    third.unlink()
    second.unlink()
    assert "revision 's3'" in run_error("opsmigrate", database=alias)
    out = run("opsmigrate", "shop", "0001_initial", "--fake", database=alias)
    assert "  Removing unknown recorded revision s3... OK" in out
    assert recorded(alias) == ["s1"]
    assert "No ops migrations to apply." in run("opsmigrate", database=alias)


def test_fake_zero_forgets_the_unknown_revision(switched: Path, alias: str) -> None:
    out = run("opsmigrate", "shop", "zero", "--fake", database=alias)
    assert out.splitlines() == [
        "Operations to perform:",
        "  Unapply all ops migrations: shop",
        "Running ops migrations:",
        "  Removing unknown recorded revision s2... OK",
    ]
    assert recorded(alias) == ["o1"]
    assert run("opsshowmigrations", "shop", database=alias).splitlines() == [
        "shop",
        " [ ] 0001_initial",
    ]


def test_fake_forgets_every_unknown_revision(switched: Path, alias: str) -> None:
    # No file says which app a revision belonged to: all unknown ones go, and
    # every other app's recorded heads stay.
    table = conf.get().VERSION_TABLE
    with connections[alias].cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (version_num) VALUES (%s)", ["deadbeef0001"])
    message = run_error("opsmigrate", database=alias)
    assert message.startswith(
        f"Database '{alias}' records ops revisions 'deadbeef0001', 's2', which no script defines "
    )
    out = run("opsmigrate", "shop", "0001", "--fake", database=alias)
    assert "  Removing unknown recorded revision deadbeef0001... OK" in out
    assert "  Removing unknown recorded revision s2... OK" in out
    assert recorded(alias) == ["o1", "s1"]


def test_fake_needs_a_migration_name(switched: Path, alias: str) -> None:
    # Without a migration the state to record is a guess: refuse like any plan.
    assert run_error("opsmigrate", "shop", "--fake", database=alias) == refusal(alias)
    assert run_error("opsmigrate", "--fake", database=alias) == refusal(alias)
    assert recorded(alias) == ["o1", "s2"]


def test_without_fake_a_target_is_refused(switched: Path, alias: str) -> None:
    assert run_error("opsmigrate", "shop", "0001", database=alias) == refusal(alias)
    assert recorded(alias) == ["o1", "s2"]


class _OrdersElsewhere:
    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        return False if app_label == "orders" else None


def test_fake_of_an_app_kept_off_the_database_removes_nothing(switched: Path, alias: str) -> None:
    # Nothing of 'orders' is recorded here, so its --fake cannot speak for the table.
    with override_settings(DATABASE_ROUTERS=[_OrdersElsewhere()]):
        message = run_error("opsmigrate", "orders", "0001", "--fake", database=alias)
    assert message == refusal(alias)
    assert recorded(alias) == ["o1", "s2"]

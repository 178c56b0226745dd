"""``manage.py migrate`` is the package's subclass: its flags see ops migrations.

``--check`` fails while an ops migration is pending, ``--plan`` lists them,
``--fake`` records them without running them, and one that cannot be placed
stops ``migrate`` before anything runs. ``EXTEND_MIGRATE = False`` gives back
Django's command untouched.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections
from django.test.utils import override_settings

from django_alembic_ops import conf
from django_alembic_ops.checks import check_settings

from .conftest import Project, one_table, query, run, run_error, table_names
from .test_migrate_integration import DJANGO_0001, DJANGO_0002, MODELS
from .test_test_databases import SQLITE_MEMORY, make_project, run_in

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def shop(project: Project) -> Project:
    """App shop: two Django migrations; two ops migrations, the first needing Django's 0001."""
    project.app("shop", models=MODELS)
    project.write("shop/migrations/__init__.py", "")
    project.write("shop/migrations/0001_initial.py", DJANGO_0001)
    project.write("shop/migrations/0002_price.py", DJANGO_0002)
    project.script(
        "shop",
        "0001_extra",
        revision="s1",
        django_dependencies=[("shop", "0001_initial")],
        **one_table("shop_extra"),
    )
    project.script("shop", "0002_more", revision="s2", down="s1", **one_table("shop_more"))
    return project


def run_exit(*args: str, **options: Any) -> tuple[int, str]:
    """``manage.py <args>``: (exit status, output), for ``--check``."""
    out = StringIO()
    try:
        call_command(*args, stdout=out, stderr=out, no_color=True, **options)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def applied(alias: str) -> list[str]:
    if "alembic_ops_version" not in table_names(alias):
        return []
    return sorted(row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version"))


def django_applied(alias: str) -> list[str]:
    return [
        row[0]
        for row in query(alias, "SELECT name FROM django_migrations WHERE app = 'shop' ORDER BY id")
    ]


def test_django_runs_the_packages_migrate() -> None:
    assert get_commands()["migrate"] == "django_alembic_ops"
    command = load_command_class("django_alembic_ops", "migrate")
    assert isinstance(command, DjangoMigrate)


def test_check_fails_while_an_ops_migration_is_pending(shop: Project, alias: str) -> None:
    with override_settings(ALEMBIC_OPS={"RUN_WITH_MIGRATE": False}):
        run("migrate", database=alias)  # Django's migrations only
    assert run_exit("migrate", "--check", database=alias) == (1, "")
    run("opsmigrate", "shop", "0001", database=alias)
    assert run_exit("migrate", "--check", database=alias) == (1, "")
    run("opsmigrate", database=alias)
    assert run_exit("migrate", "--check", database=alias) == (0, "")
    assert applied(alias) == ["s2"]  # --check changed nothing


def test_check_with_django_migrations_pending_too(shop: Project, alias: str) -> None:
    assert run_exit("migrate", "--check", database=alias) == (1, "")
    assert "shop_product" not in table_names(alias)
    assert applied(alias) == []


def test_plan_lists_ops_migrations_after_djangos_and_changes_nothing(
    shop: Project, alias: str
) -> None:
    out = run("migrate", "--plan", database=alias)
    assert out.splitlines() == [
        "Planned operations:",
        "shop.0001_initial",
        "    Create model Product",
        "shop.0002_price",
        "    Add field price to Product",
        "Planned ops migrations:",
        "  Apply shop.0001_extra",
        "  Apply shop.0002_more",
    ]
    status, out = run_exit("migrate", "--plan", "--check", database=alias)
    assert status == 1
    assert out.splitlines()[-3:] == [
        "Planned ops migrations:",
        "  Apply shop.0001_extra",
        "  Apply shop.0002_more",
    ]
    assert django_applied(alias) == []
    assert applied(alias) == []
    assert not {"shop_product", "shop_extra", "alembic_ops_version"} & table_names(alias)


def test_plan_with_only_ops_migrations_pending(shop: Project, alias: str) -> None:
    with override_settings(ALEMBIC_OPS={"RUN_WITH_MIGRATE": False}):
        run("migrate", database=alias)
    run("opsmigrate", "shop", "0001", database=alias)
    assert run("migrate", "--plan", database=alias).splitlines() == [
        "Planned operations:",
        "  No planned migration operations.",
        "Planned ops migrations:",
        "  Apply shop.0002_more",
    ]
    assert run_exit("migrate", "--plan", "--check", database=alias)[0] == 1
    run("opsmigrate", database=alias)
    # Nothing pending: Django's output, unchanged.
    assert run("migrate", "--plan", database=alias).splitlines() == [
        "Planned operations:",
        "  No planned migration operations.",
    ]
    assert run_exit("migrate", "--plan", "--check", database=alias)[0] == 0


def test_fake_records_ops_migrations_without_running_them(shop: Project, alias: str) -> None:
    out = run("migrate", "--fake", database=alias)
    assert "  Applying shop.0002_price... FAKED" in out
    assert out.endswith(
        "Running ops migrations:\n"
        "  Applying shop.0001_extra... FAKED\n"
        "  Applying shop.0002_more... FAKED\n"
    )
    assert applied(alias) == ["s2"]
    assert not {"shop_product", "shop_extra", "shop_more"} & table_names(alias)


def test_fake_with_only_ops_migrations_pending(shop: Project, alias: str) -> None:
    # Django's plan is empty, so Django fakes nothing; pending ops migrations
    # are still recorded only.
    with override_settings(ALEMBIC_OPS={"RUN_WITH_MIGRATE": False}):
        run("migrate", database=alias)
    out = run("migrate", "--fake", database=alias)
    assert "  Applying shop.0001_extra... FAKED" in out
    assert applied(alias) == ["s2"]
    assert not {"shop_extra", "shop_more"} & table_names(alias)


def test_fake_initial_runs_ops_migrations(shop: Project, alias: str) -> None:
    out = run("migrate", "--fake-initial", database=alias)
    assert "  Applying shop.0001_extra... OK" in out
    assert {"shop_product", "shop_extra", "shop_more"} <= table_names(alias)
    assert applied(alias) == ["s2"]


@pytest.mark.parametrize("verbosity", [0, 1])
def test_missing_django_dependency_stops_migrate_before_anything_runs(
    shop: Project, alias: str, verbosity: int
) -> None:
    shop.script(
        "shop", "0003_typo", revision="s3", down="s2", django_dependencies=[("shop", "0003_nope")]
    )
    shop.app("depot")
    shop.script("depot", "0001_free", revision="d1", **one_table("depot_free"))
    message = run_error("migrate", database=alias, verbosity=verbosity)
    assert message == (
        "Ops migration shop.0003_typo depends on Django migration shop.0003_nope, "
        "which does not exist. Fix django_dependencies in 0003_typo.py."
    )
    # Like Django's own missing dependency: nothing ran, Django's migrations neither.
    assert django_applied(alias) == []
    assert applied(alias) == []
    assert not {"shop_product", "shop_extra", "depot_free"} & table_names(alias)
    # The deploy gates refuse the same way.
    for flag in ("--check", "--plan"):
        assert run_error("migrate", flag, database=alias, verbosity=verbosity) == message


def test_unknown_recorded_revision_stops_migrate_before_anything_runs(
    shop: Project, alias: str
) -> None:
    run("opsmigrate", "--fake", database=alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("UPDATE alembic_ops_version SET version_num = 'gone'")
    message = run_error("migrate", database=alias, verbosity=0)
    assert message.startswith(f"Database '{alias}' records ops revision 'gone', which no script")
    assert "\n" not in message
    assert django_applied(alias) == []


def test_extend_migrate_off_gives_djangos_command(shop: Project, alias: str) -> None:
    with override_settings(ALEMBIC_OPS={"RUN_WITH_MIGRATE": False}):
        run("migrate", database=alias)
    with override_settings(ALEMBIC_OPS={"EXTEND_MIGRATE": False}):
        assert run_exit("migrate", "--check", database=alias) == (0, "")
        assert "ops" not in run("migrate", "--plan", database=alias)
        # Ops migrations still run through post_migrate, for real even with --fake.
        out = run("migrate", "--fake", database=alias)
        assert "  Applying shop.0001_extra... OK" in out
    assert {"shop_extra", "shop_more"} <= table_names(alias)


def test_run_with_migrate_off_flags_ignore_ops_migrations(shop: Project, alias: str) -> None:
    """migrate does not apply ops migrations then, so its flags do not count them."""
    with override_settings(ALEMBIC_OPS={"RUN_WITH_MIGRATE": False}):
        run("migrate", database=alias)
        assert run_exit("migrate", "--check", database=alias) == (0, "")
        assert "ops" not in run("migrate", "--plan", database=alias)


def test_extend_migrate_setting_is_checked() -> None:
    with override_settings(ALEMBIC_OPS={"EXTEND_MIGRATE": "no"}):
        messages = check_settings()
        assert conf.get().EXTEND_MIGRATE is True  # a wrong type is not used
    assert [(m.id, m.msg) for m in messages] == [
        (
            "django_alembic_ops.E002",
            "ALEMBIC_OPS['EXTEND_MIGRATE'] must be True or False, not str.",
        )
    ]


TYPO_SCRIPT = """
revision = "t2"
down_revision = "t1"
branch_labels = None
depends_on = None
django_dependencies = [("auth", "0099_nope")]

def upgrade():
    pass

def downgrade():
    pass
"""

AUTH_SCRIPT = TYPO_SCRIPT.replace("0099_nope", "0012_alter_user_first_name_max_length")


def test_manage_py_test_refuses_a_missing_django_dependency(tmp_path: Path) -> None:
    """Test databases are built through this migrate: the mistake is one line, exit 1."""
    root = make_project(tmp_path, SQLITE_MEMORY)
    (root / "shop/migrations_ops/0002_typo.py").write_text(TYPO_SCRIPT)
    result = run_in(root, "manage.py", "test", "shop", "--noinput")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        "CommandError: Ops migration shop.0002_typo depends on Django migration auth.0099_nope, "
        "which does not exist. Fix django_dependencies in 0002_typo.py."
    )


def test_manage_py_test_with_test_migrate_false(tmp_path: Path) -> None:
    """TEST["MIGRATE"] = False: Django calls migrate with run_syncdb; the ops migrations run."""
    databases = (
        '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3",'
        ' "TEST": {"MIGRATE": False}}}'
    )
    root = make_project(tmp_path, databases)
    (root / "shop/migrations_ops/0002_auth.py").write_text(AUTH_SCRIPT)
    result = run_in(root, "manage.py", "test", "shop", "--noinput")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr

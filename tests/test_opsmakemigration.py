"""opsmakemigration: numbering, names, never overwrite, dry run, depends_on, merge."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import Project, one_table, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def module_vars(path: Path) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def test_first_script_creates_package_with_branch_label(project: Project) -> None:
    package = project.app("shop", ops=False)
    out = run("opsmakemigration", "shop", "-m", "add orders view", "--empty")
    path = package / "migrations_ops" / "0001_add_orders_view.py"
    assert (package / "migrations_ops" / "__init__.py").is_file()
    assert path.is_file()
    assert "Ops migrations for 'shop':" in out
    assert out.rstrip().endswith("0001_add_orders_view.py")
    first = module_vars(path)
    assert first["branch_labels"] == ("shop",)
    assert first["down_revision"] is None
    assert re.fullmatch(r"[0-9a-f]{12}", str(first["revision"]))
    assert '"""add orders view' in path.read_text()


def test_next_script_follows_head(project: Project, alias: str) -> None:
    package = project.app("shop", ops=False)
    run("opsmakemigration", "shop", "-m", "first", "--empty")
    run("opsmakemigration", "shop", "--name", "second one", "--empty")
    first = module_vars(package / "migrations_ops" / "0001_first.py")
    second = module_vars(package / "migrations_ops" / "0002_second_one.py")
    assert second["down_revision"] == first["revision"]
    assert second["branch_labels"] is None
    # The written scripts run as they are.
    out = run("opsmigrate", "shop", database=alias)
    assert "Applying shop.0002_second_one... OK" in out


def test_default_names(project: Project) -> None:
    package = project.app("shop", ops=False)
    run("opsmakemigration", "shop", "--empty")
    run("opsmakemigration", "shop", "--empty")
    names = sorted(p.name for p in (package / "migrations_ops").glob("0*.py"))
    assert names[0] == "0001_initial.py"
    assert re.fullmatch(r"0002_auto_\d{8}_\d{4}\.py", names[1])


@pytest.mark.parametrize(
    "message, filename",
    [
        ("../../evil", "0001_evil.py"),
        ("/etc/passwd", "0001_etc_passwd.py"),
        ("a/b\\c..d", "0001_a_b_c_d.py"),
        ("Add Café Table!", "0001_add_cafe_table.py"),
    ],
)
def test_name_never_escapes_the_folder(project: Project, message: str, filename: str) -> None:
    package = project.app("shop", ops=False)
    run("opsmakemigration", "shop", "-m", message, "--empty")
    written = [p.name for p in (package / "migrations_ops").iterdir() if p.name != "__init__.py"]
    assert written == [filename]
    assert sorted(p.name for p in project.root.iterdir()) == ["shop"]


def test_dry_run_prints_and_writes_nothing(project: Project) -> None:
    package = project.app("shop", ops=False)
    out = run("opsmakemigration", "shop", "-m", "x", "--empty", "--dry-run")
    assert "def upgrade() -> None:" in out
    assert 'branch_labels = ("shop",)' in out
    assert not (package / "migrations_ops").exists()


def test_never_overwrites(project: Project) -> None:
    package = project.app("shop")
    existing = package / "migrations_ops" / "0001_initial.py"
    run("opsmakemigration", "shop", "--empty")
    before = existing.read_text()
    # A second file with the same number and name cannot be produced by
    # numbering; force the clash through the writer itself.
    from django_alembic_ops import writer
    from django_alembic_ops.discovery import app_folder
    from django_alembic_ops.errors import WriteError

    clash = writer.NewMigration("shop", existing, "overwritten", "x")
    with pytest.raises(WriteError, match="already exists; it was not overwritten"):
        writer.write(clash)
    assert existing.read_text() == before
    assert app_folder("shop").path == package / "migrations_ops"


def test_depends_on_repeatable(project: Project, alias: str) -> None:
    project.app("shop")
    project.app("billing")
    project.script("shop", "0001_initial", revision="s1")
    project.script("billing", "0001_initial", revision="b1")
    package = project.app("orders", ops=False)
    run("opsmakemigration", "orders", "--empty", "--depends-on", "shop.0001", "--depends-on", "b1")
    script = module_vars(package / "migrations_ops" / "0001_initial.py")
    assert script["depends_on"] == ("s1", "b1")
    out = run("opsmigrate", "orders", database=alias)
    assert out.index("Applying shop.0001_initial") < out.index("Applying orders.0001_initial")
    assert out.index("Applying billing.0001_initial") < out.index("Applying orders.0001_initial")
    message = run_error("opsmakemigration", "orders", "--empty", "--depends-on", "shop.0009")
    assert "Cannot find an ops migration matching '0009' from app 'shop'" in message


def test_merge_heads(project: Project, alias: str) -> None:
    package = project.app("shop")
    project.script("shop", "0001_initial", revision="s1")
    project.script("shop", "0002_a", revision="s2a", down="s1")
    project.script("shop", "0002_b", revision="s2b", down="s1")
    assert "opsmakemigration --merge shop" in run_error("opsmakemigration", "shop", "--empty")
    out = run("opsmakemigration", "shop", "--merge")
    merge = package / "migrations_ops" / "0003_merge_0002_a_0002_b.py"
    assert merge.is_file(), out
    assert set(module_vars(merge)["down_revision"]) == {"s2a", "s2b"}  # type: ignore[arg-type]
    run("opsmigrate", database=alias)
    assert "No conflicts detected to merge." in run("opsmakemigration", "shop", "--merge")


def test_unknown_app(project: Project) -> None:
    assert (
        run_error("opsmakemigration", "nope", "--empty")
        == "No installed app with label 'nope'; check INSTALLED_APPS."
    )


def test_without_target_needs_empty(project: Project) -> None:
    project.app("shop", ops=False)
    message = run_error("opsmakemigration", "shop")
    assert "--empty" in message
    assert "alembic_ops_version" not in table_names("default")


# -- numbering after an adopted Alembic history (SPEC: "Adopting an existing Alembic history")


def hex_history(project: Project, names: list[str]) -> list[str]:
    """Scripts named as plain Alembic names them, one after the other; their revisions."""
    revisions = [name.split("_", 1)[0] for name in names]
    for index, name in enumerate(names):
        down = revisions[index - 1] if index else None
        project.script("shop", name, revision=revisions[index], down=down, **one_table(name[-3:]))
    return revisions


def test_numbering_after_hex_revision_ids(project: Project, alias: str) -> None:
    package = project.app("shop")
    # The first id is all digits: it is not a number (today: 757731924606_add_u.py).
    revisions = hex_history(
        project, ["757731924605_create_t01", "ae1027a6acf0_create_t02", "3b4c5d6e7f80_create_t03"]
    )
    run("opsmigrate", "shop", database=alias)
    out = run("opsmakemigration", "shop", "-m", "add u", "--empty")
    path = package / "migrations_ops" / "0004_add_u.py"
    assert path.is_file(), out
    assert module_vars(path)["down_revision"] == revisions[-1]
    # Its prefix names only it.
    assert "Applying shop.0004_add_u... OK" in run("opsmigrate", "shop", "0004", database=alias)


def test_numbering_without_any_digits(project: Project) -> None:
    package = project.app("shop")
    hex_history(project, ["abcdef012345_create_t01", "fedcba543210_create_t02"])
    run("opsmakemigration", "shop", "--empty")
    written = sorted(p.name for p in (package / "migrations_ops").glob("0*.py"))
    # The count of scripts plus one (today: 0001_...); and not "initial".
    assert len(written) == 1 and re.fullmatch(r"0003_auto_\d{8}_\d{4}\.py", written[0])


@pytest.mark.parametrize(
    "names, expected",
    [
        (["0001_x", "0002_y"], "0003_z.py"),
        # Mixed: the highest 4-digit prefix wins; hex names do not count.
        (["0001_x", "a1b2c3d4e5f6_y", "0002_z", "9f8e7d6c5b4a_w"], "0003_z.py"),
        (["2024_x"], "2025_z.py"),
        # Five digits or a digit-only revision id are not Django numbers.
        (["12345_x", "000000000001_y"], "0003_z.py"),
    ],
)
def test_numbering_rule(project: Project, names: list[str], expected: str) -> None:
    package = project.app("shop")
    down = None
    for index, name in enumerate(names):
        project.script("shop", name, revision=f"r{index}", down=down)
        down = f"r{index}"
    run("opsmakemigration", "shop", "-m", "z", "--empty")
    assert (package / "migrations_ops" / expected).is_file()

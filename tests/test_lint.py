"""opslint: each rule on an unsafe migration and on its safe form, lint_ignore,
pending vs --all, exit status, squawk (found, parsed, missing), the pytest check."""

from __future__ import annotations

import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from django_alembic_ops import testing
from django_alembic_ops.lint import squawk

from .conftest import Project, inspect_db, run, run_error

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MODELS = """
from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=50)
    legacy = models.IntegerField(null=True)

    class Meta:
        managed = False
        db_table = "shop_item"
"""

INITIAL = """
op.create_table(
    "shop_item",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("legacy", sa.Integer),
    sa.Column("gone", sa.Integer),
    sa.Column("other_id", sa.Integer),
)
op.create_table("shop_other", sa.Column("id", sa.Integer, primary_key=True))
op.create_index("shop_other_id", "shop_other", ["id"])
"""

SQUAWK = squawk.executable()
needs_squawk = pytest.mark.skipif(
    SQUAWK is None, reason='squawk is not installed (pip install -e ".[dev]")'
)


def lint(alias: str, *args: str) -> tuple[int, list[str], list[str]]:
    """``manage.py opslint <args> --database alias``: exit status, stdout and stderr lines."""
    out, err = StringIO(), StringIO()
    try:
        call_command("opslint", *args, database=alias, stdout=out, stderr=err, no_color=True)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    return status, out.getvalue().splitlines(), err.getvalue().splitlines()


def notes(alias: str) -> list[str]:
    """What opslint says besides findings: on PostgreSQL, that squawk is missing."""
    missing = SQUAWK is None and connections[alias].vendor == "postgresql"
    return [squawk.NOT_INSTALLED] if missing else []


@pytest.fixture
def shop(project: Project) -> Project:
    """App ``shop`` (model Item on shop_item) with 0001 creating its tables."""
    project.app("shop", models=MODELS)
    project.script("shop", "0001_initial", revision="s1", upgrade=INITIAL)
    return project


def change(project: Project, upgrade: str, header: str = "") -> None:
    """``shop.0002_change``, after 0001."""
    project.script("shop", "0002_change", revision="s2", down="s1", upgrade=upgrade, header=header)


def only_finding(alias: str, project: Project, upgrade: str, header: str = "") -> str:
    """The one finding line of the pending migration ``upgrade`` (exit status 1)."""
    change(project, upgrade, header)
    status, out, _ = lint(alias)
    assert status == 1, out
    assert len(out) == 1, out
    return out[0]


def clean(alias: str, project: Project, upgrade: str) -> None:
    """The pending migration ``upgrade`` has no finding (exit status 0)."""
    change(project, upgrade)
    assert lint(alias) == (0, ["No findings in 1 ops migration."], notes(alias))


# -- our rules, on PostgreSQL ---------------------------------------------------------

PG_RULES = {
    "index-without-concurrently": (
        'op.create_index("shop_item_name", "shop_item", ["name"])',
        "shop.0002_change: index-without-concurrently: CREATE INDEX shop_item_name blocks writes "
        "to shop_item until the index is built; create it with postgresql_concurrently=True "
        "inside 'with op.get_context().autocommit_block():'",
        """
        with op.get_context().autocommit_block():
            op.create_index("shop_item_name", "shop_item", ["name"], postgresql_concurrently=True)
        """,
    ),
    "constraint-without-not-valid (foreign key)": (
        'op.create_foreign_key("shop_item_other_fk", "shop_item", "shop_other", '
        '["other_id"], ["id"])',
        "shop.0002_change: constraint-without-not-valid: adding foreign key shop_item_other_fk "
        "scans every row of shop_item under a lock that blocks writes to it and to shop_other; "
        "add it with postgresql_not_valid=True, then VALIDATE CONSTRAINT shop_item_other_fk in "
        "another transaction (a later migration, or inside "
        "'with op.get_context().autocommit_block():')",
        """
        op.create_foreign_key(
            "shop_item_other_fk", "shop_item", "shop_other", ["other_id"], ["id"],
            postgresql_not_valid=True,
        )
        with op.get_context().autocommit_block():
            op.execute("ALTER TABLE shop_item VALIDATE CONSTRAINT shop_item_other_fk")
        """,
    ),
    "constraint-without-not-valid (check)": (
        'op.create_check_constraint("shop_item_named", "shop_item", "name <> \'\'")',
        "shop.0002_change: constraint-without-not-valid: adding check constraint "
        "shop_item_named scans every row of shop_item under a lock that blocks its reads and "
        "writes; add it with postgresql_not_valid=True, then VALIDATE CONSTRAINT "
        "shop_item_named in another transaction (a later migration, or inside "
        "'with op.get_context().autocommit_block():')",
        """
        op.create_check_constraint(
            "shop_item_named", "shop_item", "name <> ''", postgresql_not_valid=True
        )
        with op.get_context().autocommit_block():
            op.execute("ALTER TABLE shop_item VALIDATE CONSTRAINT shop_item_named")
        """,
    ),
}


@pytest.mark.parametrize("case", list(PG_RULES))
def test_postgresql_rule(shop: Project, pg_alias: str, case: str) -> None:
    unsafe, line, safe = PG_RULES[case]
    run("opsmigrate", "shop", database=pg_alias)
    assert only_finding(pg_alias, shop, unsafe) == line
    # The safe form: no finding (squawk's neither, when installed), and it applies.
    clean(pg_alias, shop, safe)
    run("opsmigrate", "shop", database=pg_alias)
    with inspect_db(pg_alias) as inspector:
        assert [i["name"] for i in inspector.get_indexes("shop_item")] == (
            ["shop_item_name"] if case == "index-without-concurrently" else []
        )
        assert bool(inspector.get_foreign_keys("shop_item")) == ("foreign key" in case)
        assert bool(inspector.get_check_constraints("shop_item")) == ("check" in case)


def test_postgresql_rules_apply_only_there(shop: Project, alias: str) -> None:
    """No CONCURRENTLY/NOT VALID on SQLite and MySQL: those rules stay quiet there."""
    unsafe = PG_RULES["index-without-concurrently"][0]
    change(shop, unsafe)
    status, out, _ = lint(alias, "--all")
    if connections[alias].vendor == "postgresql":
        assert status == 1 and [line.split(": ")[1] for line in out] == [
            "index-without-concurrently"
        ]
    else:
        assert (status, out) == (0, ["No findings in 2 ops migrations."])


def test_varchar_made_longer_is_no_type_change_on_postgresql(shop: Project, pg_alias: str) -> None:
    run("opsmigrate", "shop", database=pg_alias)
    clean(
        pg_alias,
        shop,
        """
        op.alter_column("shop_item", "name", type_=sa.String(100), existing_type=sa.String(50))
        op.alter_column("shop_item", "name", type_=sa.Text(), existing_type=sa.String(100))
        op.alter_column("shop_item", "gone", type_=sa.Integer(), existing_type=sa.Integer())
        """,
    )
    # Shorter is a rewrite (and a check of every row).
    line = only_finding(
        pg_alias,
        shop,
        'op.alter_column("shop_item", "name", type_=sa.String(20), existing_type=sa.String(50))',
    )
    assert line.startswith("shop.0002_change: column-type-change: changing the type of ")


# -- our rules on every backend -----------------------------------------------------------

EVERYWHERE = {
    "not-null-without-default": (
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.add_column(sa.Column("qty", sa.Integer, nullable=False))
        """,
        "shop.0002_change: not-null-without-default: adding shop_item.qty NOT NULL without a "
        "default {rows}, and the code still running inserts rows without it; add it with a "
        "server_default, or nullable, backfill it, then make it NOT NULL",
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.add_column(sa.Column("qty", sa.Integer, nullable=False, server_default="0"))
        """,
    ),
    "column-type-change": (
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.alter_column("legacy", type_=sa.BigInteger, existing_type=sa.Integer)
        """,
        "shop.0002_change: column-type-change: changing the type of shop_item.legacy rewrites "
        "shop_item under a lock that blocks its reads and writes, and the code still running "
        "expects the old type; add a column of the new type, backfill it in batches, move the "
        "code to it, then drop the old column in a later release",
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.add_column(sa.Column("legacy_big", sa.BigInteger))
        """,
    ),
    "rename-table": (
        'op.rename_table("shop_other", "shop_thing")',
        "shop.0002_change: rename-table: renaming shop_other to shop_thing breaks the code still "
        "running, which uses the old name; keep the table's name (set the model's Meta.db_table "
        "to it), or create the new table, write to both, copy the rows, and drop the old one in "
        "a later release",
        'op.create_table("shop_thing", sa.Column("id", sa.Integer, primary_key=True))',
    ),
    "rename-column": (
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.alter_column("gone", new_column_name="went", existing_type=sa.Integer)
        """,
        "shop.0002_change: rename-column: renaming shop_item.gone to went breaks the code still "
        "running, which uses the old name; keep the column's name (set the field's db_column to "
        "it), or add the new column, write to both, backfill it, and drop the old one in a "
        "later release",
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.add_column(sa.Column("went", sa.Integer))
        """,
    ),
    "drop-column-in-model": (
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.drop_column("legacy")
        """,
        "shop.0002_change: drop-column-in-model: model shop.Item still has the field legacy "
        "(shop_item.legacy): its queries fail once the column is gone; remove the field from "
        "the model and deploy that first; drop the column in a later release",
        # No model has shop_item.gone: the model went first, so the column may go.
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.drop_column("gone")
        """,
    ),
}


@pytest.mark.parametrize("rule", list(EVERYWHERE))
def test_rule_on_every_backend(shop: Project, alias: str, rule: str) -> None:
    unsafe, line, safe = EVERYWHERE[rule]
    run("opsmigrate", "shop", database=alias)
    rows = (
        "gives its rows an implicit value (0, '')"
        if connections[alias].vendor == "mysql"
        else "fails when shop_item has rows"
    )
    assert only_finding(alias, shop, unsafe) == line.format(rows=rows)
    clean(alias, shop, safe)


def test_new_table_needs_no_protection(shop: Project, alias: str) -> None:
    """Everything done to a table created earlier in the same migration is fine."""
    run("opsmigrate", "shop", database=alias)
    clean(
        alias,
        shop,
        """
        op.create_table(
            "shop_new",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("n", sa.Integer),
            sa.Column("legacy", sa.Integer),
            sa.Column("old", sa.Integer),
        )
        op.create_index("shop_new_n", "shop_new", ["n"])
        if op.get_context().dialect.name == "postgresql":
            op.create_foreign_key("shop_new_other_fk", "shop_new", "shop_other", ["n"], ["id"])
            op.create_check_constraint("shop_new_n", "shop_new", "n > 0")
        with op.batch_alter_table("shop_new") as batch:
            batch.add_column(sa.Column("qty", sa.Integer, nullable=False))
            batch.alter_column("n", type_=sa.BigInteger, existing_type=sa.Integer)
            batch.alter_column("old", new_column_name="new", existing_type=sa.Integer)
            batch.drop_column("legacy")
        op.rename_table("shop_new", "shop_newer")
        op.create_index("shop_newer_qty", "shop_newer", ["qty"])
        """,
    )


# -- lint_ignore ---------------------------------------------------------------------------


def test_lint_ignore(shop: Project, alias: str) -> None:
    run("opsmigrate", "shop", database=alias)
    unsafe = """
    op.create_index("shop_item_name", "shop_item", ["name"])
    op.rename_table("shop_other", "shop_thing")
    """
    change(shop, unsafe)
    status, out, _ = lint(alias)
    expected = ["rename-table"]
    if connections[alias].vendor == "postgresql":
        expected.insert(0, "index-without-concurrently")
    assert status == 1 and [line.split(": ")[1] for line in out] == expected
    # Silenced: our rule, and squawk's line on the same op call with it.
    ignore = 'lint_ignore = ["index-without-concurrently", "rename-table"]\n'
    change(shop, unsafe, header=ignore)
    assert lint(alias) == (0, ["No findings in 1 ops migration."], notes(alias))


def test_lint_ignore_names_a_rule(shop: Project) -> None:
    change(shop, "pass", header='lint_ignore = ["rename-tabel"]\n')
    assert run_error("opslint") == (
        "shop.0002_change: lint_ignore names 'rename-tabel', which is no opslint rule (its "
        "rules: index-without-concurrently, constraint-without-not-valid, "
        "not-null-without-default, column-type-change, rename-table, rename-column, "
        "drop-column-in-model; squawk's are 'squawk/<rule>')."
    )
    change(shop, "pass", header='lint_ignore = "rename-table"\n')
    assert run_error("opslint") == (
        "shop.0002_change: lint_ignore must be a list of rule names, e.g. "
        'lint_ignore = ["index-without-concurrently"].'
    )


# -- what is linted; exit status -------------------------------------------------------------


def test_pending_and_all(shop: Project, alias: str) -> None:
    change(shop, 'op.rename_table("shop_other", "shop_thing")')
    shop.script(
        "shop",
        "0003_rename_column",
        revision="s3",
        down="s2",
        upgrade='op.alter_column("shop_item", "gone", new_column_name="went", '
        "existing_type=sa.Integer)",
    )
    shop.app("crm")
    shop.script(
        "crm",
        "0001_initial",
        revision="c1",
        depends_on="s3",
        upgrade='op.rename_table("shop_item", "crm_item")',
    )
    run("opsmigrate", "shop", "0002", database=alias)

    status, out, _ = lint(alias, "shop")
    assert status == 1
    assert [line.split(": ")[:2] for line in out] == [["shop.0003_rename_column", "rename-column"]]
    status, out, _ = lint(alias, "shop", "--all")
    assert [line.split(": ")[:2] for line in out] == [
        ["shop.0002_change", "rename-table"],
        ["shop.0003_rename_column", "rename-column"],
    ]
    status, out, _ = lint(alias)  # every app, in the order opsmigrate runs them
    assert [line.split(": ")[0] for line in out] == [
        "shop.0003_rename_column",
        "crm.0001_initial",
    ]

    run("opsmigrate", database=alias)
    assert lint(alias) == (0, ["No pending ops migrations to lint (--all lints every one)."], [])
    assert lint(alias, "shop", "crm", "--all")[0] == 1
    assert (
        run_error("opslint", "nope") == "No installed app with label 'nope'; check INSTALLED_APPS."
    )


def test_clean_run_and_no_migrations(project: Project, alias: str) -> None:
    project.app("shop")
    assert lint(alias, "--all") == (0, ["No ops migrations to lint."], [])
    project.script("shop", "0001_initial", revision="s1", upgrade=INITIAL)
    assert lint(alias, "--all") == (0, ["No findings in 1 ops migration."], notes(alias))
    assert lint(alias, "--all", "-v", "0")[:2] == (0, [])


# -- squawk ------------------------------------------------------------------------------------


@needs_squawk
def test_squawk_found_next_to_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    beside = Path(sys.executable).parent / "squawk"
    if not beside.is_file():
        pytest.skip("squawk is not installed next to the interpreter")
    # As CI runs .venv/bin/pytest: the virtualenv's bin/ is not on PATH.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert squawk.executable() == str(beside)


@needs_squawk
def test_squawk_findings_on_raw_sql(shop: Project, pg_alias: str) -> None:
    """What our rules cannot see (op.execute) squawk reads in the SQL."""
    run("opsmigrate", "shop", database=pg_alias)
    change(
        shop,
        """
        op.execute("CREATE INDEX shop_item_raw ON shop_item (name)")
        op.execute("ALTER TABLE shop_item ADD COLUMN qty integer NOT NULL")
        op.drop_table("shop_other")
        """,
    )
    status, out, err = lint(pg_alias)
    assert status == 1 and err == []
    rules = [line.split(": ")[:2] for line in out]
    assert rules == [
        ["shop.0002_change", "squawk/require-concurrent-index-creation"],
        ["shop.0002_change", "squawk/adding-required-field"],
        ["shop.0002_change", "squawk/ban-drop-table"],
    ], out
    # squawk's message and its advice, as one line, without squawk's periods.
    assert "NOT NULL" in out[1] and "; " in out[1] and ".;" not in out[1]
    # Silenced like our rules.
    header = 'lint_ignore = ["squawk/ban-drop-table", "squawk/adding-required-field"]\n'
    change(
        shop,
        'op.execute("ALTER TABLE shop_item ADD COLUMN qty integer NOT NULL")\n'
        'op.drop_table("shop_other")',
        header=header,
    )
    assert lint(pg_alias) == (0, ["No findings in 1 ops migration."], [])


@needs_squawk
def test_our_line_instead_of_squawks(shop: Project, pg_alias: str) -> None:
    """squawk says the same of these op calls; only our line (with the intent) is shown."""
    run("opsmigrate", "shop", database=pg_alias)
    change(
        shop,
        """
        op.create_index("shop_item_name", "shop_item", ["name"])
        op.add_column("shop_item", sa.Column("qty", sa.Integer, nullable=False))
        op.alter_column("shop_item", "legacy", type_=sa.BigInteger, existing_type=sa.Integer)
        op.drop_column("shop_item", "legacy")
        op.rename_table("shop_other", "shop_thing")
        """,
    )
    status, out, _ = lint(pg_alias)
    assert [line.split(": ")[1] for line in out] == [
        "index-without-concurrently",
        "not-null-without-default",
        "column-type-change",
        "drop-column-in-model",
        "rename-table",
    ]
    # Dropping a column no model has: squawk's ban-drop-column is ours to judge too.
    change(shop, 'op.drop_column("shop_item", "gone")')
    assert lint(pg_alias) == (0, ["No findings in 1 ops migration."], [])


def fake_squawk(tmp_path: Path, output: str, status: int) -> str:
    script = tmp_path / "squawk"
    script.write_text(f"#!/bin/sh\ncat > /dev/null\ncat <<'EOF'\n{output}\nEOF\nexit {status}\n")
    script.chmod(0o755)
    return str(script)


def test_squawk_report_parsed(tmp_path: Path) -> None:
    report = (
        '[{"file":"x.sql","line":2,"column":4,"level":"Warning","message":"Blocks writes.",'
        '"help":"Use `concurrently`.","rule_name":"require-concurrent-index-creation"},'
        '{"file":"x.sql","line":3,"column":0,"level":"Warning","message":"Use text.",'
        '"help":null,"rule_name":"prefer-text-field"},'
        '{"file":"x.sql","line":5,"column":1,"level":"Warning","message":"Drops it.",'
        '"help":null,"rule_name":"ban-drop-table"}]'
    )
    found = squawk.check("SELECT 1;", filename="x.sql", command=fake_squawk(tmp_path, report, 1))
    # prefer-text-field is about style in a new table, not a busy one: left out.
    assert found == [
        squawk.Diagnostic(
            "require-concurrent-index-creation", "Blocks writes.", "Use `concurrently`.", 2, 4
        ),
        squawk.Diagnostic("ban-drop-table", "Drops it.", None, 5, 1),
    ]
    assert squawk.check("SELECT 1;", filename="x.sql", command=fake_squawk(tmp_path, "[]", 0)) == []


def test_squawk_failure_is_one_line(tmp_path: Path) -> None:
    command = fake_squawk(tmp_path, "error: invalid value 'x' for '--exclude'", 2)
    with pytest.raises(squawk.SquawkFailed) as info:
        squawk.check("SELECT 1;", filename="shop.0002_x.sql", command=command)
    assert str(info.value) == (
        f"squawk ({command}) failed on shop.0002_x.sql with exit status 2: error: invalid value "
        "'x' for '--exclude'. Check the squawk-cli installation, or uninstall it to lint with "
        "opslint's own rules only."
    )


def test_squawk_not_installed(
    shop: Project, alias: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Our rules still run; one line says squawk is missing (PostgreSQL), exit status as ever."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert squawk.executable() is None
    note = (
        "squawk is not installed: only opslint's own rules ran "
        '(pip install "django-alembic-ops[lint]")'
    )
    notes = [note] if connections[alias].vendor == "postgresql" else []
    run("opsmigrate", "shop", database=alias)
    change(shop, 'op.execute("DROP TABLE shop_other")')
    assert lint(alias) == (0, ["No findings in 1 ops migration."], notes)
    change(shop, 'op.rename_table("shop_other", "shop_thing")')
    status, out, err = lint(alias)
    assert (status, [line.split(": ")[1] for line in out], err) == (1, ["rename-table"], notes)


# -- pytest --ops-checks: test_ops_lint[<app>] ---------------------------------------------------


def test_check_lint(shop: Project, alias: str) -> None:
    testing.check_lint("shop", alias)
    change(shop, 'op.rename_table("shop_other", "shop_thing")')
    with pytest.raises(AssertionError) as info:
        testing.check_lint("shop", alias)
    assert str(info.value).splitlines() == [
        "opslint found what locks or rewrites a busy table in 'shop':",
        "  " + EVERYWHERE["rename-table"][1],
        'Use the safe pattern, or silence a rule in the script with lint_ignore = ["<rule>"].',
    ]


RENAME_0004 = """
from alembic import op

revision = "shop0004"
down_revision = "9b0f1d8c4e23"
branch_labels = None
depends_on = None


def upgrade():
    op.rename_table("shop_order", "shop_purchase")


def downgrade():
    op.rename_table("shop_purchase", "shop_order")
"""


def test_manage_py_and_ops_checks(tmp_path: Path) -> None:
    """In a project of its own (docs/testing.rst's example, on SQLite): the real
    ``manage.py opslint`` and ``pytest --ops-checks`` with ``test_ops_lint[<app>]``."""
    from .test_testing_plugin import SQLITE_MEMORY, make_project, pytest_in, run_in

    root = make_project(tmp_path, SQLITE_MEMORY)
    done = run_in(root, "manage.py", "opslint", "--all")
    assert (done.returncode, done.stdout) == (0, "No findings in 4 ops migrations.\n"), done.stderr
    result = pytest_in(root, "--ops-checks", "-k", "lint", "test_ops.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED django_alembic_ops::test_ops_lint[shop]" in result.stdout, result.stdout

    (root / "shop" / "migrations_ops" / "0004_rename.py").write_text(RENAME_0004)
    finding = (
        "shop.0004_rename: rename-table: renaming shop_order to shop_purchase breaks the code "
        "still running, which uses the old name; keep the table's name"
    )
    done = run_in(root, "manage.py", "opslint", "--all")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(finding), done.stdout
    result = pytest_in(root, "--ops-checks", "-k", "lint", "test_ops.py")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "PASSED django_alembic_ops::test_ops_lint[billing]" in result.stdout, output
    assert "FAILED django_alembic_ops::test_ops_lint[shop]" in result.stdout, output
    assert f"  {finding}" in result.stdout, output

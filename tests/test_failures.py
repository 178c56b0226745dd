"""What is recorded is what committed, and the output says what happened.

SPEC, "Reliability promises": a migration is reported ``OK`` and recorded only
when its transaction committed; an error at ``COMMIT`` or while updating the
version table is that migration's one-line error; a script that leaves
Django's transaction marked for rollback fails, never ``OK``; "rolled back" is
said only when everything the migration did was; a revision id longer than the
version column is refused before anything runs.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import override_settings

from .conftest import Project, one_table, query, run, run_error, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MARKED = (
    "the script left Django's transaction marked for rollback "
    "(transaction.set_rollback(True), or a database error caught inside atomic())"
)


def create(name: str) -> str:
    return f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)"


def table(name: str) -> str:
    """A script line creating table ``name`` (the same SQL on every backend)."""
    return f'op.execute("{create(name)}")'


def implicit_commits(alias: str) -> bool:
    """MySQL/MariaDB commit DDL implicitly: such a migration cannot be rolled back whole."""
    return connections[alias].vendor == "mysql"


def failed(alias: str, migration: str, reason: str, *ddl: str) -> str:
    """The one-line error of ``migration``; on MySQL its ``ddl`` had committed."""
    if implicit_commits(alias) and ddl:
        return (
            f"Applying {migration} failed and was not rolled back: {reason}; these statements "
            f"had committed: {'; '.join(ddl)}"
        )
    return f"Applying {migration} failed and was rolled back: {reason}"


def versions(alias: str) -> list[str]:
    if "alembic_ops_version" not in table_names(alias):
        return []
    return sorted(row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version"))


def assert_connection_usable(alias: str) -> None:
    """Django's connection is out of every transaction and answers queries."""
    connection = connections[alias]
    assert not connection.in_atomic_block
    assert not connection.needs_rollback
    assert connection.get_autocommit() is True
    assert query(alias, "SELECT 1") == [(1,)]


# -- 1. never OK for what did not commit ---------------------------------------------


def test_set_rollback_is_a_failure(project: Project, alias: str) -> None:
    project.app("shop")
    project.script("shop", "0001_first", revision="f1", **one_table("fail_first"))
    project.script(
        "shop",
        "0002_marked",
        revision="f2",
        down="f1",
        header="from django.db import transaction",
        upgrade=f"""
            {table("fail_marked")}
            transaction.set_rollback(True, using="{alias}")
        """,
    )
    message = run_error("opsmigrate", database=alias)
    assert message == failed(alias, "shop.0002_marked", MARKED, create("fail_marked"))
    assert "fail_first" in table_names(alias)
    assert ("fail_marked" in table_names(alias)) == implicit_commits(alias)
    assert versions(alias) == ["f1"]
    assert_connection_usable(alias)
    if not implicit_commits(alias):
        # A re-run says the same, never OK.
        assert run_error("opsmigrate", database=alias) == message


def test_database_error_caught_by_django_is_a_failure(project: Project, alias: str) -> None:
    """An ORM write whose error the script catches marks the transaction for rollback."""
    project.app("shop")
    project.script(
        "shop",
        "0001_caught",
        revision="f1",
        header="from django.db import IntegrityError, connections",
        upgrade=f"""
            {table("fail_caught")}
            op.execute("INSERT INTO fail_caught (id) VALUES (1)")
            from django.contrib.contenttypes.models import ContentType
            ContentType.objects.using("{alias}").create(app_label="x", model="y")
            try:
                ContentType.objects.using("{alias}").create(app_label="x", model="y")
            except IntegrityError:
                pass
        """,
    )
    message = run_error("opsmigrate", database=alias)
    assert message == failed(alias, "shop.0001_caught", MARKED, create("fail_caught"))
    assert ("fail_caught" in table_names(alias)) == implicit_commits(alias)
    if implicit_commits(alias):
        assert query(alias, "SELECT COUNT(*) FROM fail_caught") == [(0,)]
    assert query(alias, "SELECT COUNT(*) FROM django_content_type WHERE app_label = 'x'") == [(0,)]
    assert versions(alias) == []
    assert_connection_usable(alias)


def test_statement_error_caught_on_postgresql_is_a_failure(project: Project, pg_alias: str) -> None:
    """PostgreSQL aborts the transaction at the failed statement: nothing after it runs."""
    project.app("shop")
    project.script(
        "shop",
        "0001_caught",
        revision="f1",
        upgrade=f"""
            {table("fail_caught")}
            try:
                op.execute("INSERT INTO fail_nowhere (id) VALUES (1)")
            except sa.exc.ProgrammingError:
                pass
        """,
    )
    message = run_error("opsmigrate", database=pg_alias)
    assert message == (
        "Applying shop.0001_caught failed and was rolled back: the script caught a database "
        "error and went on, but PostgreSQL had aborted the transaction at it (run a statement "
        "that may fail inside its own atomic() block): UndefinedTable: relation "
        '"fail_nowhere" does not exist LINE 1: INSERT INTO fail_nowhere (id) VALUES (1) ^; '
        "statement: INSERT INTO fail_nowhere (id) VALUES (1)"
    )
    assert "fail_caught" not in table_names(pg_alias)
    assert versions(pg_alias) == []
    assert_connection_usable(pg_alias)


def test_statement_error_caught_in_a_savepoint_is_fine(project: Project, alias: str) -> None:
    """Inside its own atomic() block the failed statement alone is rolled back."""
    project.app("shop")
    project.script(
        "shop",
        "0001_caught",
        revision="f1",
        header="from django.db import transaction",
        upgrade=f"""
            {table("fail_caught")}
            try:
                with transaction.atomic(using="{alias}"):
                    op.execute("INSERT INTO fail_nowhere (id) VALUES (1)")
            except sa.exc.DBAPIError:
                pass
            op.execute("INSERT INTO fail_caught (id) VALUES (1)")
        """,
    )
    out = run("opsmigrate", database=alias)
    assert "Applying shop.0001_caught... OK" in out
    assert query(alias, "SELECT id FROM fail_caught") == [(1,)]
    assert versions(alias) == ["f1"]


# -- 2. errors at COMMIT and in the version update are the migration's ----------------

DEFERRED_PARENT = """
    op.create_table("fail_parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "fail_child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer),
    )
    op.create_foreign_key(
        "fail_child_parent_fk", "fail_child", "fail_parent", ["parent_id"], ["id"],
        deferrable=True, initially="DEFERRED",
    )
"""


@pytest.mark.parametrize("command", ["opsmigrate", "migrate"])
def test_deferred_constraint_violated_at_commit(
    project: Project, pg_alias: str, command: str
) -> None:
    """PostgreSQL checks a DEFERRABLE INITIALLY DEFERRED constraint at COMMIT."""
    project.app("shop")
    project.script("shop", "0001_parent", revision="f1", upgrade=DEFERRED_PARENT)
    project.script(
        "shop",
        "0002_orphan",
        revision="f2",
        down="f1",
        upgrade=f"""
            {table("fail_extra")}
            op.execute("INSERT INTO fail_child (id, parent_id) VALUES (1, 9)")
        """,
    )
    message = run_error(command, database=pg_alias)
    assert message == (
        "Applying shop.0002_orphan failed and was rolled back: ForeignKeyViolation: insert or "
        'update on table "fail_child" violates foreign key constraint "fail_child_parent_fk" '
        'DETAIL: Key (parent_id)=(9) is not present in table "fail_parent".; statement: COMMIT'
    )
    assert "fail_extra" not in table_names(pg_alias)
    assert query(pg_alias, "SELECT COUNT(*) FROM fail_child") == [(0,)]
    assert versions(pg_alias) == ["f1"]
    assert_connection_usable(pg_alias)


@pytest.mark.parametrize("command", ["opsmigrate", "migrate"])
def test_version_row_deleted_by_the_script(project: Project, alias: str, command: str) -> None:
    project.app("shop")
    project.script("shop", "0001_first", revision="f1", **one_table("fail_first"))
    project.script(
        "shop",
        "0002_forget",
        revision="f2",
        down="f1",
        upgrade=f"""
            {table("fail_extra")}
            op.execute("DELETE FROM alembic_ops_version")
        """,
    )
    message = run_error(command, database=alias)
    reason = (
        "recording it in alembic_ops_version failed: CommandError: Online migration expected to "
        "match one row when updating 'f1' to 'f2' in 'alembic_ops_version'; 0 found"
    )
    assert message == failed(alias, "shop.0002_forget", reason, create("fail_extra"))
    assert ("fail_extra" in table_names(alias)) == implicit_commits(alias)
    assert versions(alias) == ["f1"]
    assert_connection_usable(alias)


def test_revision_id_longer_than_the_version_column(project: Project, alias: str) -> None:
    """Bad input, refused before anything runs (SQLite would even store it)."""
    project.app("shop")
    project.script("shop", "0001_first", revision="f1", **one_table("fail_first"))
    long_id = "a" * 40
    path = project.script("shop", "0002_long", revision=long_id, down="f1")
    message = run_error("opsmigrate", database=alias)
    assert message == (
        f"{path}: revision id '{long_id}' has 40 characters; the version table holds at most "
        "32. Give the script a shorter revision id."
    )
    assert not {"fail_first", "alembic_ops_version"} & table_names(alias)
    assert run_error("migrate", database=alias) == message
    assert not {"fail_first", "alembic_ops_version"} & table_names(alias)
    path.write_text(path.read_text().replace(long_id, "b" * 32))
    assert "Applying shop.0002_long... OK" in run("opsmigrate", database=alias)
    assert versions(alias) == ["b" * 32]


# -- 3. "rolled back" only when it was ------------------------------------------------


def test_failing_statement_inside_autocommit_block(project: Project, alias: str) -> None:
    """Named as the failure, not among the statements that committed."""
    project.app("shop")
    project.script(
        "shop",
        "0001_index",
        revision="f1",
        upgrade="""
            op.execute("CREATE TABLE fail_a (id INTEGER PRIMARY KEY)")
            with op.get_context().autocommit_block():
                op.execute("INSERT INTO fail_nowhere (id) VALUES (1)")
        """,
    )
    message = run_error("opsmigrate", database=alias)
    assert message.startswith("Applying shop.0001_index failed and was not rolled back: ")
    assert message.endswith(
        "; statement: INSERT INTO fail_nowhere (id) VALUES (1); these statements had "
        "committed: CREATE TABLE fail_a (id INTEGER PRIMARY KEY)"
    )
    assert "fail_a" in table_names(alias)
    assert versions(alias) == []


def test_marked_for_rollback_after_autocommit_block(project: Project, alias: str) -> None:
    project.app("shop")
    project.script(
        "shop",
        "0001_index",
        revision="f1",
        header="from django.db import transaction",
        upgrade=f"""
            {table("fail_a")}
            with op.get_context().autocommit_block():
                op.create_index("ix_fail_a", "fail_a", ["id"], postgresql_concurrently=True)
            {table("fail_b")}
            transaction.set_rollback(True, using="{alias}")
        """,
    )
    message = run_error("opsmigrate", database=alias)
    concurrently = "CONCURRENTLY " if alias == "postgres" else ""
    # On MySQL the later CREATE TABLE committed too.
    later = f"; {create('fail_b')}" if implicit_commits(alias) else ""
    assert message == (
        f"Applying shop.0001_index failed and was not rolled back: {MARKED}; these statements "
        f"had committed: {create('fail_a')}; CREATE INDEX {concurrently}ix_fail_a ON fail_a (id)"
        f"{later}"
    )
    assert "fail_a" in table_names(alias)
    assert ("fail_b" in table_names(alias)) == implicit_commits(alias)
    assert versions(alias) == []
    assert_connection_usable(alias)


# -- TRANSACTION_PER_MIGRATION off: one transaction, reported once it committed -------

ONE_RUN = {"TRANSACTION_PER_MIGRATION": False}


def output_and_error(*args: str, **options: Any) -> tuple[str, str | None]:
    """What the command printed, and its error message (``None`` when it succeeded)."""
    out = StringIO()
    try:
        call_command(*args, stdout=out, stderr=out, no_color=True, **options)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def test_one_transaction_reports_ok_after_commit(project: Project, alias: str) -> None:
    project.app("shop")
    project.script("shop", "0001_first", revision="f1", **one_table("fail_first"))
    project.script("shop", "0002_second", revision="f2", down="f1", **one_table("fail_second"))
    with override_settings(ALEMBIC_OPS=ONE_RUN):
        out, error = output_and_error("opsmigrate", database=alias)
    assert error is None
    assert out.endswith(
        "Running ops migrations:\n"
        "  Applying shop.0001_first... OK\n"
        "  Applying shop.0002_second... OK\n"
    )
    assert versions(alias) == ["f2"]


def test_one_transaction_failure_names_what_it_rolled_back(project: Project, alias: str) -> None:
    if implicit_commits(alias):
        pytest.skip("DDL commits implicitly: the run is no one transaction")
    project.app("shop")
    project.script("shop", "0001_first", revision="f1", **one_table("fail_first"))
    project.script(
        "shop",
        "0002_broken",
        revision="f2",
        down="f1",
        upgrade='raise RuntimeError("boom")',
    )
    with override_settings(ALEMBIC_OPS=ONE_RUN):
        out, error = output_and_error("opsmigrate", database=alias)
    assert error == (
        "Applying shop.0002_broken failed and was rolled back (in one transaction with "
        "shop.0001_first: TRANSACTION_PER_MIGRATION is off): RuntimeError: boom"
    )
    assert " OK" not in out  # 0001 ran, but never committed
    assert not {"fail_first", "alembic_ops_version"} & table_names(alias)


def test_one_transaction_failing_at_commit(project: Project, pg_alias: str) -> None:
    project.app("shop")
    project.script("shop", "0001_parent", revision="f1", upgrade=DEFERRED_PARENT)
    project.script(
        "shop",
        "0002_orphan",
        revision="f2",
        down="f1",
        upgrade='op.execute("INSERT INTO fail_child (id, parent_id) VALUES (1, 9)")',
    )
    with override_settings(ALEMBIC_OPS=ONE_RUN):
        out, error = output_and_error("opsmigrate", database=pg_alias)
    assert error is not None
    assert error.startswith(
        "Committing shop.0001_parent, shop.0002_orphan failed and they were rolled back "
        "(one transaction: TRANSACTION_PER_MIGRATION is off): ForeignKeyViolation: "
    )
    assert error.endswith("; statement: COMMIT")
    assert " OK" not in out
    assert not {"fail_parent", "alembic_ops_version"} & table_names(pg_alias)
    assert_connection_usable(pg_alias)


# -- docs/failures.rst shows real output ----------------------------------------------

PAGE = Path(__file__).resolve().parent.parent / "docs" / "failures.rst"

ORDER_MODEL = """
from django.db import models

class Order(models.Model):
    quantity = models.IntegerField(default=0)
    code = models.CharField(max_length=10, null=True, unique=True)

    class Meta:
        managed = False
        db_table = "shop_order"
"""

ORDERS = """
    op.create_table(
        "shop_order",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("code", sa.String(10), unique=True),
    )
"""


def _block(lines: list[str], start: int, language: str) -> tuple[list[str], int]:
    """The lines of the first ``code-block:: language`` from ``start``, and where it ends."""
    i = lines.index(f".. code-block:: {language}", start) + 1
    body: list[str] = []
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
        body.append(lines[i][3:])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    return [line for line in body if line.strip() or body.index(line)], i


def failure_examples() -> dict[str, tuple[str, list[str]]]:
    """``.. failure-example: NAME`` -> (its script's upgrade(), its console lines)."""
    lines = PAGE.read_text().splitlines()
    examples = {}
    for n, line in enumerate(lines):
        if line.startswith(".. failure-example: "):
            code, end = _block(lines, n, "python")
            console, _ = _block(lines, end, "console")
            examples[line.split(": ", 1)[1]] = ("\n".join(code), console)
    return examples


EXAMPLES = failure_examples()


class ShopOnPostgres:
    """The example's ORM queries go to the database being migrated."""

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "postgres" if model._meta.app_label == "shop" else None

    db_for_read = db_for_write


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_docs_failure_examples(project: Project, pg_alias: str, name: str) -> None:
    """Each example script on the page fails with the output shown there."""
    code, console = EXAMPLES[name]
    project.app("shop", models=ORDER_MODEL)
    project.script("shop", "0001_orders", revision="o1", upgrade=ORDERS)
    run("opsmigrate", database=pg_alias)
    project.write(
        f"shop/migrations_ops/0002_{name}.py",
        "from alembic import op\nimport sqlalchemy as sa\n"
        "from django.db import IntegrityError, transaction\n\n"
        "from shop.models import Order\n\n"
        "revision = 'o2'\ndown_revision = 'o1'\n\n\n" + code + "\n",
    )
    with override_settings(DATABASE_ROUTERS=[ShopOnPostgres()]):  # Order.objects
        out, error = output_and_error("opsmigrate", database=pg_alias)
    actual = ["$ python manage.py opsmigrate", *out.splitlines(), f"CommandError: {error}"]
    assert actual == console
    assert versions(pg_alias) == ["o1"]

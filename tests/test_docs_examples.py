"""The Operation Reference's examples run, so the documentation cannot rot.

Every example of ``docs/operations.rst`` is a real migration script under
``docs/examples/ops/``, included into the page with ``literalinclude``. Each
test here copies ``docs/examples/ops/base.py`` into a throw-away app as
``shop.0001_initial`` and one example as ``shop.0002_<example>``, applies the
example with the real ``opsmigrate`` command, checks what it did, unapplies it
and asserts that the schema is exactly the 0001 one again — on SQLite,
PostgreSQL and MariaDB. Where the page says a directive fails on SQLite or
MySQL, the test asserts that failure (one line naming the migration, everything
rolled back).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from alembic.operations import Operations
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connections

from .conftest import Project, inspect_db, query, run, run_error, shop_schema, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = DOCS / "examples" / "ops"
PAGE = DOCS / "operations.rst"
ALEMBIC_LINK = "https://alembic.sqlalchemy.org/en/latest/ops.html#alembic.operations.Operations."

#: Public members of Operations that are not directives a script calls
#: (``context`` is how Alembic installs ``op``; the proxy factory likewise).
NOT_DIRECTIVES = {"context", "create_module_class_proxy"}
DIRECTIVES = sorted(
    name for name in dir(Operations) if not name.startswith("_") and name not in NOT_DIRECTIVES
)
#: Directives shown by the Operation Plugins example rather than a script of their own.
PLUGIN_DIRECTIVES = {"register_operation", "implementation_for"}

NO_ALTER_CONSTRAINT = "NotImplementedError: No support for ALTER of constraints in SQLite dialect."
NO_COMMENT = 'OperationalError: near "COMMENT": syntax error'


class Fails:
    """The example fails on this backend with a one-line error containing ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text


#: What each example does on SQLite when it is not simply "applies and unapplies".
SQLITE: dict[str, Fails | str] = {
    "alter_column": Fails('OperationalError: near "ALTER": syntax error'),
    "create_check_constraint": Fails(NO_ALTER_CONSTRAINT),
    "create_foreign_key": Fails(NO_ALTER_CONSTRAINT),
    "create_primary_key": Fails(NO_ALTER_CONSTRAINT),
    "create_unique_constraint": Fails(NO_ALTER_CONSTRAINT),
    "drop_constraint": Fails(NO_ALTER_CONSTRAINT),
    "create_table_comment": Fails(NO_COMMENT),
    "drop_table_comment": Fails(NO_COMMENT),
    "create_exclude_constraint": "EXCLUDE constraints and range types are PostgreSQL's own",
    "run_async": Fails("ValueError: Cannot call run_async with a sync engine"),
}
POSTGRESQL: dict[str, Fails | str] = {
    "run_async": Fails("ValueError: Cannot call run_async with a sync engine"),
}
MYSQL: dict[str, Fails | str] = {
    "create_exclude_constraint": Fails("cannot render TSTZRANGE"),
    "create_foreign_key": Fails(
        'ProgrammingError: (1064, "You have an error in your SQL syntax; check the manual that '
        "corresponds to your MariaDB server version for the right syntax to use near "
        "'DEFERRABLE INITIALLY DEFERRED' at line 1\")"
    ),
    "run_async": Fails("ValueError: Cannot call run_async with a sync engine"),
}
BY_VENDOR = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "mysql": MYSQL}


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem != "base")


# -- the page covers every directive, and includes every example --------------------------


def test_every_directive_of_alembic_is_documented() -> None:
    assert len(DIRECTIVES) == 27, DIRECTIVES  # Alembic added or removed one: document it
    text = PAGE.read_text()
    for name in DIRECTIVES:
        assert f".. _op-{name}:" in text, f"no section for op.{name}() in {PAGE.name}"
        assert f"{ALEMBIC_LINK}{name}" in text, f"no link to Alembic's op.{name}()"
    covered = set(example_names()) | PLUGIN_DIRECTIVES
    missing = set(DIRECTIVES) - covered
    assert not missing, f"directives without an example script: {sorted(missing)}"


def test_every_example_is_included_and_every_include_exists() -> None:
    text = PAGE.read_text()
    included = set(re.findall(r"^ *\.\. literalinclude:: (examples/ops/\S+)$", text, re.M))
    on_disk = {str(p.relative_to(DOCS)) for p in EXAMPLES.rglob("*.py")}
    assert included == on_disk


# -- helpers -------------------------------------------------------------------------------


def install(project: Project, name: str, *, source: str | None = None) -> None:
    """App ``shop``: ``0001_initial`` is base.py, ``0002_<name>`` is the example."""
    if "shop" not in project.labels:
        project.app("shop")
    project.write("shop/migrations_ops/0001_initial.py", (EXAMPLES / "base.py").read_text())
    if source is None:
        source = (EXAMPLES / f"{name}.py").read_text()
    project.write(f"shop/migrations_ops/0002_{name}.py", source)


def versions(alias: str) -> list[str]:
    return [row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version")]


def execute(alias: str, sql: str, params: Any = None) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)


def columns(alias: str, table: str) -> dict[str, dict[str, Any]]:
    with inspect_db(alias) as insp:
        return {c["name"]: c for c in insp.get_columns(table)}


def indexes(alias: str, table: str) -> dict[str, tuple[list[str], bool]]:
    with inspect_db(alias) as insp:
        return {i["name"]: (i["column_names"], bool(i["unique"])) for i in insp.get_indexes(table)}


def rejects(alias: str, sql: str) -> None:
    with pytest.raises(IntegrityError):
        execute(alias, sql)


# -- what each example did -----------------------------------------------------------------

Check = Callable[[str], None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


@check("add_column")
def _(alias: str) -> None:
    cols = columns(alias, "shop_product")
    assert list(cols)[-2:] == ["description", "active"]
    assert cols["active"]["nullable"] is False
    assert query(alias, "SELECT active, description FROM shop_product ORDER BY id") == [
        (True, None),
        (True, None),
    ]


@check("alter_column")
def _(alias: str) -> None:
    cols = columns(alias, "shop_product")
    assert cols["name"]["type"].length == 200
    assert "new" in str(columns(alias, "shop_order")["status"]["default"])
    execute(
        alias,
        "INSERT INTO shop_order (id, product_id, quantity, created_at) VALUES (9, 1, 1, now())",
    )
    assert query(alias, "SELECT status FROM shop_order WHERE id = 9") == [("new",)]
    execute(alias, "DELETE FROM shop_order WHERE id = 9")


@check("batch_alter_table")
def _(alias: str) -> None:
    assert columns(alias, "shop_order")["status"]["type"].length == 32
    with inspect_db(alias) as insp:
        [fk] = insp.get_foreign_keys("shop_order")
        [ck] = insp.get_check_constraints("shop_order")
    assert (fk["name"], fk["referred_table"]) == ("fk_shop_order_product", "shop_product")
    assert fk["options"].get("ondelete") == "CASCADE"
    assert ck["name"] == "ck_shop_order_quantity_positive"
    # The rebuilt table (SQLite) kept its rows and its index.
    assert query(alias, "SELECT count(*) FROM shop_order") == [(3,)]
    assert "ix_shop_order_status" in indexes(alias, "shop_order")
    rejects(alias, "UPDATE shop_order SET quantity = 0 WHERE id = 1")


@check("bulk_insert")
def _(alias: str) -> None:
    assert query(alias, "SELECT code, final FROM shop_order_status ORDER BY code") == [
        ("cancelled", True),
        ("new", False),
        ("paid", False),
        ("shipped", True),
    ]


@check("create_check_constraint")
def _(alias: str) -> None:
    rejects(alias, "UPDATE shop_product SET price = -1 WHERE id = 1")


@check("create_exclude_constraint")
def _(alias: str) -> None:
    insert = "INSERT INTO shop_sale (id, name, during) VALUES (%s, %s, %s)"
    execute(alias, insert, [1, "winter", "[2025-12-01, 2026-01-01)"])
    execute(alias, insert, [2, "spring", "[2026-03-01, 2026-04-01)"])
    with pytest.raises(IntegrityError):
        execute(alias, insert, [3, "overlap", "[2025-12-24, 2025-12-27)"])


@check("create_foreign_key")
def _(alias: str) -> None:
    [row] = query(
        alias,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
        ["fk_shop_order_product"],
    )
    assert row[0] == (
        "FOREIGN KEY (product_id) REFERENCES shop_product(id) ON DELETE RESTRICT "
        "DEFERRABLE INITIALLY DEFERRED"
    )


@check("create_index")
def _(alias: str) -> None:
    found = indexes(alias, "shop_order")
    assert found["ix_shop_order_open_created"] == (["created_at"], False)
    assert indexes(alias, "shop_product")["ix_shop_product_name"] == (["name"], True)
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        [(definition,)] = query(
            alias,
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_shop_order_open_created'",
        )
        assert "WHERE" in definition
    elif vendor == "mysql":
        # No partial indexes in MySQL: the *_where options are other dialects',
        # so the index holds every row.
        assert query(
            alias, "SELECT count(*) FROM shop_order USE INDEX (ix_shop_order_open_created)"
        ) == [(3,)]
    else:
        [(definition,)] = query(
            alias, "SELECT sql FROM sqlite_master WHERE name = 'ix_shop_order_open_created'"
        )
        assert "WHERE status IN ('new', 'paid')" in definition


@check("create_index_concurrently")
def _(alias: str) -> None:
    assert indexes(alias, "shop_order")["ix_shop_order_created_at"] == (["created_at"], False)
    # Django still knows the connection's autocommit state after the block.
    assert connections[alias].get_autocommit() is True


@check("create_primary_key")
def _(alias: str) -> None:
    with inspect_db(alias) as insp:
        pk = insp.get_pk_constraint("shop_product_tag")
    # MySQL ignores a primary key's name: it is always PRIMARY (reflected as None).
    name = None if connections[alias].vendor == "mysql" else "pk_shop_product_tag"
    assert (pk["name"], pk["constrained_columns"]) == (name, ["product_id", "tag"])
    rejects(alias, "INSERT INTO shop_product_tag (product_id, tag) VALUES (1, 'kitchen')")


@check("create_table")
def _(alias: str) -> None:
    cols = columns(alias, "shop_review")
    assert list(cols) == ["id", "product_id", "author", "rating", "body", "created_at"]
    execute(alias, "INSERT INTO shop_review (id, product_id, author, rating) VALUES (1, 1, 'a', 5)")
    assert query(alias, "SELECT count(*) FROM shop_review WHERE created_at IS NOT NULL") == [(1,)]
    rejects(alias, "INSERT INTO shop_review (id, product_id, author, rating) VALUES (2, 1, 'b', 6)")
    rejects(alias, "INSERT INTO shop_review (id, product_id, author, rating) VALUES (3, 1, 'a', 4)")
    execute(alias, "DELETE FROM shop_product WHERE id = 1")  # ON DELETE CASCADE
    assert query(alias, "SELECT count(*) FROM shop_review") == [(0,)]
    if connections[alias].vendor != "sqlite":  # SQLite has no comments
        with inspect_db(alias) as insp:
            assert insp.get_table_comment("shop_review") == {"text": "Customer reviews"}


@check("create_table_comment")
def _(alias: str) -> None:
    with inspect_db(alias) as insp:
        assert insp.get_table_comment("shop_order") == {
            "text": "One row per order; written by shop.Order"
        }


@check("create_unique_constraint")
def _(alias: str) -> None:
    rejects(alias, "UPDATE shop_product SET name = 'T-shirt' WHERE id = 1")


@check("drop_column")
def _(alias: str) -> None:
    assert "note" not in columns(alias, "shop_order")


@check("drop_constraint")
def _(alias: str) -> None:
    execute(alias, "UPDATE shop_product SET sku = 'tee-01' WHERE id = 1")  # allowed now
    execute(alias, "UPDATE shop_product SET sku = 'mug-01' WHERE id = 1")


@check("drop_index")
def _(alias: str) -> None:
    assert "ix_shop_order_status" not in indexes(alias, "shop_order")


@check("drop_table")
def _(alias: str) -> None:
    assert "shop_coupon" not in table_names(alias)


@check("drop_table_comment")
def _(alias: str) -> None:
    with inspect_db(alias) as insp:
        assert insp.get_table_comment("shop_product") == {"text": None}


@check("execute")
def _(alias: str) -> None:
    rows = query(alias, "SELECT id, total FROM shop_open_order ORDER BY id")
    assert [(id_, float(total)) for id_, total in rows] == [(1, 17.0), (2, 19.99)]


@check("f")
def _(alias: str) -> None:
    assert "ix_shop_order_created_at" in indexes(alias, "shop_order")


@check("get_bind")
def _(alias: str) -> None:
    assert query(alias, "SELECT sku FROM shop_product ORDER BY id") == [("MUG-01",), ("TEE-01",)]


@check("get_context")
def _(alias: str) -> None:
    assert [row[1] for row in query(alias, "SELECT day, orders FROM shop_orders_per_day")] == [3]


@check("inline_literal")
def _(alias: str) -> None:
    assert query(alias, "SELECT id, status FROM shop_order ORDER BY id") == [
        (1, "settled"),
        (2, "new"),
        (3, "shipped"),
    ]
    # The literals are rendered into offline SQL, which bound parameters would not be.
    sql = run("opssqlmigrate", "shop", "0002", database=alias)
    assert "UPDATE shop_order SET status='settled' WHERE shop_order.status = 'paid';" in sql


@check("invoke")
def _(alias: str) -> None:
    assert list(columns(alias, "shop_product"))[-1] == "gtin"
    assert indexes(alias, "shop_product")["ix_shop_product_gtin"] == (["gtin"], True)


@check("rename_table")
def _(alias: str) -> None:
    tables = table_names(alias)
    assert "shop_voucher" in tables and "shop_coupon" not in tables


# -- the examples, on each backend ---------------------------------------------------------


@pytest.mark.parametrize("name", example_names())
def test_example(project: Project, alias: str, name: str) -> None:
    expected = BY_VENDOR[connections[alias].vendor].get(name)
    if isinstance(expected, str):
        pytest.skip(expected)
    install(project, name)
    assert "Applying shop.0001_initial... OK" in run("opsmigrate", "shop", "0001", database=alias)
    before = shop_schema(alias)
    assert set(before["tables"]) == {"shop_product", "shop_order", "shop_coupon"}
    if isinstance(expected, Fails):
        message = run_error("opsmigrate", "shop", "0002", database=alias)
        assert message.startswith(f"Applying shop.0002_{name} failed and was rolled back: ")
        assert expected.text in message
        assert "\n" not in message
        # Rolled back whole: whatever ran before the failing statement is gone too.
        assert shop_schema(alias) == before
        assert versions(alias) == ["1b74a2c4bd47"]
    else:
        out = run("opsmigrate", "shop", "0002", database=alias)
        assert f"Applying shop.0002_{name}... OK" in out
        assert shop_schema(alias) != before or name in {"get_bind", "inline_literal"}
        CHECKS[name](alias)
        out = run("opsmigrate", "shop", "0001", database=alias)
        assert f"Unapplying shop.0002_{name}... OK" in out
        assert shop_schema(alias) == before
    run("opsmigrate", "shop", "zero", database=alias)
    assert versions(alias) == []
    assert not {t for t in table_names(alias) if t.startswith("shop_")}


def test_every_example_has_a_check() -> None:
    runs_somewhere = {n for n in example_names() if any(n not in b for b in BY_VENDOR.values())}
    assert runs_somewhere == set(CHECKS)


# -- run_async: an async driver is needed --------------------------------------------------


def test_run_async_offline_is_one_clear_line(project: Project) -> None:
    """``--sql`` / ``opssqlmigrate`` on a script that calls ``op.run_async``."""
    install(project, "run_async")
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("opssqlmigrate", "shop", "0002", stdout=out)
    message = str(info.value)
    assert message == (
        "shop.0002_run_async cannot be rendered as offline SQL: "
        "ValueError: Cannot call run_async with a sync engine"
    )
    assert out.getvalue() == ""  # no half-rendered SQL


# -- Operation Plugins: a custom directive registered from AppConfig.ready() ---------------


@pytest.fixture
def plugin_cleanup() -> Iterator[None]:
    """The plugin registers op.create_view/op.drop_view globally: remove them afterwards."""
    from alembic import op

    yield
    for name in ("create_view", "drop_view"):
        if name in vars(Operations):
            delattr(Operations, name)
        vars(op).pop(name, None)
    for operation in list(Operations._to_impl._registry):  # type: ignore[attr-defined]
        if operation[0].__name__ in {"CreateViewOp", "DropViewOp"}:
            del Operations._to_impl._registry[operation]  # type: ignore[attr-defined]


def test_operation_plugin(project: Project, alias: str, plugin_cleanup: None) -> None:
    plugin = EXAMPLES / "plugin"
    project.app("shop")
    project.write("shop/ops_views.py", (plugin / "ops_views.py").read_text())
    project.write("shop/apps.py", (plugin / "apps.py").read_text())
    project._install()  # INSTALLED_APPS again: Django now finds ShopConfig and calls ready()
    from alembic import op

    assert hasattr(op, "create_view") and hasattr(op, "drop_view")
    install(project, "create_view", source=(plugin / "create_view.py").read_text())
    run("opsmigrate", "shop", "0001", database=alias)
    before = shop_schema(alias)
    assert "Applying shop.0002_create_view... OK" in run("opsmigrate", database=alias)
    assert query(alias, "SELECT id, name FROM shop_cheap_product") == [(1, "Coffee mug")]
    # Offline SQL goes through the same implementation.
    sql = run("opssqlmigrate", "shop", "0002", database=alias)
    assert "CREATE VIEW shop_cheap_product AS SELECT id, name FROM shop_product" in sql
    assert "Unapplying shop.0002_create_view... OK" in run(
        "opsmigrate", "shop", "0001", database=alias
    )
    assert shop_schema(alias) == before
    run("opsmigrate", "shop", "zero", database=alias)


def test_sqlite_notes_are_the_real_messages() -> None:
    """The messages the page quotes for SQLite are the ones asserted above."""
    text = " ".join(PAGE.read_text().split())
    for behaviour in SQLITE.values():
        if isinstance(behaviour, Fails):
            assert behaviour.text.split(": ", 1)[1] in text, behaviour.text


def test_mysql_notes_are_the_real_messages() -> None:
    """The page quotes the failures asserted above for MySQL."""
    text = " ".join(PAGE.read_text().split())
    assert "near 'DEFERRABLE INITIALLY DEFERRED'" in text
    assert "cannot render TSTZRANGE" in text


# -- batch_alter_table under a view (the SQLite note) --------------------------------------


def test_batch_alter_table_under_a_view(project: Project, alias: str) -> None:
    """Rebuilding a table a view reads: the view survives and reads the rebuilt table."""
    install(project, "execute")  # 0002 creates the view shop_open_order on shop_order
    project.script(
        "shop",
        "0003_constrain",
        revision="c3",
        down="5d66cf84e090",
        upgrade="""
            with op.batch_alter_table("shop_order") as batch:  # a rebuild on SQLite
                batch.create_check_constraint("ck_shop_order_quantity_positive", "quantity > 0")
        """,
        downgrade="""
            with op.batch_alter_table("shop_order") as batch:
                batch.drop_constraint("ck_shop_order_quantity_positive", type_="check")
        """,
    )
    run("opsmigrate", "shop", "0002", database=alias)
    before = shop_schema(alias)
    assert "Applying shop.0003_constrain... OK" in run("opsmigrate", database=alias)
    with inspect_db(alias) as insp:
        assert [c["name"] for c in insp.get_check_constraints("shop_order")] == [
            "ck_shop_order_quantity_positive"
        ]
        assert "shop_open_order" in insp.get_view_names()
    assert [row[0] for row in query(alias, "SELECT id FROM shop_open_order ORDER BY id")] == [1, 2]
    if connections[alias].vendor == "sqlite":
        # Only the rebuild's own rename is legacy; the connection is back to Django's.
        assert query(alias, "PRAGMA legacy_alter_table") == [(0,)]
    run("opsmigrate", "shop", "0002", database=alias)
    assert shop_schema(alias) == before
    assert [row[0] for row in query(alias, "SELECT id FROM shop_open_order ORDER BY id")] == [1, 2]
    run("opsmigrate", "shop", "zero", database=alias)


def test_batch_dropping_a_column_a_view_reads_still_fails(project: Project, alias: str) -> None:
    """The legacy rename does not check views; the migration still must, and say why."""
    if connections[alias].vendor == "mysql":
        pytest.skip(
            "MySQL/MariaDB lets a table that a view reads be altered or dropped (the view is "
            "left invalid): there is no failure to report"
        )
    install(project, "execute")  # the view shop_open_order reads shop_order.quantity
    project.script(
        "shop",
        "0003_drop_quantity",
        revision="c3",
        down="5d66cf84e090",
        upgrade="""
            with op.batch_alter_table("shop_order", recreate="always") as batch:
                batch.drop_column("quantity")
        """,
    )
    run("opsmigrate", "shop", "0002", database=alias)
    before = shop_schema(alias)
    message = run_error("opsmigrate", database=alias)
    assert message.startswith("Applying shop.0003_drop_quantity failed and was rolled back: ")
    if connections[alias].vendor == "sqlite":
        assert message.endswith(
            "OperationalError: no such column: o.quantity; "
            "statement: SELECT * FROM shop_open_order LIMIT 0"
        )
    else:
        # The first failure, not the "current transaction is aborted" of the
        # batch's cleanup (DROP TABLE _alembic_tmp_shop_order) that came after.
        assert "DependentObjectsStillExist: cannot drop table shop_order" in message
        assert message.endswith("; statement: DROP TABLE shop_order")
    assert shop_schema(alias) == before
    run("opsmigrate", "shop", "zero", database=alias)

"""Every directive of Alembic's Operation Reference, from a script in a Django app.

Each test writes ``shop.0001_initial`` (a base schema with some rows) and
``shop.0002_directive`` (the directive under test), applies 0002 with the real
``opsmigrate`` command, asserts the schema through a SQLAlchemy inspector and the
data through SQL, then migrates back to 0001 and asserts that the schema is
exactly what it was before (and finally unapplies everything with ``zero``).
Every test runs on SQLite, PostgreSQL and MariaDB unless the feature is one
backend's own. ALTERs that SQLite cannot do are written the way Alembic documents
it: inside ``op.batch_alter_table()`` when the script sees the ``sqlite`` dialect.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from django.db import IntegrityError, connections
from sqlalchemy.dialects import mysql, postgresql

from .conftest import (
    Project,
    inspect_db,
    query,
    run,
    run_error,
    shop_schema,
    table_names,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ITEM_TABLE = """
op.create_table(
    "shop_item",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("price", sa.Integer, nullable=True),
)
op.execute("INSERT INTO shop_item (id, name, price) VALUES (1, 'apple', 3), (2, 'pear', 5)")
"""
DROP_ITEM = 'op.drop_table("shop_item")'

ORDER_TABLE = """
op.create_table(
    "shop_order",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
)
op.execute("INSERT INTO shop_order (id, item_id, qty) VALUES (1, 1, 2), (2, 2, 1), (3, 1, 7)")
"""
DROP_ORDER = 'op.drop_table("shop_order")'

NO_COMMENTS_ON_SQLITE = "SQLite has no table or column comments (supports_comments is False)"


# -- helpers -------------------------------------------------------------------------------


def code(*parts: str) -> str:
    """Join script fragments (each dedented) into one function body."""
    return "\n".join(textwrap.dedent(part).strip() for part in parts)


def sqlite_batch(table: str, op_call: str, batch_call: str) -> str:
    """A script fragment: ``op.<op_call>``, or ``batch.<batch_call>`` in a batch on SQLite."""
    return code(
        f"""
        if op.get_context().dialect.name == "sqlite":
            with op.batch_alter_table("{table}") as batch:
                batch.{batch_call}
        else:
            op.{op_call}
        """
    )


def scripts(
    project: Project,
    upgrade: str,
    downgrade: str,
    *,
    header: str = "",
    base: str = ITEM_TABLE,
    base_down: str = DROP_ITEM,
    base_header: str = "",
) -> None:
    """App ``shop``: 0001_initial builds ``base``, 0002_directive runs the directive."""
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="r1",
        upgrade=base,
        downgrade=base_down,
        header=base_header,
    )
    project.script(
        "shop",
        "0002_directive",
        revision="r2",
        down="r1",
        upgrade=upgrade,
        downgrade=downgrade,
        header=header,
    )


def upgrade(alias: str) -> dict[str, Any]:
    """Apply 0001, take the schema, apply 0002 (the directive); return the 0001 schema."""
    run("opsmigrate", "shop", "0001", database=alias)
    before = shop_schema(alias)
    assert "shop_item" in before["tables"] or "shop_booking" in before["tables"]
    out = run("opsmigrate", "shop", "0002", database=alias)
    assert "  Applying shop.0002_directive... OK" in out
    assert versions(alias) == ["r2"]
    return before


def downgrade(alias: str, before: dict[str, Any]) -> None:
    """Unapply 0002 (back to 0001): the schema is exactly the 0001 one again."""
    out = run("opsmigrate", "shop", "0001", database=alias)
    assert "  Unapplying shop.0002_directive... OK" in out
    assert versions(alias) == ["r1"]
    assert shop_schema(alias) == before


def zero(alias: str) -> None:
    """Unapply the whole app: no ``shop_*`` table is left."""
    out = run("opsmigrate", "shop", "zero", database=alias)
    assert "  Unapplying shop.0001_initial... OK" in out
    assert versions(alias) == []
    assert {t for t in table_names(alias) if t.startswith("shop_")} == set()


def execute(alias: str, sql: str, params: Any = None) -> None:
    """Run a statement that returns no rows (``query`` fetches)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)


def versions(alias: str) -> list[str]:
    return [row[0] for row in query(alias, "SELECT version_num FROM alembic_ops_version")]


def columns(alias: str, table: str) -> dict[str, dict[str, Any]]:
    with inspect_db(alias) as insp:
        return {c["name"]: c for c in insp.get_columns(table)}


def is_boolean(column: dict[str, Any]) -> bool:
    """A boolean column as reflected: MySQL has no BOOLEAN type, it stores ``TINYINT(1)``."""
    type_ = column["type"]
    if isinstance(type_, mysql.TINYINT):
        return type_.display_width == 1
    return isinstance(type_, sa.Boolean)


def default_text(column: dict[str, Any]) -> str | None:
    """A reflected server default without SQLite's quotes (``'0'`` there, ``0`` on PG)."""
    default = column["default"]
    return None if default is None else str(default).strip("'")


def skip_comments_on_sqlite(alias: str) -> None:
    with inspect_db(alias) as insp:
        if insp.dialect.name == "sqlite":
            assert not insp.dialect.supports_comments
            pytest.skip(NO_COMMENTS_ON_SQLITE)


# -- tables --------------------------------------------------------------------------------


def test_create_table(project: Project, alias: str) -> None:
    scripts(
        project,
        """
        op.create_table(
            "shop_order",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column(
                "item_id",
                sa.Integer,
                sa.ForeignKey("shop_item.id", name="fk_shop_order_item", ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("code", sa.String(30), nullable=False),
            sa.Column("total", sa.Numeric(10, 2), nullable=True),
            sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("paid", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.UniqueConstraint("code", name="uq_shop_order_code"),
            sa.CheckConstraint("total >= 0", name="ck_shop_order_total"),
        )
        """,
        'op.drop_table("shop_order")',
    )
    before = upgrade(alias)
    assert "shop_order" not in before["tables"]
    cols = columns(alias, "shop_order")
    assert list(cols) == ["id", "item_id", "code", "total", "placed_at", "paid"]
    assert isinstance(cols["id"]["type"], sa.Integer)
    assert isinstance(cols["item_id"]["type"], sa.Integer)
    assert isinstance(cols["code"]["type"], sa.String) and cols["code"]["type"].length == 30
    assert isinstance(cols["total"]["type"], sa.Numeric)
    assert (cols["total"]["type"].precision, cols["total"]["type"].scale) == (10, 2)
    assert isinstance(cols["placed_at"]["type"], sa.DateTime)
    assert is_boolean(cols["paid"])
    assert [c["nullable"] for c in cols.values()] == [False, False, False, True, True, False]
    assert default_text(cols["paid"]) in {"false", "0"}
    with inspect_db(alias) as insp:
        assert insp.get_pk_constraint("shop_order")["constrained_columns"] == ["id"]
        [fk] = insp.get_foreign_keys("shop_order")
        assert fk["name"] == "fk_shop_order_item"
        assert fk["constrained_columns"] == ["item_id"]
        assert (fk["referred_table"], fk["referred_columns"]) == ("shop_item", ["id"])
        assert fk["options"].get("ondelete") == "CASCADE"
        assert [
            (u["name"], u["column_names"]) for u in insp.get_unique_constraints("shop_order")
        ] == [("uq_shop_order_code", ["code"])]
        [check] = insp.get_check_constraints("shop_order")
        assert check["name"] == "ck_shop_order_total"
        assert "total >= 0" in check["sqltext"].replace("`", "")  # MariaDB quotes names
    # The constraints are real: server default, CHECK, ON DELETE CASCADE.
    execute(alias, "INSERT INTO shop_order (id, item_id, code, total) VALUES (1, 1, 'A-1', 9.5)")
    assert query(alias, "SELECT paid FROM shop_order") == [(False,)]
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_order (id, item_id, code, total) VALUES (2, 1, 'A-2', -1)")
    execute(alias, "DELETE FROM shop_item WHERE id = 1")
    assert query(alias, "SELECT count(*) FROM shop_order") == [(0,)]
    downgrade(alias, before)
    zero(alias)


def test_drop_table(project: Project, alias: str) -> None:
    item_table = code(ITEM_TABLE, 'op.create_index("ix_shop_item_name", "shop_item", ["name"])')
    scripts(project, 'op.drop_table("shop_item")', item_table, base=item_table)
    before = upgrade(alias)
    assert [i[0] for i in before["tables"]["shop_item"]["indexes"]] == ["ix_shop_item_name"]
    assert "shop_item" not in table_names(alias)
    with inspect_db(alias) as insp:
        assert not insp.has_table("shop_item")
    downgrade(alias, before)
    zero(alias)


def test_rename_table(project: Project, alias: str) -> None:
    scripts(
        project,
        'op.rename_table("shop_item", "shop_product")',
        'op.rename_table("shop_product", "shop_item")',
    )
    before = upgrade(alias)
    tables = table_names(alias)
    assert "shop_product" in tables and "shop_item" not in tables
    assert [c["name"] for c in columns(alias, "shop_product").values()] == ["id", "name", "price"]
    assert query(alias, "SELECT name FROM shop_product ORDER BY id") == [("apple",), ("pear",)]
    downgrade(alias, before)
    assert "shop_product" not in table_names(alias)
    # The rows travel back with the table.
    assert query(alias, "SELECT name FROM shop_item ORDER BY id") == [("apple",), ("pear",)]
    zero(alias)


# -- columns -------------------------------------------------------------------------------


def test_add_column(project: Project, alias: str) -> None:
    scripts(
        project,
        """
        op.add_column("shop_item", sa.Column("sku", sa.String(20), nullable=True))
        op.add_column(
            "shop_item",
            sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        )
        """,
        """
        op.drop_column("shop_item", "active")
        op.drop_column("shop_item", "sku")
        """,
    )
    before = upgrade(alias)
    cols = columns(alias, "shop_item")
    assert list(cols) == ["id", "name", "price", "sku", "active"]
    assert isinstance(cols["sku"]["type"], sa.String) and cols["sku"]["type"].length == 20
    assert cols["sku"]["nullable"] is True
    assert is_boolean(cols["active"])
    assert cols["active"]["nullable"] is False
    assert default_text(cols["active"]) in {"true", "1"}
    # Existing rows got the server default.
    assert query(alias, "SELECT active, sku FROM shop_item ORDER BY id") == [
        (True, None),
        (True, None),
    ]
    downgrade(alias, before)
    zero(alias)


def test_drop_column(project: Project, alias: str) -> None:
    scripts(
        project,
        'op.drop_column("shop_item", "price")',
        'op.add_column("shop_item", sa.Column("price", sa.Integer, nullable=True))',
    )
    before = upgrade(alias)
    assert list(columns(alias, "shop_item")) == ["id", "name"]
    assert query(alias, "SELECT name FROM shop_item ORDER BY id") == [("apple",), ("pear",)]
    downgrade(alias, before)
    zero(alias)


ALTER_PRICE = """
def alter_price(**kw):
    \"\"\"op.alter_column on shop_item.price; in a batch on SQLite (no ALTER COLUMN there).\"\"\"
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("shop_item") as batch:
            batch.alter_column("price", **kw)
    else:
        op.alter_column("shop_item", "price", **kw)
"""


def test_alter_column_type(project: Project, alias: str) -> None:
    scripts(
        project,
        "alter_price(type_=sa.Numeric(10, 2), existing_type=sa.Integer, existing_nullable=True)",
        "alter_price(type_=sa.Integer, existing_type=sa.Numeric(10, 2), existing_nullable=True)",
        header=ALTER_PRICE,
    )
    before = upgrade(alias)
    price = columns(alias, "shop_item")["price"]
    assert isinstance(price["type"], sa.Numeric) and not isinstance(price["type"], sa.Integer)
    assert (price["type"].precision, price["type"].scale) == (10, 2)
    assert query(alias, "SELECT price FROM shop_item ORDER BY id") == [(3,), (5,)]
    downgrade(alias, before)
    zero(alias)


def test_alter_column_nullable(project: Project, alias: str) -> None:
    scripts(
        project,
        "alter_price(nullable=False, existing_type=sa.Integer)",
        "alter_price(nullable=True, existing_type=sa.Integer)",
        header=ALTER_PRICE,
    )
    before = upgrade(alias)
    assert columns(alias, "shop_item")["price"]["nullable"] is False
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_item (id, name, price) VALUES (3, 'plum', NULL)")
    downgrade(alias, before)
    zero(alias)


def test_alter_column_server_default(project: Project, alias: str) -> None:
    scripts(
        project,
        'alter_price(server_default="0", existing_type=sa.Integer, existing_nullable=True)',
        "alter_price(server_default=None, existing_type=sa.Integer, existing_nullable=True)",
        header=ALTER_PRICE,
    )
    before = upgrade(alias)
    assert default_text(columns(alias, "shop_item")["price"]) == "0"
    execute(alias, "INSERT INTO shop_item (id, name) VALUES (3, 'plum')")
    assert query(alias, "SELECT price FROM shop_item WHERE id = 3") == [(0,)]
    downgrade(alias, before)
    zero(alias)


def test_alter_column_rename(project: Project, alias: str) -> None:
    # SQLite has RENAME COLUMN (3.25+): no batch needed. MySQL renames with CHANGE
    # COLUMN, which restates the column: Alembic needs existing_type there.
    existing = "existing_type=sa.String(50), existing_nullable=False"
    scripts(
        project,
        f'op.alter_column("shop_item", "name", new_column_name="title", {existing})',
        f'op.alter_column("shop_item", "title", new_column_name="name", {existing})',
    )
    before = upgrade(alias)
    cols = columns(alias, "shop_item")
    assert list(cols) == ["id", "title", "price"]
    assert isinstance(cols["title"]["type"], sa.String) and cols["title"]["type"].length == 50
    assert cols["title"]["nullable"] is False
    assert query(alias, "SELECT title FROM shop_item ORDER BY id") == [("apple",), ("pear",)]
    downgrade(alias, before)
    zero(alias)


def test_alter_column_comment(project: Project, alias: str) -> None:
    skip_comments_on_sqlite(alias)
    scripts(
        project,
        'alter_price(comment="Price in cents", existing_type=sa.Integer, existing_nullable=True)',
        """
        alter_price(
            comment=None,
            existing_comment="Price in cents",
            existing_type=sa.Integer,
            existing_nullable=True,
        )
        """,
        header=ALTER_PRICE,
    )
    before = upgrade(alias)
    assert before["tables"]["shop_item"]["columns"][2][4] is None
    assert columns(alias, "shop_item")["price"]["comment"] == "Price in cents"
    downgrade(alias, before)
    zero(alias)


# -- indexes -------------------------------------------------------------------------------


def test_create_index(project: Project, alias: str) -> None:
    scripts(
        project,
        """
        op.create_index("ix_shop_item_price", "shop_item", ["price"])
        op.create_index("ix_shop_item_name_price", "shop_item", ["name", "price"], unique=True)
        """,
        """
        op.drop_index("ix_shop_item_name_price", table_name="shop_item")
        op.drop_index("ix_shop_item_price", table_name="shop_item")
        """,
    )
    before = upgrade(alias)
    assert before["tables"]["shop_item"]["indexes"] == []
    with inspect_db(alias) as insp:
        indexes = {
            i["name"]: (i["column_names"], bool(i["unique"])) for i in insp.get_indexes("shop_item")
        }
    assert indexes == {
        "ix_shop_item_price": (["price"], False),
        "ix_shop_item_name_price": (["name", "price"], True),
    }
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_item (id, name, price) VALUES (3, 'apple', 3)")
    downgrade(alias, before)
    zero(alias)


def test_drop_index(project: Project, alias: str) -> None:
    scripts(
        project,
        'op.drop_index("ix_shop_item_name", table_name="shop_item")',
        'op.create_index("ix_shop_item_name", "shop_item", ["name"], unique=True)',
        base=code(
            ITEM_TABLE, 'op.create_index("ix_shop_item_name", "shop_item", ["name"], unique=True)'
        ),
    )
    before = upgrade(alias)
    assert [i[0] for i in before["tables"]["shop_item"]["indexes"]] == ["ix_shop_item_name"]
    with inspect_db(alias) as insp:
        assert insp.get_indexes("shop_item") == []
    # Without the unique index a duplicate name is accepted.
    execute(alias, "INSERT INTO shop_item (id, name, price) VALUES (3, 'apple', 1)")
    execute(alias, "DELETE FROM shop_item WHERE id = 3")
    downgrade(alias, before)
    zero(alias)


def test_create_index_partial(project: Project, alias: str) -> None:
    """A partial (WHERE) index: postgresql_where on PostgreSQL, sqlite_where on SQLite."""
    if connections[alias].vendor == "mysql":
        pytest.skip("MySQL/MariaDB has no partial (WHERE) indexes")
    scripts(
        project,
        """
        op.create_index(
            "ix_shop_item_cheap_name",
            "shop_item",
            ["name"],
            unique=True,
            postgresql_where=sa.text("price < 4"),
            sqlite_where=sa.text("price < 4"),
        )
        """,
        'op.drop_index("ix_shop_item_cheap_name", table_name="shop_item")',
    )
    before = upgrade(alias)
    with inspect_db(alias) as insp:
        [index] = insp.get_indexes("shop_item")
        where_key = f"{insp.dialect.name}_where"
    assert index["name"] == "ix_shop_item_cheap_name"
    assert index["column_names"] == ["name"] and index["unique"]
    assert "price < 4" in str(index["dialect_options"][where_key])
    # Unique only among the rows the WHERE selects.
    execute(alias, "INSERT INTO shop_item (id, name, price) VALUES (3, 'apple', 10)")
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_item (id, name, price) VALUES (4, 'apple', 1)")
    downgrade(alias, before)
    zero(alias)


def test_create_index_concurrently_in_autocommit_block(project: Project, alias: str) -> None:
    """``CREATE INDEX CONCURRENTLY`` cannot run in a transaction: autocommit_block() on PG."""
    scripts(
        project,
        """
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_shop_item_price", "shop_item", ["price"], postgresql_concurrently=True
            )
        """,
        """
        with op.get_context().autocommit_block():
            op.drop_index(
                "ix_shop_item_price", table_name="shop_item", postgresql_concurrently=True
            )
        """,
    )
    pg = connections[alias].vendor == "postgresql"
    sql = run("opssqlmigrate", "shop", "0002", database=alias)
    assert ("CREATE INDEX CONCURRENTLY ix_shop_item_price" in sql) is pg
    before = upgrade(alias)
    connection = connections[alias]
    assert connection.get_autocommit() is True
    assert not connection.in_atomic_block
    with inspect_db(alias) as insp:
        assert [(i["name"], i["column_names"]) for i in insp.get_indexes("shop_item")] == [
            ("ix_shop_item_price", ["price"])
        ]
    if pg:
        assert query(
            alias,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_shop_item_price'::regclass",
        ) == [(True,)]
    downgrade(alias, before)
    assert connection.get_autocommit() is True
    zero(alias)


# -- constraints ---------------------------------------------------------------------------


def test_create_unique_constraint(project: Project, alias: str) -> None:
    scripts(
        project,
        sqlite_batch(
            "shop_item",
            'create_unique_constraint("uq_shop_item_name", "shop_item", ["name"])',
            'create_unique_constraint("uq_shop_item_name", ["name"])',
        ),
        sqlite_batch(
            "shop_item",
            'drop_constraint("uq_shop_item_name", "shop_item", type_="unique")',
            'drop_constraint("uq_shop_item_name", type_="unique")',
        ),
    )
    before = upgrade(alias)
    with inspect_db(alias) as insp:
        uniques = insp.get_unique_constraints("shop_item")
    assert [(u["name"], u["column_names"]) for u in uniques] == [("uq_shop_item_name", ["name"])]
    assert query(alias, "SELECT name FROM shop_item ORDER BY id") == [("apple",), ("pear",)]
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_item (id, name, price) VALUES (3, 'pear', 1)")
    downgrade(alias, before)
    zero(alias)


def test_create_primary_key(project: Project, alias: str) -> None:
    tag_table = """
    op.create_table(
        "shop_tag",
        sa.Column("code", sa.String(10), nullable=False),
        sa.Column("label", sa.String(50), nullable=True),
    )
    op.execute("INSERT INTO shop_tag (code, label) VALUES ('red', 'Red'), ('blue', 'Blue')")
    """
    scripts(
        project,
        sqlite_batch(
            "shop_tag",
            'create_primary_key("pk_shop_tag", "shop_tag", ["code"])',
            'create_primary_key("pk_shop_tag", ["code"])',
        ),
        sqlite_batch(
            "shop_tag",
            'drop_constraint("pk_shop_tag", "shop_tag", type_="primary")',
            'drop_constraint("pk_shop_tag", type_="primary")',
        ),
        base=code(ITEM_TABLE, tag_table),
        base_down=code('op.drop_table("shop_tag")', DROP_ITEM),
    )
    before = upgrade(alias)
    assert before["tables"]["shop_tag"]["pk"][1] == []
    with inspect_db(alias) as insp:
        pk = insp.get_pk_constraint("shop_tag")
    # MySQL ignores a primary key's name: it is always PRIMARY (reflected as None).
    name = None if connections[alias].vendor == "mysql" else "pk_shop_tag"
    assert (pk["name"], pk["constrained_columns"]) == (name, ["code"])
    assert query(alias, "SELECT code FROM shop_tag ORDER BY code") == [("blue",), ("red",)]
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_tag (code, label) VALUES ('red', 'Again')")
    downgrade(alias, before)
    zero(alias)


def test_create_foreign_key(project: Project, alias: str) -> None:
    scripts(
        project,
        sqlite_batch(
            "shop_order",
            'create_foreign_key("fk_shop_order_item", "shop_order", "shop_item", ["item_id"], '
            '["id"], ondelete="CASCADE")',
            'create_foreign_key("fk_shop_order_item", "shop_item", ["item_id"], ["id"], '
            'ondelete="CASCADE")',
        ),
        code(
            sqlite_batch(
                "shop_order",
                'drop_constraint("fk_shop_order_item", "shop_order", type_="foreignkey")',
                'drop_constraint("fk_shop_order_item", type_="foreignkey")',
            ),
            # MySQL indexes a foreign key's columns itself (an index named after the
            # constraint) and keeps that index when the constraint is dropped.
            """
            if op.get_context().dialect.name == "mysql":
                op.drop_index("fk_shop_order_item", table_name="shop_order")
            """,
        ),
        base=code(ITEM_TABLE, ORDER_TABLE),
        base_down=code(DROP_ORDER, DROP_ITEM),
    )
    before = upgrade(alias)
    assert before["tables"]["shop_order"]["fks"] == []
    with inspect_db(alias) as insp:
        [fk] = insp.get_foreign_keys("shop_order")
    assert fk["name"] == "fk_shop_order_item"
    assert fk["constrained_columns"] == ["item_id"]
    assert (fk["referred_table"], fk["referred_columns"]) == ("shop_item", ["id"])
    assert fk["options"].get("ondelete") == "CASCADE"
    assert query(alias, "SELECT count(*) FROM shop_order") == [(3,)]
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_order (id, item_id, qty) VALUES (9, 99, 1)")
    execute(alias, "DELETE FROM shop_item WHERE id = 1")
    assert query(alias, "SELECT id FROM shop_order ORDER BY id") == [(2,)]
    downgrade(alias, before)
    zero(alias)


def test_create_check_constraint(project: Project, alias: str) -> None:
    scripts(
        project,
        sqlite_batch(
            "shop_item",
            'create_check_constraint("ck_shop_item_price", "shop_item", "price >= 0")',
            'create_check_constraint("ck_shop_item_price", "price >= 0")',
        ),
        sqlite_batch(
            "shop_item",
            'drop_constraint("ck_shop_item_price", "shop_item", type_="check")',
            'drop_constraint("ck_shop_item_price", type_="check")',
        ),
    )
    before = upgrade(alias)
    with inspect_db(alias) as insp:
        [check] = insp.get_check_constraints("shop_item")
    assert check["name"] == "ck_shop_item_price"
    assert "price >= 0" in check["sqltext"].replace("`", "")  # MariaDB quotes names
    assert query(alias, "SELECT count(*) FROM shop_item") == [(2,)]
    with pytest.raises(IntegrityError):
        execute(alias, "INSERT INTO shop_item (id, name, price) VALUES (3, 'plum', -1)")
    downgrade(alias, before)
    zero(alias)


def test_create_exclude_constraint(project: Project, pg_alias: str) -> None:
    """PostgreSQL only: EXCLUDE USING gist (not reflected by SQLAlchemy: read pg_constraint)."""
    booking_table = """
    op.create_table(
        "shop_booking",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("room", sa.Integer, nullable=False),
        sa.Column("during", postgresql.TSRANGE, nullable=False),
    )
    """
    scripts(
        project,
        """
        op.create_exclude_constraint(
            "excl_shop_booking_during",
            "shop_booking",
            ("during", "&&"),
            using="gist",
            where=sa.text("room > 0"),
        )
        """,
        'op.drop_constraint("excl_shop_booking_during", "shop_booking")',
        base=booking_table,
        base_down='op.drop_table("shop_booking")',
        base_header="from sqlalchemy.dialects import postgresql",
    )
    before = upgrade(pg_alias)
    assert [c[0] for c in before["tables"]["shop_booking"]["pg_constraints"]] == [
        "shop_booking_pkey"
    ]
    rows = query(
        pg_alias,
        "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'excl_shop_booking_during'",
    )
    assert rows == [("x", "EXCLUDE USING gist (during WITH &&) WHERE ((room > 0))")]
    with inspect_db(pg_alias) as insp:
        assert insp.get_pk_constraint("shop_booking")["constrained_columns"] == ["id"]
    assert isinstance(columns(pg_alias, "shop_booking")["during"]["type"], postgresql.TSRANGE)
    insert = "INSERT INTO shop_booking (id, room, during) VALUES (%s, %s, %s)"
    execute(pg_alias, insert, [1, 1, "[2025-01-01 10:00, 2025-01-01 12:00)"])
    execute(pg_alias, insert, [2, 0, "[2025-01-01 11:00, 2025-01-01 12:00)"])
    with pytest.raises(IntegrityError):
        execute(pg_alias, insert, [3, 2, "[2025-01-01 11:00, 2025-01-01 13:00)"])
    downgrade(pg_alias, before)
    zero(pg_alias)


def test_create_exclude_constraint_on_mysql_is_one_clear_line(
    project: Project, mysql_alias: str
) -> None:
    """MySQL has no EXCLUDE constraint: one line saying so, nothing changed.

    (SQLite refuses it earlier: no ALTER of constraints there, see the docs examples.)
    """
    alias = mysql_alias
    scripts(
        project,
        'op.create_exclude_constraint("excl_shop_item_name", "shop_item", ("name", "="))',
        'op.drop_constraint("excl_shop_item_name", "shop_item")',
    )
    run("opsmigrate", "shop", "0001", database=alias)
    before = shop_schema(alias)
    message = run_error("opsmigrate", "shop", "0002", database=alias)
    assert message == (
        "Applying shop.0002_directive failed and was rolled back: UnsupportedCompilationError: "
        "the mysql dialect cannot render ExcludeConstraint (another "
        "database's feature: branch on op.get_context().dialect.name)"
    )
    assert shop_schema(alias) == before
    assert versions(alias) == ["r1"]
    zero(alias)


DROP_CONSTRAINT_BASE = """
op.create_table(
    "shop_order",
    # No AUTO_INCREMENT on MySQL: there it must stay a key, so its primary key could not go.
    sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("code", sa.String(20), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_shop_order"),
    sa.ForeignKeyConstraint(
        ["item_id"], ["shop_item.id"], name="fk_shop_order_item", ondelete="CASCADE"
    ),
    sa.UniqueConstraint("code", name="uq_shop_order_code"),
    sa.CheckConstraint("qty > 0", name="ck_shop_order_qty"),
)
op.execute("INSERT INTO shop_order (id, item_id, code, qty) VALUES (1, 1, 'A', 2), (2, 2, 'B', 1)")
"""

#: type_ -> (constraint name, how the downgrade re-creates it: (op call, batch call)).
DROPPABLE = {
    "unique": (
        "uq_shop_order_code",
        'create_unique_constraint("uq_shop_order_code", "shop_order", ["code"])',
        'create_unique_constraint("uq_shop_order_code", ["code"])',
    ),
    "foreignkey": (
        "fk_shop_order_item",
        'create_foreign_key("fk_shop_order_item", "shop_order", "shop_item", ["item_id"], '
        '["id"], ondelete="CASCADE")',
        'create_foreign_key("fk_shop_order_item", "shop_item", ["item_id"], ["id"], '
        'ondelete="CASCADE")',
    ),
    "check": (
        "ck_shop_order_qty",
        'create_check_constraint("ck_shop_order_qty", "shop_order", "qty > 0")',
        'create_check_constraint("ck_shop_order_qty", "qty > 0")',
    ),
    "primary": (
        "pk_shop_order",
        'create_primary_key("pk_shop_order", "shop_order", ["id"])',
        'create_primary_key("pk_shop_order", ["id"])',
    ),
}


def constraint_names(alias: str, table: str) -> dict[str, set[str]]:
    with inspect_db(alias) as insp:
        return {
            "primary": {insp.get_pk_constraint(table)["name"]} - {None},
            "foreignkey": {fk["name"] for fk in insp.get_foreign_keys(table)},
            "unique": {u["name"] for u in insp.get_unique_constraints(table)},
            "check": {c["name"] for c in insp.get_check_constraints(table)},
        }


@pytest.mark.parametrize("type_", list(DROPPABLE))
def test_drop_constraint(project: Project, alias: str, type_: str) -> None:
    name, recreate_op, recreate_batch = DROPPABLE[type_]
    scripts(
        project,
        sqlite_batch(
            "shop_order",
            f'drop_constraint("{name}", "shop_order", type_="{type_}")',
            f'drop_constraint("{name}", type_="{type_}")',
        ),
        sqlite_batch("shop_order", recreate_op, recreate_batch),
        base=code(ITEM_TABLE, DROP_CONSTRAINT_BASE),
        base_down=code('op.drop_table("shop_order")', DROP_ITEM),
    )
    run("opsmigrate", "shop", "0001", database=alias)
    names_before = constraint_names(alias, "shop_order")
    mysql = connections[alias].vendor == "mysql"
    expected_before = {
        # MySQL ignores a primary key's name: it is always PRIMARY (reflected as None).
        "primary": set() if mysql else {"pk_shop_order"},
        "foreignkey": {"fk_shop_order_item"},
        "unique": {"uq_shop_order_code"},
        "check": {"ck_shop_order_qty"},
    }
    assert names_before == expected_before
    before = upgrade(alias)
    assert constraint_names(alias, "shop_order") == {**expected_before, type_: set()}
    assert query(alias, "SELECT id, code FROM shop_order ORDER BY id") == [(1, "A"), (2, "B")]
    downgrade(alias, before)
    zero(alias)


# -- comments (PostgreSQL; SQLite has none) --------------------------------------------------


def test_create_table_comment(project: Project, alias: str) -> None:
    skip_comments_on_sqlite(alias)
    scripts(
        project,
        'op.create_table_comment("shop_item", "Things we sell", existing_comment=None)',
        'op.drop_table_comment("shop_item", existing_comment="Things we sell")',
    )
    before = upgrade(alias)
    assert before["tables"]["shop_item"]["comment"] is None
    with inspect_db(alias) as insp:
        assert insp.get_table_comment("shop_item") == {"text": "Things we sell"}
    downgrade(alias, before)
    zero(alias)


def test_drop_table_comment(project: Project, alias: str) -> None:
    skip_comments_on_sqlite(alias)
    scripts(
        project,
        'op.drop_table_comment("shop_item", existing_comment="Things we sell")',
        'op.create_table_comment("shop_item", "Things we sell")',
        base=code(ITEM_TABLE, 'op.create_table_comment("shop_item", "Things we sell")'),
    )
    before = upgrade(alias)
    assert before["tables"]["shop_item"]["comment"] == "Things we sell"
    with inspect_db(alias) as insp:
        assert insp.get_table_comment("shop_item") == {"text": None}
    downgrade(alias, before)
    zero(alias)


# -- data ----------------------------------------------------------------------------------


def test_bulk_insert(project: Project, alias: str) -> None:
    scripts(
        project,
        """
        op.bulk_insert(
            ITEMS,
            [
                {"id": 10, "name": "plum", "price": 7},
                {"id": 11, "name": "it's a fig", "price": None},
            ],
        )
        op.bulk_insert(ITEMS, [{"id": 12, "name": "kiwi", "price": 2}], multiinsert=False)
        """,
        "op.execute(ITEMS.delete().where(ITEMS.c.id.in_([10, 11, 12])))",
        header="""
        ITEMS = sa.table(
            "shop_item",
            sa.column("id", sa.Integer),
            sa.column("name", sa.String),
            sa.column("price", sa.Integer),
        )
        """,
    )
    before = upgrade(alias)
    assert query(alias, "SELECT id, name, price FROM shop_item ORDER BY id") == [
        (1, "apple", 3),
        (2, "pear", 5),
        (10, "plum", 7),
        (11, "it's a fig", None),
        (12, "kiwi", 2),
    ]
    downgrade(alias, before)
    assert query(alias, "SELECT id FROM shop_item ORDER BY id") == [(1,), (2,)]
    zero(alias)


def test_execute_with_inline_literal(project: Project, alias: str) -> None:
    scripts(
        project,
        """
        op.execute(
            ITEMS.update()
            .where(ITEMS.c.name == op.inline_literal("apple"))
            .values({"price": op.inline_literal(30)})
        )
        op.execute("UPDATE shop_item SET name = 'PEAR' WHERE name = 'pear'")
        op.execute(sa.text("UPDATE shop_item SET price = price + 1 WHERE id = 2"))
        """,
        """
        op.execute(sa.text("UPDATE shop_item SET price = price - 1 WHERE id = 2"))
        op.execute("UPDATE shop_item SET name = 'pear' WHERE name = 'PEAR'")
        op.execute(
            ITEMS.update()
            .where(ITEMS.c.name == op.inline_literal("apple"))
            .values({"price": op.inline_literal(3)})
        )
        """,
        header="""
        ITEMS = sa.table("shop_item", sa.column("name", sa.String), sa.column("price", sa.Integer))
        """,
    )
    # inline_literal renders the values into offline SQL (no bound parameters).
    sql = run("opssqlmigrate", "shop", "0002", database=alias)
    assert "UPDATE shop_item SET price=30 WHERE shop_item.name = 'apple'" in sql
    before = upgrade(alias)
    assert query(alias, "SELECT name, price FROM shop_item ORDER BY id") == [
        ("apple", 30),
        ("PEAR", 6),
    ]
    downgrade(alias, before)
    assert query(alias, "SELECT name, price FROM shop_item ORDER BY id") == [
        ("apple", 3),
        ("pear", 5),
    ]
    zero(alias)


# -- batch mode ----------------------------------------------------------------------------


def test_batch_alter_table(project: Project, alias: str) -> None:
    """Several ALTERs at once; on SQLite a table rebuild that keeps rows, also those
    of a table referencing it with ON DELETE CASCADE."""
    order_table = """
    op.create_table(
        "shop_order",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "item_id",
            sa.Integer,
            sa.ForeignKey("shop_item.id", name="fk_shop_order_item", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.execute("INSERT INTO shop_order (id, item_id) VALUES (1, 1), (2, 2), (3, 1)")
    """
    scripts(
        project,
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.alter_column(
                "name", type_=sa.String(100), existing_type=sa.String(50), existing_nullable=False
            )
            batch.drop_column("price")
            batch.add_column(sa.Column("sku", sa.String(20), nullable=True))
            batch.create_unique_constraint("uq_shop_item_sku", ["sku"])
            batch.create_index("ix_shop_item_name", ["name"])
        """,
        """
        with op.batch_alter_table("shop_item") as batch:
            batch.drop_index("ix_shop_item_name")
            batch.drop_constraint("uq_shop_item_sku", type_="unique")
            batch.drop_column("sku")
            batch.alter_column(
                "name", type_=sa.String(50), existing_type=sa.String(100), existing_nullable=False
            )
            batch.add_column(sa.Column("price", sa.Integer, nullable=True))
        """,
        base=code(ITEM_TABLE, order_table),
        base_down=code(DROP_ORDER, DROP_ITEM),
    )
    before = upgrade(alias)
    cols = columns(alias, "shop_item")
    assert list(cols) == ["id", "name", "sku"]
    assert isinstance(cols["name"]["type"], sa.String) and cols["name"]["type"].length == 100
    assert cols["name"]["nullable"] is False
    assert isinstance(cols["sku"]["type"], sa.String) and cols["sku"]["type"].length == 20
    with inspect_db(alias) as insp:
        uniques = [(u["name"], u["column_names"]) for u in insp.get_unique_constraints("shop_item")]
        indexes = [(i["name"], i["column_names"]) for i in insp.get_indexes("shop_item")]
        [fk] = insp.get_foreign_keys("shop_order")
    assert uniques == [("uq_shop_item_sku", ["sku"])]
    assert ("ix_shop_item_name", ["name"]) in indexes
    assert (fk["referred_table"], fk["options"].get("ondelete")) == ("shop_item", "CASCADE")
    assert query(alias, "SELECT id, name FROM shop_item ORDER BY id") == [(1, "apple"), (2, "pear")]
    assert query(alias, "SELECT id FROM shop_order ORDER BY id") == [(1,), (2,), (3,)]
    downgrade(alias, before)
    assert query(alias, "SELECT id FROM shop_order ORDER BY id") == [(1,), (2,), (3,)]
    assert query(alias, "SELECT id, name FROM shop_item ORDER BY id") == [(1, "apple"), (2, "pear")]
    zero(alias)


# -- helpers of the op namespace -----------------------------------------------------------


NAMING_CONVENTION = """
from contextlib import contextmanager

CONVENTION = {"ck": "ck_%(table_name)s_%(constraint_name)s"}


@contextmanager
def naming_convention():
    \"\"\"What env.py's target_metadata gives op directives in plain Alembic.\"\"\"
    opts = op.get_context().opts
    previous = opts.get("target_metadata")
    opts["target_metadata"] = sa.MetaData(naming_convention=CONVENTION)
    try:
        yield
    finally:
        opts["target_metadata"] = previous


def add_check(name, condition):
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("shop_item") as batch:
            batch.create_check_constraint(name, condition)
    else:
        op.create_check_constraint(name, "shop_item", condition)


def drop_check(name):
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("shop_item") as batch:
            batch.drop_constraint(name, type_="check")
    else:
        op.drop_constraint(name, "shop_item", type_="check")
"""


def test_f(project: Project, alias: str) -> None:
    """op.f() marks a name as final: the naming convention is not applied to it."""
    scripts(
        project,
        """
        with naming_convention():
            add_check("price_positive", "price >= 0")
            add_check(op.f("ck_price_small"), "price < 1000")
        """,
        """
        with naming_convention():
            drop_check(op.f("ck_price_small"))
            drop_check(op.f("ck_shop_item_price_positive"))
        """,
        header=NAMING_CONVENTION,
    )
    before = upgrade(alias)
    with inspect_db(alias) as insp:
        checks = sorted(c["name"] for c in insp.get_check_constraints("shop_item"))
    # The convention applied to the plain name, op.f() kept the other one as written.
    assert checks == ["ck_price_small", "ck_shop_item_price_positive"]
    downgrade(alias, before)
    zero(alias)


def test_get_bind(project: Project, alias: str) -> None:
    """op.get_bind() is Django's connection: a data migration through it is Django's data."""
    scripts(
        project,
        """
        bind = op.get_bind()
        assert bind.connection.dbapi_connection is connections[ALIAS].connection
        rows = bind.execute(sa.text("SELECT id, name FROM shop_item ORDER BY id")).all()
        for id_, name in rows:
            bind.execute(
                sa.text("UPDATE shop_item SET name = :name WHERE id = :id"),
                {"name": name.upper(), "id": id_},
            )
        """,
        """
        bind = op.get_bind()
        bind.execute(sa.text("UPDATE shop_item SET name = lower(name)"))
        """,
        header=f"from django.db import connections\n\nALIAS = {alias!r}\n",
    )
    before = upgrade(alias)
    assert query(alias, "SELECT name FROM shop_item ORDER BY id") == [("APPLE",), ("PEAR",)]
    downgrade(alias, before)
    assert query(alias, "SELECT name FROM shop_item ORDER BY id") == [("apple",), ("pear",)]
    zero(alias)


def test_get_context(project: Project, alias: str) -> None:
    """op.get_context() is the MigrationContext of the run: dialect, heads, version table."""
    scripts(
        project,
        """
        context = op.get_context()
        op.create_table(
            "shop_context",
            sa.Column("name", sa.String(30), primary_key=True),
            sa.Column("value", sa.String(100)),
        )
        info = {
            "dialect": context.dialect.name,
            "heads": ",".join(context.get_current_heads()),
            "as_sql": context.as_sql,
            "version_table": context.version_table,
            "same_bind": context.bind is op.get_bind(),
            "in_django_atomic": connections[ALIAS].in_atomic_block,
        }
        op.bulk_insert(
            sa.table("shop_context", sa.column("name"), sa.column("value")),
            [{"name": k, "value": str(v)} for k, v in info.items()],
        )
        """,
        'op.drop_table("shop_context")',
        header=f"from django.db import connections\n\nALIAS = {alias!r}\n",
    )
    before = upgrade(alias)
    assert dict(query(alias, "SELECT name, value FROM shop_context")) == {
        "dialect": connections[alias].vendor,
        "heads": "r1",
        "as_sql": "False",
        "version_table": "alembic_ops_version",
        "same_bind": "True",
        "in_django_atomic": "True",
    }
    downgrade(alias, before)
    zero(alias)


def test_invoke(project: Project, alias: str) -> None:
    """op.invoke() runs operation objects; their reverse() undoes them."""
    scripts(
        project,
        """
        op.invoke(ADD_SKU)
        op.invoke(SKU_INDEX)
        """,
        """
        op.invoke(SKU_INDEX.reverse())
        op.invoke(ADD_SKU.reverse())
        """,
        header="""
        from alembic.operations import ops

        ADD_SKU = ops.AddColumnOp.from_column_and_tablename(
            None, "shop_item", sa.Column("sku", sa.String(20), nullable=True)
        )
        SKU_INDEX = ops.CreateIndexOp("ix_shop_item_sku", "shop_item", ["sku"], unique=True)
        """,
    )
    before = upgrade(alias)
    cols = columns(alias, "shop_item")
    assert list(cols) == ["id", "name", "price", "sku"]
    assert isinstance(cols["sku"]["type"], sa.String) and cols["sku"]["type"].length == 20
    with inspect_db(alias) as insp:
        indexes = [
            (i["name"], i["column_names"], bool(i["unique"])) for i in insp.get_indexes("shop_item")
        ]
    assert indexes == [("ix_shop_item_sku", ["sku"], True)]
    downgrade(alias, before)
    zero(alias)


# -- operation plugins ---------------------------------------------------------------------


VIEW_PLUGIN = '''
from alembic.operations import MigrateOperation, Operations


@Operations.register_operation("create_view")
class CreateViewOp(MigrateOperation):
    def __init__(self, view_name, select):
        self.view_name = view_name
        self.select = select

    @classmethod
    def create_view(cls, operations, view_name, select):
        """Create a view."""
        return operations.invoke(cls(view_name, select))

    def reverse(self):
        return DropViewOp(self.view_name, self.select)


@Operations.register_operation("drop_view")
class DropViewOp(MigrateOperation):
    def __init__(self, view_name, select=None):
        self.view_name = view_name
        self.select = select

    @classmethod
    def drop_view(cls, operations, view_name):
        """Drop a view."""
        return operations.invoke(cls(view_name))

    def reverse(self):
        return CreateViewOp(self.view_name, self.select)


@Operations.implementation_for(CreateViewOp)
def create_view(operations, operation):
    operations.execute(f"CREATE VIEW {operation.view_name} AS {operation.select}")


@Operations.implementation_for(DropViewOp)
def drop_view(operations, operation):
    operations.execute(f"DROP VIEW {operation.view_name}")
'''


@pytest.fixture
def unregister_plugin() -> Iterator[None]:
    """The plugin registers op.create_view/op.drop_view globally: remove them afterwards."""
    from alembic import op
    from alembic.operations import Operations

    yield
    for name in ("create_view", "drop_view"):
        if name in vars(Operations):
            delattr(Operations, name)
        vars(op).pop(name, None)


def test_operation_plugin(project: Project, alias: str, unregister_plugin: None) -> None:
    """Operations.register_operation + implementation_for, called as op.create_view(...)."""
    scripts(
        project,
        'op.create_view("shop_cheap_item", "SELECT id, name FROM shop_item WHERE price < 4")',
        'op.drop_view("shop_cheap_item")',
        header=VIEW_PLUGIN,
    )
    before = upgrade(alias)
    assert before["views"] == []
    with inspect_db(alias) as insp:
        assert "shop_cheap_item" in insp.get_view_names()
        assert [c["name"] for c in insp.get_columns("shop_cheap_item")] == ["id", "name"]
    assert query(alias, "SELECT id, name FROM shop_cheap_item") == [(1, "apple")]
    downgrade(alias, before)
    zero(alias)

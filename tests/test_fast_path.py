"""The cheap "up to date" answer: right, invalidated by any script change."""

from __future__ import annotations

import sys

import pytest

from django_alembic_ops import api, headers

from .conftest import Project, one_table, run

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def shop(project: Project) -> Project:
    project.app("shop")
    project.app("orders")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    project.script(
        "orders", "0001_initial", revision="o1", depends_on="s1", **one_table("orders_a")
    )
    return project


def test_up_to_date_follows_the_database(shop: Project, alias: str) -> None:
    assert not api.up_to_date(database=alias)
    run("opsmigrate", "shop", database=alias)
    assert api.up_to_date("shop", database=alias)
    assert not api.up_to_date(database=alias)
    run("opsmigrate", database=alias)
    assert api.up_to_date(database=alias)
    run("opsmigrate", "shop", "zero", database=alias)
    assert not api.up_to_date("shop", database=alias)


def test_new_or_edited_script_invalidates_the_cache(shop: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    assert api.up_to_date(database=alias)
    cache = (
        shop.root / "shop" / "migrations_ops" / "__pycache__" / "django_alembic_ops_headers.json"
    )
    assert cache.is_file()
    path = shop.script("shop", "0002_more", revision="s2", down="s1", **one_table("shop_b"))
    assert not api.up_to_date(database=alias)
    out = run("opsmigrate", database=alias)
    assert "Applying shop.0002_more... OK" in out
    assert api.up_to_date(database=alias)
    # Same file, new revision id (different size): the cached header is stale.
    path.write_text(path.read_text().replace("'s2'", "'s2_renumbered'"))
    assert not api.up_to_date(database=alias)


def test_no_op_imports_no_script(shop: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    headers._memo.clear()
    before = set(sys.modules)
    out = run("opsmigrate", database=alias)
    assert "  No ops migrations to apply." in out
    loaded = {name for name in set(sys.modules) - before if "0001_initial" in name}
    assert loaded == set()


def test_unreadable_header_falls_back_to_full_load(shop: Project, alias: str) -> None:
    run("opsmigrate", database=alias)
    shop.write(
        "shop/migrations_ops/0002_dynamic.py",
        "from alembic import op\nrevision = 's' + '2'\ndown_revision = 's1'\n"
        "def upgrade():\n    op.execute('SELECT 1')\ndef downgrade():\n    pass\n",
    )
    assert headers.load([]) is not None
    assert not api.up_to_date(database=alias)
    assert "Applying shop.0002_dynamic... OK" in run("opsmigrate", database=alias)


def test_version_table_is_looked_up_alone(shop: Project, alias: str) -> None:
    """Whether the version table exists is asked of that one table, never by listing
    every table (Django's introspection: ``SHOW FULL TABLES`` on MySQL, 8 ms with 1,000
    tables on MariaDB), on the path every ``post_migrate`` takes."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from django_alembic_ops import conf

    connection = connections[alias]
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as new:
        assert not api.up_to_date(database=alias)  # no version table yet
    run("opsmigrate", database=alias)
    with CaptureQueriesContext(connection) as migrated:
        assert api.up_to_date(database=alias)

    statements = [q["sql"] for q in (*new.captured_queries, *migrated.captured_queries)]
    lookups = [sql for sql in statements if "version_num" not in sql]
    assert len(lookups) == 2, statements  # one per call, and the read of the heads
    table = conf.get().VERSION_TABLE
    assert all(table in sql for sql in lookups), lookups

"""Tests of the ops migrations themselves (pytest, with pytest-django)."""

import pytest
from django.db import connection

from django_alembic_ops.testing import stairway

# Migrations change the schema: run them outside a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def test_migrations_undo_cleanly():
    # Each migration: upgrade, downgrade (the schema must be as before), upgrade.
    stairway(["shop", "billing"])


def test_0002_marks_shipped_orders(ops_migrator):
    # From an empty table: "zero" unapplies shop (billing, which needs it, first).
    ops_migrator.migrate("shop", "zero")
    ops_migrator.migrate("shop", "0001")
    assert ops_migrator.applied("shop") == ["shop.0001_initial"]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO shop_order (qty, shipped_at) VALUES (1, NULL), (2, CURRENT_TIMESTAMP)"
        )

    ops_migrator.migrate("shop", "0002")

    with connection.cursor() as cursor:
        cursor.execute("SELECT qty, status FROM shop_order ORDER BY qty")
        assert cursor.fetchall() == [(1, "new"), (2, "shipped")]
    # After the test, every app is back at its head.

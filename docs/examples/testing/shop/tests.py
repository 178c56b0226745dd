"""The same, for manage.py test (Django's test runner)."""

from django.db import connection
from django.test import TransactionTestCase

from django_alembic_ops.testing import OpsChecksMixin, OpsMigratorTestCase


class OrderStatusMigrationTests(OpsMigratorTestCase):
    def test_0002_marks_shipped_orders(self):
        self.ops_migrator.migrate("shop", "zero")
        self.ops_migrator.migrate("shop", "0001")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO shop_order (qty, shipped_at) VALUES (1, NULL), (2, CURRENT_TIMESTAMP)"
            )

        self.ops_migrator.migrate("shop", "0002")

        with connection.cursor() as cursor:
            cursor.execute("SELECT qty, status FROM shop_order ORDER BY qty")
            self.assertEqual(cursor.fetchall(), [(1, "new"), (2, "shipped")])


class OpsMigrationChecks(OpsChecksMixin, TransactionTestCase):
    """Single head, upgrade from empty, models match, stairway: per app."""

    ops_app_labels = ["shop", "billing"]

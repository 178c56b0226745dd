"""The test database gets the ops schema too: ``manage.py migrate`` runs the
ops migrations (post_migrate), also when Django's test runner creates it.

Between ``TransactionTestCase`` tests Django's flush empties the ops-owned
table ``reports_daily_sales`` together with Django's tables, although
``reports_salesnote`` (Django's) and it reference each other's tables.
"""

import datetime
from decimal import Decimal

from django.db import connection
from django.test import TestCase, TransactionTestCase
from shop.models import Product

from reports.models import DailySales, SalesNote


class OpsSchemaTests(TestCase):
    def test_ops_tables_and_views_exist(self) -> None:
        with connection.cursor() as cursor:
            names = connection.introspection.table_names(cursor, include_views=True)
        for name in ("reports_daily_sales", "shop_order_totals", "reports_product_revenue"):
            self.assertIn(name, names)

    def test_unmanaged_model_reads_and_writes_the_ops_table(self) -> None:
        mug = Product.objects.create(sku="MUG-01", name="Coffee mug", price=Decimal("8.50"))
        DailySales.objects.create(
            day=datetime.date(2025, 11, 3), product=mug, units=2, revenue=Decimal("17.00")
        )
        self.assertEqual(DailySales.objects.get().revenue, Decimal("17.00"))

    def test_managed_model_points_at_the_ops_table(self) -> None:
        cap = Product.objects.create(sku="CAP-01", name="Cap", price=Decimal("12.00"))
        day = DailySales.objects.create(
            day=datetime.date(2025, 11, 4), product=cap, units=3, revenue=Decimal("36.00")
        )
        SalesNote.objects.create(daily_sales=day, text="best day for caps")
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, "reports_salesnote")
        self.assertIn(
            ("reports_daily_sales", "id"),
            [c["foreign_key"] for c in constraints.values() if c["foreign_key"]],
        )
        self.assertEqual(day.notes.get().text, "best day for caps")


class FlushTests(TransactionTestCase):
    """Run in name order: the second test sees what the flush after the first left."""

    def test_1_writes_rows_in_django_and_ops_tables(self) -> None:
        tea = Product.objects.create(sku="TEA-01", name="Tea", price=Decimal("4.00"))
        day = DailySales.objects.create(
            day=datetime.date(2025, 11, 5), product=tea, units=1, revenue=Decimal("4.00")
        )
        SalesNote.objects.create(daily_sales=day, text="first tea")

    def test_2_flush_emptied_the_ops_table_too(self) -> None:
        self.assertFalse(DailySales.objects.exists())
        self.assertFalse(SalesNote.objects.exists())
        # The same rows again: nothing left over collides with them.
        self.test_1_writes_rows_in_django_and_ops_tables()

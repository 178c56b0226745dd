"""The test database gets the ops schema too: ``manage.py migrate`` runs the
ops migrations (post_migrate), also when Django's test runner creates it."""

import datetime
from decimal import Decimal

from django.db import connection
from django.test import TestCase
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

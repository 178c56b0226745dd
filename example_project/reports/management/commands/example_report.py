"""``manage.py example_report``: write rows with the ORM, read them back through
the tables and views that ops migrations created."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection, transaction
from django.db.models import DecimalField, F, Sum
from django.db.models.functions import TruncDate
from shop.models import Order, Product

from reports.models import DailySales, SalesNote

PRODUCTS = [
    ("MUG-01", "Coffee mug", Decimal("8.50")),
    ("TEE-01", "T-shirt", Decimal("19.99")),
    ("CAP-01", "Cap", Decimal("12.00")),
]

# (sku, quantity, status, day of November 2025)
ORDERS = [
    ("MUG-01", 2, Order.Status.PAID, 3),
    ("TEE-01", 1, Order.Status.SHIPPED, 3),
    ("MUG-01", 4, Order.Status.NEW, 4),
    ("CAP-01", 3, Order.Status.PAID, 4),
    ("TEE-01", 2, Order.Status.CANCELLED, 4),
]


class Command(BaseCommand):
    help = "Inserts example shop data and prints reports read through ops-owned tables and views."

    def handle(self, *args: Any, **options: Any) -> None:
        self.seed()
        self.cancelled_orders_are_final()
        self.rebuild_daily_sales()
        self.print_daily_sales()
        self.note_best_day()
        self.print_order_totals()
        self.print_product_revenue()

    def seed(self) -> None:
        """Products and orders: ordinary Django models, written with the ORM."""
        products = {
            sku: Product.objects.get_or_create(sku=sku, defaults={"name": name, "price": price})[0]
            for sku, name, price in PRODUCTS
        }
        if not Order.objects.exists():
            Order.objects.bulk_create(
                Order(
                    product=products[sku],
                    quantity=quantity,
                    status=status,
                    created_at=datetime.datetime(2025, 11, day, 12, tzinfo=datetime.timezone.utc),
                )
                for sku, quantity, status, day in ORDERS
            )
        self.stdout.write(
            f"{Product.objects.count()} products, {Order.objects.count()} orders in the shop."
        )

    def cancelled_orders_are_final(self) -> None:
        """The trigger of shop.0003 guards a rule the ORM knows nothing about."""
        order = Order.objects.filter(status=Order.Status.CANCELLED).first()
        if order is None:
            return
        order.status = Order.Status.NEW
        try:
            with transaction.atomic():
                order.save(update_fields=["status"])
        except DatabaseError as exc:
            reason = str(exc).splitlines()[0]  # PostgreSQL adds a CONTEXT line
            self.stdout.write(f"Reopening order {order.pk} was refused by the trigger: {reason}")
        else:
            self.stdout.write(self.style.ERROR(f"Order {order.pk} was reopened: no trigger?"))

    def rebuild_daily_sales(self) -> None:
        """Fill the ops-owned table through its unmanaged model, in one transaction."""
        rows = (
            Order.objects.exclude(status=Order.Status.CANCELLED)
            .annotate(day=TruncDate("created_at"))
            .values("day", "product_id")
            .annotate(
                units=Sum("quantity"),
                revenue=Sum(
                    F("quantity") * F("product__price"),
                    output_field=DecimalField(max_digits=12, decimal_places=2),
                ),
            )
            .order_by("day", "product_id")
        )
        with transaction.atomic():
            DailySales.objects.all().delete()
            DailySales.objects.bulk_create(DailySales(**row) for row in rows)

    def print_daily_sales(self) -> None:
        self.heading("reports_daily_sales (table of reports.0001, unmanaged model DailySales)")
        for sales in DailySales.objects.select_related("product").order_by("day", "product__sku"):
            name = sales.product.name
            self.stdout.write(
                f"  {sales.day}  {name:<12} {sales.units:>3} units {money(sales.revenue)}"
            )
        total = DailySales.objects.aggregate(units=Sum("units"), revenue=Sum("revenue"))
        self.stdout.write(f"  {'total':<24} {total['units']:>3} units {money(total['revenue'])}")

    def note_best_day(self) -> None:
        """A managed model's row points at the ops-owned table (a real foreign key)."""
        best = DailySales.objects.select_related("product").order_by("-revenue").first()
        if best is None:
            return
        note = SalesNote.objects.create(
            daily_sales=best, text=f"best day for {best.product.name.lower()}s"
        )
        self.heading("reports_salesnote (managed model SalesNote, foreign key to DailySales)")
        self.stdout.write(f"  {best.day}  {note.text} ({money(best.revenue).strip()})")

    def print_order_totals(self) -> None:
        self.heading("shop_order_totals (view of shop.0002)")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT order_id, status, quantity, unit_price, total "
                "FROM shop_order_totals ORDER BY order_id"
            )
            for order_id, status, quantity, unit_price, total in cursor.fetchall():
                self.stdout.write(
                    f"  order {order_id}  {status:<10} {quantity:>3} x {money(unit_price)} "
                    f"= {money(total)}"
                )

    def print_product_revenue(self) -> None:
        self.heading("reports_product_revenue (view of reports.0002, on top of shop's view)")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT product_name, units, revenue "
                "FROM reports_product_revenue ORDER BY revenue DESC"
            )
            for name, units, revenue in cursor.fetchall():
                self.stdout.write(f"  {name:<12} {units:>3} units {money(revenue)}")

    def heading(self, title: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"{title}:"))


def money(value: object) -> str:
    """Two decimals, right-aligned (SQLite returns a view's arithmetic as numbers)."""
    return f"{Decimal(str(value)).quantize(Decimal('0.01')):>7}"

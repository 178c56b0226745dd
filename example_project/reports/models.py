"""Models over tables that ops migrations own.

``DailySales`` is unmanaged (``Meta.managed = False``): Django's migrations
record it but never create, alter or drop its table. The table is created by
``reports/migrations_ops/0001_daily_sales_table.py`` with Alembic's ``op.create_table``;
the ORM reads and writes it like any other table.
"""

from django.db import models


class DailySales(models.Model):
    day = models.DateField()
    product = models.ForeignKey("shop.Product", on_delete=models.CASCADE, related_name="+")
    units = models.IntegerField()
    revenue = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        managed = False
        db_table = "reports_daily_sales"
        unique_together = [("day", "product")]
        verbose_name_plural = "daily sales"

    def __str__(self) -> str:
        return f"{self.day} {self.product_id}: {self.units} units"


class SalesNote(models.Model):
    """A managed model with a foreign key to the ops-owned table.

    Django's migration creates its table, and on PostgreSQL the foreign key
    needs ``reports_daily_sales`` to exist by then: the migration runs
    ``RunOpsMigrations("reports", "0001")`` first
    (``reports/migrations/0002_salesnote.py``).
    """

    daily_sales = models.ForeignKey(DailySales, on_delete=models.CASCADE, related_name="notes")
    text = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.text

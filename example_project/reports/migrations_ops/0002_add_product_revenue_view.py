"""add product revenue view

Revision ID: 90f0e1705801
Revises: f89666ef5d22
Create Date: 2026-11-27 20:30:53
"""

from alembic import op

revision = "90f0e1705801"
down_revision = "f89666ef5d22"
branch_labels = None
# Cross-app order: this view reads shop's view, so shop.0002_add_order_totals_view
# must run first (and, going down, this one is unapplied before it).
depends_on = "98de714515d1"


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW reports_product_revenue AS
        SELECT t.product_id,
               p.name AS product_name,
               SUM(t.quantity) AS units,
               SUM(t.total) AS revenue
        FROM shop_order_totals t
        JOIN shop_product p ON p.id = t.product_id
        WHERE t.status <> 'cancelled'
        GROUP BY t.product_id, p.name
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW reports_product_revenue")

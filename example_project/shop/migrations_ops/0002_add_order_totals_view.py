"""add order totals view

Revision ID: 98de714515d1
Revises: 983179a0403c
Create Date: 2026-11-27 20:30:49
"""

from alembic import op

revision = "98de714515d1"
down_revision = "983179a0403c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A view: something Django's migrations do not model at all.
    op.execute(
        """
        CREATE VIEW shop_order_totals AS
        SELECT o.id AS order_id,
               o.product_id,
               o.status,
               o.quantity,
               p.price AS unit_price,
               o.quantity * p.price AS total,
               o.created_at
        FROM shop_order o
        JOIN shop_product p ON p.id = o.product_id
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW shop_order_totals")

"""initial: the tables the Operation Reference examples work on

In a project these would usually be the tables of Django models; here an ops
migration creates them, so that each example runs against the same schema.
"""

import datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "1b74a2c4bd47"
down_revision = None
branch_labels = ("shop",)
depends_on = None

NOON = datetime.datetime(2025, 11, 3, 12, 0, tzinfo=datetime.timezone.utc)


def upgrade() -> None:
    product = op.create_table(
        "shop_product",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.UniqueConstraint("sku", name="uq_shop_product_sku"),
        comment="Things we sell",  # PostgreSQL only; SQLite has no comments
    )
    order = op.create_table(
        "shop_order",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_shop_order_status", "shop_order", ["status"])
    op.create_table(
        "shop_coupon",
        sa.Column("code", sa.String(20), primary_key=True),
        sa.Column("percent", sa.Integer(), nullable=False),
    )
    op.bulk_insert(
        product,
        [
            {"id": 1, "sku": "mug-01", "name": "Coffee mug", "price": Decimal("8.50")},
            {"id": 2, "sku": "tee-01", "name": "T-shirt", "price": Decimal("19.99")},
        ],
    )
    op.bulk_insert(
        order,
        [
            {"id": 1, "product_id": 1, "quantity": 2, "status": "paid", "created_at": NOON},
            {"id": 2, "product_id": 2, "quantity": 1, "status": "new", "created_at": NOON},
            {"id": 3, "product_id": 1, "quantity": 4, "status": "shipped", "created_at": NOON},
        ],
    )


def downgrade() -> None:
    op.drop_table("shop_coupon")
    op.drop_index("ix_shop_order_status", table_name="shop_order")
    op.drop_table("shop_order")
    op.drop_table("shop_product")

"""orders"""

import sqlalchemy as sa
from alembic import op

revision = "5a1c0e2f9b01"
down_revision = None
branch_labels = ("shop",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_order",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("shipped_at", sa.DateTime, nullable=True),
        sa.CheckConstraint("qty > 0", name="shop_order_qty_positive"),
    )


def downgrade() -> None:
    op.drop_table("shop_order")

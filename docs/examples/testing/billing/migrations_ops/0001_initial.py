"""invoices"""

import sqlalchemy as sa
from alembic import op

revision = "c4a7e9f01d34"
down_revision = None
branch_labels = ("billing",)
depends_on = "7d3e4b6a2c12"  # shop.0002_add_status


def upgrade() -> None:
    op.create_table(
        "billing_invoice",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "order_id",
            sa.Integer,
            sa.ForeignKey("shop_order.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_table("billing_invoice")

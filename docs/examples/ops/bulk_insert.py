"""order status lookup table, with its rows"""

import sqlalchemy as sa
from alembic import op

revision = "90e47f85ae81"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # create_table returns the Table, ready for bulk_insert.
    status = op.create_table(
        "shop_order_status",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
    )
    op.bulk_insert(
        status,
        [
            {"code": "new", "label": "New", "final": False},
            {"code": "paid", "label": "Paid", "final": False},
            {"code": "shipped", "label": "Shipped", "final": True},
            {"code": "cancelled", "label": "Cancelled", "final": True},
        ],
    )


def downgrade() -> None:
    op.drop_table("shop_order_status")

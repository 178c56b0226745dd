"""remove the status index"""

from alembic import op

revision = "d0457ceb501b"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_shop_order_status", table_name="shop_order")


def downgrade() -> None:
    op.create_index("ix_shop_order_status", "shop_order", ["status"])

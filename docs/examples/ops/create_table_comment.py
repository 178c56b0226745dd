"""describe shop_order (PostgreSQL)"""

from alembic import op

revision = "860af8b35eba"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table_comment(
        "shop_order", "One row per order; written by shop.Order", existing_comment=None
    )


def downgrade() -> None:
    op.drop_table_comment("shop_order", existing_comment="One row per order; written by shop.Order")

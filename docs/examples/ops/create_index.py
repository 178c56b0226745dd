"""partial index on open orders, unique product names"""

import sqlalchemy as sa
from alembic import op

revision = "42ba14656fef"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('new', 'paid')")


def upgrade() -> None:
    # A partial index: only the rows that match WHERE are indexed.
    op.create_index(
        "ix_shop_order_open_created",
        "shop_order",
        ["created_at"],
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index("ix_shop_product_name", "shop_product", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_shop_product_name", table_name="shop_product")
    op.drop_index("ix_shop_order_open_created", table_name="shop_order")

"""index on created_at, named exactly"""

from alembic import op

revision = "6c368f506cd2"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # op.f(): this name is final; no naming convention may rewrite it.
    op.create_index(op.f("ix_shop_order_created_at"), "shop_order", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_shop_order_created_at"), table_name="shop_order")

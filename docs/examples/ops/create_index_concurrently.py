"""index shop_order.created_at without locking writes"""

from alembic import op

revision = "c90238459e97"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction: leave it.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_shop_order_created_at",
            "shop_order",
            ["created_at"],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_shop_order_created_at",
            table_name="shop_order",
            postgresql_concurrently=True,
        )

"""view of open orders"""

from alembic import op

revision = "5d66cf84e090"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW shop_open_order AS
        SELECT o.id, o.created_at, o.quantity * p.price AS total
        FROM shop_order o JOIN shop_product p ON p.id = o.product_id
        WHERE o.status IN ('new', 'paid')
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW shop_open_order")

"""add status"""

import sqlalchemy as sa
from alembic import op

revision = "7d3e4b6a2c12"
down_revision = "5a1c0e2f9b01"
branch_labels = None
depends_on = None
# shop_order is created by 0001 in the same release: it has no rows to keep
# writing while the index builds (opslint would ask for CONCURRENTLY).
lint_ignore = ["index-without-concurrently"]


def upgrade() -> None:
    with op.batch_alter_table("shop_order") as batch:
        batch.add_column(sa.Column("status", sa.String(10), nullable=False, server_default="new"))
    op.execute("UPDATE shop_order SET status = 'shipped' WHERE shipped_at IS NOT NULL")
    op.create_index("shop_order_status", "shop_order", ["status"])


def downgrade() -> None:
    op.drop_index("shop_order_status", "shop_order")
    with op.batch_alter_table("shop_order") as batch:
        batch.drop_column("status")

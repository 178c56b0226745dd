"""add description and active to shop_product"""

import sqlalchemy as sa
from alembic import op

revision = "acbeccb6188e"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("shop_product", sa.Column("description", sa.Text(), nullable=True))
    # NOT NULL on a table that has rows: the server default fills the existing ones.
    op.add_column(
        "shop_product",
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    op.drop_column("shop_product", "active")
    op.drop_column("shop_product", "description")

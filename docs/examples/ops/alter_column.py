"""longer product names, a default order status"""

import sqlalchemy as sa
from alembic import op

revision = "596d670bfe62"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column(
        "shop_product",
        "name",
        existing_type=sa.String(100),
        type_=sa.String(200),
        existing_nullable=False,
    )
    op.alter_column(
        "shop_order",
        "status",
        existing_type=sa.String(16),
        server_default="new",
        existing_nullable=False,
    )


def downgrade() -> None:
    op.alter_column(
        "shop_order",
        "status",
        existing_type=sa.String(16),
        server_default=None,
        existing_nullable=False,
    )
    op.alter_column(
        "shop_product",
        "name",
        existing_type=sa.String(200),
        type_=sa.String(100),
        existing_nullable=False,
    )

"""paid orders are settled"""

import sqlalchemy as sa
from alembic import op

revision = "4d9b92a459bd"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None

# A lightweight table construct: just what the UPDATE needs, no MetaData.
order = sa.table("shop_order", sa.column("status", sa.String()))


def upgrade() -> None:
    op.execute(
        order.update()
        .where(order.c.status == op.inline_literal("paid"))
        .values(status=op.inline_literal("settled"))
    )


def downgrade() -> None:
    op.execute(
        order.update()
        .where(order.c.status == op.inline_literal("settled"))
        .values(status=op.inline_literal("paid"))
    )

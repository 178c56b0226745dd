"""operation objects, run with invoke()"""

import sqlalchemy as sa
from alembic import op
from alembic.operations import ops

revision = "1576f5d0d8dd"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None

ADD_GTIN = ops.AddColumnOp("shop_product", sa.Column("gtin", sa.String(14), nullable=True))
GTIN_INDEX = ops.CreateIndexOp("ix_shop_product_gtin", "shop_product", ["gtin"], unique=True)


def upgrade() -> None:
    op.invoke(ADD_GTIN)
    op.invoke(GTIN_INDEX)


def downgrade() -> None:
    # Each operation object knows its reverse.
    op.invoke(GTIN_INDEX.reverse())
    op.invoke(ADD_GTIN.reverse())

"""remove shop_order.note"""

import sqlalchemy as sa
from alembic import op

revision = "de850c050b72"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("shop_order", "note")


def downgrade() -> None:
    # The column comes back empty: dropping it lost its values.
    op.add_column("shop_order", sa.Column("note", sa.Text(), nullable=True))

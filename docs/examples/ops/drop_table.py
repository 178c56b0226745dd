"""coupons are gone"""

import sqlalchemy as sa
from alembic import op

revision = "d742d625b924"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("shop_coupon")


def downgrade() -> None:
    # The table comes back empty: dropping it lost its rows.
    op.create_table(
        "shop_coupon",
        sa.Column("code", sa.String(20), primary_key=True),
        sa.Column("percent", sa.Integer(), nullable=False),
    )

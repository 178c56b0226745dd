"""one sale at a time (PostgreSQL)"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "07a66376596e"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_sale",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("during", postgresql.TSTZRANGE(), nullable=False),
    )
    # No two rows whose ranges overlap (&&): at most one sale at any moment.
    op.create_exclude_constraint(
        "excl_shop_sale_during", "shop_sale", ("during", "&&"), using="gist"
    )


def downgrade() -> None:
    op.drop_constraint("excl_shop_sale_during", "shop_sale")
    op.drop_table("shop_sale")

"""shop_product loses its comment (PostgreSQL)"""

from alembic import op

revision = "a5de62d341c1"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table_comment("shop_product", existing_comment="Things we sell")


def downgrade() -> None:
    op.create_table_comment("shop_product", "Things we sell", existing_comment=None)

"""cheap products view, with the app's own directive"""

from alembic import op

revision = "4b689ed8ad24"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_view("shop_cheap_product", "SELECT id, name FROM shop_product WHERE price < 10")


def downgrade() -> None:
    op.drop_view("shop_cheap_product")

"""prices are never negative"""

from alembic import op

revision = "e42593203d97"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_check_constraint("ck_shop_product_price_positive", "shop_product", "price >= 0")


def downgrade() -> None:
    op.drop_constraint("ck_shop_product_price_positive", "shop_product", type_="check")

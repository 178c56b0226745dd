"""SKUs no longer have to be unique"""

from alembic import op

revision = "b0bdcabb31f5"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("uq_shop_product_sku", "shop_product", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint("uq_shop_product_sku", "shop_product", ["sku"])

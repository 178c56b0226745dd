"""product names are unique"""

from alembic import op

revision = "e15dbac33b65"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint("uq_shop_product_name", "shop_product", ["name"])


def downgrade() -> None:
    op.drop_constraint("uq_shop_product_name", "shop_product", type_="unique")

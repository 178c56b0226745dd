"""orders reference their product"""

from alembic import op

revision = "3c002af12c7d"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_foreign_key(
        "fk_shop_order_product",
        "shop_order",
        "shop_product",
        ["product_id"],
        ["id"],
        ondelete="RESTRICT",
        # What Django creates for a ForeignKey on PostgreSQL.
        deferrable=True,
        initially="DEFERRED",
    )


def downgrade() -> None:
    op.drop_constraint("fk_shop_order_product", "shop_order", type_="foreignkey")

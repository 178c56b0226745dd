"""constrain shop_order (works on SQLite, PostgreSQL and MySQL)"""

import sqlalchemy as sa
from alembic import op

revision = "26baa3a259c3"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite: one copy-and-move of shop_order for all of these changes.
    # PostgreSQL, MySQL: the same ALTER TABLE statements as the op.* directives.
    with op.batch_alter_table("shop_order") as batch:
        batch.alter_column(
            "status",
            existing_type=sa.String(16),
            type_=sa.String(32),
            existing_nullable=False,
        )
        batch.create_check_constraint("ck_shop_order_quantity_positive", "quantity > 0")
        batch.create_foreign_key(
            "fk_shop_order_product", "shop_product", ["product_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("shop_order") as batch:
        batch.drop_constraint("fk_shop_order_product", type_="foreignkey")
        batch.drop_constraint("ck_shop_order_quantity_positive", type_="check")
        batch.alter_column(
            "status",
            existing_type=sa.String(32),
            type_=sa.String(16),
            existing_nullable=False,
        )
    if op.get_context().dialect.name == "mysql":
        # MySQL indexed product_id for the foreign key, and keeps that index.
        op.drop_index("fk_shop_order_product", table_name="shop_order")

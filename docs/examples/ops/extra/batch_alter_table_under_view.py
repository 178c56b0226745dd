"""constrain shop_order, which the shop_open_order view reads (SQLite)"""

from alembic import op

revision = "8e0c5d2b7a13"
down_revision = "5d66cf84e090"  # the migration that created the view (op.execute example)
branch_labels = None
depends_on = None

OPEN_ORDER = """
    CREATE VIEW shop_open_order AS
    SELECT o.id, o.created_at, o.quantity * p.price AS total
    FROM shop_order o JOIN shop_product p ON p.id = o.product_id
    WHERE o.status IN ('new', 'paid')
"""


def upgrade() -> None:
    # SQLite checks every view when the rebuilt table is renamed into place:
    # take the view away for the rebuild and put it back after.
    op.execute("DROP VIEW shop_open_order")
    with op.batch_alter_table("shop_order") as batch:
        batch.create_check_constraint("ck_shop_order_quantity_positive", "quantity > 0")
    op.execute(OPEN_ORDER)


def downgrade() -> None:
    op.execute("DROP VIEW shop_open_order")
    with op.batch_alter_table("shop_order") as batch:
        batch.drop_constraint("ck_shop_order_quantity_positive", type_="check")
    op.execute(OPEN_ORDER)

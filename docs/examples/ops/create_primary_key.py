"""product tags, keyed by product and tag"""

import sqlalchemy as sa
from alembic import op

revision = "f5073eb2634d"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Imported from elsewhere without a key; the primary key comes after the load.
    op.create_table(
        "shop_product_tag",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(30), nullable=False),
    )
    op.execute("INSERT INTO shop_product_tag (product_id, tag) VALUES (1, 'kitchen'), (2, 'wear')")
    op.create_primary_key("pk_shop_product_tag", "shop_product_tag", ["product_id", "tag"])


def downgrade() -> None:
    op.drop_table("shop_product_tag")

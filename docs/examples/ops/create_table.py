"""product reviews"""

import sqlalchemy as sa
from alembic import op

revision = "094d99e9e5da"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_review",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "product_id",
            sa.Integer(),
            sa.ForeignKey("shop_product.id", name="fk_shop_review_product", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.UniqueConstraint("product_id", "author", name="uq_shop_review_product_author"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_shop_review_rating"),
        comment="Customer reviews",
    )
    op.create_index("ix_shop_review_created_at", "shop_review", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_shop_review_created_at", table_name="shop_review")
    op.drop_table("shop_review")

"""daily sales table

Revision ID: f89666ef5d22
Revises:
Create Date: 2026-11-27 20:30:51
"""

import sqlalchemy as sa
from alembic import op

revision = "f89666ef5d22"
down_revision = None
branch_labels = ("reports",)
depends_on = None
# The foreign key points at shop_product, which Django's migration creates.
django_dependencies = [("shop", "0001_initial")]

# BIGINT on PostgreSQL (like Django's BigAutoField); on SQLite only an
# INTEGER PRIMARY KEY is the auto-incrementing rowid.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # The table of the unmanaged model reports.DailySales (Meta.managed = False):
    # ops owns its DDL, the ORM reads and writes its rows.
    op.create_table(
        "reports_daily_sales",
        sa.Column("id", BIG_ID, sa.Identity(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "product_id",
            BIG_ID,
            sa.ForeignKey("shop_product.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Numeric(12, 2), nullable=False),
        sa.UniqueConstraint("day", "product_id", name="reports_daily_sales_day_product_uniq"),
        sqlite_autoincrement=True,
    )
    op.create_index("reports_daily_sales_product_idx", "reports_daily_sales", ["product_id"])


def downgrade() -> None:
    op.drop_index("reports_daily_sales_product_idx", table_name="reports_daily_sales")
    op.drop_table("reports_daily_sales")

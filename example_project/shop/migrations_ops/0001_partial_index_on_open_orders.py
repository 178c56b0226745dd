"""partial index on open orders

Revision ID: 983179a0403c
Revises:
Create Date: 2026-11-27 20:30:47
"""

import sqlalchemy as sa
from alembic import op

revision = "983179a0403c"
down_revision = None
branch_labels = ("shop",)  # the first ops migration of an app names its branch
depends_on = None
# shop_order is created by Django's own migration: it must be applied first.
django_dependencies = [("shop", "0001_initial")]
# Built in the release that creates shop_order, before it has rows: nothing to
# keep writing while the index builds (opslint would ask for CONCURRENTLY).
lint_ignore = ["index-without-concurrently"]

OPEN_ORDERS = sa.text("status IN ('new', 'paid')")


def upgrade() -> None:
    # Django's Index(condition=...) can do this too; an ops migration makes the
    # index explicit DDL that a DBA reviews, shared with non-Django services.
    op.create_index(
        "shop_order_open_created_idx",
        "shop_order",
        ["created_at"],
        sqlite_where=OPEN_ORDERS,
        postgresql_where=OPEN_ORDERS,
    )


def downgrade() -> None:
    op.drop_index("shop_order_open_created_idx", table_name="shop_order")

"""coupons are vouchers now"""

from alembic import op

revision = "3370821bd6c1"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("shop_coupon", "shop_voucher")


def downgrade() -> None:
    op.rename_table("shop_voucher", "shop_coupon")

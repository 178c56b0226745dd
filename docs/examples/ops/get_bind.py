"""SKUs in upper case"""

import sqlalchemy as sa
from alembic import op

revision = "c6d28e267c4b"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Django's connection, inside this migration's transaction.
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, sku FROM shop_product")).all()
    for id_, sku in rows:
        bind.execute(
            sa.text("UPDATE shop_product SET sku = :sku WHERE id = :id"),
            {"sku": sku.upper(), "id": id_},
        )


def downgrade() -> None:
    op.get_bind().execute(sa.text("UPDATE shop_product SET sku = lower(sku)"))

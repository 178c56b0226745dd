"""an async data fix: fails here, Django's connection is synchronous"""

import sqlalchemy as sa
from alembic import op

revision = "1b27b03a6283"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


async def count_orders(connection):
    # connection would be a SQLAlchemy AsyncConnection (asyncpg, aiosqlite...).
    result = await connection.execute(sa.text("SELECT count(*) FROM shop_order"))
    return result.scalar()


def upgrade() -> None:
    op.run_async(count_orders)


def downgrade() -> None:
    pass

"""orders per day, per dialect"""

from alembic import op

revision = "d7f3983122a5"
down_revision = "1b74a2c4bd47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The dialect is known online and with --sql (offline), unlike get_bind().
    if op.get_context().dialect.name == "postgresql":
        day = "date_trunc('day', created_at)"
    else:
        day = "date(created_at)"
    op.execute(
        f"CREATE VIEW shop_orders_per_day AS "
        f"SELECT {day} AS day, count(*) AS orders FROM shop_order GROUP BY {day}"
    )


def downgrade() -> None:
    op.execute("DROP VIEW shop_orders_per_day")

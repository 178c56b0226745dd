"""totals view"""

from alembic import op

revision = "9b0f1d8c4e23"
down_revision = "7d3e4b6a2c12"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE VIEW shop_totals AS SELECT status, SUM(qty) AS qty FROM shop_order GROUP BY status"
    )


def downgrade() -> None:
    op.execute("DROP VIEW shop_totals")

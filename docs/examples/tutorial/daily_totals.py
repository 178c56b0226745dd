"""The functions of reports/migrations_ops/0003_add_daily_totals_view.py in the tutorial.

tests/test_docs_tutorial.py puts them into the script that opsmakemigration wrote.
"""

from alembic import op


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW reports_daily_totals AS
        SELECT day, SUM(units) AS units, SUM(revenue) AS revenue
        FROM reports_daily_sales
        GROUP BY day
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW reports_daily_totals")

"""cancelled orders are final

Revision ID: 5b7d1e93c2a4
Revises: 98de714515d1
Create Date: 2026-11-27 20:31:02
"""

from alembic import op

revision = "5b7d1e93c2a4"
down_revision = "98de714515d1"
branch_labels = None
depends_on = None

TRIGGER = "shop_order_cancelled_is_final"


def upgrade() -> None:
    # A trigger, written per dialect.
    if _postgresql():
        op.execute(
            f"""
            CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'a cancelled order cannot be reopened';
            END $$
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {TRIGGER} BEFORE UPDATE OF status ON shop_order
            FOR EACH ROW WHEN (OLD.status = 'cancelled' AND NEW.status <> 'cancelled')
            EXECUTE FUNCTION {TRIGGER}()
            """
        )
    else:
        op.execute(
            f"""
            CREATE TRIGGER {TRIGGER} BEFORE UPDATE OF status ON shop_order
            FOR EACH ROW WHEN OLD.status = 'cancelled' AND NEW.status <> 'cancelled'
            BEGIN
                SELECT RAISE(ABORT, 'a cancelled order cannot be reopened');
            END
            """
        )


def downgrade() -> None:
    if _postgresql():
        op.execute(f"DROP TRIGGER {TRIGGER} ON shop_order")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")


def _postgresql() -> bool:
    # op.get_context().dialect works online and with --sql (offline), where
    # there is no connection to ask.
    return op.get_context().dialect.name == "postgresql"

"""tickets keep the instant of their 30-day upgrade (upgrade_at), so that the PostgreSQL sweep
finds breaches, warnings and each ticket's next instant in SQL without the calendar

Revision ID: e4b7c2a91f30
Revises: 9ce71e3e50b0
Create Date: 2026-12-01 16:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'e4b7c2a91f30'
down_revision: Union[str, Sequence[str], None] = '9ce71e3e50b0'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upgrade_at', sa.DateTime(timezone=True), nullable=True))
    # Complaints opened before that may still be upgraded: an instant no later than the real
    # one (their receipt), so that the sweep takes them through the whole Ticket once when they
    # are next due, which computes the exact instant with the calendar and keeps it.
    op.execute("UPDATE tickets SET upgrade_at = received_at WHERE kind = 'complaint'"
               " AND severity IN ('B', 'C') AND (valid IS NULL OR valid = true)"
               " AND status IN ('received', 'routed')")


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('upgrade_at')

"""billing: a partial index of the open invoices by site and due date

Revision ID: 5b0c7e2a9f13
Revises: 4316ca335511
Create Date: 2026-12-01 16:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5b0c7e2a9f13'
down_revision: Union[str, Sequence[str], None] = '4316ca335511'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_open_site_due', ['site', 'due_date'], unique=False,
                              postgresql_where=sa.text('NOT settled'),
                              sqlite_where=sa.text('NOT settled'))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_open_site_due')

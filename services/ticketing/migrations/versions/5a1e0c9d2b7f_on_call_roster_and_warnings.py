"""on-call roster, warnings before a breach (超时预警)

Revision ID: 5a1e0c9d2b7f
Revises: db0be1734f9d
Create Date: 2026-12-01 11:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '5a1e0c9d2b7f'
down_revision: Union[str, Sequence[str], None] = 'db0be1734f9d'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('warnings',
    sa.Column('ticket_id', sa.String(length=24), nullable=False),
    sa.Column('deadline', sa.String(length=24), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('warned_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', 'deadline', 'due_at', name=op.f('pk_warnings'))
    )
    op.create_table('on_call',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('site', sa.String(length=3), nullable=False),
    sa.Column('technician', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('set_by', sa.String(length=100), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_on_call'))
    )
    op.create_index(op.f('ix_on_call_site_until'), 'on_call', ['site', 'until'], unique=False)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warnings', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('warnings')
    op.drop_index(op.f('ix_on_call_site_until'), table_name='on_call')
    op.drop_table('on_call')
    op.drop_table('warnings')

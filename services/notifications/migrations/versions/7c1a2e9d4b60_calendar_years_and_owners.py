"""calendar years entered by head office, owners' phones for the holiday greetings

Revision ID: 7c1a2e9d4b60
Revises: 8ab9dcb0cc58
Create Date: 2026-12-01 11:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '7c1a2e9d4b60'
down_revision: Union[str, Sequence[str], None] = '8ab9dcb0cc58'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('calendar_years',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('holidays', sa.JSON(), nullable=False),
    sa.Column('workdays', sa.JSON(), nullable=False),
    sa.Column('entered_by', sa.String(length=80), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('year', name=op.f('pk_calendar_years'))
    )
    op.create_table('owners',
    sa.Column('unit', sa.String(length=10), nullable=False),
    sa.Column('site', sa.String(length=3), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=24), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('unit', name=op.f('pk_owners'))
    )


def downgrade() -> None:
    op.drop_table('owners')
    op.drop_table('calendar_years')

"""frontdesk: who last reviewed an answer-book entry (answers.reviewed_by)

Revision ID: c7e4a9b1d203
Revises: b3f1d2c4e5a6
Create Date: 2026-12-01 13:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c7e4a9b1d203'
down_revision: Union[str, Sequence[str], None] = 'b3f1d2c4e5a6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('answers') as batch:
        batch.add_column(sa.Column('reviewed_by', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('answers') as batch:
        batch.drop_column('reviewed_by')

"""frontdesk: an activity may be told to the site's owners by SMS (notify_sms)

Revision ID: d7a2c5e8f301
Revises: c7e4a9b1d203
Create Date: 2026-12-01 13:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'd7a2c5e8f301'
down_revision: Union[str, Sequence[str], None] = 'c7e4a9b1d203'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_sms', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_column('notify_sms')

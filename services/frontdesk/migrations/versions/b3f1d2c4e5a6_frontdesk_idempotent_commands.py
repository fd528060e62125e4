"""frontdesk: commands' answers kept per Idempotency-Key (idempotent_commands)

Revision ID: b3f1d2c4e5a6
Revises: aa1ad9ea0b67
Create Date: 2026-12-01 11:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'b3f1d2c4e5a6'
down_revision: Union[str, Sequence[str], None] = 'aa1ad9ea0b67'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('idempotent_commands',
    sa.Column('caller', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('command', sa.String(length=120), nullable=False),
    sa.Column('request', sa.String(length=64), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('caller', 'key', 'command', name=op.f('pk_idempotent_commands'))
    )
    with op.batch_alter_table('idempotent_commands', schema=None) as batch_op:
        batch_op.create_index('ix_idempotent_commands_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotent_commands', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotent_commands_created_at')

    op.drop_table('idempotent_commands')

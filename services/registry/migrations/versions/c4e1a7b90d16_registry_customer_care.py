"""registry: customer care — key-customer and committee flags, contacts, contact breaches

Revision ID: c4e1a7b90d16
Revises: 1d9b78239935
Create Date: 2026-12-01 13:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c4e1a7b90d16'
down_revision: Union[str, Sequence[str], None] = '1d9b78239935'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_customer', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('key_customer_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('committee_member', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('committee_member_since', sa.DateTime(timezone=True), nullable=True))
    op.create_table('contacts',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('person_id', sa.String(length=24), nullable=False),
    sa.Column('site', sa.String(length=3), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_contacts_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_person_at', ['person_id', 'at'], unique=False)
    op.create_table('contact_breaches',
    sa.Column('person_id', sa.String(length=24), nullable=False),
    sa.Column('flag', sa.String(length=20), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('site', sa.String(length=3), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('person_id', 'flag', 'period', name=op.f('pk_contact_breaches'))
    )
    with op.batch_alter_table('contact_breaches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_breaches_site'), ['site'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contact_breaches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_breaches_site'))
    op.drop_table('contact_breaches')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_person_at')
    op.drop_table('contacts')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('committee_member_since')
        batch_op.drop_column('committee_member')
        batch_op.drop_column('key_customer_since')
        batch_op.drop_column('key_customer')

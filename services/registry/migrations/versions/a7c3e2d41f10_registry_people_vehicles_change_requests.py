"""registry: people per unit (lease, consent, entry deadline, four eyes), vehicles, change requests

Revision ID: a7c3e2d41f10
Revises: 59f190c9e793
Create Date: 2026-12-01 11:20:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'a7c3e2d41f10'
down_revision: Union[str, Sequence[str], None] = '59f190c9e793'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('collected_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('late_entry', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('entered_by', sa.String(length=100), nullable=True))
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('lease', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('owner_consent', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('collected_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('late_entry', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('entered_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('verified_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.create_index(batch_op.f('ix_persons_site'), ['site'], unique=False)
    with op.batch_alter_table('occupancies', schema=None) as batch_op:
        batch_op.alter_column('relation', existing_type=sa.String(length=10),
                              type_=sa.String(length=20))
    # A person registered before is scoped by the site of the unit they were registered with.
    persons = sa.table('persons', sa.column('id', sa.String), sa.column('site', sa.String))
    occupancies = sa.table('occupancies', sa.column('unit', sa.String),
                           sa.column('person_id', sa.String))
    bind = op.get_bind()
    for person_id, unit in bind.execute(sa.select(occupancies.c.person_id, occupancies.c.unit)).all():
        bind.execute(persons.update().where(persons.c.id == person_id).values(site=unit[:3]))

    op.create_table(
        'vehicles',
        sa.Column('id', sa.String(length=24), nullable=False),
        sa.Column('site', sa.String(length=3), nullable=False),
        sa.Column('unit', sa.String(length=10), nullable=False),
        sa.Column('person_id', sa.String(length=24), nullable=False),
        sa.Column('plate', sa.String(length=16), nullable=False),
        sa.Column('licence_no', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=100), nullable=True),
        sa.Column('insurance_until', sa.Date(), nullable=True),
        sa.Column('parking_space', sa.String(length=32), nullable=True),
        sa.Column('rental_contract_no', sa.String(length=40), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('entered_by', sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_vehicles_person_id_persons')),
        sa.ForeignKeyConstraint(['unit'], ['units.code'], name=op.f('fk_vehicles_unit_units')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicles')),
    )
    for column in ('site', 'unit', 'person_id', 'plate'):
        op.create_index(op.f(f'ix_vehicles_{column}'), 'vehicles', [column], unique=False)

    op.create_table(
        'change_requests',
        sa.Column('id', sa.String(length=24), nullable=False),
        sa.Column('site', sa.String(length=3), nullable=False),
        sa.Column('unit', sa.String(length=10), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('target_id', sa.String(length=24), nullable=True),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('documents', sa.JSON(), nullable=False),
        sa.Column('affects_fees', sa.Boolean(), nullable=False),
        sa.Column('effective_on', sa.Date(), nullable=True),
        sa.Column('requested_by', sa.String(length=100), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('decided_by', sa.String(length=100), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rejection_reason', sa.Text(), nullable=True),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('before', sa.JSON(), nullable=True),
        sa.Column('after', sa.JSON(), nullable=True),
        sa.Column('notice_event_id', sa.String(length=36), nullable=True),
        sa.Column('history', sa.JSON(), nullable=False),
        sa.Column('deadlines', sa.JSON(), nullable=False),
        sa.Column('deadlines_met', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_change_requests')),
    )
    op.create_index('ix_change_requests_site_status', 'change_requests', ['site', 'status'])
    op.create_index('ix_change_requests_due', 'change_requests', ['status', 'effective_on'])
    op.create_index('ix_change_requests_unit', 'change_requests', ['unit'])


def downgrade() -> None:
    op.drop_table('change_requests')
    op.drop_table('vehicles')
    with op.batch_alter_table('occupancies', schema=None) as batch_op:
        batch_op.alter_column('relation', existing_type=sa.String(length=20),
                              type_=sa.String(length=10))
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_persons_site'))
        for column in ('active', 'verified_at', 'verified_by', 'entered_by', 'late_entry',
                       'collected_at', 'owner_consent', 'lease', 'site'):
            batch_op.drop_column(column)
    with op.batch_alter_table('units', schema=None) as batch_op:
        for column in ('entered_by', 'late_entry', 'collected_at'):
            batch_op.drop_column(column)

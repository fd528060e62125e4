"""the sweep's clock in a narrow row of its own (ticket_sweeps), and a ticket's breaches and
warnings read from their tables instead of JSON copies on the ticket: the sweep no longer
rewrites the wide ticket row

Revision ID: f5c2d8e61a4b
Revises: e4b7c2a91f30
Create Date: 2026-12-01 19:40:00

"""
import json
from datetime import datetime, timezone
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'f5c2d8e61a4b'
down_revision: Union[str, Sequence[str], None] = 'e4b7c2a91f30'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SWEEP_COLUMNS = ('sweep_due_at', 'upgrade_at', 'sweep_claim', 'sweep_claimed_at')
LISTS = (('breaches', 'detected_at'), ('warnings', 'warned_at'))


def _bound(instant, dialect):
    """An instant as the services store it: UTC (naive on SQLite, which keeps no offset)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    instant = instant.astimezone(timezone.utc)
    return instant.replace(tzinfo=None) if dialect == 'sqlite' else instant


def _read(instant):
    return (instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _alert_table(name, at):
    return sa.table(name, sa.column('ticket_id', sa.String), sa.column('deadline', sa.String),
                    sa.column('due_at', sa.DateTime(timezone=True)),
                    sa.column(at, sa.DateTime(timezone=True)))


def upgrade() -> None:
    op.create_table('ticket_sweeps',
    sa.Column('ticket_id', sa.String(length=24), nullable=False),
    sa.Column('sweep_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('upgrade_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sweep_claim', sa.String(length=32), nullable=True),
    sa.Column('sweep_claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_ticket_sweeps'))
    )
    op.execute("INSERT INTO ticket_sweeps (ticket_id, sweep_due_at, upgrade_at, sweep_claim, sweep_claimed_at)"
               " SELECT id, sweep_due_at, upgrade_at, sweep_claim, sweep_claimed_at FROM tickets")
    op.create_index(op.f('ix_ticket_sweeps_sweep_due_at'), 'ticket_sweeps', ['sweep_due_at'], unique=False)
    # every breach and warning a ticket lists has its row (the sweep has always written both;
    # from now on the rows are what the ticket shows)
    conn = op.get_bind()
    dialect = conn.dialect.name
    tickets = sa.table('tickets', sa.column('id', sa.String), sa.column('breaches', sa.JSON),
                       sa.column('warnings', sa.JSON))
    for name, at in LISTS:
        table = _alert_table(name, at)
        kept = {(r.ticket_id, r.deadline, _read(r.due_at))
                for r in conn.execute(sa.select(table.c.ticket_id, table.c.deadline, table.c.due_at))}
        missing = []
        for ticket_id, listed in conn.execute(sa.select(tickets.c.id, tickets.c[name])):
            for entry in (json.loads(listed) if isinstance(listed, str) else listed) or ():
                due = _read(datetime.fromisoformat(entry['due_at']))
                if (ticket_id, entry['deadline'], due) not in kept:
                    kept.add((ticket_id, entry['deadline'], due))
                    missing.append({'ticket_id': ticket_id, 'deadline': entry['deadline'],
                                    'due_at': _bound(due, dialect),
                                    at: _bound(datetime.fromisoformat(entry[at]), dialect)})
        if missing:
            conn.execute(sa.insert(table), missing)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_sweep_due_at')
        for column in SWEEP_COLUMNS + ('breaches', 'warnings'):
            batch_op.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('breaches', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('warnings', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('sweep_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sweep_claim', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('sweep_claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('upgrade_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_tickets_sweep_due_at', ['sweep_due_at'], unique=False)
    for column in SWEEP_COLUMNS:
        op.execute(f"UPDATE tickets SET {column} = (SELECT s.{column} FROM ticket_sweeps AS s"
                   f" WHERE s.ticket_id = tickets.id)")
    conn = op.get_bind()
    tickets = sa.table('tickets', sa.column('id', sa.String), sa.column('breaches', sa.JSON),
                       sa.column('warnings', sa.JSON))
    for name, at in LISTS:
        table = _alert_table(name, at)
        listed = {}
        for r in conn.execute(sa.select(table).order_by(table.c[at], table.c.due_at)):
            listed.setdefault(r.ticket_id, []).append({
                'deadline': r.deadline, 'due_at': _read(r.due_at).isoformat(),
                at: _read(r._mapping[at]).isoformat()})
        for ticket_id, entries in listed.items():
            conn.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values({name: entries}))
    op.drop_index(op.f('ix_ticket_sweeps_sweep_due_at'), table_name='ticket_sweeps')
    op.drop_table('ticket_sweeps')

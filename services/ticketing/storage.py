"""Ticketing schema. The domain's Ticket is mapped imperatively onto `tickets`, so the domain
stays plain Python; deadlines, breaches and history are JSON columns, with the two instants the
views filter on (`next_due_at`, `callback_due_at`) as indexed columns."""
from sqlalchemy import (
    JSON, Boolean, Column, Index, Integer, String, Table, Text, event, insert, select, update,
)

from services.common.db import UTCDateTime, declarative_base, insert_once
from services.ticketing.domain import Ticket

Base = declarative_base()

tickets = Table(
    "tickets", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("site", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("unit", String(10)),
    Column("channel", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("reporter", JSON),
    Column("priority", String(8), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("important", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("first_contact_owner", String(100), nullable=False),
    Column("assignee", String(100)),
    Column("appointment", JSON),
    Column("reschedules", Integer, nullable=False),
    Column("missed_appointments", Integer, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("late_entry", Boolean, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("deadlines", JSON, nullable=False),
    Column("deadlines_met", JSON, nullable=False),
    Column("breaches", JSON, nullable=False),
    Column("history", JSON, nullable=False),
    Column("callback", JSON),
    Column("second_callback", JSON),
    Column("result", JSON),
    Column("fee", String(16)),
    Column("received_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("next_due_at", UTCDateTime),
    Column("callback_due_at", UTCDateTime),
    Index("ix_tickets_site_status", "site", "status"),
    Index("ix_tickets_next_due_at", "next_due_at"),
    Index("ix_tickets_callback_due_at", "callback_due_at"),
)

serials = Table(
    "serials", Base.metadata,
    Column("site", String(3), primary_key=True),
    Column("series", String(8), primary_key=True),
    Column("last", Integer, nullable=False),
)

Base.registry.map_imperatively(Ticket, tickets)


@event.listens_for(Ticket, "load")
def _fresh_event_list(ticket, _context):
    ticket.events = []


def next_serial(session, site, series):
    """The next number of a per-site series. The increment is one UPDATE, so concurrent
    creators (threads or replicas) each get their own number and none repeats."""
    bump = update(serials).where(serials.c.site == site, serials.c.series == series) \
        .values(last=serials.c.last + 1).returning(serials.c.last)
    value = session.execute(bump).scalar()
    if value is None:
        insert_once(session, insert(serials).values(site=site, series=series, last=0))
        value = session.execute(bump).scalar()
    return value


def ticket_query():
    return select(Ticket)

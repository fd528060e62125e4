"""Renovation schema. The domain's Renovation is mapped imperatively onto `renovations`, so the
domain stays plain Python; its lists (workers, fees, passes, violations, history, ...) are JSON
columns. Passes have a table of their own for the gate's look-up by number, and every step the
sweep takes once (a breach, an escalation) is claimed by a unique row in `sweep_steps`."""
from sqlalchemy import (
    JSON, Boolean, Column, Date, Index, Integer, String, Table, UniqueConstraint, event, func,
    insert, select,
)

from services.common.db import UTCDateTime, declarative_base, insert_once
from services.renovation.domain import Renovation

Base = declarative_base()

renovations = Table(
    "renovations", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("status", String(24), nullable=False),
    Column("applicant", JSON, nullable=False),
    Column("contractor", JSON, nullable=False),
    Column("workers", JSON, nullable=False),
    Column("planned_start", Date, nullable=False),
    Column("planned_end", Date, nullable=False),
    Column("work_items", JSON, nullable=False),
    Column("documents", JSON, nullable=False),
    Column("approvals", JSON, nullable=False),
    Column("debris_removal", Boolean, nullable=False),
    Column("area_m2", String(16), nullable=False),
    Column("rule_violations", JSON, nullable=False),
    Column("rejection_reasons", JSON, nullable=False),
    Column("fees", JSON, nullable=False),
    Column("paid_invoices", JSON, nullable=False),
    Column("agreement_signed_at", UTCDateTime),
    Column("permit", JSON),
    Column("passes", JSON, nullable=False),
    Column("patrols", JSON, nullable=False),
    Column("violations", JSON, nullable=False),
    Column("inspections", JSON, nullable=False),
    Column("deductions", String(16), nullable=False),
    Column("refund", JSON),
    Column("policy", JSON, nullable=False),
    Column("deadlines", JSON, nullable=False),
    Column("deadlines_met", JSON, nullable=False),
    Column("breaches", JSON, nullable=False),
    Column("history", JSON, nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("next_due_at", UTCDateTime),
    Column("version", Integer, nullable=False),
    Index("ix_renovations_site_status", "site", "status"),
    Index("ix_renovations_next_due_at", "next_due_at"),
    Index("ix_renovations_unit", "unit"),
)

# The gate's index of worker passes (出入证); the renovation row holds the same passes as JSON.
passes = Table(
    "passes", Base.metadata,
    Column("number", String(40), primary_key=True),
    Column("renovation_id", String(24), nullable=False, index=True),
    Column("site", String(3), nullable=False),
)

sweep_steps = Table(
    "sweep_steps", Base.metadata,
    Column("renovation_id", String(24), nullable=False),
    Column("step", String(40), nullable=False),       # breach:review, escalate:2, ...
    Column("taken_at", UTCDateTime, nullable=False),
    UniqueConstraint("renovation_id", "step"),
)

# Optimistic locking: concurrent changes of one application (two invoices paid at once, a sweep
# and a desk action) cannot overwrite each other's JSON; the later commit fails and is retried.
Base.registry.map_imperatively(Renovation, renovations, properties={"version": renovations.c.version},
                               version_id_col=renovations.c.version)


@event.listens_for(Renovation, "load")
def _fresh_event_list(renovation, _context):
    renovation.events = []


def index_passes(session, renovation):
    for entry in renovation.passes:
        insert_once(session, insert(passes).values(
            number=entry["number"], renovation_id=renovation.id, site=renovation.site))


def take_step(session, renovation_id, step, now):
    """True for the one sweep (of however many replicas) that takes `step` first."""
    return insert_once(session, insert(sweep_steps).values(
        renovation_id=renovation_id, step=step, taken_at=now))


def open_cases(conn):
    """propdesk_open_cases: renovation files not closed or rejected, by site (SPEC §9)."""
    rows = conn.execute(select(renovations.c.site, func.count())
                        .where(renovations.c.status.not_in(("closed", "rejected")))
                        .group_by(renovations.c.site))
    return [({"site": site, "kind": "renovation"}, count) for site, count in rows]

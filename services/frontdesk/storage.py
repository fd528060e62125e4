"""Frontdesk schema. Each procedure's case is mapped imperatively onto its table, so the domain
stays plain Python; lists and steps are JSON columns. Parking spaces and answer-book entries are
plain rows. Every step the sweep takes once (a breach) is claimed by a unique row in
`sweep_steps`."""
from sqlalchemy import (
    JSON, Boolean, Column, Date, Index, Integer, String, Table, UniqueConstraint, event, func,
    insert, select,
)

from services.common.db import UTCDateTime, declarative_base, insert_once
from services.frontdesk.domain import Activity, Defect, MoveIn, ParkingRental, ReleasePass

Base = declarative_base()


def _case_columns(swept=True):
    """What every case table holds for the shared case file."""
    columns = [
        Column("status", String(24), nullable=False),
        Column("deadlines", JSON, nullable=False),
        Column("deadlines_met", JSON, nullable=False),
        Column("history", JSON, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("created_by", String(100), nullable=False),
        Column("version", Integer, nullable=False),
    ]
    if swept:
        columns += [Column("breaches", JSON, nullable=False), Column("next_due_at", UTCDateTime)]
    return columns


move_ins = Table(
    "move_ins", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("unit", String(10), nullable=False, index=True),
    Column("timezone", String(64), nullable=False),
    Column("person_id", String(24), nullable=False),
    Column("owner", JSON, nullable=False),
    Column("arrived_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("identity", JSON),
    Column("signatures", JSON),
    Column("inspection", JSON),
    Column("keys", JSON, nullable=False),
    Column("assistant", JSON),
    *_case_columns(),
    Index("ix_move_ins_site_status", "site", "status"),
    Index("ix_move_ins_next_due_at", "next_due_at"),
)

defects = Table(
    "defects", Base.metadata,
    Column("id", String(32), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("move_in_id", String(24), nullable=False, index=True),
    Column("owner", JSON, nullable=False),
    Column("location", String(200), nullable=False),
    Column("description", String(2000), nullable=False),
    Column("inspected_at", UTCDateTime, nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("fixed_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("progress", JSON, nullable=False),
    *_case_columns(),
    Index("ix_defects_site_status", "site", "status"),
    Index("ix_defects_next_due_at", "next_due_at"),
)

parking_spaces = Table(
    "parking_spaces", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("number", String(20), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("monthly_fee", String(16)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("site", "number"),
)

parking_rentals = Table(
    "parking_rentals", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("space_id", String(24), nullable=False),
    Column("space_number", String(20), nullable=False),
    Column("monthly_fee", String(16)),
    Column("person_id", String(24), nullable=False),
    Column("relation", String(20), nullable=False),
    Column("vehicle", JSON, nullable=False),
    Column("documents", JSON, nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date),
    Column("arrived_at", UTCDateTime, nullable=False),
    Column("contract_no", String(40)),
    Column("card_no", String(40)),
    Column("approved_at", UTCDateTime),
    Column("approved_by", String(100)),
    Column("ended_on", Date),
    Column("reason", String(500)),
    # Set while the rental is active: the unique index keeps one active rental per space, also
    # when two managers approve at the same instant.
    Column("active_space", String(24), unique=True),
    *_case_columns(),
    Index("ix_parking_rentals_site_status", "site", "status"),
    Index("ix_parking_rentals_next_due_at", "next_due_at"),
)

release_passes = Table(
    "release_passes", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("number", String(40), nullable=False, unique=True),
    Column("site", String(3), nullable=False),
    Column("unit", String(10), nullable=False, index=True),
    Column("timezone", String(64), nullable=False),
    Column("owner", JSON, nullable=False),
    Column("requested_by", JSON, nullable=False),
    Column("items", JSON, nullable=False),
    Column("move_on", Date, nullable=False),
    Column("transfer_watch", Boolean, nullable=False),
    Column("confirmed_by", String(20)),
    Column("confirmed_at", UTCDateTime),
    Column("used_at", UTCDateTime),
    Column("used_by", String(100)),
    Column("reason", String(500)),
    *_case_columns(swept=False),
)

activities = Table(
    "activities", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("title", String(200), nullable=False),
    Column("purpose", String(2000), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("budget", String(16), nullable=False),
    Column("capacity", Integer),
    Column("notify_sms", Boolean, nullable=False, default=False),
    Column("published_at", UTCDateTime),
    Column("summary", String(2000)),
    Column("reason", String(500)),
    Column("participants", JSON, nullable=False),
    Column("revisits", JSON, nullable=False),
    *_case_columns(swept=False),
    Index("ix_activities_site_starts_at", "site", "starts_at"),
)

answers = Table(
    "answers", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False, index=True),
    Column("topic", String(100), nullable=False),
    Column("question", String(1000), nullable=False),
    Column("answer", String(4000), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("reviewed_by", String(100)),     # the last half-yearly review (None: never reviewed)
)



class Answer(Base):
    """An entry of the answer book, as a row (paginated like the cases)."""
    __table__ = answers


sweep_steps = Table(
    "sweep_steps", Base.metadata,
    Column("case_id", String(32), nullable=False),
    Column("step", String(40), nullable=False),       # breach:start, breach:submit, ...
    Column("taken_at", UTCDateTime, nullable=False),
    UniqueConstraint("case_id", "step"),
)

# Optimistic locking, as renovation's: two workers changing one case cannot overwrite each
# other's JSON; the later commit fails.
CASES = ((MoveIn, move_ins), (Defect, defects), (ParkingRental, parking_rentals),
         (ReleasePass, release_passes), (Activity, activities))
SWEPT = (MoveIn, Defect, ParkingRental)
for _cls, _table in CASES:
    Base.registry.map_imperatively(_cls, _table, properties={"version": _table.c.version},
                                   version_id_col=_table.c.version)
    event.listen(_cls, "load", lambda case, _context: _fresh(case))


def _fresh(case):
    """What a loaded case raised or found is not stored: it starts empty."""
    case.events = []
    if isinstance(case, MoveIn):
        case.new_defects = []


def take_step(session, case_id, step, now):
    """True for the one sweep (of however many replicas) that takes `step` first."""
    return insert_once(session, insert(sweep_steps).values(case_id=case_id, step=step, taken_at=now))


# The procedures still waiting on someone, by the kind of case their breaches are counted under
# (propdesk_sla_breaches_total): a move-in not completed, a rental not signed, a defect not
# fixed, a release pass awaiting the owner's confirmation.
OPEN = ((move_ins, "move_in", ("waiting", "in_progress")),
        (parking_rentals, "parking_rental", ("pending",)),
        (defects, "defect", ("open", "submitted")),
        (release_passes, "release_pass", ("awaiting_owner",)))


def open_cases(conn):
    """propdesk_open_cases: the front desk's open procedures by site and kind (SPEC §9)."""
    out = []
    for table, kind, statuses in OPEN:
        rows = conn.execute(select(table.c.site, func.count())
                            .where(table.c.status.in_(statuses)).group_by(table.c.site))
        out += [({"site": site, "kind": kind}, count) for site, count in rows]
    return out

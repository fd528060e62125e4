"""Registry schema: sites, units, people, who lives where, vehicles, change requests (the
domain's ChangeRequest mapped imperatively, its history a JSON column) and the access log of
full reads. Nothing is deleted: a deactivated unit or person keeps its row, `active` false."""
from datetime import date
from decimal import Decimal

from sqlalchemy import (
    JSON, Boolean, Column, Date, ForeignKey, Index, Numeric, String, Table, Text, case, func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, declarative_base
from services.registry.domain import ChangeRequest

Base = declarative_base()


class Site(Base):
    __tablename__ = "sites"
    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at = mapped_column(UTCDateTime, nullable=False)


class Unit(Base):
    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    usage: Mapped[str] = mapped_column(String(20))
    area_m2: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    handover_date: Mapped[date | None] = mapped_column(Date)
    warranty_until: Mapped[date | None] = mapped_column(Date)
    moved_in_on: Mapped[date | None] = mapped_column(Date)
    # The customer-affairs assistant (客户事务助理) who looks after the unit: staff, not a resident.
    assistant_name: Mapped[str | None] = mapped_column(String(100))
    assistant_phone: Mapped[str | None] = mapped_column(String(32))
    meters: Mapped[dict] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    transfer_watch: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    # When the paper form was filled in, and whether it was entered past the 3-day deadline.
    collected_at = mapped_column(UTCDateTime, nullable=True)
    late_entry: Mapped[bool] = mapped_column(Boolean, default=False)
    entered_by: Mapped[str | None] = mapped_column(String(100))


class Person(Base):
    __tablename__ = "persons"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(200))
    id_number: Mapped[str | None] = mapped_column(String(32))
    major_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    # One record per person per unit (SPEC §1): the site of that unit scopes it.
    site: Mapped[str | None] = mapped_column(String(3), index=True)
    lease: Mapped[dict | None] = mapped_column(JSON)
    owner_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    collected_at = mapped_column(UTCDateTime, nullable=True)
    late_entry: Mapped[bool] = mapped_column(Boolean, default=False)
    entered_by: Mapped[str | None] = mapped_column(String(100))
    verified_by: Mapped[str | None] = mapped_column(String(100))
    verified_at = mapped_column(UTCDateTime, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Customer care (SPEC §8.6): a key customer (要害客户) is contacted every quarter, a member
    # of the owners' committee every month; `*_since` is when the flag was last set.
    key_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    key_customer_since = mapped_column(UTCDateTime, nullable=True)
    committee_member: Mapped[bool] = mapped_column(Boolean, default=False)
    committee_member_since = mapped_column(UTCDateTime, nullable=True)


class Occupancy(Base):
    __tablename__ = "occupancies"
    unit: Mapped[str] = mapped_column(ForeignKey("units.code"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), primary_key=True, index=True)
    relation: Mapped[str] = mapped_column(String(20))


class AccessLog(Base):
    """Every full read of a person's record: who, when, which record, why (001 §2.4)."""
    __tablename__ = "access_log"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(24), index=True)
    read_by: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    at = mapped_column(UTCDateTime, nullable=False)


class Contact(Base):
    """A contact with a person (a call, a visit, ...): who made it, when, how and what was
    said (SPEC §8.6). Kept as made; nothing edits it."""
    __tablename__ = "contacts"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    site: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text)
    at = mapped_column(UTCDateTime, nullable=False)
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at = mapped_column(UTCDateTime, nullable=False)
    __table_args__ = (Index("ix_contacts_person_at", "person_id", "at"),)


class ContactBreach(Base):
    """A period (`2027-Q1`, `2027-03`) in which a flagged person was not contacted: its key is
    the claim that makes the manager's alert go once, whatever replays the sweep."""
    __tablename__ = "contact_breaches"
    person_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    flag: Mapped[str] = mapped_column(String(20), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    site: Mapped[str] = mapped_column(String(3), index=True)
    period_end = mapped_column(UTCDateTime, nullable=False)
    detected_at = mapped_column(UTCDateTime, nullable=False)


class Vehicle(Base):
    """A resident's vehicle; `parking_space` and `rental_contract_no` are set by a parking
    rental (SPEC §8.2), or by an approved change."""
    __tablename__ = "vehicles"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    site: Mapped[str] = mapped_column(String(3), index=True)
    unit: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    plate: Mapped[str] = mapped_column(String(16), index=True)
    licence_no: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(100))
    insurance_until: Mapped[date | None] = mapped_column(Date)
    parking_space: Mapped[str | None] = mapped_column(String(32))
    rental_contract_no: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, nullable=False)
    entered_by: Mapped[str | None] = mapped_column(String(100))


change_requests = Table(
    "change_requests", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("target_id", String(24)),
    Column("changes", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("documents", JSON, nullable=False),
    Column("affects_fees", Boolean, nullable=False),
    Column("effective_on", Date),
    Column("requested_by", String(100), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("status", String(12), nullable=False),
    Column("decided_by", String(100)),
    Column("decided_at", UTCDateTime),
    Column("rejection_reason", Text),
    Column("applied_at", UTCDateTime),
    Column("before", JSON),
    Column("after", JSON),
    Column("notice_event_id", String(36)),
    Column("history", JSON, nullable=False),
    Column("deadlines", JSON, nullable=False),
    Column("deadlines_met", JSON, nullable=False),
    Index("ix_change_requests_site_status", "site", "status"),
    Index("ix_change_requests_due", "status", "effective_on"),
    Index("ix_change_requests_unit", "unit"),
)
Base.registry.map_imperatively(ChangeRequest, change_requests)


def entry_counts(session, site, start, end):
    """Records of units and people entered at `site` in [start, end): (entered, late, unverified
    people) — the registry's part of the site's monthly KPI report."""
    counts = {}
    for model in (Unit, Person):
        entered = (model.site == site) & (model.created_at >= start) & (model.created_at < end)
        counts[model] = session.execute(select(
            func.count(), func.coalesce(func.sum(case((model.late_entry, 1), else_=0)), 0))
            .where(entered)).one()
    unverified = session.scalar(select(func.count()).select_from(Person).where(
        Person.site == site, Person.created_at >= start, Person.created_at < end,
        Person.verified_by.is_(None)))
    return {"units_entered": counts[Unit][0], "units_late": int(counts[Unit][1]),
            "people_entered": counts[Person][0], "people_late": int(counts[Person][1]),
            "people_unverified": unverified}


def not_moved_in(session, site, after=None, limit=50):
    """Active units of `site` handed over and not moved in, oldest handover first (then code),
    with their first active owner: [(unit, owner or None)], `limit` + 1 at most; `after` the
    (handover day, code) of the last row of the previous page."""
    stmt = (select(Unit).where(Unit.site == site, Unit.active.is_(True),
                               Unit.handover_date.is_not(None), Unit.moved_in_on.is_(None))
            .order_by(Unit.handover_date, Unit.code).limit(limit + 1))
    if after is not None:
        day, code = after
        stmt = stmt.where((Unit.handover_date > day) | ((Unit.handover_date == day) & (Unit.code > code)))
    units = session.scalars(stmt).all()
    owners = {}
    if units:
        rows = session.execute(
            select(Occupancy.unit, Person).join(Person, Person.id == Occupancy.person_id)
            .where(Occupancy.unit.in_([u.code for u in units]), Occupancy.relation == "owner",
                   Person.active.is_(True)).order_by(Person.created_at, Person.id)).all()
        for unit_code, person in rows:
            owners.setdefault(unit_code, person)
    return [(unit, owners.get(unit.code)) for unit in units]


def contacts_of(session, person_ids):
    """{person_id: [Contact, oldest first]}."""
    found = {person_id: [] for person_id in person_ids}
    if person_ids:
        for contact in session.scalars(select(Contact).where(Contact.person_id.in_(list(person_ids)))
                                       .order_by(Contact.at, Contact.id)):
            found[contact.person_id].append(contact)
    return found


def flagged_people(session):
    """Active key customers and committee members, with their site's time zone."""
    return session.execute(select(Person, Site.timezone).join(Site, Site.code == Person.site).where(
        Person.active.is_(True),
        (Person.key_customer.is_(True)) | (Person.committee_member.is_(True)))
        .order_by(Person.id)).all()

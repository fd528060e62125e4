"""Notifications schema — every message made from an event, one per event, recipient and
channel — and its queries: the delivery sweep's batch claim, opt-outs, the warranty and owner
copies, and the working-day calendar's entered years (notifications owns them)."""
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import (
    JSON, Boolean, Date, Index, Integer, String, Text, UniqueConstraint, delete, false, func,
    insert, or_, select, update,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.calendar import DEFAULT_TZ, shift_months
from services.common.db import (
    UTCDateTime, bulk_insert, declarative_base, insert_once, locking, within_sites,
)
from services.common.units import building_of_unit, site_of_unit

Base = declarative_base()


class Message(Base):
    __tablename__ = "messages"
    # A redelivered or replayed event finds its messages already here (SPEC §5).
    __table_args__ = (
        UniqueConstraint("event_id", "recipient", "channel"),
        Index("ix_messages_site_id", "site", "id"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(200), index=True)
    person_id: Mapped[str | None] = mapped_column(String(24), index=True)
    event: Mapped[str] = mapped_column(String(80))
    event_id: Mapped[str] = mapped_column(String(36))
    template: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(200))      # email only
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    ticket_id: Mapped[str | None] = mapped_column(String(24), index=True)
    unit: Mapped[str | None] = mapped_column(String(10), index=True)
    site: Mapped[str | None] = mapped_column(String(3))
    timezone: Mapped[str | None] = mapped_column(String(64))   # the site's, for its calendar
    created_at = mapped_column(UTCDateTime, nullable=False)
    # When the delivery sweep may next try it (None once sent, dead or skipped): retries back
    # off exponentially, and a quiet-hours SMS waits for the morning.
    next_attempt_at = mapped_column(UTCDateTime, nullable=True, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    # A letter is tracked until posted: by whom, when, and the express-mail number if any.
    posted_at = mapped_column(UTCDateTime, nullable=True)
    posted_by: Mapped[str | None] = mapped_column(String(80))
    tracking_number: Mapped[str | None] = mapped_column(String(64))


class DeliveryAttempt(Base):
    """Every try of a provider, successful or not."""
    __tablename__ = "delivery_attempts"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(24), index=True)
    at = mapped_column(UTCDateTime, nullable=False)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)


class OptOut(Base):
    """A person who asked for no more messages on a channel."""
    __tablename__ = "opt_outs"

    person_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at = mapped_column(UTCDateTime, nullable=False)


class Warranty(Base):
    """Notifications' own copy of each unit's warranty end and owner (fed by
    `registry.unit_changed`), for the daily warranty-expiry sweep; `reminded_for` is the
    warranty end a reminder was made for, so the sweep skips the unit until that date changes."""
    __tablename__ = "warranties"

    unit: Mapped[str] = mapped_column(String(10), primary_key=True)
    site: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    warranty_until = mapped_column(Date, nullable=False, index=True)
    reminded_for = mapped_column(Date, nullable=True)
    owner_name: Mapped[str | None] = mapped_column(String(200))
    owner_phone: Mapped[str | None] = mapped_column(String(40))
    owner_email: Mapped[str | None] = mapped_column(String(200))
    person_id: Mapped[str | None] = mapped_column(String(24))
    updated_at = mapped_column(UTCDateTime, nullable=False)


class Owner(Base):
    """Notifications' own copy of each unit's owner who has a phone (fed by
    `registry.unit_changed`), for the holiday greetings: one row per unit."""
    __tablename__ = "owners"

    unit: Mapped[str] = mapped_column(String(10), primary_key=True)
    site: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(24))
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40))
    updated_at = mapped_column(UTCDateTime, nullable=False)


class CalendarYear(Base):
    """A year's statutory holidays and adjusted working weekends as head office entered them
    (`holidays` [{name, first_day, days}] and `workdays`, ISO dates); `version` counts entries of
    the year, so that every process keeps the newest whatever order the events come in."""
    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)
    holidays = mapped_column(JSON, nullable=False)
    workdays = mapped_column(JSON, nullable=False)
    entered_by: Mapped[str] = mapped_column(String(80))
    entered_at = mapped_column(UTCDateTime, nullable=False)


def visible(identity, site=None):
    """The messages `identity` may see: staff their sites' (or `site`'s), a resident those
    addressed to them and the in-app notices of their buildings' lobbies and their sites."""
    stmt = within_sites(select(Message), Message.site, identity, site)
    if identity.is_resident:
        notices = [f"building:{building_of_unit(u)}" for u in identity.units] + [
            f"site:{site_of_unit(u)}" for u in identity.units]
        own = Message.person_id == identity.person_id if identity.person_id else false()
        stmt = stmt.where(or_(own, (Message.channel == "in_app") & Message.recipient.in_(notices)))
    return stmt


def attempts_of(session, message_id):
    return session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.message_id == message_id)
                           .order_by(DeliveryAttempt.at, DeliveryAttempt.id)).all()


def opted_out(session, person_ids):
    """{(person_id, channel)} of the opt-outs of `person_ids`, in one query."""
    if not person_ids:
        return set()
    return set(session.execute(select(OptOut.person_id, OptOut.channel)
                               .where(OptOut.person_id.in_(person_ids))).all())


def set_opt_out(session, person_id, channel, opted_out, now):
    if opted_out:
        insert_once(session, insert(OptOut).values(person_id=person_id, channel=channel,
                                                   created_at=now))
    else:
        session.execute(delete(OptOut).where(OptOut.person_id == person_id, OptOut.channel == channel))


def insert_messages(session, messages):
    """`messages` (Message objects, not added to the session) in one bulk insert."""
    columns = [c.key for c in Message.__table__.columns]
    bulk_insert(session, Message.__table__,
                [{key: getattr(message, key) for key in columns} for message in messages])


def insert_message_once(session, message):
    """False when the message's event already made it for this recipient and channel."""
    values = {c.key: getattr(message, c.key) for c in Message.__table__.columns}
    return insert_once(session, insert(Message).values(values))


def keep_warranty(session, envelope):
    """The unit's warranty end and owner from a `registry.unit_changed`, for the expiry sweep;
    an event older than what is kept (redelivered late) does not roll it back."""
    data = envelope["data"]
    kept = session.get(Warranty, data["unit"])
    if kept is not None and kept.updated_at > envelope["occurred_at"]:
        return
    if data["change"] == "deactivated" or not data.get("warranty_until"):
        if kept is not None:
            session.delete(kept)
        return
    owner = data.get("owner") or {}
    kept = kept or Warranty(unit=data["unit"])
    kept.site, kept.timezone = envelope["site"], data.get("timezone") or DEFAULT_TZ
    kept.warranty_until = data["warranty_until"]
    kept.owner_name, kept.owner_phone = owner.get("name"), owner.get("phone")
    kept.owner_email, kept.person_id = owner.get("email"), owner.get("person_id")
    kept.updated_at = envelope["occurred_at"]
    session.add(kept)


def keep_owner(session, envelope):
    """The unit's owner from a `registry.unit_changed`, for the greetings; a unit deactivated or
    whose owner has no phone drops out; an event older than what is kept changes nothing."""
    data = envelope["data"]
    kept = session.get(Owner, data["unit"])
    if kept is not None and kept.updated_at > envelope["occurred_at"]:
        return
    owner = data.get("owner") or {}
    if data["change"] == "deactivated" or not owner.get("phone"):
        if kept is not None:
            session.delete(kept)
        return
    kept = kept or Owner(unit=data["unit"])
    kept.site, kept.timezone = envelope["site"], data.get("timezone") or DEFAULT_TZ
    kept.person_id, kept.name, kept.phone = owner.get("person_id"), owner.get("name"), owner["phone"]
    kept.updated_at = envelope["occurred_at"]
    session.add(kept)


def owner_time_zones(session):
    return session.scalars(select(Owner.timezone).distinct()).all()


def owners_in(session, tz):
    return session.scalars(select(Owner).where(Owner.timezone == tz).order_by(Owner.unit)).all()


def owners_of_site(session, site):
    return session.scalars(select(Owner).where(Owner.site == site).order_by(Owner.unit)).all()


def calendar_years(session):
    return session.scalars(select(CalendarYear).order_by(CalendarYear.year)).all()


def warranties_ending_soon(session, utc_today, notice_months):
    """Units whose warranty ends within `notice_months` (a day of slack either side, for the
    sites' time zones) and that were not reminded of this end yet."""
    return session.scalars(select(Warranty).where(
        Warranty.warranty_until.between(utc_today - timedelta(days=1),
                                        shift_months(utc_today, notice_months) + timedelta(days=1)),
        or_(Warranty.reminded_for.is_(None), Warranty.reminded_for != Warranty.warranty_until),
    ).order_by(Warranty.unit)).all()


CLAIMABLE = ("pending", "failed")


def claim_due(session, now, lease, batch, ids=None):
    """Claim up to `batch` messages due at `now`, in due order (only `ids`, when given): a lease
    (`next_attempt_at` moved `lease` past now, in one short transaction), so that replicas never
    try the same message at once and one that dies mid-delivery lets it lapse. A claimed
    message is not due again in this sweep. The claimed messages as plain objects with the
    message's fields (the sweep writes them back by statement, never through the session)."""
    messages = Message.__table__
    claimable = (messages.c.status.in_(CLAIMABLE), messages.c.next_attempt_at <= now)
    due = select(messages.c.id).where(*claimable).order_by(
        messages.c.next_attempt_at, messages.c.id).limit(batch)
    if ids is not None:
        due = due.where(messages.c.id.in_(ids))
    candidates = session.scalars(locking(due, session.get_bind())).all()
    if not candidates:
        session.commit()
        return []
    # Another replica may have claimed some since they were read (SQLite takes no row lock):
    # only what this UPDATE moved is ours.
    claimed = {row.id: SimpleNamespace(**row._mapping) for row in session.execute(
        update(messages).where(messages.c.id.in_(candidates), *claimable)
        .values(next_attempt_at=now + lease).returning(*messages.c))}
    session.commit()
    return [claimed[message_id] for message_id in candidates if message_id in claimed]


def record_attempts(session, attempts, messages):
    """Delivery attempts (rows) in one insert, and the new state of the `messages` they (or an
    opt-out) changed in one UPDATE per outcome (most of a batch: sent on the first try)."""
    bulk_insert(session, DeliveryAttempt.__table__, attempts)
    outcomes = {}
    for message in messages:
        outcomes.setdefault((message.status, message.attempts, message.last_error,
                             message.next_attempt_at), []).append(message.id)
    table = Message.__table__
    for (status, attempts_made, error, next_attempt_at), ids in outcomes.items():
        session.execute(update(table).where(table.c.id.in_(ids)).values(
            status=status, attempts=attempts_made, last_error=error,
            next_attempt_at=next_attempt_at))


def messages_by_status(conn):
    """propdesk_messages: every message by channel and status (SPEC §9)."""
    rows = conn.execute(select(Message.channel, Message.status, func.count())
                        .group_by(Message.channel, Message.status))
    return [({"channel": channel, "status": status}, count) for channel, status, count in rows]

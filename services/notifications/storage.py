"""Notifications schema: every message made from an event, one per event, recipient and channel."""
from sqlalchemy import Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, declarative_base

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

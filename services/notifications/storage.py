"""Notifications schema: every message made from an event, one per event, recipient and channel."""
from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
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
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    ticket_id: Mapped[str | None] = mapped_column(String(24), index=True)
    unit: Mapped[str | None] = mapped_column(String(10), index=True)
    site: Mapped[str | None] = mapped_column(String(3))
    created_at = mapped_column(UTCDateTime, nullable=False)

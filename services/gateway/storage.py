"""The gateway's own schema: the answers it gave to POSTs that carried an Idempotency-Key."""
from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, declarative_base

Base = declarative_base()


class IdempotentRequest(Base):
    """One key of one caller: the request it was first used for and, once answered, the answer.
    `status` is NULL while the first request is still in flight."""
    __tablename__ = "idempotency_keys"
    caller: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request: Mapped[str] = mapped_column(String(600))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, nullable=False, index=True)
    completed_at = mapped_column(UTCDateTime, nullable=True)

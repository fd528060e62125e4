"""Billing schema. Money columns are integer fen (分); `domain.from_fen` makes them Decimal.

Units are a local projection of registry's units (fed by `registry.unit_changed`), so that the
monthly run is one INSERT … SELECT and the arrears sweep one aggregate query joined with the
major-customer flag, instead of paging every unit of a site over RPC.
"""
from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, Date, ForeignKey, Index, Integer, String, Table,
    UniqueConstraint, event,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.billing.domain import Lawsuit
from services.common.db import UTCDateTime, declarative_base

Base = declarative_base()


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = (Index("ix_units_site_code", "site", "code"),)

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    site: Mapped[str] = mapped_column(String(3))
    usage: Mapped[str] = mapped_column(String(16))
    area_centi_m2: Mapped[int] = mapped_column(BigInteger)   # m² × 100
    major_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    owner_name: Mapped[str | None] = mapped_column(String(200))
    owner_phone: Mapped[str | None] = mapped_column(String(40))
    owner_person_id: Mapped[str | None] = mapped_column(String(24), index=True)
    owner_email: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))   # the site's; None: DEFAULT_TZ
    updated_at = mapped_column(UTCDateTime, nullable=False)


class FeeScheduleRow(Base):
    """Each site's schedules, newest in force; invoices keep their own amounts."""
    __tablename__ = "fee_schedules"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    site: Mapped[str] = mapped_column(String(3), index=True)
    body: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at = mapped_column(UTCDateTime, nullable=False)


class Invoice(Base):
    __tablename__ = "invoices"
    # One invoice per unit and period (NULL periods — ad-hoc invoices — never collide).
    __table_args__ = (
        UniqueConstraint("unit", "period"),
        Index("ix_invoices_open_unit_due", "unit", "settled", "due_date"),
        Index("ix_invoices_site_period", "site", "period"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    unit: Mapped[str] = mapped_column(String(10))
    site: Mapped[str] = mapped_column(String(3))
    period: Mapped[str | None] = mapped_column(String(7))
    due_date = mapped_column(Date, nullable=False)
    kind: Mapped[str] = mapped_column(String(16))          # monthly, manual, renovation, repair
    total_fen: Mapped[int] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    deposit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
    reference: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at = mapped_column(UTCDateTime, nullable=False)
    settled_at = mapped_column(UTCDateTime, nullable=True)
    # The late fee on this invoice is posted up to (not including) this day; it accrues after.
    accrued_to = mapped_column(Date, nullable=True)


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    fee: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(200), default="")


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    receipt_number: Mapped[str] = mapped_column(String(32), unique=True)
    unit: Mapped[str] = mapped_column(String(10), index=True)
    site: Mapped[str] = mapped_column(String(3))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    unallocated_fen: Mapped[int] = mapped_column(BigInteger)   # the credit it still leaves
    method: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(80))
    received_by: Mapped[str] = mapped_column(String(80))
    received_at = mapped_column(UTCDateTime, nullable=False)


class Allocation(Base):
    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    at = mapped_column(UTCDateTime, nullable=False)


class LedgerEntry(Base):
    """Append-only: charge, payment, refund, late_fee, deposit_held, deposit_refund."""
    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_unit_id", "unit", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit: Mapped[str] = mapped_column(String(10))
    site: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(String(200), default="")
    at = mapped_column(UTCDateTime, nullable=False)


class Deposit(Base):
    """A renovation deposit: due, then held once its invoice is paid, then refunded."""
    __tablename__ = "deposits"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    unit: Mapped[str] = mapped_column(String(10), index=True)
    renovation_id: Mapped[str] = mapped_column(String(40), unique=True)
    invoice_id: Mapped[str] = mapped_column(String(40))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))          # due, held, refunded
    deductions_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    held_at = mapped_column(UTCDateTime, nullable=True)
    refunded_at = mapped_column(UTCDateTime, nullable=True)


class ArrearsEpisode(Base):
    """A unit's time in arrears: from its first overdue invoice (`started_on`, that invoice's
    due date) until nothing is overdue (`ended_on`). Paying the oldest invoice while later ones
    stay overdue keeps it, so the steps it has taken are not taken again."""
    __tablename__ = "arrears_episodes"
    __table_args__ = (UniqueConstraint("unit", "started_on"),
                      Index("ix_arrears_episodes_open", "unit", "ended_on"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit: Mapped[str] = mapped_column(String(10))
    site: Mapped[str] = mapped_column(String(3))
    started_on = mapped_column(Date, nullable=False)
    ended_on = mapped_column(Date, nullable=True)


class LadderStep(Base):
    """Each arrears step once: per unit, arrears episode (`since` = the episode's
    `started_on`), step and sequence. Two sweeps racing both try the insert; the loser's is refused."""
    __tablename__ = "ladder_steps"
    __table_args__ = (
        UniqueConstraint("unit", "since", "step", "sequence"),
        Index("ix_ladder_steps_unit_since_milestone", "unit", "since", "milestone"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit: Mapped[str] = mapped_column(String(10))
    site: Mapped[str] = mapped_column(String(3))
    since = mapped_column(Date, nullable=False)
    step: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int] = mapped_column(Integer)
    milestone: Mapped[int] = mapped_column(Integer)
    months: Mapped[int] = mapped_column(Integer)
    amount_due_fen: Mapped[int] = mapped_column(BigInteger)
    late_fee_fen: Mapped[int] = mapped_column(BigInteger)
    taken_on = mapped_column(Date, nullable=False)
    taken_at = mapped_column(UTCDateTime, nullable=False)


class ParkingRental(Base):
    """Billing's copy of frontdesk's active parking rentals (frontdesk.parking_rented / _ended):
    the monthly run bills each as a line of its own."""
    __tablename__ = "parking_rentals"
    __table_args__ = (Index("ix_parking_rentals_site", "site"),)

    rental_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    unit: Mapped[str] = mapped_column(String(10))
    site: Mapped[str] = mapped_column(String(3))
    space_number: Mapped[str] = mapped_column(String(20))
    plate: Mapped[str] = mapped_column(String(12))
    monthly_fee_fen: Mapped[int | None] = mapped_column(BigInteger)   # None: parking_per_month
    start = mapped_column(Date, nullable=False)
    last_day = mapped_column(Date, nullable=True)     # the end or the day it ended
# The domain's Lawsuit mapped as it is (a case file: JSON history and deadlines), one per
# unit and arrears episode.
lawsuits = Table(
    "lawsuits", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("unit", String(10), nullable=False),
    Column("site", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("since", Date, nullable=False),
    Column("referred_on", Date, nullable=False),
    Column("amount_referred", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("filing", JSON),
    Column("judgement", JSON),
    Column("preservation", JSON),
    Column("closing", JSON),
    Column("deadlines", JSON, nullable=False),
    Column("deadlines_met", JSON, nullable=False),
    Column("breaches", JSON, nullable=False),
    Column("history", JSON, nullable=False),
    Column("next_due_at", UTCDateTime),
    UniqueConstraint("unit", "since"),
    Index("ix_lawsuits_site_status", "site", "status"),
    Index("ix_lawsuits_next_due_at", "next_due_at"),
)
Base.registry.map_imperatively(Lawsuit, lawsuits)


@event.listens_for(Lawsuit, "load")
def _fresh_event_list(lawsuit, _context):
    lawsuit.events = []

"""Billing's schema and its queries and writes: the monthly run as one INSERT … SELECT, payments
and their allocation, the arrears aggregate the sweep and the arrears list share. Money columns
are integer fen (分); `domain.from_fen` makes them Decimal.

Units are a local projection of registry's units (fed by `registry.unit_changed`), so that the
monthly run is one INSERT … SELECT and the arrears sweep one aggregate query joined with the
major-customer flag, instead of paging every unit of a site over RPC.
"""
import json
import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, Date, ForeignKey, Index, Integer, MetaData, Numeric, String,
    Table,
    UniqueConstraint, and_, case, event, exists, false, func, literal, or_, select, text, true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from services.billing import domain
from services.billing.domain import Lawsuit, from_fen, to_fen
from services.common.calendar import DEFAULT_TZ
from services.common.db import UTCDateTime, bulk_insert, declarative_base, insert_once, new_id

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
        # the open invoices only: the arrears aggregate (sweep, arrears list, gauge) reads
        # those of a site, not a year of settled history (a scan of every invoice per site)
        Index("ix_invoices_open_site_due", "site", "due_date",
              postgresql_where=text("NOT settled"), sqlite_where=text("NOT settled")),
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


# -- queries and writes -----------------------------------------------------------------------
def schedule_of(session, site):
    row = session.scalars(select(FeeScheduleRow).where(FeeScheduleRow.site == site)
                          .order_by(FeeScheduleRow.id.desc()).limit(1)).first()
    if row is None:
        return None
    body = row.body
    return domain.FeeSchedule(
        site=site,
        management_per_m2={k: Decimal(v) for k, v in body.get("management_per_m2", {}).items()},
        **{k: Decimal(body[k]) for k in (
            "parking_per_month", "renovation_management", "renovation_deposit",
            "debris_removal", "repair_call_out", "late_fee_daily_rate")},
        due_day=int(body["due_day"]),
    )


def late_fee_rate(session, site):
    schedule = schedule_of(session, site)
    return schedule.late_fee_daily_rate if schedule else domain.DEFAULT_LATE_FEE_DAILY_RATE


def late_fee_rates(session, sites):
    """{site: its daily late-fee rate} for each of `sites`."""
    return {site: late_fee_rate(session, site) for site in set(sites)}


def _insert(session):
    return (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)


# The lines the fee schedule gives each (usage, area) of a site's units, computed by the
# domain's rule and joined in the monthly run: one rule, however many units share an area.
_monthly_charges = Table(
    "monthly_charges", MetaData(), Column("usage", String(16)), Column("area_centi_m2", BigInteger),
    Column("fee", String(32)), Column("amount_fen", BigInteger), Column("description", String(200)),
    prefixes=["TEMPORARY"])


def _charges_of(session, schedule):
    """`_monthly_charges` filled for the site's active units (dropped by the caller)."""
    # plain rows from the table, not through the ORM's loading (a tenth of a run in Python)
    units = Unit.__table__.c
    connection = session.connection()
    kinds = connection.execute(select(units.usage, units.area_centi_m2).where(
        units.site == schedule.site, units.active == true()).distinct()).all()
    _monthly_charges.create(connection)
    rows = [{"usage": usage, "area_centi_m2": area, "fee": fee, "amount_fen": to_fen(amount),
             "description": description}
            for usage, area in kinds
            for fee, amount, description in schedule.monthly_lines(usage, Decimal(area) / 100)]
    bulk_insert(session, _monthly_charges, rows)
    if session.bind.dialect.name == "postgresql":
        session.execute(text("ANALYZE monthly_charges"))   # a temporary table has no statistics
    return _monthly_charges


def run_monthly(session, schedule, period, now):
    """One invoice per active unit of the site for `period`, with the lines `FeeSchedule.
    monthly_lines` gives it; units already invoiced for it are left alone by the unique
    (unit, period) key (ON CONFLICT DO NOTHING, which PostgreSQL checks row by row in the
    index, where a NOT EXISTS anti-join was planned as a nested loop over every invoice of the
    period), so a run repeated or raced adds nothing. Returns how many invoices this run created."""
    due = domain.due_date_of(period, schedule.due_day)
    charges = _charges_of(session, schedule)
    of_unit = and_(charges.c.usage == Unit.usage, charges.c.area_centi_m2 == Unit.area_centi_m2)
    totals = (select(charges.c.usage, charges.c.area_centi_m2,
                     func.sum(charges.c.amount_fen).label("total_fen"))
              .group_by(charges.c.usage, charges.c.area_centi_m2).subquery())
    invoice_id = literal(f"M{period}-") + Unit.code
    source = (select(invoice_id, Unit.code, Unit.site, literal(period), literal(due),
                     literal("monthly"), totals.c.total_fen, literal(0), literal(0), false(),
                     literal({}, JSON), literal(now, Invoice.created_at.type))
              .join(totals, and_(totals.c.usage == Unit.usage,
                                 totals.c.area_centi_m2 == Unit.area_centi_m2))
              .where(Unit.site == schedule.site, Unit.active == true(), totals.c.total_fen > 0))
    columns = ["id", "unit", "site", "period", "due_date", "kind", "total_fen", "paid_fen",
               "deposit_fen", "settled", "reference", "created_at"]
    session.execute(_insert(session)(Invoice).from_select(columns, source).on_conflict_do_nothing())
    new = made_by_run(schedule.site, period, now)
    # (rowcount of INSERT … SELECT is not reported by every driver)
    created = session.scalar(select(func.count()).select_from(Invoice).where(new))
    session.execute(InvoiceLine.__table__.insert().from_select(
        ["invoice_id", "fee", "amount_fen", "description"],
        select(Invoice.id, charges.c.fee, charges.c.amount_fen, charges.c.description)
        .join(Unit, Unit.code == Invoice.unit).join(charges, of_unit).where(new)))
    session.execute(LedgerEntry.__table__.insert().from_select(
        ["unit", "site", "kind", "amount_fen", "invoice_id", "note", "at"],
        select(Invoice.unit, Invoice.site, literal("charge"), Invoice.total_fen, Invoice.id,
               literal(f"{period} monthly fees"), Invoice.created_at).where(new)))
    charges.drop(session.connection())
    return created


def add_parking_lines(session, schedule, period, now):
    """The parking line of each rental active in `period` (SPEC §4: the space's fee, or the
    site's `parking_per_month`), on the unit's invoice this run made, or on an invoice of its
    own for a unit with no other fee; a unit invoiced by an earlier run is left alone."""
    first = domain.parse_period(period)
    last = (first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    rentals = session.scalars(select(ParkingRental).where(
        ParkingRental.site == schedule.site, ParkingRental.start <= last,
        or_(ParkingRental.last_day.is_(None), ParkingRental.last_day >= first))
        .order_by(ParkingRental.rental_id)).all()
    for rental in rentals:
        fen = rental.monthly_fee_fen if rental.monthly_fee_fen is not None \
            else to_fen(schedule.parking_per_month)
        if not fen:
            continue
        line = {"fee": "parking", "amount": from_fen(fen),
                "description": f"车位租赁 {rental.space_number}（{rental.plate}）"}
        invoice = session.scalars(select(Invoice).where(
            made_by_run(schedule.site, period, now), Invoice.unit == rental.unit)).first()
        if invoice is None:
            unit = session.get(Unit, rental.unit)
            if unit is not None:
                add_invoice(session, unit, period, domain.due_date_of(period, schedule.due_day),
                            [line], "monthly", {}, now)
            continue
        invoice.total_fen += fen
        session.add_all([
            InvoiceLine(invoice_id=invoice.id, fee="parking", amount_fen=fen,
                        description=line["description"]),
            LedgerEntry(unit=invoice.unit, site=invoice.site, kind="charge", amount_fen=fen,
                        invoice_id=invoice.id, note=f"{period} parking", at=now)])
    session.flush()


def made_by_run(site, period, now):
    """The invoices the monthly run of `site` and `period` made at `now` (and no earlier run)."""
    return and_(Invoice.site == site, Invoice.period == period,
                Invoice.kind == "monthly", Invoice.created_at == now)


def units_with_credit(session, site):
    return list(session.scalars(select(Payment.unit).where(
        Payment.site == site, Payment.unallocated_fen > 0).distinct()))


def add_invoice(session, unit, period, due_date, items, kind, reference, now):
    """An invoice with its lines and its ledger charge; None if (unit, period) is taken."""
    if period and session.scalar(select(Invoice.id).where(
            Invoice.unit == unit.code, Invoice.period == period)):
        return None
    total = sum((domain.money(item["amount"]) for item in items), Decimal("0"))
    deposit = sum((domain.money(item["amount"]) for item in items
                   if item["fee"] in domain.DEPOSIT_FEES), Decimal("0"))
    invoice = Invoice(id=new_id(), unit=unit.code, site=unit.site, period=period,
                      due_date=due_date, kind=kind, total_fen=to_fen(total), paid_fen=0,
                      deposit_fen=to_fen(deposit), settled=False, reference=reference or {},
                      created_at=now)
    session.add(invoice)
    session.flush()
    session.add_all([InvoiceLine(invoice_id=invoice.id, fee=item["fee"],
                                 amount_fen=to_fen(item["amount"]),
                                 description=item.get("description") or "") for item in items])
    session.add(LedgerEntry(unit=unit.code, site=unit.site, kind="charge",
                            amount_fen=invoice.total_fen, invoice_id=invoice.id,
                            note=f"{kind} invoice", at=now))
    return invoice


def issued(session, where):
    """The invoices matching `where`, each with its lines, its unit's owner contact and site time
    zone in one flat row (invoice columns, then `owner_*` and `timezone`): [(row, [lines])],
    one query however many."""
    rows = session.execute(
        select(Invoice.id, Invoice.unit, Invoice.site, Invoice.period, Invoice.kind,
               Invoice.total_fen, Invoice.due_date, Unit.owner_name, Unit.owner_phone,
               Unit.owner_email, Unit.owner_person_id, Unit.timezone,
               InvoiceLine.fee, InvoiceLine.amount_fen, InvoiceLine.description)
        .outerjoin(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .outerjoin(Unit, Unit.code == Invoice.unit)
        .where(where).order_by(Invoice.id, InvoiceLine.id)).all()
    invoices = {}
    for row in rows:
        lines = invoices.setdefault(row.id, (row, []))[1]
        if row.fee is not None:
            lines.append(row)
    return list(invoices.values())


def issued_payloads(where, late_fee_daily_rate):
    """(site, data, sort) of each invoice matching `where` (of one site, whose daily late-fee
    rate is `late_fee_daily_rate`): its billing.invoice_issued payload built by PostgreSQL's
    JSON functions exactly as `service.invoice_issued` builds it in Python (amounts as text of
    two decimals, no owner when billing knows none, the lines in their order), for
    `UnitOfWork.add_events_selected` — a whole monthly run in one statement."""
    def money(fen):
        return func.cast(func.cast(fen, Numeric) / 100, Numeric(14, 2)).cast(String)

    def text_(value):
        return literal(value, String)

    # each invoice's lines read once (a lateral subquery: its items and their count), not by
    # two correlated subqueries; always by the index, however few rows the planner expects
    line = InvoiceLine.__table__.c
    lines = (select(func.json_agg(postgresql.aggregate_order_by(func.json_build_object(
                        text_("fee"), line.fee, text_("amount"), money(line.amount_fen),
                        text_("description"), line.description), line.id)).label("json"),
                    func.count().label("lines"), func.count(line.description).label("described"))
             .where(line.invoice_id == Invoice.id, line.fee.is_not(None)).lateral())
    items = func.coalesce(lines.c.json, func.cast(text_("[]"), postgresql.JSON))
    owner_fields = (Unit.owner_name, Unit.owner_phone, Unit.owner_email, Unit.owner_person_id)
    no_owner = func.coalesce(*(func.nullif(f, "") for f in owner_fields)).is_(None)
    owner = case((no_owner, None),
                 else_=func.json_build_object(
                     text_("name"), Unit.owner_name, text_("phone"), Unit.owner_phone,
                     text_("email"), Unit.owner_email, text_("person_id"), Unit.owner_person_id))
    data = func.json_build_object(
        text_("invoice_id"), Invoice.id, text_("unit"), Invoice.unit, text_("period"), Invoice.period,
        text_("kind"), Invoice.kind, text_("amount"), money(Invoice.total_fen),
        text_("due_date"), func.to_char(Invoice.due_date, "YYYY-MM-DD"), text_("items"), items,
        text_("owner"), owner,
        text_("timezone"), func.coalesce(func.nullif(Unit.timezone, ""), DEFAULT_TZ),
        text_("late_fee_daily_rate"), text_(str(Decimal(late_fee_daily_rate))))
    # what may make two bills differ in shape: which values are null (one bit each, in
    # integer arithmetic: building a JSON array of them per bill cost as much as the bill),
    # how many lines, how many of them described
    nulls = sum(func.cast(condition, Integer) * 2 ** bit for bit, condition in enumerate((
        no_owner, *(column.is_(None) for column in (
            *owner_fields, Invoice.period, Unit.timezone, Unit.code)))))
    shape = (func.cast(nulls, String) + text_(",") + func.cast(lines.c.lines, String)
             + text_(",") + func.cast(lines.c.described, String))
    return (select(Invoice.site.label("site"), data.label("data"), Invoice.id.label("sort"),
                   shape.label("shape"))
            .outerjoin(Unit, Unit.code == Invoice.unit)
            .join(lines, true()).where(where))


def sort_in_memory(session):
    """For the rest of this transaction (PostgreSQL), room for the outbox statement of a
    whole run to sort its bills in memory: at the default 4 MB its 10,000 payloads went
    through temporary files twice (in publishing order, and by shape), a fifth of its time."""
    session.execute(text("SET LOCAL work_mem = '64MB'"))


def open_invoices(session, unit_code, lock=False):
    stmt = (select(Invoice).where(Invoice.unit == unit_code, Invoice.settled == false())
            .order_by(Invoice.due_date, Invoice.id))
    if lock and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


def receipt_number(site, now):
    return f"R{site}{now:%Y%m%d}{secrets.token_hex(4).upper()}"


def allocate(session, invoices, payments, now):
    """Spend the payments' unallocated money on `invoices`, oldest due first; the invoices
    this settles, each with the payment that settled it: [(invoice, payment)]."""
    settled = []
    for payment in payments:
        opened = [domain.OpenInvoice(i.id, i.due_date, from_fen(i.total_fen - i.paid_fen))
                  for i in invoices if not i.settled]
        shares, left = domain.allocate(from_fen(payment.unallocated_fen), opened)
        by_id = {i.id: i for i in invoices}
        for invoice_id, share in shares:
            invoice = by_id[invoice_id]
            invoice.paid_fen += to_fen(share)
            session.add(Allocation(payment_id=payment.id, invoice_id=invoice_id,
                                   amount_fen=to_fen(share), at=now))
            if invoice.paid_fen >= invoice.total_fen:
                invoice.settled, invoice.settled_at = True, now
                settled.append((invoice, payment))
        payment.unallocated_fen = to_fen(left)
    for invoice, _ in settled:
        _hold_deposit(session, invoice, now)
    return settled


def add_payment(session, unit, amount, method, reference, received_by, now):
    """A payment with its receipt number and its ledger entry, all of it credit until allocated."""
    fen = to_fen(amount)
    payment = Payment(id=new_id(), receipt_number=receipt_number(unit.site, now), unit=unit.code,
                      site=unit.site, amount_fen=fen, unallocated_fen=fen, method=method,
                      reference=reference, received_by=received_by, received_at=now)
    session.add(payment)
    session.add(LedgerEntry(unit=unit.code, site=unit.site, kind="payment", amount_fen=fen,
                            payment_id=payment.id, note=method, at=now))
    session.flush()
    return payment


def add_deposit(session, invoice, renovation_id):
    """The deposit an invoice carries, due until the invoice is paid."""
    session.add(Deposit(id=new_id(), unit=invoice.unit, renovation_id=renovation_id,
                        invoice_id=invoice.id, amount_fen=invoice.deposit_fen, status="due"))
    session.flush()


def deposit_of(session, renovation_id):
    return session.scalars(select(Deposit).where(Deposit.renovation_id == renovation_id)).first()


def record_deposit_refund(session, deposit, now):
    """The ledger entry of a refunded deposit, naming its deductions."""
    session.add(LedgerEntry(unit=deposit.unit, site=deposit.unit[:3], kind="deposit_refund",
                            amount_fen=deposit.refunded_fen, invoice_id=deposit.invoice_id,
                            note=f"renovation {deposit.renovation_id}, deductions "
                                 f"{domain.money_text(from_fen(deposit.deductions_fen))}", at=now))


def credit_payments(session, unit_code):
    return list(session.scalars(select(Payment).where(
        Payment.unit == unit_code, Payment.unallocated_fen > 0).order_by(Payment.id)))


def _hold_deposit(session, invoice, now):
    if not invoice.deposit_fen:
        return
    deposit = session.scalars(select(Deposit).where(Deposit.invoice_id == invoice.id)).first()
    if deposit is None or not domain.hold_deposit(deposit, now):
        return
    session.add(LedgerEntry(unit=invoice.unit, site=invoice.site, kind="deposit_held",
                            amount_fen=deposit.amount_fen, invoice_id=invoice.id,
                            note=f"renovation {deposit.renovation_id}", at=now))


# -- arrears -----------------------------------------------------------------------------------

def _milestone_case(since, major, as_of):
    """The furthest ladder milestone each row has passed, 0 for none, as SQL; the boundaries
    are computed by the domain, so SQL and Python agree on every date."""
    def furthest(ladder):
        whens = []
        for milestone in reversed(ladder):
            boundary = domain.months_before(as_of, milestone.months)
            whens.append((since < boundary if milestone.strict else since <= boundary,
                          milestone.number))
        return case(*whens, else_=0)
    return case((major == true(), furthest(domain.MAJOR)), else_=furthest(domain.ORDINARY))


def arrears(as_of, site=None):
    """Per unit with overdue unpaid invoices: unit, site, since (the oldest unpaid due date),
    overdue_fen, major, milestone — aggregated in SQL."""
    overdue = (select(Invoice.unit.label("unit"), Invoice.site.label("site"),
                      func.min(Invoice.due_date).label("since"),
                      func.sum(Invoice.total_fen - Invoice.paid_fen).label("overdue_fen"))
               .where(Invoice.settled == false(), Invoice.due_date < as_of)
               .group_by(Invoice.unit, Invoice.site))
    if site:
        overdue = overdue.where(Invoice.site == site)
    overdue = overdue.subquery()
    major = func.coalesce(Unit.major_customer, false())
    milestone = _milestone_case(overdue.c.since, major, as_of)
    # of one site, only its units are joined (a unit's site is its code's): hashing every
    # site's units for each site made the sweep grow with the square of the sites
    of_unit = Unit.code == overdue.c.unit
    if site:
        of_unit = and_(of_unit, Unit.site == site)
    return (select(overdue.c.unit, overdue.c.site, overdue.c.since, overdue.c.overdue_fen,
                   major.label("major"), milestone.label("milestone"))
            .select_from(overdue).outerjoin(Unit, of_unit))


def site_timezones(session):
    """{site: its time zone (None: DEFAULT_TZ)} of every site billing keeps units of."""
    return dict(session.execute(select(Unit.site, func.max(Unit.timezone)).group_by(Unit.site)).all())


def due_for_a_step(as_of, site=None):
    """Units whose furthest milestone has no step recorded yet in their arrears episode (the one
    open, or the one the oldest unpaid due date starts), nor any further one: an episode whose
    oldest invoice was paid goes on from where it was, never back down the ladder. The sweep's
    work list, each row with its `episode` start."""
    listed = arrears(as_of, site).subquery()
    episode = func.coalesce(ArrearsEpisode.started_on, listed.c.since).label("episode")
    return (select(listed, episode)
            .outerjoin(ArrearsEpisode, and_(ArrearsEpisode.unit == listed.c.unit,
                                            ArrearsEpisode.ended_on.is_(None)))
            .where(listed.c.milestone > 0, ~exists().where(
                LadderStep.unit == listed.c.unit, LadderStep.since == episode,
                LadderStep.milestone >= listed.c.milestone)).order_by(listed.c.unit))


# -- arrears episodes --------------------------------------------------------------------------

def open_episode(session, unit_code):
    """The start of the unit's arrears episode not ended yet, or None."""
    return session.scalar(select(ArrearsEpisode.started_on).where(
        ArrearsEpisode.unit == unit_code, ArrearsEpisode.ended_on.is_(None)))


def _overdue_of(unit, as_of):
    return exists().where(Invoice.unit == unit, Invoice.settled == false(),
                          Invoice.due_date < as_of)


def end_episodes(session, as_of, unit_code=None, site=None):
    """Episodes whose unit has nothing overdue any more end on `as_of`; [units] they were of."""
    ended = (ArrearsEpisode.__table__.update()
             .where(ArrearsEpisode.ended_on.is_(None), ~_overdue_of(ArrearsEpisode.unit, as_of))
             .values(ended_on=as_of).returning(ArrearsEpisode.unit))
    if unit_code:
        ended = ended.where(ArrearsEpisode.unit == unit_code)
    if site:
        ended = ended.where(ArrearsEpisode.site == site)
    return list(session.scalars(ended))


# -- late fees posted --------------------------------------------------------------------------

def principal_overdue(session, as_of, *, units=None, site=None):
    """The overdue invoices a late fee accrues on (not on late fees), as the domain's
    OpenInvoice, with their unit: [(unit, site, OpenInvoice)]."""
    stmt = (select(Invoice.unit, Invoice.site, Invoice.id, Invoice.due_date, Invoice.accrued_to,
                   Invoice.total_fen - Invoice.paid_fen)
            .where(Invoice.settled == false(), Invoice.due_date < as_of, Invoice.kind != "late_fee")
            .order_by(Invoice.unit, Invoice.due_date, Invoice.id))
    if units is not None:
        stmt = stmt.where(Invoice.unit.in_(units))
    if site:
        stmt = stmt.where(Invoice.site == site)
    return [(unit, site_, domain.OpenInvoice(id_, due, from_fen(outstanding), accrued_to))
            for unit, site_, id_, due, accrued_to, outstanding in session.execute(stmt)]


def late_fee_invoice_id(month, unit_code):
    """One late-fee invoice per unit and month: its key is the month its fee accrued in."""
    return f"L{month}-{unit_code}"


def post_late_fees(session, site, first, rate, now):
    """On `first` (a month's first day at the site), the late fee accrued up to it and not yet
    posted, per unit, becomes an invoice of kind `late_fee` due that day; each invoice it
    accrued on is then posted up to `first`. A replica racing this one finds the invoice id
    taken and posts nothing. {unit: the id of the invoice this call created}."""
    month = domain.months_before(first, 1).strftime("%Y-%m")
    by_unit = {}
    for unit, _, invoice in principal_overdue(session, first, site=site):
        by_unit.setdefault(unit, []).append(invoice)
    created = {}
    for unit, invoices in by_unit.items():
        amount = domain.late_fee(invoices, first, rate)
        if amount <= 0:
            continue
        invoice_id = late_fee_invoice_id(month, unit)
        if not insert_once(session, _insert(session)(Invoice).values(
                id=invoice_id, unit=unit, site=site, period=None, due_date=first, kind="late_fee",
                total_fen=to_fen(amount), paid_fen=0, deposit_fen=0, settled=False,
                reference={"late_fee_for": month}, created_at=now)):
            continue
        created[unit] = invoice_id
        session.add(InvoiceLine(invoice_id=invoice_id, fee="late_fee", amount_fen=to_fen(amount),
                                description=f"{month} 违约金"))
        session.add(LedgerEntry(unit=unit, site=site, kind="late_fee", amount_fen=to_fen(amount),
                                invoice_id=invoice_id, note=f"{month} late fee", at=now))
        session.execute(Invoice.__table__.update().where(
            Invoice.id.in_([i.id for i in invoices])).values(accrued_to=first))
    session.flush()
    return created


def waive_late_fee(session, invoice, reason, by, now):
    """减免: what is still owed of a posted late fee is waived, recorded with the reason."""
    waived = invoice.total_fen - invoice.paid_fen
    invoice.settled, invoice.settled_at = True, now
    invoice.reference = {**(invoice.reference or {}), "waiver": {
        "by": by, "reason": reason, "at": now.isoformat(),
        "amount": domain.money_text(from_fen(waived))}}
    session.add(LedgerEntry(unit=invoice.unit, site=invoice.site, kind="waiver", amount_fen=waived,
                            invoice_id=invoice.id, note=reason[:200], at=now))
    session.flush()
    return waived


def posted_late_fees(session, unit_code):
    """What is still owed of the unit's posted late fees, in fen."""
    return int(session.scalar(select(func.coalesce(func.sum(Invoice.total_fen - Invoice.paid_fen), 0))
                              .where(Invoice.unit == unit_code, Invoice.kind == "late_fee",
                                     Invoice.settled == false())))


# -- lawsuits ----------------------------------------------------------------------------------

def refer_to_sue(session, referred):
    """The lawsuits of `referred` (new domain Lawsuits), once per unit and episode, in one
    insert: one that exists already (unique unit and since) is kept, the new one dropped."""
    if referred:
        session.execute(_insert(session)(lawsuits).on_conflict_do_nothing(),
                        [{column.name: getattr(case, column.name) for column in lawsuits.columns}
                         for case in referred])


def open_lawsuits(session, unit_code, lock=False):
    stmt = (select(Lawsuit).where(Lawsuit.unit == unit_code, Lawsuit.status != "closed")
            .order_by(Lawsuit.referred_on.desc()))
    if lock and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


def lawsuits_due(as_of):
    return select(Lawsuit.id).where(Lawsuit.next_due_at <= as_of).order_by(Lawsuit.next_due_at)


def stage_case(milestone, major):
    def stages(ladder):
        return case(*[(milestone == m.number, m.stage) for m in ladder], else_="none")
    return case((major == true(), stages(domain.MAJOR)), else_=stages(domain.ORDINARY))


def steps_taken(session, units):
    """{(unit, episode start): {(step, sequence)}} of `units`, in one query."""
    taken = {}
    for unit, since, step, sequence in session.execute(
            select(LadderStep.unit, LadderStep.since, LadderStep.step, LadderStep.sequence)
            .where(LadderStep.unit.in_(units))):
        taken.setdefault((unit, since), set()).add((step, sequence))
    return taken


def units_by_code(session, units):
    return {unit.code: unit for unit in session.scalars(select(Unit).where(Unit.code.in_(units)))}


def timezone_of(session, unit_code):
    return session.scalar(select(Unit.timezone).where(Unit.code == unit_code)) or DEFAULT_TZ


def late_fees_of(session, units, as_of, rate):
    """{unit: its late fee as a reminder states it — posted and still owed, plus accruing}."""
    accruing = {}
    for unit, _, invoice in principal_overdue(session, as_of, units=units):
        accruing.setdefault(unit, []).append(invoice)
    posted = dict(session.execute(
        select(Invoice.unit, func.sum(Invoice.total_fen - Invoice.paid_fen))
        .where(Invoice.unit.in_(units), Invoice.kind == "late_fee", Invoice.settled == false())
        .group_by(Invoice.unit)).all())
    return {unit: from_fen(posted.get(unit, 0)) + domain.late_fee(accruing.get(unit, []), as_of, rate)
            for unit in units}


def start_episodes(session, episodes):
    """The episodes [(unit, site, started_on)] not recorded yet, in one insert."""
    rows = [{"unit": unit, "site": site, "started_on": started_on}
            for unit, site, started_on in episodes]
    if _from_json(session, "arrears_episodes", "unit text, site text, started_on date", rows):
        return
    # an executemany of one cached statement (batched into multi-row INSERTs by SQLAlchemy),
    # not a statement of this batch's VALUES compiled afresh (a third of the sweep's time)
    session.execute(_insert(session)(ArrearsEpisode.__table__).on_conflict_do_nothing(), rows)


_STEP_COLUMNS = ("unit text, site text, since date, step text, sequence int, milestone int, "
                 "months int, amount_due_fen bigint, late_fee_fen bigint, taken_on date, "
                 "taken_at timestamptz")


def _from_json(session, table, columns, rows, returning=None):
    """On PostgreSQL, INSERT `rows` (dicts of `columns`, "name type, …") into `table` in ONE
    statement, from `json_to_recordset` of one JSON document (psycopg parses a multi-row VALUES
    statement anew for every page, which was most of a sweep's batch), skipping rows already
    there; the `returning` columns of those inserted. None elsewhere (the caller's portable
    path does it)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    names = ", ".join(column.split()[0] for column in columns.split(", "))
    sql = (f"INSERT INTO {table} ({names}) SELECT {names} FROM json_to_recordset(CAST(:rows AS json))"
           f" AS v({columns}) ON CONFLICT DO NOTHING")
    if returning:
        sql += f" RETURNING {returning}"
    result = session.execute(text(sql), {"rows": json.dumps(rows, default=_iso)})
    return result.all() if returning else True


def _iso(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):     # a fen sum: integral; a fraction keeps its digits as text
        return int(value) if value == value.to_integral_value() else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def insert_steps(session, values):
    """The steps `values` not recorded yet (by anyone), in one insert: {(unit, step, sequence)}
    of those this call recorded. ON CONFLICT DO NOTHING waits for a replica inserting the same
    step and then skips it."""
    inserted = _from_json(session, "ladder_steps", _STEP_COLUMNS, values, "unit, step, sequence")
    if inserted is not None:
        return {tuple(row) for row in inserted}
    table = LadderStep.__table__
    return {tuple(row) for row in session.execute(
        _insert(session)(table).on_conflict_do_nothing()
        .returning(table.c.unit, table.c.step, table.c.sequence), values)}


def taken_steps(session, unit_code, since):
    return session.execute(select(LadderStep).where(
        LadderStep.unit == unit_code, LadderStep.since == since).order_by(LadderStep.id)).scalars().all()


def collection(session, site, period):
    billed, collected, count, settled = session.execute(
        select(func.coalesce(func.sum(Invoice.total_fen), 0),
               func.coalesce(func.sum(Invoice.paid_fen), 0), func.count(),
               func.coalesce(func.sum(case((Invoice.settled == true(), 1), else_=0)), 0))
        .where(Invoice.site == site, Invoice.period == period)).one()
    return int(billed), int(collected), int(count), int(settled)


def ledger_balance(session, unit_code):
    sign = case((LedgerEntry.kind.in_(("charge", "late_fee", "refund")), 1),
                (LedgerEntry.kind.in_(("payment", "waiver")), -1), else_=0)
    return int(session.scalar(select(func.coalesce(func.sum(sign * LedgerEntry.amount_fen), 0))
                              .where(LedgerEntry.unit == unit_code)))


def deposits_of(session, unit_code):
    return list(session.scalars(select(Deposit).where(Deposit.unit == unit_code)
                                .order_by(Deposit.id)))




def arrears_units(conn, day):
    """propdesk_arrears_units: units in arrears at `day` by site and ladder stage (SPEC §9)."""
    listed = arrears(day, None).subquery()
    stage = stage_case(listed.c.milestone, listed.c.major).label("stage")
    rows = conn.execute(select(listed.c.site, stage, func.count()).group_by(listed.c.site, stage))
    return [({"site": site, "stage": stage}, count) for site, stage, count in rows]

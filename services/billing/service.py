"""billing: fee schedules, invoices, payments, deposits and the arrears ladder (SPEC §4)."""
import logging
from datetime import datetime
from decimal import Decimal

from nameko.timer import timer
from sqlalchemy import select

from services.billing import domain, storage
from services.billing.domain import from_fen, money_text, to_fen
from services.billing.schemas import (
    LAWSUIT_ACTIONS, ArrearsFilters, BillingRunIn, CollectionQuery, FeeScheduleIn, InvoiceIn,
    LawsuitFilters, LawsuitOut, PaymentIn, WaiverIn,
)
from services.billing.storage import (
    Base, FeeScheduleRow, Invoice, ParkingRental, Unit,
)
from services.common import entrypoints
from services.common.business import BusinessGauges
from services.common.calendar import DEFAULT_TZ, zone
from services.common.clock import utcnow
from services.common.db import (
    Database, decode_cursor, encode_cursor, locking, page_size, paginate, sql_events, within_sites,
)
from services.common.entrypoints import command, handles, load
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common.metrics import ARREARS_UNITS
from services.common.roles import DESK, MANAGERS, RECORD_READERS, SITE_STAFF, SWEEPERS
from services.common.rpc import TimedRpc
from services.common.sweeps import SweepIn
from services.common.units import site_of_unit

log = logging.getLogger(__name__)

# Units stepped per transaction by the sweep: fewer commits (each batch is a few set-based
# statements, whatever its size), short enough locks.
STEP_BATCH = 500


def today(now, tz=DEFAULT_TZ):
    return now.astimezone(zone(tz)).date()


def owner_contact(unit):
    """The owner of a projected unit (or of a row carrying its `owner_*` columns) as the events'
    Contact; None when billing knows no owner."""
    if unit is None:
        return None
    contact = {"name": unit.owner_name, "phone": unit.owner_phone, "email": unit.owner_email,
               "person_id": unit.owner_person_id}
    return contact if any(contact.values()) else None


def invoice_issued(invoice, lines, late_fee_daily_rate):
    """billing.invoice_issued of an invoice row of `storage.issued` and its lines."""
    return {"invoice_id": invoice.id, "unit": invoice.unit, "period": invoice.period,
            "kind": invoice.kind, "amount": from_fen(invoice.total_fen), "due_date": invoice.due_date,
            "items": [{"fee": line.fee, "amount": from_fen(line.amount_fen),
                       "description": line.description} for line in lines],
            "owner": owner_contact(invoice), "timezone": invoice.timezone or DEFAULT_TZ,
            "late_fee_daily_rate": late_fee_daily_rate}


class BillingService(entrypoints.ServiceBase):
    name = "billing"

    uow = Database(Base)
    business = BusinessGauges({ARREARS_UNITS: lambda conn: storage.arrears_units(conn, today(utcnow()))})
    rpc = TimedRpc()

    # -- fee schedules and invoices ---------------------------------------------------------

    @command
    def set_fee_schedule(self, payload):
        identity = self.caller.identity
        identity.require_role("set fee schedules", *MANAGERS)
        data = load(FeeScheduleIn(), payload)
        identity.require_site(data["site"])
        body = FeeScheduleIn().dump(data)
        self.uow.session.add(FeeScheduleRow(id=storage.new_id(), site=data["site"], body=body,
                                            created_by=identity.sub, created_at=self.clock()))
        self.uow.commit()
        return body

    @command
    def run_billing(self, payload):
        """The monthly run of a site and period: one invoice per unit, once."""
        identity = self.caller.identity
        identity.require_role("run billing", *MANAGERS)
        data = load(BillingRunIn(), payload)
        identity.require_site(data["site"])
        session, now = self.uow.session, self.clock()
        schedule = storage.schedule_of(session, data["site"])
        if schedule is None:
            raise ValidationFailed.from_messages({"site": ["no fee schedule for this site"]})
        created = storage.run_monthly(session, schedule, data["period"], now)
        storage.add_parking_lines(session, schedule, data["period"], now)
        self._announce(storage.made_by_run(data["site"], data["period"], now), site=data["site"])
        for unit in storage.units_with_credit(session, data["site"]):
            self._allocate(unit, now)
        self.uow.commit()
        billed, _, count, _ = storage.collection(session, data["site"], data["period"])
        return {"site": data["site"], "period": data["period"], "created": created,
                "invoices": count, "billed": money_text(from_fen(billed))}

    @command
    def create_invoice(self, payload):
        identity = self.caller.identity
        identity.require_role("issue invoices", *DESK)
        data = load(InvoiceIn(), payload)
        unit = self._unit(data["unit"])
        invoice = storage.add_invoice(self.uow.session, unit, data["period"], data["due_date"],
                                    data["items"], "manual", {}, self.clock())
        if invoice is None:
            raise Conflict(f"unit {unit.code} already has an invoice for {data['period']}",
                           {"unit": unit.code, "period": data["period"]})
        self._issue(invoice, self.clock())
        return self._invoice_out(invoice)

    @command
    def record_payment(self, payload):
        identity = self.caller.identity
        identity.require_role("take payments", *DESK)
        data = load(PaymentIn(), payload)
        unit = self._unit(data["unit"])
        now = self.clock()
        payment = storage.add_payment(self.uow.session, unit, data["amount"], data["method"],
                                    data["reference"], identity.sub, now)
        settled = self._allocate(unit.code, now)
        self.uow.commit()
        return {"receipt_number": payment.receipt_number, "unit": unit.code,
                "amount": money_text(data["amount"]), "method": payment.method,
                "reference": payment.reference, "received_at": now.isoformat(),
                "settled_invoices": [i.id for i in settled],
                "credit": money_text(from_fen(payment.unallocated_fen))}

    # -- reading -----------------------------------------------------------------------------

    @command
    def get_account(self, code, as_of=None):
        identity = self.caller.identity
        unit = identity.require_visible(
            self.uow.session.get(Unit, code), f"account for unit {code}", {"unit": code},
            conceal=True)
        day = datetime.fromisoformat(as_of).date() if as_of else today(self.clock())
        return self._account(unit, day)

    @command
    def list_arrears(self, filters=None, cursor=None, limit=50):
        identity = self.caller.identity
        identity.require_role("read arrears", *RECORD_READERS)
        f = load(ArrearsFilters(), filters or {})
        day = f["as_of"] or today(self.clock())
        listed = storage.arrears(day, f["site"]).subquery()
        stage = storage.stage_case(listed.c.milestone, listed.c.major).label("stage")
        stmt = within_sites(select(listed, stage), listed.c.site, identity, f["site"])
        if f["stage"]:
            stmt = stmt.where(stage == f["stage"])
        if cursor:
            stmt = stmt.where(listed.c.unit > decode_cursor(cursor))
        size = page_size(limit)
        rows = self.uow.session.execute(stmt.order_by(listed.c.unit).limit(size + 1)).all()
        more, rows = len(rows) > size, rows[:size]
        items = [self._arrears_out(row, day) for row in rows]
        return {"items": items, "next_cursor": encode_cursor(rows[-1].unit) if more else None}

    @command
    def collection_rate(self, payload):
        identity = self.caller.identity
        identity.require_role("read collection rates", *RECORD_READERS)
        data = load(CollectionQuery(), payload)
        identity.require_site(data["site"])
        billed, collected, count, settled = storage.collection(self.uow.session, data["site"], data["period"])
        rate = (Decimal(collected) / Decimal(billed) * 100) if billed else Decimal("0")
        return {"site": data["site"], "period": data["period"], "invoices": count,
                "settled": settled, "billed": money_text(from_fen(billed)),
                "collected": money_text(from_fen(collected)), "rate_percent": money_text(rate),
                "target_percent": "98.00", "on_target": bool(billed) and rate >= 98}

    @command
    def renovation_fees(self, site):
        """The renovation fees of the site's fee schedule in force, asked by renovation when a
        manager approves an application; 422 for a site without a schedule."""
        identity = self.caller.identity
        identity.require_role("read fee schedules", *SITE_STAFF)
        identity.require_site(site)
        schedule = storage.schedule_of(self.uow.session, site)
        if schedule is None:
            raise ValidationFailed.from_messages({"site": [f"no fee schedule for site {site}"]})
        return {"site": site, "management_per_m2": money_text(schedule.renovation_management),
                "deposit": money_text(schedule.renovation_deposit),
                "debris_removal": money_text(schedule.debris_removal)}

    # -- late fees and lawsuits --------------------------------------------------------------

    @command
    def waive_late_fee(self, invoice_id, payload):
        """减免: a manager waives what is still owed of a posted late fee, with the reason."""
        identity = self.caller.identity
        identity.require_role("waive late fees", *MANAGERS)
        data = load(WaiverIn(), payload)
        session, now = self.uow.session, self.clock()
        invoice = session.get(Invoice, invoice_id, with_for_update=session.bind.dialect.name == "postgresql")
        invoice = identity.require_visible(
            invoice if invoice is not None and invoice.kind == "late_fee" else None,
            f"late fee {invoice_id}", {"invoice_id": invoice_id})
        if invoice.settled:
            raise Conflict(f"late fee {invoice_id} is settled already",
                           {"invoice_id": invoice_id, "reference": invoice.reference or {}})
        storage.waive_late_fee(session, invoice, data["reason"], identity.sub, now)
        self._cleared(invoice.unit, now)
        self.uow.commit()
        return self._invoice_out(invoice)

    @command
    def list_lawsuits(self, filters=None, cursor=None, limit=50):
        identity = self.caller.identity
        identity.require_role("read lawsuits", *RECORD_READERS)
        f = load(LawsuitFilters(), filters or {})
        stmt = within_sites(select(domain.Lawsuit), domain.Lawsuit.site, identity, f["site"])
        for name in ("status", "unit"):
            if f[name]:
                stmt = stmt.where(getattr(domain.Lawsuit, name) == f[name])
        rows, next_cursor = paginate(self.uow.session, stmt, domain.Lawsuit.id, cursor, limit)
        return {"items": [self._lawsuit_out(r) for r in rows], "next_cursor": next_cursor}

    @command
    def act_on_lawsuit(self, unit_code, action, payload=None):
        """The legal adviser records the unit's open lawsuit: filed, judged, preserved, closed."""
        identity = self.caller.identity
        lawsuit = identity.require_visible(
            next(iter(storage.open_lawsuits(self.uow.session, unit_code, lock=True)), None),
            f"open lawsuit of unit {unit_code}", {"unit": unit_code})
        schema = LAWSUIT_ACTIONS.get(action)
        if schema is None:
            raise NotFound(f"no action {action}",
                           {"allowed_actions": lawsuit.allowed_actions(identity.role)})
        data = load(schema(), payload or {})
        lawsuit.apply(action, data, now=self.clock(), by=identity.sub, role=identity.role)
        self._save_lawsuit(lawsuit)
        self.uow.commit()
        return self._lawsuit_out(lawsuit)

    # -- the arrears sweep -------------------------------------------------------------------

    @command(replays=False)
    def sweep(self, payload):
        self.caller.identity.require_role("run the billing sweep", *SWEEPERS)
        return self._sweep(load(SweepIn(), payload)["as_of"])

    @timer(interval=3600)
    def daily_sweep(self):
        """Hourly, for the day it is at each site: every step is taken once whatever the cadence."""
        self._sweep(self.clock())

    def _sweep(self, as_of):
        """At each site, on the day it is there at `as_of`: on a month's first day the late fees
        of the month before are posted; episodes with nothing overdue end; then the units whose
        oldest unpaid due date has passed a milestone with no step recorded in their episode are
        found by one aggregate query and stepped in unit order, STEP_BATCH units a transaction,
        each batch a few set-based statements. A step is a row under a unique key, inserted
        before its event, so a replica sweeping at the same moment waits for the other's batch,
        finds the rows taken and raises nothing; both go in the same order, so neither waits on
        the other in a circle. Last, the lawsuits' deadlines."""
        session = self.uow.session
        # the ladder counts days: at `as_of` each site is on its own calendar day
        days = {site: today(as_of, tz) for site, tz in storage.site_timezones(session).items()}
        report = {"as_of": as_of.isoformat(), "units": 0, "steps": 0, "late_fees_posted": 0,
                  "breaches": 0}
        for site, day in sorted(days.items()):
            rate = storage.late_fee_rate(session, site)
            if day.day == 1:
                report["late_fees_posted"] += self._post_late_fees(site, day, rate)
            storage.end_episodes(session, day, site=site)
            candidates = session.execute(storage.due_for_a_step(day, site)).all()
            self.uow.commit()
            report["units"] += len(candidates)
            for start in range(0, len(candidates), STEP_BATCH):
                report["steps"] += self._step(candidates[start:start + STEP_BATCH], day, rate)
                self.uow.commit()
        report["breaches"] = self._lawsuit_breaches(as_of)
        return report

    def _post_late_fees(self, site, first, rate):
        """The late fees posted on `first`, each told to its owner and paid from any credit."""
        session = self.uow.session
        created = storage.post_late_fees(session, site, first, rate, self.clock())
        if created:
            self._announce(Invoice.id.in_(list(created.values())), site=site)
            for unit in sorted(set(created) & set(storage.units_with_credit(session, site))):
                self._allocate(unit, self.clock())
        self.uow.commit()
        return len(created)

    def _step(self, rows, as_of, rate):
        """The steps due to `rows` (units of one site), taken in one insert; their events in
        one outbox write."""
        session, now = self.uow.session, self.clock()
        units = [row.unit for row in rows]
        taken = storage.steps_taken(session, units)
        projected = storage.units_by_code(session, units)
        owners = {code: owner_contact(unit) for code, unit in projected.items()}
        late_fees = storage.late_fees_of(session, units, as_of, rate)
        planned = []
        for row in rows:
            due = domain.steps_due(row.since, as_of, bool(row.major),
                                   frozenset(taken.get((row.unit, row.episode), ())))
            milestone = domain.current_milestone(row.since, as_of, bool(row.major))
            planned += [(row, step, sequence, milestone) for step, sequence in due]
        if not planned:
            return 0
        storage.start_episodes(session, [(row.unit, row.site, row.episode) for row in rows])
        inserted = storage.insert_steps(session, [dict(
            unit=row.unit, site=row.site, since=row.episode, step=step, sequence=sequence,
            milestone=milestone.number, months=domain.months_overdue(row.since, as_of),
            amount_due_fen=row.overdue_fen, late_fee_fen=to_fen(late_fees.get(row.unit, 0)),
            taken_on=as_of, taken_at=now) for row, step, sequence, milestone in planned])
        events, referrals = [], []
        for row, step, sequence, milestone in planned:
            if (row.unit, step, sequence) not in inserted:
                continue
            if step == "lawsuit_referral":
                referrals.append(self._referral(row, as_of, projected.get(row.unit)))
            events.append(({
                "unit": row.unit, "step": step, "stage": milestone.stage,
                "months": domain.months_overdue(row.since, as_of),
                "amount_due": from_fen(row.overdue_fen), "late_fee": late_fees.get(row.unit, 0),
                "major_customer": bool(row.major), "taken_on": as_of, "owner": owners.get(row.unit),
                "late_fee_daily_rate": rate,
            }, row.site))
        storage.refer_to_sue(session, referrals)
        self.uow.add_events("billing.arrears_escalated", events)
        return len(events)

    def _referral(self, row, as_of, unit):
        """The lawsuit a referral to sue opens, in the time zone of the unit's site."""
        return domain.Lawsuit(
            id=storage.new_id(), unit=row.unit, site=row.site,
            timezone=(unit.timezone if unit is not None else None) or DEFAULT_TZ,
            since=row.episode, referred_on=as_of,
            amount_referred=money_text(from_fen(row.overdue_fen)),
            history=[{"at": self.clock().isoformat(), "by": "billing", "role": "system",
                      "action": "refer", "note": "arrears ladder: referral to sue",
                      "data": {"months": domain.months_overdue(row.since, as_of)}}])

    def _lawsuit_breaches(self, as_of):
        """Each won lawsuit without preservation past its deadline is alerted once: its row is
        locked (skipped by the other replicas on PostgreSQL) and re-read before the breach."""
        session, breaches = self.uow.session, 0
        due = session.scalars(storage.lawsuits_due(as_of)).all()
        for lawsuit_id in due:
            lawsuit = session.scalars(locking(
                select(domain.Lawsuit).where(domain.Lawsuit.id == lawsuit_id,
                                             domain.Lawsuit.next_due_at <= as_of)
                .execution_options(populate_existing=True), session.get_bind())).first()
            if lawsuit is not None:
                for deadline, due_at in lawsuit.due_breaches(as_of):
                    lawsuit.record_breach(deadline, due_at, now=self.clock())
                    breaches += 1
                self._save_lawsuit(lawsuit)
            self.uow.commit()
        return breaches

    def _save_lawsuit(self, lawsuit):
        for event, data in lawsuit.pull_events():
            self.uow.add_event(event, data, site=lawsuit.site)
        self.uow.session.add(lawsuit)

    # -- events ------------------------------------------------------------------------------

    @handles("registry", "unit_changed")
    def on_unit_changed(self, data, envelope):
        self._project_unit(data["unit"], data.get("usage"), data.get("area_m2"),
                           data.get("owner"), data.get("major_customer"), data.get("timezone"),
                           active=data["change"] != "deactivated")
        self.uow.commit()

    @handles("renovation", "fees_due")
    def on_fees_due(self, data, envelope):
        now = self.clock()
        unit = self._billed_unit(envelope)
        if unit is None:
            return
        invoice = storage.add_invoice(self.uow.session, unit, None, data["due_date"], data["items"],
                                    "renovation", {"renovation_id": data["renovation_id"]}, now)
        if invoice.deposit_fen:
            storage.add_deposit(self.uow.session, invoice, data["renovation_id"])
        self._issue(invoice, now)

    @handles("ticketing", "service_charge")
    def on_service_charge(self, data, envelope):
        now = self.clock()
        unit = self._billed_unit(envelope)
        if unit is None:
            return
        items = [{"fee": "repair", "amount": data["amount"],
                  "description": (f"{data['code']} {data['description']}").strip()[:200]}]
        invoice = storage.add_invoice(self.uow.session, unit, None, today(data["completed_at"]), items,
                                    "repair", {"ticket_id": data["ticket_id"]}, now)
        self._issue(invoice, now)

    @handles("frontdesk", "parking_rented")
    def on_parking_rented(self, data, envelope):
        """An active rental, billed from the period of its start."""
        fee = data.get("monthly_fee")
        self.uow.session.merge(ParkingRental(
            rental_id=data["rental_id"], unit=data["unit"], site=site_of_unit(data["unit"]),
            space_number=data["space_number"], plate=data["plate"],
            monthly_fee_fen=None if fee is None else to_fen(fee), start=data["start"],
            last_day=data.get("end")))
        self.uow.commit()

    @handles("frontdesk", "parking_ended")
    def on_parking_ended(self, data, envelope):
        """Billed up to the period it ended in, not after."""
        rental = self.uow.session.get(ParkingRental, data["rental_id"])
        if rental is not None:
            rental.last_day = data["ended_on"]
        self.uow.commit()

    @handles("renovation", "deposit_refund_due")
    def on_deposit_refund_due(self, data, envelope):
        now, session = self.clock(), self.uow.session
        deposit = storage.deposit_of(session, data["renovation_id"])
        if deposit is None or not domain.refund_deposit(deposit, data["deductions"], now):
            log.error("deposit refund due but no deposit held", extra={
                "renovation_id": data["renovation_id"],
                "status": None if deposit is None else deposit.status})
        else:
            storage.record_deposit_refund(session, deposit, now)
            self.uow.add_event("billing.deposit_refunded", {
                "renovation_id": deposit.renovation_id, "unit": deposit.unit,
                "amount": from_fen(deposit.refunded_fen), "deductions": from_fen(deposit.deductions_fen),
                "refunded_at": now}, site=site_of_unit(deposit.unit))
        self.uow.commit()

    # -- helpers -----------------------------------------------------------------------------

    def _allocate(self, unit_code, now):
        """Any credit the unit holds goes to its open invoices, oldest first; each invoice this
        settles raises billing.invoice_paid."""
        session = self.uow.session
        payments = storage.credit_payments(session, unit_code)
        if not payments:
            return []
        invoices = storage.open_invoices(session, unit_code, lock=True)
        settled = storage.allocate(session, invoices, payments, now)
        unit = session.get(Unit, unit_code)
        owner = owner_contact(unit)
        for invoice, payment in settled:
            self.uow.add_event("billing.invoice_paid", {
                "invoice_id": invoice.id, "unit": invoice.unit, "period": invoice.period,
                "amount": from_fen(invoice.total_fen), "paid_at": now,
                "reference": invoice.reference or {}, "receipt_number": payment.receipt_number,
                "owner": owner, "timezone": unit.timezone if unit else None}, site=invoice.site)
        if settled:
            self._cleared(unit_code, now)
        return [invoice for invoice, _ in settled]

    def _cleared(self, unit_code, now):
        """Nothing overdue any more (paid, or the rest waived): the arrears episode ends and the
        unit's lawsuit is closed, paid in full."""
        session = self.uow.session
        day = today(now, storage.timezone_of(session, unit_code))
        if not storage.end_episodes(session, day, unit_code=unit_code):
            return
        for lawsuit in storage.open_lawsuits(session, unit_code, lock=True):
            lawsuit.paid_in_full(now)
            self._save_lawsuit(lawsuit)

    def _issue(self, invoice, now):
        """A new invoice told to its owner, paid from any credit the unit holds, committed."""
        self._announce(Invoice.id == invoice.id)
        self._allocate(invoice.unit, now)
        self.uow.commit()

    def _announce(self, which, site=None):
        """billing.invoice_issued for each invoice matching `which` (a whole monthly run, or one
        invoice), written to the outbox together: the bill its owner is sent (000). Those of
        one `site` (a run, the late fees) on PostgreSQL by one INSERT … SELECT, the payloads
        built by the database (`storage.issued_payloads`)."""
        session = self.uow.session
        if site is not None and sql_events(session):
            storage.sort_in_memory(session)
            self.uow.add_events_selected("billing.invoice_issued", storage.issued_payloads(
                which, storage.late_fee_rate(session, site)))
            return
        issued = storage.issued(session, which)
        rates = storage.late_fee_rates(session, (invoice.site for invoice, _ in issued))
        self.uow.add_events("billing.invoice_issued", [
            (invoice_issued(invoice, lines, rates[invoice.site]), invoice.site)
            for invoice, lines in issued])

    def _billed_unit(self, envelope):
        """The unit an event bills, or None (logged, and the event marked handled) for a unit
        registry does not know: no redelivery would make it known."""
        try:
            return self._unit(envelope["data"]["unit"])
        except ValidationFailed as exc:
            log.error("%s names an unknown unit; nothing billed", envelope["event"],
                      extra={"event_id": envelope["id"], **exc.extra})
            self.uow.commit()
            return None

    def _unit(self, code):
        """The unit from the local projection, or from registry the first time it is billed."""
        unit = self.uow.session.get(Unit, code)
        if unit is not None:
            self.caller.identity.require_site(unit.site)
            return unit
        self.caller.identity.require_site(site_of_unit(code))
        try:
            remote = self.rpc.registry.get_unit(code)
            contact = self.rpc.registry.unit_contact(code)
        except NotFound as exc:
            raise ValidationFailed.from_messages({"unit": [f"no unit {code}"]}) from exc
        owner = contact.get("owner")
        major = any(p.get("major_customer") for p in remote.get("people", [])
                    if p.get("relation") == "owner")
        return self._project_unit(code, remote["usage"], remote["area_m2"], owner, major,
                                  contact.get("timezone"), active=remote.get("active", True))

    def _project_unit(self, code, usage, area_m2, owner, major, timezone=None, active=True):
        session = self.uow.session
        unit = session.get(Unit, code) or Unit(code=code, site=site_of_unit(code), usage=usage or "residential",
                                                area_centi_m2=0)
        if usage:
            unit.usage = usage
        if area_m2 is not None:
            unit.area_centi_m2 = int(Decimal(str(area_m2)) * 100)
        if owner:
            unit.owner_name, unit.owner_phone = owner.get("name"), owner.get("phone")
            unit.owner_person_id, unit.owner_email = owner.get("person_id"), owner.get("email")
        if major is not None:
            unit.major_customer = bool(major)
        if timezone:
            unit.timezone = timezone
        unit.active, unit.updated_at = active, self.clock()
        session.add(unit)
        session.flush()
        return unit

    def _account(self, unit, day):
        session = self.uow.session
        invoices = storage.open_invoices(session, unit.code)
        overdue = [i for i in invoices if i.due_date < day]
        rate = storage.late_fee_rate(session, unit.site)
        since = min((i.due_date for i in overdue), default=None)
        episode = (storage.open_episode(session, unit.code) or since) if since else None
        steps = storage.taken_steps(session, unit.code, episode) if since else []
        posted = from_fen(storage.posted_late_fees(session, unit.code))
        accruing = domain.late_fee([invoice for _, _, invoice in storage.principal_overdue(
            session, day, units=[unit.code])], day, rate)
        credit = sum(p.unallocated_fen for p in storage.credit_payments(session, unit.code))
        return {
            "unit": unit.code, "site": unit.site, "as_of": day.isoformat(),
            "balance": money_text(from_fen(storage.ledger_balance(session, unit.code))),
            "credit": money_text(from_fen(credit)),
            "open_invoices": [self._invoice_out(i) for i in invoices],
            "deposits": [{"renovation_id": d.renovation_id, "status": d.status,
                          "amount": money_text(from_fen(d.amount_fen)),
                          "deductions": money_text(from_fen(d.deductions_fen)),
                          "refunded": money_text(from_fen(d.refunded_fen))}
                         for d in storage.deposits_of(session, unit.code)],
            "deposits_held": money_text(from_fen(sum(
                d.amount_fen for d in storage.deposits_of(session, unit.code) if d.status == "held"))),
            "arrears": {
                "months": domain.months_overdue(since, day),
                "stage": domain.stage_of(since, day, unit.major_customer),
                "since": since.isoformat() if since else None,
                "episode_since": episode.isoformat() if episode else None,
                "amount_overdue": money_text(from_fen(sum(i.total_fen - i.paid_fen for i in overdue))),
                # 违约金: posted as late_fee invoices and still owed, plus what accrues since
                "late_fee": money_text(posted + accruing),
                "late_fee_posted": money_text(posted), "late_fee_accruing": money_text(accruing),
                "lawyer_letters": sum(1 for s in steps if s.step == "lawyer_letter"),
                "steps": [{"step": s.step, "sequence": s.sequence, "taken_on": s.taken_on.isoformat()}
                          for s in steps],
            },
        }

    def _arrears_out(self, row, day):
        session = self.uow.session
        steps = storage.taken_steps(session, row.unit, storage.open_episode(session, row.unit) or row.since)
        return {"unit": row.unit, "site": row.site, "since": row.since.isoformat(),
                "months": domain.months_overdue(row.since, day), "stage": row.stage,
                "major_customer": bool(row.major),
                "amount_overdue": money_text(from_fen(row.overdue_fen)),
                "lawyer_letters": sum(1 for s in steps if s.step == "lawyer_letter"),
                "last_step": steps[-1].step if steps else None}

    def _lawsuit_out(self, lawsuit):
        out = LawsuitOut(exclude=("allowed_actions",)).dump(lawsuit)
        out["allowed_actions"] = lawsuit.allowed_actions(self.caller.identity.role)
        return out

    @staticmethod
    def _invoice_out(invoice):
        return {"id": invoice.id, "unit": invoice.unit, "period": invoice.period,
                "kind": invoice.kind, "due_date": invoice.due_date.isoformat(),
                "total": money_text(from_fen(invoice.total_fen)),
                "paid": money_text(from_fen(invoice.paid_fen)),
                # a waived late fee is settled with nothing owed, though not paid
                "outstanding": money_text(from_fen(
                    0 if invoice.settled else invoice.total_fen - invoice.paid_fen)),
                "settled": invoice.settled, "reference": invoice.reference or {}}


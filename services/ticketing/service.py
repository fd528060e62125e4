"""ticketing: repairs, complaints, inquiries and suggestions (SPEC §2), per-site SLA policies,
the deadline sweep and the front-desk views."""
import csv
import io
from dataclasses import asdict
from datetime import datetime, timedelta

import eventlet
from nameko.dependency_providers import Config
from nameko.timer import timer
from sqlalchemy import select

from services.common import calendar, entrypoints
from services.common.clock import as_utc
from services.common.db import (
    Database, decode_cursor, encode_cursor, new_id, page_size, paginate, within_sites,
)
from services.common.entrypoints import command, load
from services.common.errors import NotFound, ValidationFailed
from services.common.roles import MANAGERS, SITE_STAFF, SWEEPERS
from services.common.rpc import TimedRpc
from services.common.sweeps import SweepIn
from services.ticketing import domain, storage
from services.ticketing.schemas import (
    ACTION_SCHEMAS, KpiQuery, SlaPolicyIn, TicketFilters, TicketIn, TicketOut,
)
from services.ticketing.storage import Base, Ticket, next_serial

SWEEP_SECONDS = 60
SWEEP_BATCH = 500
SWEEP_LEASE = timedelta(minutes=5)
KPI_FIELDS = ("site", "month", "households", "timeliness_rate", "repair_timeliness_rate",
              "complaint_timeliness_rate", "callback_rate", "satisfaction_rate",
              "average_satisfaction", "complaint_rate", "valid_complaint_rate", "rework_rate",
              "inquiry_reply_rate")


class TicketingService(entrypoints.ServiceBase):
    name = "ticketing"

    uow = Database(Base)
    rpc = TimedRpc()
    config = Config()

    @command
    def create_ticket(self, payload):
        identity = self.caller.identity
        identity.require_role("open tickets", *domain.CREATORS)
        data = load(TicketIn(), payload)
        identity.require_site(data["site"])
        now = self.clock()
        site, kind = data["site"], data["kind"]
        place = self._place(site, data["unit"])
        session = self.uow.session
        common = dict(
            id=new_id(), site=site, timezone=place["timezone"], channel=data["channel"],
            description=data["description"], received_at=data["received_at"] or now, now=now,
            first_contact_owner=identity.sub if not identity.is_resident else f"front-desk@{site}",
            by_role=identity.role, policy=self._policy(site), unit=data["unit"],
            reporter=self._reporter(data, place, identity))
        try:
            if kind == "repair":
                ticket = Ticket.open_repair(
                    code=domain.repair_code(site, next_serial(session, site, "R")), **common,
                    priority=data["priority"], scope=data["scope"], important=data["important"],
                    appointment=_window(data["appointment"]), fee=data["fee"])
            elif kind == "complaint":
                # one series per site (not per severity/category), so no number ever repeats
                ticket = Ticket.open_complaint(
                    serial=next_serial(session, site, "C"), **common,
                    severity=data["severity"], category=data["category"],
                    complainants=data["complainants"], requested_deadline=data["requested_deadline"])
            elif kind == "inquiry":
                ticket = Ticket.open_inquiry(
                    code=domain.inquiry_code(site, next_serial(session, site, "Q")), **common,
                    reply_by=data["reply_by"])
            else:
                ticket = Ticket.open_suggestion(
                    code=domain.suggestion_code(site, next_serial(session, site, "S")), **common)
        except ValueError as exc:
            raise ValidationFailed.from_messages({"received_at": [str(exc)]}) from exc
        session.add(ticket)
        self._publish(ticket)
        self.uow.commit()
        return self._out(ticket)

    @command
    def get_ticket(self, ticket_id):
        return self._out(self._visible(ticket_id))

    @command
    def list_tickets(self, filters=None, cursor=None, limit=50):
        identity = self.caller.identity
        f = load(TicketFilters(), filters or {})
        stmt = within_sites(select(Ticket), Ticket.site, identity, f["site"])
        if identity.is_resident:
            stmt = stmt.where(Ticket.reporter["person_id"].as_string() == identity.person_id)
        if f["kind"]:
            stmt = stmt.where(Ticket.kind == f["kind"])
        if f["status"]:
            stmt = stmt.where(Ticket.status == f["status"])
        if f["overdue"] is not None:
            now = self.clock()
            stmt = stmt.where(Ticket.next_due_at < now) if f["overdue"] else \
                stmt.where((Ticket.next_due_at.is_(None)) | (Ticket.next_due_at >= now))
        if f["callback_due_before"]:
            stmt = stmt.where(Ticket.callback_due_at < f["callback_due_before"])
        rows, next_cursor = paginate(self.uow.session, stmt, Ticket.id, cursor, limit)
        return {"items": [self._out(t) for t in rows], "next_cursor": next_cursor}

    @command
    def act(self, ticket_id, action, payload=None):
        identity = self.caller.identity
        schema = ACTION_SCHEMAS.get(action)
        ticket = self._visible(ticket_id, lock=True)
        if schema is None:
            raise NotFound(f"no action {action}", {"allowed_actions": ticket.allowed_actions(identity.role)})
        data = load(schema(), payload or {})
        ticket.apply(action, data, now=self.clock(), by=identity.sub, role=identity.role)
        self._publish(ticket)
        self.uow.commit()
        return self._out(ticket)

    # -- SLA policies --------------------------------------------------------------------

    @command
    def get_sla_policy(self, site):
        self.caller.identity.require_site(site)
        limits = storage.site_policy(self.uow.session, site)
        return {"site": site, "limits": limits, "policy": asdict(domain.SlaPolicy.from_dict(limits))}

    @command
    def set_sla_policy(self, site, payload):
        """A site tightens limits (never loosens them); tickets opened later carry the new
        policy, those already open keep theirs."""
        identity = self.caller.identity
        identity.require_role("set a site's SLA policy", *MANAGERS)
        identity.require_site(site)
        changes = {k: v for k, v in load(SlaPolicyIn(), payload).items() if v is not None}
        session = self.uow.session
        limits = {**storage.site_policy(session, site), **changes}
        _, loosened = domain.SlaPolicy().tightened(limits)
        if loosened:
            raise ValidationFailed.from_messages(loosened)
        storage.save_site_policy(session, site, limits, self.clock(), identity.sub)
        self.uow.commit()
        return self.get_sla_policy(site)

    # -- the sweep -----------------------------------------------------------------------

    @timer(interval=SWEEP_SECONDS)
    def sweep_on_schedule(self):
        self._sweep(self.clock())

    @command(replays=False)
    def sweep(self, payload):
        """Report every deadline past due at `as_of` once, and upgrade valid B/C complaints
        open 30 days; the same as the timer does, for an operator replaying a day."""
        self.caller.identity.require_role("run the ticketing sweep", *SWEEPERS)
        return self._sweep(load(SweepIn(), payload)["as_of"])

    def _sweep(self, as_of):
        as_of = as_utc(as_of)
        found = {"as_of": as_of.isoformat(), "tickets": 0, "breaches": 0, "upgrades": 0}
        engine = self.uow.session.get_bind()
        batch = int(self.config.get("TICKETING_SWEEP_BATCH", SWEEP_BATCH))
        while True:
            claim, claimed = storage.claim_due(engine, as_of, self.clock(), SWEEP_LEASE, batch)
            if not claimed:
                return found
            self._sweep_claimed(claim, as_of, found)
            eventlet.sleep(0)   # the database drivers block: let this replica's other workers run

    def _sweep_claimed(self, claim, as_of, found):
        session = self.uow.session
        try:
            claimed = storage.claimed_tickets(session, claim)
            due = {ticket.id: ticket.sweep(as_of) for ticket in claimed}
            first = storage.record_breaches_once(session, [
                (ticket_id, deadline, due_at)
                for ticket_id, (overdue, _) in due.items() for deadline, due_at in overdue], as_of)
            for ticket in claimed:
                found["tickets"] += 1
                overdue, upgrade = due[ticket.id]
                for deadline, due_at in overdue:
                    if (ticket.id, deadline, due_at) in first:
                        ticket.record_breach(deadline, due_at, as_of)
                        found["breaches"] += 1
                if upgrade:
                    ticket.upgrade(as_of)
                    found["upgrades"] += 1
                ticket.refresh_due()
                if ticket.sweep_due_at is not None and ticket.sweep_due_at <= as_of:
                    # seen here but reported by another replica first: nothing left to find
                    ticket.breaches = ticket.breaches + [
                        b for b in _recorded(session, ticket) if b not in ticket.breaches]
                    ticket.refresh_due()
                self._publish(ticket)
            session.flush()
            storage.release(session, claim)
            self.uow.commit()
        except Exception:
            session.rollback()
            with session.begin():
                storage.release(session, claim)
            raise

    # -- front-desk views ----------------------------------------------------------------

    @command
    def handover(self, site, cursor=None, limit=50):
        """Every open ticket of a site with its next deadline, most urgent first."""
        stmt = self._open_at(site).order_by(Ticket.next_due_at.is_(None), Ticket.next_due_at,
                                            Ticket.id)
        return self._offset_page(stmt, cursor, limit)

    @command
    def callbacks(self, site, cursor=None, limit=50):
        """Tickets awaiting a callback, by the time it is due."""
        stmt = within_sites(select(Ticket), Ticket.site, self._viewer(), site).where(
            Ticket.callback_due_at.is_not(None)).order_by(Ticket.callback_due_at, Ticket.id)
        return self._offset_page(stmt, cursor, limit)

    @command
    def kpis(self, site, query):
        """The site's monthly report (SPEC §2.1, §2.2, 004): JSON, or CSV text with `format`."""
        viewer = self._viewer()
        viewer.require_site(site)
        q = load(KpiQuery(), query)
        year, month = map(int, q["month"].split("-"))
        tz = self._timezone(site)
        start = datetime(year, month, 1, tzinfo=calendar.zone(tz))
        end = calendar.add_months(start, 1, tz)
        rows = self.uow.session.scalars(select(Ticket).where(
            Ticket.site == site, Ticket.received_at >= start, Ticket.received_at < end)).all()
        households = self.rpc.registry.count_units(site)
        report = domain.monthly_kpis(rows, households, site=site, month=q["month"])
        if q["format"] == "csv":
            return {"content_type": "text/csv; charset=utf-8", "body": _csv(report)}
        return report

    # -- helpers -------------------------------------------------------------------------

    def _publish(self, ticket):
        for event, event_data in ticket.pull_events():
            self.uow.add_event(event, event_data, site=ticket.site)

    def _policy(self, site):
        return domain.SlaPolicy.from_dict(storage.site_policy(self.uow.session, site))

    def _viewer(self):
        identity = self.caller.identity
        identity.require_role("see the front-desk views", *SITE_STAFF)
        return identity

    def _open_at(self, site):
        return within_sites(select(Ticket), Ticket.site, self._viewer(), site).where(
            Ticket.status.in_(domain.OPEN_STATUSES))

    def _offset_page(self, stmt, cursor, limit):
        size, offset = page_size(limit), decode_cursor(cursor, int) if cursor else 0
        rows = self.uow.session.scalars(stmt.offset(offset).limit(size + 1)).all()
        more = len(rows) > size
        return {"items": [self._out(t) for t in rows[:size]],
                "next_cursor": encode_cursor(offset + size) if more else None}

    def _timezone(self, site):
        try:
            return self.rpc.registry.get_site(site)["timezone"]
        except NotFound as exc:
            raise ValidationFailed.from_messages({"site": [str(exc)]}) from exc

    def _visible(self, ticket_id, lock=False):
        """Staff of another site get 403; a resident asking for someone else's ticket, 404."""
        identity = self.caller.identity
        session = self.uow.session
        ticket = session.get(Ticket, ticket_id, with_for_update=lock and
                             session.get_bind().dialect.name == "postgresql")
        return identity.require_visible(
            ticket, f"ticket {ticket_id}", {"ticket_id": ticket_id},
            owned=lambda t: (t.reporter or {}).get("person_id") == identity.person_id)

    def _place(self, site, unit):
        """Site time zone and the unit's owner, from registry; an unknown site or unit (or one
        the caller may not see) is the caller's mistake, named by its field."""
        try:
            if unit:
                return self.rpc.registry.unit_contact(unit)
            return {"timezone": self.rpc.registry.get_site(site)["timezone"], "owner": None}
        except NotFound as exc:
            field = "unit" if unit else "site"
            raise ValidationFailed.from_messages({field: [str(exc)]}) from exc

    @staticmethod
    def _reporter(data, place, identity):
        owner = place.get("owner") or {}
        given = data.get("reporter") or {}
        reporter = {
            "name": given.get("name") or owner.get("name"),
            "phone": given.get("phone") or owner.get("phone"),
            "email": given.get("email") or owner.get("email"),
            "person_id": identity.person_id if identity.is_resident else (
                owner.get("person_id") if not given else None),
        }
        return reporter if any(reporter.values()) else None

    def _out(self, ticket):
        out = TicketOut(exclude=("allowed_actions",)).dump(ticket)
        out["allowed_actions"] = ticket.allowed_actions(self.caller.identity.role)
        return out


def _recorded(session, ticket):
    rows = session.execute(select(storage.breaches).where(
        storage.breaches.c.ticket_id == ticket.id)).all()
    return [{"deadline": r.deadline, "due_at": as_utc(r.due_at).isoformat(),
             "detected_at": as_utc(r.detected_at).isoformat()} for r in rows]


def _csv(report):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(KPI_FIELDS)
    writer.writerow(["" if report.get(k) is None else report[k] for k in KPI_FIELDS])
    return out.getvalue()


def _window(window):
    return None if not window else {k: v.isoformat() for k, v in window.items()}

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
from services.common.business import BusinessGauges
from services.common.clock import as_utc
from services.common.db import (
    Database, new_id, paginate, paginate_ordered, sql_events, within_sites,
)
from services.common.entrypoints import command, handles, load
from services.common.errors import NotFound, ValidationFailed
from services.common.metrics import OPEN_CASES
from services.common.roles import MANAGERS, SITE_STAFF, SUPERVISORS, SWEEPERS
from services.common.rpc import TimedRpc
from services.common.sweeps import SweepIn
from services.common.units import site_of_unit
from services.ticketing import committee, domain, storage
from services.ticketing.schemas import (
    ACTION_SCHEMAS, CommitteeReportOut, CommitteeReportQuery, KpiQuery, OnCallIn, OnCallOut, SlaPolicyIn, TicketFilters, TicketIn,
    TicketOut,
)
from services.ticketing.storage import Base, Ticket

SWEEP_SECONDS = 60
SWEEP_BATCH = 2000
SWEEP_LEASE = timedelta(minutes=5)
# Built once: a marshmallow schema deep-copies its fields on construction, which was a tenth
# of opening a ticket; loading and dumping keep no state on the instance.
TICKET_IN = TicketIn()
TICKET_OUT = TicketOut(exclude=("allowed_actions",))
KPI_FIELDS = ("site", "month", "households", "timeliness_rate", "repair_timeliness_rate",
              "complaint_timeliness_rate", "callback_rate", "satisfaction_rate",
              "average_satisfaction", "complaint_rate", "valid_complaint_rate", "rework_rate",
              "inquiry_reply_rate", "move_ins", "move_in_start_rate", "move_in_finish_rate",
              "parking_within_20_minutes_rate", "open_defects")


class TicketingService(entrypoints.ServiceBase):
    name = "ticketing"

    uow = Database(Base)
    business = BusinessGauges({OPEN_CASES: storage.open_cases})
    rpc = TimedRpc()
    config = Config()

    @command
    def create_ticket(self, payload):
        identity = self.caller.identity
        identity.require_role("open tickets", *domain.CREATORS)
        data = load(TICKET_IN, payload)
        identity.require_site(data["site"])
        now = self.clock()
        site, kind = data["site"], data["kind"]
        alone = self.uow.autocommit    # PostgreSQL: each statement its own, no BEGIN/COMMIT
        known, limits = storage.opening(alone, site, data["unit"])
        place = self._place(site, data["unit"], known)
        common = dict(
            id=new_id(), site=site, timezone=place["timezone"], channel=data["channel"],
            description=data["description"], received_at=data["received_at"] or now, now=now,
            first_contact_owner=identity.sub if not identity.is_resident else f"front-desk@{site}",
            by_role=identity.role, policy=domain.SlaPolicy.from_dict(limits), unit=data["unit"],
            reporter=self._reporter(data, place, identity))
        try:
            domain.check_received_at(common["received_at"], now)   # refused: no number taken
            serial = storage.next_serial(alone, site, domain.SERIES[kind])
            if kind == "repair":
                ticket = Ticket.open_repair(
                    code=domain.repair_code(site, serial), **common,
                    priority=data["priority"], scope=data["scope"], important=data["important"],
                    appointment=_window(data["appointment"]), fee=data["fee"])
            elif kind == "complaint":
                # one series per site (not per severity/category), so no number ever repeats
                ticket = Ticket.open_complaint(
                    serial=serial, **common,
                    severity=data["severity"], category=data["category"],
                    complainants=data["complainants"], requested_deadline=data["requested_deadline"])
            elif kind == "inquiry":
                ticket = Ticket.open_inquiry(
                    code=domain.inquiry_code(site, serial), **common, reply_by=data["reply_by"])
            else:
                ticket = Ticket.open_suggestion(code=domain.suggestion_code(site, serial), **common)
        except ValueError as exc:
            raise ValidationFailed.from_messages({"received_at": [str(exc)]}) from exc
        if ticket.kind == "repair" and ticket.priority == "urgent":
            ticket.page_on_call(storage.on_call_at(alone, site, ticket.received_at), now)
        self.uow.insert(ticket)
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
        if action == "answer" and data.get("answer_id"):
            data = self._from_answer_book(ticket, data)
        ticket.apply(action, data, now=self.clock(), by=identity.sub, role=identity.role)
        self._publish(ticket)
        self.uow.commit()
        return self._out(ticket)

    def _from_answer_book(self, ticket, data):
        """The answer of the site's answer-book entry, cited on the ticket (SPEC §8.5)."""
        try:
            entry = self.rpc.frontdesk.get_answer(data["answer_id"])
        except NotFound as exc:
            raise ValidationFailed.from_messages({"answer_id": [str(exc)]}) from exc
        if entry["site"] != ticket.site:
            raise ValidationFailed.from_messages(
                {"answer_id": [f"entry {data['answer_id']} is not in site {ticket.site}'s answer book"]})
        return {**data, "answer": data.get("answer") or entry["answer"],
                "cited": {"answer_id": entry["id"], "topic": entry["topic"],
                          "question": entry["question"]}}

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

    # -- the on-call roster (SPEC §2.2) --------------------------------------------------

    @command
    def set_on_call(self, site, payload):
        """Put a shift on the site's roster; where shifts overlap, the one set last pages."""
        identity = self.caller.identity
        identity.require_role("set the on-call roster", *SUPERVISORS)
        identity.require_site(site)
        data = load(OnCallIn(), payload)
        row = {"id": new_id(), "site": site, "technician": data["technician"],
               "phone": data["phone"], "from": as_utc(data["from_"]), "until": as_utc(data["until"]),
               "set_by": identity.sub, "set_at": self.clock()}
        storage.add_on_call(self.uow.session, row)
        self.uow.commit()
        return OnCallOut().dump(row)

    @command
    def on_call(self, site, cursor=None, limit=50):
        """The site's shifts not over yet, soonest first."""
        self._viewer().require_site(site)
        shift = storage.on_call.c
        rows, next_cursor = paginate_ordered(
            self.uow.session, storage.roster(site, self.clock()), shift["from"], shift.id,
            lambda row: (row._mapping["from"], row.id), cursor, limit, scalars=False)
        return {"items": OnCallOut(many=True).dump([row._mapping for row in rows]),
                "next_cursor": next_cursor}

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
        found = {"as_of": as_of.isoformat(), "tickets": 0, "breaches": 0, "warnings": 0,
                 "upgrades": 0}
        session = self.uow.session
        batch = int(self.config.get("TICKETING_SWEEP_BATCH", SWEEP_BATCH))
        in_database = sql_events(session)
        while True:
            if in_database:
                if not self._sweep_in_database(as_of, batch, found):
                    return found
            else:
                claimed = storage.claim_due(session.get_bind(), as_of, self.clock(), SWEEP_LEASE, batch)
                if not claimed:
                    return found
                self._sweep_claimed(claimed, as_of, found)
            eventlet.sleep(0)   # the database drivers block: let this replica's other workers run

    def _sweep_in_database(self, as_of, batch, found):
        """PostgreSQL: one batch of due tickets, locked for one transaction, swept by the
        database — the batch locked and its next instants written by ONE statement, which also
        says what each ticket has due; then the warnings, then the breaches, each recorded and
        their events written by ONE INSERT … SELECT over the tickets that have some (the unique
        keys decide what this replica reports; the contract checked once per shape); no row
        through Python. A ticket due for its 30-day upgrade goes through the whole Ticket.
        False once nothing is due."""
        session = self.uow.session
        try:
            locked = storage.lock_due(session, as_of, batch)
            if not locked:
                session.rollback()
                return False
            upgrading = [row.ticket_id for row in locked if row.upgrade_due]
            warning = [row.ticket_id for row in locked if row.warning_due and not row.upgrade_due]
            breach = [row.ticket_id for row in locked if row.breach_due and not row.upgrade_due]
            # a warning goes out before any breach of the same sweep
            if warning:
                found["warnings"] += self.uow.add_events_selected(
                    "ticketing.sla_warning", storage.first_warning_payloads(warning, as_of),
                    occurred_at=as_of)
            if breach:
                found["breaches"] += self.uow.add_events_selected(
                    "ticketing.sla_breached", storage.first_breach_payloads(breach, as_of),
                    occurred_at=as_of)
            if upgrading:
                self._sweep_whole(storage.claimed_tickets(session, upgrading), as_of, found)
                session.flush()
            found["tickets"] += len(locked)
            self.uow.commit()
        except Exception:
            session.rollback()
            raise
        return True

    def _sweep_claimed(self, ids, as_of, found):
        """SQLite: one claimed batch in one transaction: the columns the rules read, every
        breach and warning of the batch inserted in one statement each (the unique keys decide
        which this replica reports), their events in one write per event, the tickets' next
        instants written and their claims released in one more. A ticket due for its 30-day
        upgrade, which changes severity and history, goes through the whole Ticket."""
        session = self.uow.session
        try:
            rows = storage.claimed_rows(session, ids)
            upgrades = {row.id: domain.upgrade_due_at(row) for row in rows}
            upgrading = [tid for tid, at in upgrades.items() if at is not None and at <= as_of]
            rows = [row for row in rows if row.id not in set(upgrading)]
            due = {row.id: domain.alerts_due(row, as_of) for row in rows}
            first_breaches, first_warnings = self._record_first(due, as_of)
            breached, warned, changes = [], [], {}
            for row in rows:
                breach, warn = due[row.id]
                breached += [(domain.breach_event(row, name, at, as_of), row.site)
                             for name, at in breach if (row.id, name, at) in first_breaches]
                warned += [(domain.warning_event(row, name, at, as_of), row.site)
                           for name, at in warn if (row.id, name, at) in first_warnings]
                # all of them are recorded now (by this replica or one before it)
                changes[row.id] = domain.next_sweep_at(
                    row, row.breaches + [domain.breach_entry(name, at, as_of) for name, at in breach],
                    row.warnings + [domain.warning_entry(name, at, as_of) for name, at in warn],
                    upgrades[row.id])
            # a warning goes out before any breach of the same sweep
            self.uow.add_events("ticketing.sla_warning", warned, occurred_at=as_of)
            self.uow.add_events("ticketing.sla_breached", breached, occurred_at=as_of)
            storage.save_swept(session, changes)
            found["tickets"] += len(ids)
            found["breaches"] += len(first_breaches)
            found["warnings"] += len(first_warnings)
            self._sweep_whole(storage.claimed_tickets(session, upgrading) if upgrading else [],
                              as_of, found)
            session.flush()
            storage.release(session, upgrading)
            self.uow.commit()
        except Exception:
            session.rollback()
            with session.begin():
                storage.release(session, ids)
            raise

    def _sweep_whole(self, tickets, as_of, found):
        """Tickets swept through the whole Ticket (their 30-day upgrade due): each warning and
        breach recorded once (the unique keys), then upgraded if its instant has come."""
        due = {t.id: domain.alerts_due(t, as_of) for t in tickets}
        first_breaches, first_warnings = self._record_first(due, as_of)
        for ticket in tickets:
            breach, warn = due[ticket.id]
            for name, at in warn:
                ticket.record_warning(name, at, as_of, first=(ticket.id, name, at) in first_warnings)
            for name, at in breach:
                ticket.record_breach(name, at, as_of, first=(ticket.id, name, at) in first_breaches)
            upgrade_at = ticket.upgrade_due_at()
            if upgrade_at is not None and upgrade_at <= as_of:
                ticket.upgrade(as_of)
                found["upgrades"] += 1
            ticket.refresh_due()
            self._publish(ticket)
        found["breaches"] += len(first_breaches)
        found["warnings"] += len(first_warnings)

    def _record_first(self, due, as_of):
        """Record the breaches and warnings `due` {ticket_id: (breaches, warnings)}, one
        statement each; the keys of those this replica is the first to record."""
        session = self.uow.session
        return (storage.record_breaches_once(session, [
                    (tid, name, at) for tid, (breach, _) in due.items() for name, at in breach], as_of),
                storage.record_warnings_once(session, [
                    (tid, name, at) for tid, (_, warn) in due.items() for name, at in warn], as_of))

    # -- front-desk views ----------------------------------------------------------------

    @command
    def handover(self, site, cursor=None, limit=50):
        """Every open ticket of a site with its next deadline, most urgent first (none last)."""
        return self._page_by(self._open_at(site), Ticket.next_due_at, cursor, limit)

    @command
    def callbacks(self, site, cursor=None, limit=50):
        """Tickets awaiting a callback, by the time it is due."""
        stmt = within_sites(select(Ticket), Ticket.site, self._viewer(), site).where(
            Ticket.callback_due_at.is_not(None))
        return self._page_by(stmt, Ticket.callback_due_at, cursor, limit)

    @command
    def kpis(self, site, query):
        """The site's monthly report (SPEC §2.1, §2.2, 004): JSON, or CSV text with `format`."""
        viewer = self._viewer()
        viewer.require_site(site)
        q = load(KpiQuery(), query)
        tz = self._timezone(site)
        households = self.rpc.registry.count_units(site)
        report, _ = self._month_kpis(site, q["month"], tz, households)
        # the front desk's procedures of the month (SPEC §8): frontdesk's own figures
        report["frontdesk"] = self.rpc.frontdesk.kpis(site, {"month": q["month"]})
        if q["format"] == "csv":
            return {"content_type": "text/csv; charset=utf-8", "body": _csv(report)}
        return report

    def _month_kpis(self, site, month, tz, households):
        """The KPI report of a site's month (site time) and the month's tickets: how `kpis`
        and the committee report both compose it."""
        year, number = map(int, month.split("-"))
        start = datetime(year, number, 1, tzinfo=calendar.zone(tz))
        end = calendar.add_months(start, 1, tz)
        rows = self.uow.session.scalars(select(Ticket).where(
            Ticket.site == site, Ticket.received_at >= start, Ticket.received_at < end)).all()
        return domain.monthly_kpis(rows, households, site=site, month=month), rows

    @command
    def committee_report(self, site, query):
        """The monthly work report to the owners' committee (SPEC §8.6): the month's KPI report
        as `kpis` gives it, with billing's collection rate, registry's contact breaches,
        frontdesk's activities and open defects, and the last 12 months' trend; JSON, or a
        printable A4 page with SVG charts ({"content_type", "body"}) with `format: html`."""
        identity = self.caller.identity
        identity.require_role("read the committee report", *SUPERVISORS)
        identity.require_site(site)
        q = load(CommitteeReportQuery(), query)
        site_record = self._site_record(site)
        tz = site_record["timezone"]
        households = self.rpc.registry.count_units(site)
        months = committee.months_back(q["month"], 12)
        trend, tickets = [], []
        for month in months:
            report, tickets = self._month_kpis(site, month, tz, households)
            trend.append(report)
        collections = [self.rpc.billing.collection_rate({"site": site, "period": month})
                       for month in months]
        # the month's KPI report as `kpis` answers it, its front-desk section included
        trend[-1]["frontdesk"] = self.rpc.frontdesk.kpis(site, {"month": q["month"]})
        report = committee.compose(
            site=site, month=q["month"], trend=trend, tickets=tickets, collections=collections,
            frontdesk=trend[-1]["frontdesk"],
            contact_breaches=self.rpc.registry.contact_breach_counts(site, {"month": q["month"]}))
        if q["format"] == "html":
            return {"content_type": "text/html; charset=utf-8",
                    "body": committee.render_html(report, site_record.get("name"))}
        return CommitteeReportOut().dump(report)

    # -- helpers -------------------------------------------------------------------------

    def _publish(self, ticket):
        for event, event_data in ticket.pull_events():
            self.uow.add_event(event, event_data, site=ticket.site)

    def _viewer(self):
        identity = self.caller.identity
        identity.require_role("see the front-desk views", *SITE_STAFF)
        return identity

    def _open_at(self, site):
        return within_sites(select(Ticket), Ticket.site, self._viewer(), site).where(
            Ticket.status.in_(domain.OPEN_STATUSES))

    def _page_by(self, stmt, column, cursor, limit):
        rows, next_cursor = paginate_ordered(self.uow.session, stmt, column, Ticket.id,
                                             lambda t: (getattr(t, column.key), t.id), cursor, limit)
        return {"items": [self._out(t) for t in rows], "next_cursor": next_cursor}

    def _timezone(self, site):
        return self._site_record(site)["timezone"]

    def _site_record(self, site):
        try:
            return self.rpc.registry.get_site(site)
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

    def _place(self, site, unit, known):
        """Site time zone and the unit's owner: from ticketing's copy of the unit (`known`,
        None if it has none) when the caller may see it, else from registry (a unit created a moment ago whose event
        is still on its way, a tenant, a common-area ticket). An unknown site or unit (or one
        the caller may not see) is the caller's mistake, named by its field."""
        if known is not None and self._may_see(known):
            return known
        try:
            if unit:
                return self.rpc.registry.unit_contact(unit)
            return {"timezone": self.rpc.registry.get_site(site)["timezone"], "owner": None}
        except NotFound as exc:
            field = "unit" if unit else "site"
            raise ValidationFailed.from_messages({field: [str(exc)]}) from exc

    def _may_see(self, unit):
        """What registry would answer from the copy alone: staff of the unit's site, or its
        owner; anyone else is left for registry to judge (it knows tenants too)."""
        identity = self.caller.identity
        if identity.is_resident:
            return (unit["owner"] or {}).get("person_id") == identity.person_id
        return identity.can_see_site(unit["site"])

    @handles("registry", "unit_changed")
    def on_unit_changed(self, data, envelope):
        storage.copy_unit(self.uow.session, data["unit"], site_of_unit(data["unit"]),
                          data["timezone"], data.get("owner"), envelope["occurred_at"])
        self.uow.commit()

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
        out = TICKET_OUT.dump(ticket)
        out["allowed_actions"] = ticket.allowed_actions(self.caller.identity.role)
        return out


def _csv(report):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(KPI_FIELDS)
    front = report["frontdesk"]
    flat = {**report, "move_ins": front["move_ins"]["arrived"],
            "move_in_start_rate": front["move_ins"]["start_rate"],
            "move_in_finish_rate": front["move_ins"]["finish_rate"],
            "parking_within_20_minutes_rate": front["parking"]["rate"],
            "open_defects": front["defects"]["open"]}
    writer.writerow(["" if flat.get(k) is None else flat[k] for k in KPI_FIELDS])
    return out.getvalue()


def _window(window):
    return None if not window else {k: v.isoformat() for k, v in window.items()}

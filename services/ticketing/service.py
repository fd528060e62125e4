"""ticketing: repairs (SPEC §2.2) — complaints, inquiries and suggestions grow here."""
from sqlalchemy import select

from services.common import entrypoints
from services.common.auth import Caller
from services.common.clock import Clock
from services.common.db import Database, new_id, paginate, within_sites
from services.common.entrypoints import command, load
from services.common.rpc import TimedRpc
from services.common.errors import Forbidden, NotFound, ValidationFailed
from services.ticketing import domain
from services.ticketing.schemas import ACTION_SCHEMAS, TicketFilters, TicketIn, TicketOut
from services.ticketing.storage import Base, Ticket, next_serial

class TicketingService(entrypoints.ServiceBase):
    name = "ticketing"

    uow = Database(Base)
    caller = Caller()
    clock = Clock()
    rpc = TimedRpc()

    @command
    def create_ticket(self, payload):
        identity = self.caller.identity
        identity.require_role("open tickets", *domain.CREATORS)
        data = load(TicketIn(), payload)
        identity.require_site(data["site"])
        now = self.clock()
        place = self._place(data["site"], data["unit"])
        reporter = self._reporter(data, place, identity)
        session = self.uow.session
        try:
            ticket = Ticket.open_repair(
                id=new_id(), code=domain.repair_code(data["site"], next_serial(session, data["site"], "R")),
                site=data["site"], timezone=place["timezone"], channel=data["channel"],
                description=data["description"], received_at=data["received_at"] or now, now=now,
                first_contact_owner=identity.sub if not identity.is_resident else f"front-desk@{data['site']}",
                by_role=identity.role, policy=domain.RepairPolicy(), unit=data["unit"],
                reporter=reporter, priority=data["priority"], scope=data["scope"],
                important=data["important"],
                appointment=_window(data["appointment"]), fee=data["fee"],
            )
        except ValueError as exc:
            raise ValidationFailed.from_messages({"received_at": [str(exc)]}) from exc
        session.add(ticket)
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
        ticket = self._visible(ticket_id)
        if schema is None:
            raise NotFound(f"no action {action}", {"allowed_actions": ticket.allowed_actions(identity.role)})
        data = load(schema(), payload or {})
        ticket.apply(action, data, now=self.clock(), by=identity.sub, role=identity.role)
        for event, event_data in ticket.pull_events():
            self.uow.add_event(event, event_data, site=ticket.site)
        self.uow.commit()
        return self._out(ticket)

    # -- helpers -------------------------------------------------------------------------

    def _visible(self, ticket_id):
        """Staff of another site get 403; a resident asking for someone else's ticket, 404."""
        identity = self.caller.identity
        ticket = self.uow.session.get(Ticket, ticket_id)
        if ticket is None or (identity.is_resident and (ticket.reporter or {}).get("person_id")
                              != identity.person_id):
            raise NotFound(f"no ticket {ticket_id}", {"ticket_id": ticket_id})
        if not identity.can_see_site(ticket.site):
            raise Forbidden(f"ticket {ticket_id} belongs to another site", {"site": ticket.site})
        return ticket

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


def _window(window):
    return None if not window else {k: v.isoformat() for k, v in window.items()}

"""gateway: HTTP → RPC. Handlers only check scope and forward; routing.py does the rest."""
import eventlet
from kombu import Connection
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.timer import timer

from services.common import BACKEND_SERVICES, entrypoints
from services.common.auth import Caller
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import ProblemError, ServiceUnavailable, ValidationFailed
from services.common.rpc import TimedRpc
from services.gateway import access, idempotency
from services.gateway.queries import EchoIn, MessageQuery, Page, TicketQuery, UnitQuery, page_args
from services.gateway.routing import Api, fallback, route
from services.gateway.storage import Base
from services.notifications.schemas import MessageOut
from services.registry.schemas import PersonOut, PersonReadIn, SiteIn, SiteOut, UnitIn, UnitOut
from services.ticketing.schemas import ACTION_SCHEMAS, TicketIn, TicketOut

READY_TIMEOUT = 2.0
ECHO_ROLES = ("ops_admin", "hq")


class GatewayService(entrypoints.ServiceBase):
    name = "gateway"

    api = Api()
    caller = Caller()
    uow = Database(Base)
    rpc = TimedRpc()

    # -- operations ----------------------------------------------------------------------

    @route("GET", "/health", root=True, authenticated=False, tag="operations",
           summary="The gateway process is up")
    def health(self, call):
        return {"status": "ok"}

    @route("GET", "/ready", root=True, authenticated=False, tag="operations",
           summary="The broker and every service answer (each within 2 s); 503 lists the ones down")
    def ready(self, call):
        names = ["broker", *self._services()]
        pool = eventlet.GreenPool(len(names))
        checks = dict(zip(names, pool.imap(self._check, names)))
        down = [name for name, state in checks.items() if state != "ok"]
        if down:
            raise ServiceUnavailable(f"not ready: {', '.join(down)} down",
                                     {"down": down, "checks": checks})
        return {"status": "ready", "checks": checks}

    @route("GET", "/openapi.json", authenticated=False, tag="operations",
           summary="This document")
    def openapi(self, call):
        return self.api.openapi

    @route("POST", "/admin/echo", body=EchoIn, tag="operations",
           summary="Round trip to a service's echo (the benchmark's baseline); ops_admin and hq")
    def admin_echo(self, call):
        call.identity.require_role("call echo", *ECHO_ROLES)
        service = call.payload.get("service", "registry")
        if service not in (*self._services(), self.name):
            raise ValidationFailed.from_messages({"service": [
                f"one of {', '.join((*self._services(), self.name))}"]})
        return {"service": service, "payload": self.rpc.service(service).echo(call.payload.get("payload"))}

    # -- registry ------------------------------------------------------------------------

    @route("POST", "/sites", body=SiteIn, response=SiteOut, status=201, tag="registry",
           summary="Register a site")
    def create_site(self, call):
        call.identity.require_site(call.payload["code"])
        return self.rpc.registry.create_site(call.payload)

    @route("GET", "/sites/<string:code>", response=SiteOut, tag="registry", summary="A site")
    def get_site(self, call, code):
        call.identity.require_site(code)
        return self.rpc.registry.get_site(code)

    @route("GET", "/sites", query=Page, response=SiteOut, many=True, tag="registry",
           summary="The sites the caller may see")
    def list_sites(self, call):
        return self.rpc.registry.list_sites(call.query["cursor"], call.query["limit"])

    @route("POST", "/units", body=UnitIn, response=UnitOut, status=201, tag="registry",
           summary="Register a unit and its owner")
    def create_unit(self, call):
        call.identity.require_site(call.payload["code"][:3])
        return self.rpc.registry.create_unit(call.payload)

    @route("GET", "/units/<string:code>", response=UnitOut, tag="registry",
           summary="A unit, its people's phone and ID numbers masked")
    def get_unit(self, call, code):
        access.require_unit(call.identity, code)
        return self.rpc.registry.get_unit(code)

    @route("GET", "/units", query=UnitQuery, response=UnitOut, many=True, tag="registry",
           summary="The units of a site")
    def list_units(self, call):
        call.identity.require_site(call.query["site"])
        return self.rpc.registry.list_units(call.query["site"], call.query["cursor"], call.query["limit"])

    @route("GET", "/persons/<string:person_id>", query=PersonReadIn, response=PersonOut,
           tag="registry", summary="A person's full record; the read and its reason are logged")
    def get_person(self, call, person_id):
        access.require_person(call.identity, person_id)
        return self.rpc.registry.get_person(person_id, {"reason": call.query["reason"]})

    # -- ticketing -----------------------------------------------------------------------

    @route("POST", "/tickets", body=TicketIn, response=TicketOut, status=201, tag="ticketing",
           summary="Open a ticket")
    def create_ticket(self, call):
        call.identity.require_site(call.payload["site"])
        return self.rpc.ticketing.create_ticket(call.payload)

    @route("GET", "/tickets", query=TicketQuery, response=TicketOut, many=True, tag="ticketing",
           summary="Tickets by site, kind, status, overdue, callback due before")
    def list_tickets(self, call):
        filters, cursor, limit = page_args(call.query)
        if "site" in filters:
            call.identity.require_site(filters["site"])
        return self.rpc.ticketing.list_tickets(filters, cursor, limit)

    @route("GET", "/tickets/<string:ticket_id>", response=TicketOut, tag="ticketing",
           summary="A ticket with its deadlines, breaches, history and callback")
    def get_ticket(self, call, ticket_id):
        ticket = self.rpc.ticketing.get_ticket(ticket_id)
        access.require_ticket(call.identity, ticket)
        return ticket

    @route("POST", "/tickets/<string:ticket_id>/<string:action>", actions=ACTION_SCHEMAS,
           response=TicketOut, tag="ticketing", summary="Take a step of the ticket's flow")
    def act_on_ticket(self, call, ticket_id, action):
        access.require_ticket(call.identity, self.rpc.ticketing.get_ticket(ticket_id))
        return self.rpc.ticketing.act(ticket_id, action, call.payload)

    # -- notifications -------------------------------------------------------------------

    @route("GET", "/messages", query=MessageQuery, response=MessageOut, many=True, tag="notifications",
           summary="Messages sent, by ticket, unit, recipient, channel or site")
    def list_messages(self, call):
        filters, cursor, limit = page_args(call.query)
        if "site" in filters:
            call.identity.require_site(filters["site"])
        if "unit" in filters:
            access.require_unit(call.identity, filters["unit"])
        return self.rpc.notifications.list_messages(filters, cursor, limit)

    # -- everything else -----------------------------------------------------------------

    @fallback
    def unknown_route(self, call, path):
        raise self.api.no_route(path, call.request.method)

    @timer(interval=3600)
    def purge_idempotency_keys(self):
        idempotency.purge(self.uow.session, utcnow(), self.api.retention)

    def _services(self):
        return tuple(self.api.config.get("SERVICES") or BACKEND_SERVICES)

    def _check(self, name):
        try:
            if name == "broker":
                with eventlet.Timeout(READY_TIMEOUT, ServiceUnavailable("timed out")), \
                        Connection(self.api.config[AMQP_URI_CONFIG_KEY],
                                   connect_timeout=READY_TIMEOUT) as connection:
                    connection.connect()
            else:
                self.rpc.service(name, timeout=READY_TIMEOUT).ping()
        except ProblemError as exc:
            return exc.detail
        except Exception as exc:  # an unreachable broker fails in many ways; all mean "down"
            return f"{type(exc).__name__}: {exc}"
        return "ok"

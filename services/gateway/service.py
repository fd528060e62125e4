"""gateway: HTTP → RPC. A route declares who may call it (scope and roles), and its handler only
forwards; routing.py does the rest."""
import eventlet
from kombu import Connection
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.timer import timer
from werkzeug.wrappers import Response

from services.billing import schemas as billing_schemas
from services.common import BACKEND_SERVICES, entrypoints
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import ProblemError, ServiceUnavailable, ValidationFailed
from services.common.roles import (
    DESK, GATE, HANDLERS, HEAD_OFFICE, LEGAL, MANAGERS, RECORD_READERS, RESIDENT, ROLES,
    SITE_STAFF, STAFF, SUPERVISORS, SWEEPERS,
)
from services.common.rpc import TimedRpc
from services.common.sweeps import SweepIn
from services.frontdesk import schemas as frontdesk_schemas
from services.gateway import console, docs, idempotency
from services.gateway.residents import ResidentUnits
from services.gateway.access import (
    ANY_CALLER, FILTERS, OBJECT, OWN_PERSON, PUBLIC, site_in, unit_in,
)
from services.gateway.queries import (
    AnswerQuery, ArrearsQuery, ChangeRequestQuery, DefectQuery, EchoIn, LawsuitQuery, MessageQuery,
    Page, RenovationQuery, TicketQuery, UnitQuery, page_args,
)
from services.gateway.routing import Api, fallback, route
from services.gateway.storage import Base
from services.notifications import schemas as notifications_schemas
from services.registry import schemas as registry_schemas
from services.registry.schemas import (
    AssistantIn, MoveInIn, PersonOut, PersonReadIn, SiteIn, SiteOut, UnitIn, UnitOut,
)
from services.renovation import domain as renovation_domain, schemas as renovation_schemas
from services.ticketing import schemas as ticketing_schemas
from services.ticketing.schemas import (
    ACTION_SCHEMAS, KpiQuery, SiteListQuery, SlaPolicyIn, SlaPolicyOut, TicketIn, TicketOut,
)

READY_TIMEOUT = 2.0


class GatewayService(console.ConsoleRoutes, entrypoints.ServiceBase):  # the console: /console/
    name = "gateway"

    api = Api()
    uow = Database(Base)
    rpc = TimedRpc()
    residents = ResidentUnits()

    # -- operations ----------------------------------------------------------------------

    @route("GET", "/health", root=True, scope=PUBLIC, tag="operations",
           summary="The gateway process is up")
    def health(self, call):
        return {"status": "ok"}

    @route("GET", "/ready", root=True, scope=PUBLIC, tag="operations",
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

    @route("GET", "/openapi.json", scope=PUBLIC, tag="operations",
           summary="This document")
    def openapi(self, call):
        return self.api.openapi

    @route("GET", "/docs", scope=PUBLIC, documented=False, tag="operations",
           summary="The API's browsable documentation (Swagger UI)")
    def docs_page(self, call):
        return docs.page()

    @route("GET", "/docs/<string:name>", scope=PUBLIC, documented=False, tag="operations",
           summary="The documentation page's files")
    def docs_asset(self, call, name):
        return docs.asset(name)

    @route("POST", "/admin/echo", body=EchoIn, tag="operations", scope=ANY_CALLER, roles=SWEEPERS,
           summary="Round trip to a service's echo (the benchmark's baseline); ops_admin and hq")
    def admin_echo(self, call):
        service = call.payload.get("service", "registry")
        if service not in (*self._services(), self.name):
            raise ValidationFailed.from_messages({"service": [
                f"one of {', '.join((*self._services(), self.name))}"]})
        return {"service": service, "payload": self.rpc.service(service).echo(call.payload.get("payload"))}

    # -- registry ------------------------------------------------------------------------

    @route("POST", "/sites", body=SiteIn, response=SiteOut, status=201, tag="registry",
           scope=site_in("body"), roles=MANAGERS, summary="Register a site")
    def create_site(self, call):
        return self.rpc.registry.create_site(call.payload)

    @route("GET", "/sites/<string:code>", response=SiteOut, tag="registry",
           scope=site_in("path"), roles=ROLES, summary="A site")
    def get_site(self, call, code):
        return self.rpc.registry.get_site(code)

    @route("GET", "/sites", query=Page, response=SiteOut, many=True, tag="registry",
           scope=ANY_CALLER, roles=ROLES, summary="The sites the caller may see")
    def list_sites(self, call):
        return self.rpc.registry.list_sites(call.query["cursor"], call.query["limit"])

    @route("POST", "/units", body=UnitIn, response=UnitOut, status=201, tag="registry",
           scope=unit_in("body"), roles=DESK, summary="Register a unit and its owner")
    def create_unit(self, call):
        return self.rpc.registry.create_unit(call.payload)

    @route("GET", "/units/<string:code>", response=UnitOut, tag="registry",
           scope=unit_in("path"), roles=ROLES, summary="A unit, its people's phone and ID numbers masked")
    def get_unit(self, call, code):
        return self.rpc.registry.get_unit(code)

    @route("GET", "/units", query=UnitQuery, response=UnitOut, many=True, tag="registry",
           scope=FILTERS, roles=ROLES, summary="The units of a site")
    def list_units(self, call):
        return self.rpc.registry.list_units(call.query["site"], call.query["cursor"], call.query["limit"])

    @route("POST", "/units/<string:code>/move-in", body=MoveInIn, response=UnitOut, tag="registry",
           scope=unit_in("path"), roles=DESK, summary="The owner moved in (入伙) and an assistant looks after them; 409 if already in")
    def record_move_in(self, call, code):
        return self.rpc.registry.record_move_in(code, call.payload)

    @route("POST", "/units/<string:code>/assistant", body=AssistantIn, response=UnitOut,
           tag="registry", scope=unit_in("path"), roles=DESK,
           summary="Another customer-affairs assistant (客户事务助理) for the unit")
    def assign_assistant(self, call, code):
        return self.rpc.registry.assign_assistant(code, call.payload)

    @route("GET", "/persons/<string:person_id>", query=PersonReadIn, response=PersonOut,
           tag="registry", scope=OWN_PERSON, roles=(RESIDENT, *RECORD_READERS),
           summary="A person's full record; the read and its reason are logged")
    def get_person(self, call, person_id):
        return self.rpc.registry.get_person(person_id, {"reason": call.query["reason"]})

    # -- registry: people, vehicles, change requests, registry KPIs (SPEC §1) -------------

    @route("POST", "/units/<string:code>/people", body=registry_schemas.PersonAddIn,
           response=PersonOut, status=201, tag="registry", scope=unit_in("path"), roles=DESK,
           summary="Add an owner, tenant (with lease and owner_consent) or household member; "
                   "unverified until another staff member verifies it")
    def add_person(self, call, code):
        return self.rpc.registry.add_person(code, call.payload)

    @route("GET", "/units/<string:code>/people", response=PersonOut, many=True, tag="registry",
           scope=unit_in("path"), roles=ROLES,
           summary="The unit's people, phone and ID masked, with verified and late_entry")
    def list_people(self, call, code):
        return self.rpc.registry.list_people(code)

    @route("POST", "/persons/<string:person_id>/verify", response=PersonOut, tag="registry",
           scope=OWN_PERSON, roles=DESK,
           summary="Four eyes: verify a person's record; 409 for the one who entered it")
    def verify_person(self, call, person_id):
        return self.rpc.registry.verify_person(person_id)

    @route("POST", "/units/<string:code>/vehicles", body=registry_schemas.VehicleIn,
           response=registry_schemas.VehicleOut, status=201, tag="registry",
           scope=unit_in("path"), roles=DESK, summary="Register a vehicle of one of the unit's people")
    def add_vehicle(self, call, code):
        return self.rpc.registry.add_vehicle(code, call.payload)

    @route("GET", "/units/<string:code>/vehicles", response=registry_schemas.VehicleOut,
           many=True, tag="registry", scope=unit_in("path"), roles=ROLES,
           summary="The unit's vehicles, with their parking space once rented")
    def list_vehicles(self, call, code):
        return self.rpc.registry.list_vehicles(code)

    @route("POST", "/change-requests", body=registry_schemas.ChangeRequestIn,
           response=registry_schemas.ChangeRequestOut, status=201, tag="registry",
           scope=unit_in("body", "unit"), roles=DESK,
           summary="Ask for a change of a unit, person or vehicle, or a deactivation")
    def create_change_request(self, call):
        return self.rpc.registry.create_change_request(call.payload)

    @route("GET", "/change-requests", query=ChangeRequestQuery,
           response=registry_schemas.ChangeRequestOut, many=True, tag="registry",
           scope=FILTERS, roles=STAFF, summary="Change requests by site, unit and status")
    def list_change_requests(self, call):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.registry.list_change_requests(filters, cursor, limit)

    @route("GET", "/change-requests/<string:request_id>",
           response=registry_schemas.ChangeRequestOut, tag="registry", scope=OBJECT, roles=STAFF,
           summary="A change request with its history")
    def get_change_request(self, call, request_id):
        return self.rpc.registry.get_change_request(request_id)

    @route("POST", "/change-requests/<string:request_id>/<string:action>",
           actions={"approve": registry_schemas.ApproveIn, "reject": registry_schemas.RejectIn},
           response=registry_schemas.ChangeRequestOut, tag="registry", scope=OBJECT,
           roles=MANAGERS,
           summary="approve or reject: a site manager; a deactivation only head office")
    def decide_change_request(self, call, request_id, action):
        return self.rpc.registry.decide_change_request(request_id, action, call.payload)

    @route("GET", "/units/<string:code>/history", query=Page,
           response=registry_schemas.UnitHistoryOut, many=True, tag="registry",
           scope=unit_in("path"), roles=STAFF,
           summary="Every applied change of the unit: before → after, who asked and approved")
    def unit_history(self, call, code):
        return self.rpc.registry.unit_history(code, call.query["cursor"], call.query["limit"])

    @route("GET", "/sites/<string:code>/registry-kpis", query=registry_schemas.RegistryKpiQuery,
           response=registry_schemas.RegistryKpiOut, tag="registry", scope=site_in("path"),
           roles=SITE_STAFF,
           summary="The registry's monthly KPIs of a site: records entered late (> 3 days), unverified")
    def registry_kpis(self, call, code):
        return self.rpc.registry.registry_kpis(code, call.query)

    @route("POST", "/admin/sweeps/registry", body=SweepIn, tag="registry",
           scope=ANY_CALLER, roles=SWEEPERS,
           summary="Apply the approved changes whose effective_on has come at `as_of` (as the timer does)")
    def sweep_registry(self, call):
        return self.rpc.registry.sweep(call.payload)

    # -- ticketing -----------------------------------------------------------------------

    @route("POST", "/tickets", body=TicketIn, response=TicketOut, status=201, tag="ticketing",
           scope=site_in("body", "site"), roles=(RESIDENT, *DESK, *HANDLERS), summary="Open a ticket")
    def create_ticket(self, call):
        return self.rpc.ticketing.create_ticket(call.payload)

    @route("GET", "/tickets", query=TicketQuery, response=TicketOut, many=True, tag="ticketing",
           scope=FILTERS, roles=ROLES, summary="Tickets by site, kind, status, overdue, callback due before")
    def list_tickets(self, call):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.ticketing.list_tickets(filters, cursor, limit)

    @route("GET", "/tickets/<string:ticket_id>", response=TicketOut, tag="ticketing",
           scope=OBJECT, roles=ROLES, summary="A ticket with its deadlines, breaches, history and callback")
    def get_ticket(self, call, ticket_id):
        return self.rpc.ticketing.get_ticket(ticket_id)

    @route("POST", "/tickets/<string:ticket_id>/<string:action>", actions=ACTION_SCHEMAS,
           response=TicketOut, tag="ticketing", scope=OBJECT, roles=(*STAFF, RESIDENT),
           summary="Take a step of the ticket's flow (the step's roles are the flow's; a "
                   "resident rates the callback of their own ticket: record-callback)")
    def act_on_ticket(self, call, ticket_id, action):
        return self.rpc.ticketing.act(ticket_id, action, call.payload)

    @route("POST", "/admin/sweeps/ticketing", body=SweepIn, tag="ticketing",
           scope=ANY_CALLER, roles=SWEEPERS,
           summary="Run ticketing's deadline sweep at `as_of` (as its timer does)")
    def sweep_ticketing(self, call):
        return self.rpc.ticketing.sweep(call.payload)

    @route("GET", "/sites/<string:code>/sla-policy", response=SlaPolicyOut, tag="ticketing",
           scope=site_in("path"), roles=ROLES,
           summary="The SLA policy in force at a site (defaults, and what the site tightened)")
    def get_sla_policy(self, call, code):
        return self.rpc.ticketing.get_sla_policy(code)

    @route("POST", "/sites/<string:code>/sla-policy", body=SlaPolicyIn, response=SlaPolicyOut,
           tag="ticketing", scope=site_in("path"), roles=MANAGERS,
           summary="Tighten a site's time limits; new tickets carry them")
    def set_sla_policy(self, call, code):
        return self.rpc.ticketing.set_sla_policy(code, {k: v for k, v in call.payload.items()
                                                        if v is not None})

    @route("GET", "/sites/<string:code>/handover", query=SiteListQuery, response=TicketOut,
           many=True, tag="ticketing", scope=site_in("path"), roles=SITE_STAFF,
           summary="Shift handover: every open ticket of the site, most urgent deadline first")
    def handover(self, call, code):
        return self.rpc.ticketing.handover(code, call.query["cursor"], call.query["limit"])

    @route("GET", "/sites/<string:code>/callbacks", query=SiteListQuery, response=TicketOut,
           many=True, tag="ticketing", scope=site_in("path"), roles=SITE_STAFF,
           summary="Callback worklist: tickets awaiting a callback, by due time")
    def callback_worklist(self, call, code):
        return self.rpc.ticketing.callbacks(code, call.query["cursor"], call.query["limit"])

    @route("GET", "/sites/<string:code>/kpis", query=KpiQuery, tag="ticketing",
           response=ticketing_schemas.KpiReportOut, scope=site_in("path"), roles=SITE_STAFF,
           media={"text/csv": "the same figures, one column each (with ?format=csv or Accept: text/csv)"},
           summary="Monthly KPI report of a site (JSON; CSV with ?format=csv or Accept: text/csv)")
    def kpis(self, call, code):
        wants_csv = call.query["format"] == "csv" or "text/csv" in call.request.headers.get("Accept", "")
        report = self.rpc.ticketing.kpis(code, {"month": call.query["month"],
                                                "format": "csv" if wants_csv else "json"})
        if wants_csv:
            return Response(report["body"], status=200, content_type=report["content_type"])
        return report

    # -- ticketing: the on-call roster (issue 17) ------------------------------------------

    @route("PUT", "/sites/<string:code>/on-call", body=ticketing_schemas.OnCallIn,
           response=ticketing_schemas.OnCallOut, tag="ticketing", scope=site_in("path"),
           roles=SUPERVISORS,
           summary="Put a shift on the site's on-call roster: urgent repairs received in it page "
                   "the technician")
    def set_on_call(self, call, code):
        return self.rpc.ticketing.set_on_call(code, call.payload)

    @route("GET", "/sites/<string:code>/on-call", query=SiteListQuery,
           response=ticketing_schemas.OnCallOut, many=True, tag="ticketing",
           scope=site_in("path"), roles=SITE_STAFF,
           summary="The site's on-call roster: shifts not over yet, soonest first")
    def on_call_roster(self, call, code):
        return self.rpc.ticketing.on_call(code, call.query["cursor"], call.query["limit"])

    # -- notifications -------------------------------------------------------------------

    @route("GET", "/messages", query=MessageQuery, response=notifications_schemas.MessageOut,
           many=True, tag="notifications", scope=FILTERS, roles=ROLES,
           summary="Messages sent, by ticket, unit, recipient, channel or site")
    def list_messages(self, call):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.notifications.list_messages(filters, cursor, limit)

    @route("GET", "/messages/<string:message_id>", response=notifications_schemas.MessageDetailOut,
           tag="notifications", scope=OBJECT, roles=ROLES,
           summary="A message with every delivery attempt")
    def get_message(self, call, message_id):
        return self.rpc.notifications.get_message(message_id)

    @route("POST", "/messages/<string:message_id>/retry", response=notifications_schemas.MessageDetailOut,
           tag="notifications", scope=OBJECT, roles=SUPERVISORS,
           summary="One more try of a dead or failing message now")
    def retry_message(self, call, message_id):
        return self.rpc.notifications.retry(message_id)

    @route("GET", "/messages/<string:message_id>/document", tag="notifications",
           scope=OBJECT, roles=STAFF, summary="A letter as a printable A4 page (text/html)")
    def letter_document(self, call, message_id):
        document = self.rpc.notifications.letter_document(message_id)
        return Response(document["body"], status=200, content_type=document["content_type"])

    @route("POST", "/messages/<string:message_id>/posted", body=notifications_schemas.PostedIn,
           response=notifications_schemas.MessageDetailOut, tag="notifications",
           scope=OBJECT, roles=STAFF, summary="Mark a letter posted (with its express-mail number); it is then sent")
    def mark_letter_posted(self, call, message_id):
        return self.rpc.notifications.mark_posted(message_id, call.payload)

    @route("POST", "/persons/<string:person_id>/opt-outs", body=notifications_schemas.OptOutIn,
           response=notifications_schemas.OptOutOut, tag="notifications",
           scope=OWN_PERSON, roles=ROLES, summary="A person stops (opted_out: true) or resumes messages on a channel")
    def set_opt_out(self, call, person_id):
        return self.rpc.notifications.set_opt_out(person_id, call.payload["channel"],
                                                  call.payload.get("opted_out", True))

    @route("GET", "/templates", response=notifications_schemas.TemplateOut, many=True,
           tag="notifications", scope=ANY_CALLER, roles=STAFF,
           summary="Every message template, by channel, with the event it serves")
    def list_templates(self, call):
        return self.rpc.notifications.list_templates()

    @route("POST", "/templates/<string:name>/<string:channel>/preview",
           body=notifications_schemas.PreviewIn, response=notifications_schemas.PreviewOut,
           tag="notifications", scope=ANY_CALLER, roles=STAFF,
           summary="A template filled from its sample and the context given")
    def preview_template(self, call, name, channel):
        return self.rpc.notifications.preview_template(name, channel, call.payload)

    @route("POST", "/admin/sweeps/notifications", body=SweepIn,
           response=notifications_schemas.NotificationsSweepOut, tag="notifications",
           scope=ANY_CALLER, roles=SWEEPERS,
           summary="Run the warranty-expiry and delivery sweeps at `as_of` (as the timers do)")
    def sweep_notifications(self, call):
        return self.rpc.notifications.sweep(call.payload)

    # -- renovation ----------------------------------------------------------------------

    @route("POST", "/renovations", body=renovation_schemas.RenovationIn,
           response=renovation_schemas.RenovationOut, status=201, tag="renovation",
           scope=unit_in("body", "unit"), roles=renovation_domain.CREATORS,
           summary="Register a renovation application (the desk, or a resident for their own "
                   "unit); missing documents are named (422)")
    def create_renovation(self, call):
        return self.rpc.renovation.create_renovation(call.payload)

    @route("GET", "/renovations", query=RenovationQuery, response=renovation_schemas.RenovationOut,
           many=True, tag="renovation", scope=FILTERS, roles=SITE_STAFF,
           summary="Renovation applications by site, status or unit")
    def list_renovations(self, call):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.renovation.list_renovations(filters, cursor, limit)

    @route("GET", "/renovations/<string:renovation_id>", response=renovation_schemas.RenovationOut,
           tag="renovation", scope=OBJECT, roles=ROLES,
           summary="An application with its fees, permit, passes, deadlines and history")
    def get_renovation(self, call, renovation_id):
        return self.rpc.renovation.get_renovation(renovation_id)

    @route("POST", "/renovations/<string:renovation_id>/<string:action>",
           actions=renovation_schemas.ACTION_SCHEMAS, response=renovation_schemas.RenovationOut,
           tag="renovation", scope=OBJECT, roles=STAFF,
           summary="Take a step: review, sign, patrol, violation, rectified, request-inspection, "
                   "inspect, close (the step's roles are the flow's)")
    def act_on_renovation(self, call, renovation_id, action):
        return self.rpc.renovation.act(renovation_id, action, call.payload)

    @route("GET", "/passes/<string:number>", response=renovation_schemas.PassCheckOut, tag="renovation",
           scope=OBJECT, roles=GATE, summary="Gate check of a worker pass: valid, expired or revoked; unknown is 404")
    def check_pass(self, call, number):
        return self.rpc.renovation.check_pass(number)

    @route("POST", "/admin/sweeps/renovation", body=SweepIn,
           response=renovation_schemas.RenovationSweepOut, tag="renovation",
           scope=ANY_CALLER, roles=SWEEPERS,
           summary="Run renovation's sweep at `as_of` (as its timer does)")
    def sweep_renovation(self, call):
        return self.rpc.renovation.sweep(call.payload)

    # -- frontdesk: move-ins, defects, parking, release passes, activities, answers (SPEC §8) --

    @route("POST", "/move-ins", body=frontdesk_schemas.ArrivalIn,
           response=frontdesk_schemas.MoveInOut, status=201, tag="frontdesk",
           scope=unit_in("body", "unit"), roles=DESK,
           summary="An owner arrived for the move-in (入伙): the 15-minute wait starts")
    def create_move_in(self, call):
        return self.rpc.frontdesk.create_move_in(call.payload)

    @route("GET", "/move-ins/<string:move_in_id>", response=frontdesk_schemas.MoveInOut,
           tag="frontdesk", scope=OBJECT, roles=SITE_STAFF,
           summary="A move-in with its steps, deadlines, breaches and history")
    def get_move_in(self, call, move_in_id):
        return self.rpc.frontdesk.get_case("move_in", move_in_id)

    @route("POST", "/move-ins/<string:move_in_id>/<string:action>",
           actions=frontdesk_schemas.MOVE_IN_ACTIONS, response=frontdesk_schemas.MoveInOut,
           tag="frontdesk", scope=OBJECT, roles=DESK,
           summary="start, documents, inspection, complete (409 until identity, signatures and "
                   "inspection are recorded)")
    def act_on_move_in(self, call, move_in_id, action):
        return self.rpc.frontdesk.act("move_in", move_in_id, action, call.payload)

    @route("GET", "/defects", query=DefectQuery, response=frontdesk_schemas.DefectOut, many=True,
           tag="frontdesk", scope=FILTERS, roles=SITE_STAFF,
           summary="Defects found at move-in inspections (房屋遗留问题), by site and status")
    def list_defects(self, call):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.frontdesk.list_defects(filters, cursor, limit)

    @route("GET", "/defects/<string:defect_id>", response=frontdesk_schemas.DefectOut,
           tag="frontdesk", scope=OBJECT, roles=SITE_STAFF, summary="A defect")
    def get_defect(self, call, defect_id):
        return self.rpc.frontdesk.get_case("defect", defect_id)

    @route("POST", "/defects/<string:defect_id>/<string:action>",
           actions=frontdesk_schemas.DEFECT_ACTIONS, response=frontdesk_schemas.DefectOut,
           tag="frontdesk", scope=OBJECT, roles=DESK,
           summary="submit (a letter to the developer), progress, fixed (the owner is told), close")
    def act_on_defect(self, call, defect_id, action):
        return self.rpc.frontdesk.act("defect", defect_id, action, call.payload)

    @route("POST", "/parking-spaces", body=frontdesk_schemas.ParkingSpaceIn,
           response=frontdesk_schemas.ParkingSpaceOut, status=201, tag="frontdesk",
           scope=site_in("body", "site"), roles=DESK, summary="Register a parking space of a site")
    def create_parking_space(self, call):
        return self.rpc.frontdesk.create_parking_space(call.payload)

    @route("POST", "/parking-rentals", body=frontdesk_schemas.ParkingRentalIn,
           response=frontdesk_schemas.ParkingRentalOut, status=201, tag="frontdesk",
           scope=unit_in("body", "unit"), roles=DESK,
           summary="Apply to rent a space; a missing document is named (422)")
    def create_parking_rental(self, call):
        return self.rpc.frontdesk.create_parking_rental(call.payload)

    @route("GET", "/parking-rentals/<string:rental_id>", response=frontdesk_schemas.ParkingRentalOut,
           tag="frontdesk", scope=OBJECT, roles=SITE_STAFF, summary="A parking rental")
    def get_parking_rental(self, call, rental_id):
        return self.rpc.frontdesk.get_case("parking_rental", rental_id)

    @route("POST", "/parking-rentals/<string:rental_id>/<string:action>",
           actions=frontdesk_schemas.PARKING_ACTIONS, response=frontdesk_schemas.ParkingRentalOut,
           tag="frontdesk", scope=OBJECT, roles=DESK,
           summary="approve (a manager signs: active, billed monthly; one per space), reject, end")
    def act_on_parking_rental(self, call, rental_id, action):
        return self.rpc.frontdesk.act("parking_rental", rental_id, action, call.payload)

    @route("POST", "/release-passes", body=frontdesk_schemas.ReleasePassIn,
           response=frontdesk_schemas.ReleasePassOut, status=201, tag="frontdesk",
           scope=unit_in("body", "unit"), roles=(RESIDENT, *DESK),
           summary="Ask for a release pass (放行条): confirmed at once for the owner, else the "
                   "owner is asked")
    def create_release_pass(self, call):
        return self.rpc.frontdesk.create_release_pass(call.payload)

    @route("GET", "/release-passes/<string:number>/check",
           response=frontdesk_schemas.ReleasePassCheckOut, tag="frontdesk", scope=OBJECT,
           roles=GATE, summary="The gate's check of a pass by number; unknown is 404")
    def check_release_pass(self, call, number):
        return self.rpc.frontdesk.check_release_pass(number)

    @route("POST", "/release-passes/<string:number>/use", body=frontdesk_schemas.UseIn,
           response=frontdesk_schemas.ReleasePassOut, tag="frontdesk", scope=OBJECT, roles=GATE,
           summary="The goods went out: guard and time recorded; a second use is 409")
    def use_release_pass(self, call, number):
        return self.rpc.frontdesk.use_release_pass(number, call.payload)

    @route("GET", "/release-passes/<string:pass_id>", response=frontdesk_schemas.ReleasePassOut,
           tag="frontdesk", scope=OBJECT, roles=(RESIDENT, *SITE_STAFF), summary="A release pass")
    def get_release_pass(self, call, pass_id):
        return self.rpc.frontdesk.get_case("release_pass", pass_id)

    @route("POST", "/release-passes/<string:pass_id>/<string:action>",
           actions=frontdesk_schemas.PASS_ACTIONS, response=frontdesk_schemas.ReleasePassOut,
           tag="frontdesk", scope=OBJECT, roles=(RESIDENT, *DESK),
           summary="confirm {by: resident|phone} (the owner), refuse {reason}")
    def act_on_release_pass(self, call, pass_id, action):
        return self.rpc.frontdesk.act("release_pass", pass_id, action, call.payload)

    @route("POST", "/activities", body=frontdesk_schemas.ActivityIn,
           response=frontdesk_schemas.ActivityOut, status=201, tag="frontdesk",
           scope=site_in("body", "site"), roles=DESK, summary="Plan a community activity")
    def create_activity(self, call):
        return self.rpc.frontdesk.create_activity(call.payload)

    @route("GET", "/activities/<string:activity_id>", response=frontdesk_schemas.ActivityOut,
           tag="frontdesk", scope=OBJECT, roles=ROLES,
           summary="An activity with its participants, revisit_rate and satisfaction_rate")
    def get_activity(self, call, activity_id):
        return self.rpc.frontdesk.get_case("activity", activity_id)

    @route("POST", "/activities/<string:activity_id>/<string:action>",
           actions=frontdesk_schemas.ACTIVITY_ACTIONS, response=frontdesk_schemas.ActivityOut,
           tag="frontdesk", scope=OBJECT, roles=(RESIDENT, *DESK),
           summary="publish (≥ 3 days ahead, else 409), register, complete, revisit, cancel")
    def act_on_activity(self, call, activity_id, action):
        return self.rpc.frontdesk.act("activity", activity_id, action, call.payload)

    @route("GET", "/sites/<string:code>/answers", query=AnswerQuery,
           response=frontdesk_schemas.AnswerOut, many=True, tag="frontdesk",
           scope=site_in("path"), roles=SITE_STAFF,
           summary="The site's answer book (答客问): ?q= searches questions and answers; "
                   "entries due for their half-yearly review are marked")
    def list_answers(self, call, code):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.frontdesk.list_answers(code, filters, cursor, limit)

    @route("POST", "/sites/<string:code>/answers", body=frontdesk_schemas.AnswerEntryIn,
           response=frontdesk_schemas.AnswerOut, status=201, tag="frontdesk",
           scope=site_in("path"), roles=DESK, summary="Add a standard answer")
    def create_answer(self, call, code):
        return self.rpc.frontdesk.create_answer(code, call.payload)

    @route("POST", "/answers/<string:answer_id>/review", body=frontdesk_schemas.AnswerReviewIn,
           response=frontdesk_schemas.AnswerOut, tag="frontdesk", scope=OBJECT, roles=DESK,
           summary="The half-yearly review of an answer-book entry: rewritten where it changed "
                   "(or confirmed as it is), due again in 6 months")
    def review_answer(self, call, answer_id):
        return self.rpc.frontdesk.review_answer(answer_id, call.payload)

    @route("GET", "/sites/<string:code>/frontdesk-kpis", query=frontdesk_schemas.KpiIn,
           response=frontdesk_schemas.FrontdeskKpisOut, tag="frontdesk",
           scope=site_in("path"), roles=SITE_STAFF,
           summary="The month's front-desk figures: move-in timeliness, rentals within 20 "
                   "minutes, defects, activities and their rates")
    def frontdesk_kpis(self, call, code):
        return self.rpc.frontdesk.kpis(code, call.query)

    @route("POST", "/admin/sweeps/frontdesk", body=SweepIn,
           response=frontdesk_schemas.FrontdeskSweepOut, tag="frontdesk",
           scope=ANY_CALLER, roles=SWEEPERS,
           summary="Run frontdesk's sweep at `as_of` (as its timer does)")
    def sweep_frontdesk(self, call):
        return self.rpc.frontdesk.sweep(call.payload)

    # -- billing -------------------------------------------------------------------------

    @route("POST", "/fee-schedules", body=billing_schemas.FeeScheduleIn, status=201, tag="billing",
           scope=site_in("body", "site"), roles=MANAGERS,
           summary="Set a site's fee schedule (in force for the next invoices)")
    def set_fee_schedule(self, call):
        return self.rpc.billing.set_fee_schedule(call.payload)

    @route("POST", "/billing/runs", body=billing_schemas.BillingRunIn, tag="billing",
           scope=site_in("body", "site"), roles=MANAGERS,
           summary="The monthly run of a site and period: one invoice per unit, once")
    def run_billing(self, call):
        return self.rpc.billing.run_billing(call.payload)

    @route("POST", "/invoices", body=billing_schemas.InvoiceIn, status=201, tag="billing",
           scope=unit_in("body", "unit"), roles=DESK,
           summary="An invoice for a unit, also for a past period (a migration of arrears)")
    def create_invoice(self, call):
        return self.rpc.billing.create_invoice(call.payload)

    @route("POST", "/payments", body=billing_schemas.PaymentIn, status=201, tag="billing",
           scope=unit_in("body", "unit"), roles=DESK,
           summary="A payment: allocated to the oldest open invoice first; a receipt number")
    def record_payment(self, call):
        return self.rpc.billing.record_payment(call.payload)

    @route("GET", "/units/<string:code>/account", query=billing_schemas.AccountQuery, tag="billing",
           scope=unit_in("path"), roles=ROLES,
           summary="Balance, open invoices, deposits and arrears {months, stage, late_fee}")
    def get_account(self, call, code):
        return self.rpc.billing.get_account(code, call.query.get("as_of"))

    @route("GET", "/arrears", query=ArrearsQuery, tag="billing",
           scope=FILTERS, roles=RECORD_READERS,
           summary="Units in arrears by site and stage (reminder, lawyer_letter, lawsuit)")
    def list_arrears(self, call):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.billing.list_arrears(filters, cursor, limit)

    @route("GET", "/billing/collection", query=billing_schemas.CollectionQuery, tag="billing",
           scope=FILTERS, roles=RECORD_READERS,
           summary="Collection rate of a site and period (target 98 %)")
    def collection_rate(self, call):
        return self.rpc.billing.collection_rate(call.query)

    @route("POST", "/admin/sweeps/billing", body=SweepIn, tag="billing",
           scope=ANY_CALLER, roles=SWEEPERS,
           summary="Run billing's arrears sweep for the day of `as_of` at each site (as its timer does)")
    def sweep_billing(self, call):
        return self.rpc.billing.sweep(call.payload)

    # -- billing: late fees waived and lawsuits after the referral (issue 17) ------------

    @route("POST", "/late-fees/<string:invoice_id>/waive", body=billing_schemas.WaiverIn,
           tag="billing", scope=OBJECT, roles=MANAGERS,
           summary="Waive a posted late fee (减免), with the reason")
    def waive_late_fee(self, call, invoice_id):
        return self.rpc.billing.waive_late_fee(invoice_id, call.payload)

    @route("GET", "/lawsuits", query=LawsuitQuery, response=billing_schemas.LawsuitOut, many=True,
           tag="billing", scope=FILTERS, roles=RECORD_READERS,
           summary="Lawsuits after an arrears referral, by site and status")
    def list_lawsuits(self, call):
        filters, cursor, limit = page_args(call.query)
        return self.rpc.billing.list_lawsuits(filters, cursor, limit)

    @route("POST", "/lawsuits/<string:code>/<string:action>", actions=billing_schemas.LAWSUIT_ACTIONS,
           response=billing_schemas.LawsuitOut, tag="billing", scope=unit_in("path"), roles=LEGAL,
           summary="The legal adviser records the unit's lawsuit: file, judge, preserve, close")
    def act_on_lawsuit(self, call, code, action):
        return self.rpc.billing.act_on_lawsuit(code, action, call.payload)
    # -- the working-day calendar (kept by notifications, applied by every service) -------

    @route("PUT", "/calendar/<int:year>", body=notifications_schemas.CalendarIn,
           response=notifications_schemas.CalendarOut, tag="calendar", scope=ANY_CALLER,
           roles=HEAD_OFFICE,
           summary="Enter a year's statutory holidays and adjusted working days (State Council "
                   "arrangement); deadlines computed from then on use it")
    def enter_calendar(self, call, year):
        return self.rpc.notifications.enter_calendar(year, call.payload)

    @route("GET", "/calendar/<int:year>", response=notifications_schemas.CalendarOut,
           tag="calendar", scope=ANY_CALLER, roles=STAFF,
           summary="A year's working-day calendar and its source: library, entered or weekdays_only")
    def get_calendar(self, call, year):
        return self.rpc.notifications.get_calendar(year)

    # -- customer care (SPEC §8.6, issue 16): contacts, not moved in, the committee report -

    @route("POST", "/persons/<string:person_id>/contacts", body=registry_schemas.ContactIn,
           response=registry_schemas.ContactOut, status=201, tag="registry",
           scope=OWN_PERSON, roles=DESK,
           summary="Record a contact with a person (a call, a visit): who (the caller), when, "
                   "channel, note; key customers and committee members are held to theirs")
    def record_contact(self, call, person_id):
        return self.rpc.registry.record_contact(person_id, call.payload)

    @route("GET", "/persons/<string:person_id>/contacts", response=registry_schemas.ContactOut,
           many=True, tag="registry", scope=OWN_PERSON, roles=DESK,
           summary="Every contact recorded with a person, oldest first")
    def list_contacts(self, call, person_id):
        return self.rpc.registry.list_contacts(person_id)

    @route("GET", "/sites/<string:code>/not-moved-in", query=SiteListQuery,
           response=registry_schemas.NotMovedInOut, many=True, tag="registry",
           scope=site_in("path"), roles=DESK,
           summary="Units handed over and not moved in, oldest handover first, with the owner's "
                   "masked phone and the contacts recorded with them (客户入住动态表)")
    def not_moved_in(self, call, code):
        return self.rpc.registry.not_moved_in(code, call.query["cursor"], call.query["limit"])

    @route("GET", "/sites/<string:code>/committee-report",
           query=ticketing_schemas.CommitteeReportQuery,
           response=ticketing_schemas.CommitteeReportOut, tag="ticketing",
           scope=site_in("path"), roles=SUPERVISORS,
           media={"text/html": "the printable A4 page with SVG charts (the default)"},
           summary="The monthly work report to the owners' committee: a printable A4 page "
                   "(text/html), or JSON with Accept: application/json or ?format=json; its "
                   "figures are the site's KPI report's")
    def committee_report(self, call, code):
        wants_json = (call.query["format"] == "json"
                      or "application/json" in call.request.headers.get("Accept", ""))
        report = self.rpc.ticketing.committee_report(code, {
            "month": call.query["month"], "format": "json" if wants_json else "html"})
        if wants_json:
            return report
        return Response(report["body"], status=200, content_type=report["content_type"])

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

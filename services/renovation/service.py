"""renovation: applications, review, fees, permit and passes, patrols, inspection, deposit
refund (SPEC §3)."""
import logging
from decimal import Decimal

from nameko.timer import timer
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from services.common import calendar, entrypoints
from services.common.business import BusinessGauges
from services.common.db import Database, locking, new_id, paginate, within_sites
from services.common.entrypoints import command, handles, load
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common.metrics import OPEN_CASES
from services.common.roles import GATE, SITE_STAFF, SWEEPERS
from services.common.rpc import TimedRpc
from services.common.sweeps import SweepIn
from services.common.units import site_of_unit
from services.renovation import domain
from services.renovation.domain import Renovation
from services.renovation.schemas import (
    ACTION_SCHEMAS, PassCheckOut, RenovationFilters, RenovationIn, RenovationOut,
)
from services.renovation import storage
from services.renovation.storage import Base, index_passes, passes, take_step

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60
SWEEP_BATCH = 500


class RenovationService(entrypoints.ServiceBase):
    name = "renovation"

    uow = Database(Base)
    business = BusinessGauges({OPEN_CASES: storage.open_cases})
    rpc = TimedRpc()

    @command
    def create_renovation(self, payload):
        identity = self.caller.identity
        identity.require_role("register renovations", *domain.CREATORS)
        data = load(RenovationIn(), payload)
        identity.require_site(site_of_unit(data["unit"]))
        missing = domain.missing_documents(data["documents"], data["work_items"])
        if missing:
            names = ", ".join(f"{code} ({domain.DOCUMENTS[code]})" for code in missing)
            raise ValidationFailed(f"documents missing: {names}", {
                "errors": {"documents": [f"missing: {names}"]}, "missing_documents": missing})
        contact, unit = self._unit(data["unit"])
        if identity.is_resident and data["applicant"]["is_owner"] and \
                (contact.get("owner") or {}).get("person_id") != identity.person_id:
            raise ValidationFailed.from_messages({"applicant": {"is_owner": [
                "the unit's owner is someone else: apply as a tenant with the owner's consent"]}})
        now = self.clock()
        try:
            renovation = Renovation.submit(
                id=new_id(), site=contact["site"], unit=data["unit"], timezone=contact["timezone"],
                area_m2=unit["area_m2"], data=data, now=now, by=identity.sub, role=identity.role,
                policy=domain.RenovationPolicy())
        except domain.InvalidField as exc:
            raise ValidationFailed.from_messages({exc.field: [str(exc)]}) from exc
        self.uow.session.add(renovation)
        self.uow.commit()
        return self._out(renovation)

    @command
    def get_renovation(self, renovation_id):
        return self._out(self._visible(renovation_id))

    @command
    def list_renovations(self, filters=None, cursor=None, limit=50):
        identity = self.caller.identity
        identity.require_role("list renovations", *SITE_STAFF)
        f = load(RenovationFilters(), filters or {})
        stmt = within_sites(select(Renovation), Renovation.site, identity, f["site"])
        for name in ("status", "unit"):
            if f[name]:
                stmt = stmt.where(getattr(Renovation, name) == f[name])
        rows, next_cursor = paginate(self.uow.session, stmt, Renovation.id, cursor, limit)
        return {"items": [self._out(r) for r in rows], "next_cursor": next_cursor}

    @command
    def act(self, renovation_id, action, payload=None):
        identity = self.caller.identity
        schema = ACTION_SCHEMAS.get(action)
        renovation = self._visible(renovation_id)
        if schema is None:
            raise NotFound(f"no action {action}",
                           {"allowed_actions": renovation.allowed_actions(identity.role)})
        data = load(schema(), payload or {})
        if action == "review" and data["decision"] == "approved":
            renovation.workflow.check(renovation, action, identity.role)   # 403/409 before asking billing
            data["fee_table"] = self._fee_table(renovation.site)
        try:
            renovation.apply(action, data, now=self.clock(), by=identity.sub, role=identity.role)
        except domain.InvalidField as exc:
            raise ValidationFailed.from_messages({exc.field: [str(exc)]}) from exc
        self._save(renovation)
        return self._out(renovation)

    @command
    def check_pass(self, number):
        """The gate's look-up: valid, expired or revoked; an unknown number is 404."""
        identity = self.caller.identity
        identity.require_role("check passes", *GATE)
        row = self.uow.session.execute(select(passes).where(passes.c.number == number)).first()
        if row is None or not identity.can_see_site(row.site):
            raise NotFound(f"no pass {number}", {"number": number})
        renovation = self.uow.session.get(Renovation, row.renovation_id)
        entry = next(p for p in renovation.passes if p["number"] == number)
        today = self.clock().astimezone(calendar.zone(renovation.timezone)).date()
        return PassCheckOut().dump({**entry, "status": domain.pass_status(entry, today),
                               "renovation_id": renovation.id})

    # -- billing tells us what was paid --------------------------------------------------

    @handles("billing", "invoice_paid",
             when=lambda data: (data.get("reference") or {}).get("renovation_id"))
    def on_invoice_paid(self, data, envelope):
        """Ours when the invoice names a renovation; a monthly bill or a repair is not."""
        renovation_id = data["reference"]["renovation_id"]
        renovation = self.uow.session.get(Renovation, renovation_id)
        if renovation is None:
            log.error("invoice %s paid for unknown renovation %s", data["invoice_id"], renovation_id)
            self.uow.commit()
            return
        renovation.record_payment(data["invoice_id"], data["amount"], now=self.clock())
        self._save(renovation)

    @handles("billing", "deposit_refunded")
    def on_deposit_refunded(self, data, envelope):
        """billing refunded the deposit: the file is archived by itself (a file closed by hand
        for a refund made outside the system stays as it is)."""
        renovation = self.uow.session.get(Renovation, data["renovation_id"])
        if renovation is None or not renovation.deposit_refunded(data["amount"], now=self.clock()):
            log.info("deposit of renovation %s refunded; nothing to archive", data["renovation_id"],
                     extra={"status": renovation and renovation.status})
            self.uow.commit()
            return
        self._save(renovation)

    # -- the sweep -----------------------------------------------------------------------

    @command(replays=False)
    def sweep(self, payload):
        """Escalate unrectified violations and alert breached deadlines up to `as_of`, each
        once however many replicas sweep at the same time."""
        self.caller.identity.require_role("run the renovation sweep", *SWEEPERS)
        return self._sweep(load(SweepIn(), payload)["as_of"])

    @timer(interval=SWEEP_SECONDS)
    def sweep_now(self):
        self._sweep(self.clock())

    def _sweep(self, as_of):
        """Each due application in a transaction of its own, its row locked (skipped by the
        other replicas on PostgreSQL), each step claimed by a unique row; an application another
        replica changed meanwhile is left to it."""
        session = self.uow.session
        due = session.scalars(select(Renovation.id).where(Renovation.next_due_at <= as_of)
                              .order_by(Renovation.next_due_at).limit(SWEEP_BATCH)).all()
        report = {"as_of": as_of.isoformat(), "breaches": [], "escalations": []}
        for renovation_id in due:
            try:
                self._sweep_one(renovation_id, as_of, report)
            except StaleDataError:
                session.rollback()
        return report

    def _sweep_one(self, renovation_id, as_of, report):
        session, now = self.uow.session, self.clock()
        renovation = session.scalars(locking(
            select(Renovation).where(Renovation.id == renovation_id, Renovation.next_due_at <= as_of)
            .execution_options(populate_existing=True), session.get_bind())).first()
        if renovation is None:      # done meanwhile, or being done by another replica
            session.rollback()
            return
        taken = {"breaches": [], "escalations": []}
        for notice in renovation.overdue_violations(as_of):
            if take_step(session, renovation.id, f"escalate:{notice['number']}", now):
                renovation.escalate(notice["number"], now=now)
                taken["escalations"].append({"renovation_id": renovation.id,
                                             "violation": notice["number"]})
        for deadline, due_at in renovation.due_breaches(as_of):
            if take_step(session, renovation.id, f"breach:{deadline}", now):
                renovation.record_breach(deadline, due_at, now=now)
                taken["breaches"].append({"renovation_id": renovation.id, "deadline": deadline,
                                          "due_at": due_at.isoformat()})
        renovation.refresh_due()
        self._record_events(renovation)
        self.uow.commit()
        for name, steps in taken.items():
            report[name].extend(steps)

    # -- helpers -------------------------------------------------------------------------

    def _save(self, renovation):
        """Two workers changing one application at once: the later one's write is refused
        (the row's version moved) and nothing of it is kept; an event is redelivered."""
        try:
            index_passes(self.uow.session, renovation)
            self._record_events(renovation)
            self.uow.commit()
        except StaleDataError as exc:
            raise Conflict("the application changed meanwhile; try again") from exc

    def _record_events(self, renovation):
        for event, data in renovation.pull_events():
            self.uow.add_event(event, data, site=renovation.site)

    def _visible(self, renovation_id):
        # a renovation is the site's business with the owner's contractor: no resident sees it
        return self.caller.identity.require_visible(
            self.uow.session.get(Renovation, renovation_id), f"renovation {renovation_id}",
            {"renovation_id": renovation_id})

    def _fee_table(self, site):
        """The site's renovation fees from billing's fee schedule in force, asked at approval:
        an approval is rare and must charge what the schedule says now, so renovation keeps no
        copy that could lag behind it; a site without a schedule cannot approve (422)."""
        fees = self.rpc.billing.renovation_fees(site)
        return domain.FeeTable(management_per_m2=Decimal(fees["management_per_m2"]),
                               deposit=Decimal(fees["deposit"]),
                               debris_removal=Decimal(fees["debris_removal"]))

    def _unit(self, code):
        """Site time zone and the charge area from registry; an unknown unit is the caller's
        mistake, named by its field."""
        try:
            return self.rpc.registry.unit_contact(code), self.rpc.registry.get_unit(code)
        except NotFound as exc:
            raise ValidationFailed.from_messages({"unit": [str(exc)]}) from exc

    def _out(self, renovation):
        out = RenovationOut(exclude=("allowed_actions",)).dump(renovation)
        out["allowed_actions"] = renovation.allowed_actions(self.caller.identity.role)
        return out

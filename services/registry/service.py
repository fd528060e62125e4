"""registry: sites, units, the people in them and their vehicles, and the change requests that
base info is changed by (SPEC §1)."""
import logging
from datetime import datetime, timedelta

from nameko.timer import timer
from sqlalchemy import func, insert, select, update

from services.common.calendar import zone
from services.common.casefile import json_safe
from services.common.clock import as_utc
from services.common.db import (
    Database, decode_cursor, encode_cursor, insert_once, locking, new_id, page_size, paginate,
    within_sites,
)
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common import entrypoints, privacy
from services.common.entrypoints import command, handles, load
from services.common.roles import DESK, MANAGERS, RECORD_READERS, SITE_STAFF, STAFF, SWEEPERS
from services.common.sweeps import SweepIn
from services.common.units import site_of_unit
from services.registry import domain, storage
from services.registry.schemas import (
    CHANGES, ApproveIn, AssistantIn, ChangeRequestIn, ChangeRequestOut, ChangeRequestFilters,
    ContactIn, ContactOut, MoveInIn, NotMovedInOut, PersonAddIn, PersonOut, PersonReadIn, RegistryKpiOut, RegistryKpiQuery, RejectIn,
    SiteIn, SiteOut, UnitHistoryOut, UnitIn, UnitOut, VehicleIn, VehicleOut,
)
from services.registry.storage import (
    AccessLog, Base, ChangeRequest, Contact, ContactBreach, Occupancy, Person, Site, Unit,
    Vehicle, change_requests,
)

log = logging.getLogger(__name__)

DECISIONS = {"approve": ApproveIn, "reject": RejectIn}
# Fields of the JSON columns, stored as JSON holds them.
JSON_FIELDS = ("lease", "meters")
# Customer-care flags (SPEC §8.6): set through change requests, the instant each was set kept.
CARE_FLAGS = tuple(domain.CONTACT_PERIOD_MONTHS)

class RegistryService(entrypoints.ServiceBase):
    name = "registry"

    uow = Database(Base)

    @command
    def create_site(self, payload):
        self.caller.identity.require_role("create sites", *MANAGERS)
        data = load(SiteIn(), payload)
        self.caller.identity.require_site(data["code"])
        session = self.uow.session
        if session.get(Site, data["code"]):
            raise Conflict(f"site {data['code']} already exists", {"code": data["code"]})
        site = Site(**data, created_at=self.clock())
        session.add(site)
        self.uow.commit()
        return SiteOut().dump(site)

    @command
    def get_site(self, code):
        self.caller.identity.require_site(code)
        return SiteOut().dump(self._site(code))

    @command
    def list_sites(self, cursor=None, limit=50):
        stmt = within_sites(select(Site), Site.code, self.caller.identity)
        rows, next_cursor = paginate(self.uow.session, stmt, Site.code, cursor, limit)
        return {"items": SiteOut(many=True).dump(rows), "next_cursor": next_cursor}

    @command
    def create_unit(self, payload):
        identity = self.caller.identity
        identity.require_role("register units", *DESK)
        data = load(UnitIn(), payload)
        data.pop("site")
        site_code = site_of_unit(data["code"])
        identity.require_site(site_code)
        session = self.uow.session
        if session.get(Site, site_code) is None:
            raise ValidationFailed.from_messages({"code": [f"no site {site_code} for this unit code"]})
        if session.get(Unit, data["code"]):
            raise Conflict(f"unit {data['code']} already exists", {"code": data["code"]})
        now = self.clock()
        owner_data = data.pop("owner")
        entry = self._entry(data.pop("collected_at"), now, identity)
        data["warranty_until"] = domain.warranty_end(data["handover_date"], data["warranty_until"])
        unit = Unit(**data, site=site_code, created_at=now, **entry)
        owner = Person(id=new_id(), created_at=now, site=site_code, **owner_data, **entry)
        session.add_all([unit, owner])
        session.flush()
        session.add(Occupancy(unit=unit.code, person_id=owner.id, relation="owner"))
        self._announce(unit, "created")
        self.uow.commit()
        return self._unit_out(unit)

    @command
    def record_move_in(self, code, payload):
        """The owner moved in (入伙) and a customer-affairs assistant looks after them; announced
        so that the owner is welcomed by SMS with the assistant's mobile (000). A shortcut for
        a move-in done outside frontdesk (migrating records); frontdesk's completed move-in
        (`frontdesk.moved_in`) comes to the same through `on_moved_in`."""
        unit = self._unit_to_edit(code, "record move-ins")
        data = load(MoveInIn(), payload)
        if unit.moved_in_on is not None:
            raise Conflict(f"unit {code} moved in on {unit.moved_in_on.isoformat()}",
                           {"unit": code, "moved_in_on": unit.moved_in_on.isoformat()})
        site_today = self.clock().astimezone(zone(self._site(unit.site).timezone)).date()
        moved_in_on = data["moved_in_on"] or site_today
        problem = domain.move_in_date_problem(moved_in_on, site_today)
        if problem:
            raise ValidationFailed.from_messages({"moved_in_on": [problem]})
        self._move_in(unit, moved_in_on, data["assistant"])
        self.uow.commit()
        return self._unit_out(unit)

    @handles("frontdesk", "moved_in")
    def on_moved_in(self, data, envelope):
        """frontdesk completed a move-in: the occupancy and the assistant, as the shortcut
        records them; a unit already moved in keeps its first date."""
        unit = self.uow.session.get(Unit, data["unit"], with_for_update=True)
        if unit is not None and unit.moved_in_on is None:
            self._move_in(unit, data["moved_in_on"], data["assistant"])
        self.uow.commit()

    def _move_in(self, unit, moved_in_on, assistant):
        unit.moved_in_on = moved_in_on
        unit.assistant_name, unit.assistant_phone = assistant["name"], assistant["phone"]
        self._announce(unit, "moved_in")

    @command
    def assign_assistant(self, code, payload):
        """Another customer-affairs assistant looks after the unit; announced so that the owner
        is told (000: 部门更换客服人员,及时发送短信通知客户). Naming the current one again
        changes nothing and tells nobody, so that a retried request sends no second SMS."""
        unit = self._unit_to_edit(code, "assign assistants")
        assistant = load(AssistantIn(), payload)["assistant"]
        if (unit.assistant_name, unit.assistant_phone) != (assistant["name"], assistant["phone"]):
            unit.assistant_name, unit.assistant_phone = assistant["name"], assistant["phone"]
            self._announce(unit, "assistant_changed")
            self.uow.commit()
        return self._unit_out(unit)

    @command
    def get_unit(self, code):
        unit = self._visible_unit(code)
        return self._unit_out(unit)

    @command
    def list_units(self, site, cursor=None, limit=50):
        identity = self.caller.identity
        stmt = within_sites(select(Unit), Unit.site, identity, site)
        if identity.is_resident:
            stmt = stmt.where(Unit.code.in_(self._units_of(identity.person_id)))
        rows, next_cursor = paginate(self.uow.session, stmt, Unit.code, cursor, limit)
        return {"items": [self._unit_out(u) for u in rows], "next_cursor": next_cursor}

    @command
    def get_person(self, person_id, payload):
        """The full record (phone, ID number); the read is written to the access log."""
        identity = self.caller.identity
        reason = load(PersonReadIn(), payload)["reason"]
        if not identity.is_resident:
            identity.require_role("read full personal records", *RECORD_READERS)
        person = self._visible_person(person_id, conceal=True)
        self.uow.session.add(AccessLog(id=new_id(), person_id=person_id, read_by=identity.sub,
                                       role=identity.role, reason=reason, at=self.clock()))
        self.uow.commit()
        return self._person_out(person)

    @command
    def access_log(self, person_id, cursor=None, limit=50):
        self.caller.identity.require_role("read the access log", *MANAGERS)
        stmt = select(AccessLog).where(AccessLog.person_id == person_id)
        rows, next_cursor = paginate(self.uow.session, stmt, AccessLog.id, cursor, limit)
        return {"items": [{"person_id": r.person_id, "read_by": r.read_by, "role": r.role,
                           "reason": r.reason, "at": r.at.isoformat()} for r in rows],
                "next_cursor": next_cursor}

    @command
    def unit_contact(self, code):
        """The owner's contact for services that write to residents (ticketing, notifications)."""
        unit = self._visible_unit(code)
        site = self._site(unit.site)
        return {"unit": unit.code, "site": unit.site, "timezone": site.timezone,
                "owner": _contact(self._owner_of(unit.code))}

    @command
    def count_units(self, site):
        """Households of a site (its active units), for per-household rates such as the
        complaint rate (ticketing's monthly KPIs)."""
        self.caller.identity.require_site(site)
        self._site(site)
        return self.uow.session.scalar(select(func.count()).select_from(Unit).where(
            Unit.site == site, Unit.active.is_(True)))

    # -- people and vehicles ------------------------------------------------------------

    @command
    def add_person(self, code, payload):
        """An owner, tenant or household member of the unit; a tenant only with the lease and the
        owner's written consent. Unverified until another staff member verifies it."""
        identity = self.caller.identity
        unit = self._unit_to_edit(code, "register people")
        data = load(PersonAddIn(), payload)
        problems = domain.tenant_problems(data["relation"], data["lease"], data["owner_consent"])
        if problems:
            raise ValidationFailed.from_messages(problems)
        now = self.clock()
        relation = data.pop("relation")
        data["lease"] = json_safe(data["lease"])
        person = Person(id=new_id(), created_at=now, site=unit.site,
                        **self._entry(data.pop("collected_at"), now, identity), **data)
        self.uow.session.add(person)
        self.uow.session.flush()
        self.uow.session.add(Occupancy(unit=unit.code, person_id=person.id, relation=relation))
        if relation == "owner":
            self._announce(unit, "updated")
        self.uow.commit()
        return self._person_out(person, masked=True)

    @command
    def list_people(self, code):
        """The unit's people, phone and ID masked, unverified ones flagged."""
        unit = self._visible_unit(code)
        return {"items": [self._person_out(p, masked=True) for p in self._people_of(unit.code)],
                "next_cursor": None}

    @command
    def verify_person(self, person_id):
        """Four eyes (复核): by a staff member other than the one who entered it (409 else)."""
        identity = self.caller.identity
        identity.require_role("verify records", *DESK)
        person = self._visible_person(person_id, lock=True)
        problem = domain.verify_problem(person.entered_by, person.verified_by, identity.sub)
        if problem:
            raise Conflict(problem, {"person_id": person_id, "entered_by": person.entered_by,
                                     **({"verified_by": person.verified_by} if person.verified_by else {})})
        person.verified_by, person.verified_at = identity.sub, self.clock()
        self.uow.commit()
        return self._person_out(person, masked=True)

    @command
    def person_scope(self, person_id):
        """Whether the caller may act for this person (a resident only for themselves, staff at
        the person's site): 404 for no such person, 403 for another site's. Other services ask
        before they keep anything about a person (notifications' opt-outs)."""
        identity = self.caller.identity
        if identity.is_resident and identity.person_id != person_id:
            raise NotFound(f"no person {person_id}", {"person_id": person_id})
        person = self._visible_person(person_id)
        return {"person_id": person.id, "site": person.site}

    @command
    def resident_units(self, person_id):
        """The units a resident is recorded in (as owner, tenant or household member), for the
        gateway to scope what the resident may see; only the resident themselves, or staff."""
        identity = self.caller.identity
        if identity.is_resident and identity.person_id != person_id:
            raise NotFound(f"no person {person_id}", {"person_id": person_id})
        person = self.uow.session.get(Person, person_id)
        return [] if person is None or not person.active else sorted(self._units_of(person_id))

    @command
    def add_vehicle(self, code, payload):
        identity = self.caller.identity
        unit = self._unit_to_edit(code, "register vehicles")
        data = load(VehicleIn(), payload)
        if data["person_id"] not in {p.id for p in self._people_of(unit.code)}:
            raise ValidationFailed.from_messages({"person_id": [f"no person of unit {code}"]})
        if self._active_plate(unit.site, data["plate"]):
            raise Conflict(f"vehicle {data['plate']} is registered at site {unit.site}",
                           {"plate": data["plate"]})
        vehicle = Vehicle(id=new_id(), site=unit.site, unit=unit.code, created_at=self.clock(),
                          entered_by=identity.sub, **data)
        self.uow.session.add(vehicle)
        self.uow.commit()
        return VehicleOut().dump(vehicle)

    @command
    def list_vehicles(self, code):
        unit = self._visible_unit(code)
        rows = self.uow.session.scalars(select(Vehicle).where(Vehicle.unit == unit.code)
                                        .order_by(Vehicle.created_at, Vehicle.id))
        return {"items": VehicleOut(many=True).dump(rows), "next_cursor": None}

    # -- parking rentals (frontdesk, SPEC §8.2): the vehicle's space and contract ------------

    @handles("frontdesk", "parking_rented")
    def on_parking_rented(self, data, envelope):
        """A rental signed: the unit's vehicle with that plate gets the space and the contract
        number. The front desk checked the vehicle's licence for the rental, so a plate the unit
        has no record of is recorded on it (entered by `frontdesk:<rental id>`), for the renting
        person; a plate already active on another unit of the site is left where it is (one
        active record per plate and site) and logged."""
        session = self.uow.session
        unit = session.get(Unit, data["unit"])
        if unit is None:
            log.warning("parking rental %s names unknown unit %s", data["rental_id"], data["unit"])
        else:
            vehicle = self._rented_vehicle(unit, data)
            if vehicle is not None:
                vehicle.parking_space, vehicle.rental_contract_no = (
                    data["space_number"], data["contract_no"])
        self.uow.commit()

    @handles("frontdesk", "parking_ended")
    def on_parking_ended(self, data, envelope):
        """A rental ended: its vehicle's space and contract are cleared, unless the vehicle has
        been given another rental's since."""
        vehicle = self.uow.session.scalars(select(Vehicle).where(
            Vehicle.unit == data["unit"], Vehicle.plate == data["plate"],
            Vehicle.active.is_(True)).with_for_update()).first()
        if vehicle is not None and vehicle.rental_contract_no in (None, data["contract_no"]):
            vehicle.parking_space = vehicle.rental_contract_no = None
        self.uow.commit()

    def _rented_vehicle(self, unit, data):
        session = self.uow.session
        active = session.scalars(select(Vehicle).where(
            Vehicle.site == unit.site, Vehicle.plate == data["plate"], Vehicle.active.is_(True))
            .with_for_update()).first()
        if active is not None and active.unit != unit.code:
            log.warning("rented plate %s is recorded on unit %s, not %s: left as it is",
                        data["plate"], active.unit, unit.code,
                        extra={"rental_id": data["rental_id"]})
            return None
        if active is not None:
            return active
        people = {p.id for p in self._people_of(unit.code)}
        owner = self._owner_of(unit.code)
        person_id = data["person_id"] if data["person_id"] in people else owner and owner.id
        if person_id is None or not data.get("licence_no"):
            log.warning("rented plate %s cannot be recorded on unit %s (no person or licence)",
                        data["plate"], unit.code, extra={"rental_id": data["rental_id"]})
            return None
        vehicle = Vehicle(id=new_id(), site=unit.site, unit=unit.code, person_id=person_id,
                          plate=data["plate"], licence_no=data["licence_no"],
                          created_at=self.clock(), entered_by=f"frontdesk:{data['rental_id']}")
        session.add(vehicle)
        return vehicle

    # -- change requests (信息变更) ---------------------------------------------------------

    @command
    def create_change_request(self, payload):
        identity = self.caller.identity
        identity.require_role("ask for changes", *DESK)
        data = load(ChangeRequestIn(), payload)
        identity.require_site(site_of_unit(data["unit"]))
        unit = self._active(self._visible_unit(data["unit"]))
        if data["kind"] == "person" or (data["kind"] == "deactivate" and data["target_id"]):
            self._active(self._target_of(data["unit"], "person", data["target_id"]))
        elif data["kind"] == "vehicle":
            self._active(self._target_of(data["unit"], "vehicle", data["target_id"]))
        now = self.clock()
        affecting = domain.affects_fees(data["kind"], data["changes"])
        problem = domain.effective_on_problem(affecting, data["effective_on"],
                                              self._site_day(unit.site, now))
        if problem:
            raise ValidationFailed.from_messages({"effective_on": [problem]})
        request = ChangeRequest(
            id=new_id(), site=unit.site, unit=unit.code, kind=data["kind"],
            target_id=data["target_id"], changes=json_safe(data["changes"]), reason=data["reason"],
            documents=data["documents"], affects_fees=affecting,
            effective_on=data["effective_on"], requested_by=identity.sub, requested_at=now)
        request._record(now, identity.sub, identity.role, "request", data["reason"],
                        {"changes": request.changes, "documents": request.documents})
        self.uow.session.add(request)
        self.uow.commit()
        return self._request_out(request)

    @command
    def get_change_request(self, request_id):
        return self._request_out(self._visible_request(request_id))

    @command
    def list_change_requests(self, filters=None, cursor=None, limit=50):
        identity = self.caller.identity
        identity.require_role("read change requests", *STAFF)
        f = load(ChangeRequestFilters(), filters or {})
        stmt = within_sites(select(ChangeRequest), change_requests.c.site, identity, f["site"])
        for name in ("unit", "status"):
            if f[name] is not None:
                stmt = stmt.where(change_requests.c[name] == f[name])
        rows, next_cursor = paginate(self.uow.session, stmt, change_requests.c.id, cursor, limit)
        return {"items": [self._request_out(r) for r in rows], "next_cursor": next_cursor}

    @command
    def decide_change_request(self, request_id, action, payload=None):
        """approve or reject. An approved change that affects fees is told to the owner in writing
        at once and applied on its `effective_on` by the sweep; any other is applied now."""
        identity = self.caller.identity
        schema = DECISIONS.get(action)
        request = self._visible_request(request_id, lock=True)
        if schema is None:
            raise NotFound(f"no action {action}",
                           {"allowed_actions": request.allowed_actions(identity.role)})
        data = load(schema(), payload or {})
        now = self.clock()
        request.workflow.check(request, action, identity.role)
        if action == "approve":
            problem = request.decision_problem(self._site_day(request.site, now))
            if problem:
                raise ValidationFailed.from_messages({"effective_on": [problem]})
        request.apply(action, data, now=now, by=identity.sub, role=identity.role)
        if request.status == "approved":
            if request.affects_fees:
                self._notify_owner(request)
            else:
                self._apply_change(request, now, identity)
        self.uow.commit()
        return self._request_out(request)

    @command
    def unit_history(self, code, cursor=None, limit=50):
        """Every applied change of the unit and of its people and vehicles, oldest first: before
        and after, who asked and who approved."""
        unit = self._visible_unit(code)
        if self.caller.identity.is_resident:
            raise NotFound(f"no history of unit {code}", {"unit": code})
        stmt = select(ChangeRequest).where(change_requests.c.unit == unit.code,
                                           change_requests.c.status == "applied")
        rows, next_cursor = paginate(self.uow.session, stmt, change_requests.c.id, cursor, limit)
        return {"items": UnitHistoryOut(many=True).dump([{
            "change_request_id": r.id, "kind": r.kind, "target_id": r.target_id,
            "before": r.before, "after": r.after, "reason": r.reason,
            "requested_by": r.requested_by, "approved_by": r.decided_by,
            "approved_at": r.decided_at, "applied_at": r.applied_at} for r in rows]),
            "next_cursor": next_cursor}

    @command
    def sweep(self, payload):
        """Apply every approved change whose `effective_on` has come at its site by `as_of`, and
        find the contact periods of key customers and committee members that ended by then
        with no contact: {"applied": n, "contact_breaches": n}. Each change is applied once,
        each breach alerted once, however many replicas sweep at once and whatever replays."""
        self.caller.identity.require_role("run the registry sweep", *SWEEPERS)
        as_of = as_utc(load(SweepIn(), payload)["as_of"])
        return {"applied": self._sweep(as_of), "contact_breaches": self._contact_sweep(as_of)}

    @timer(interval=3600)
    def daily_sweep(self):
        """Hourly, so that a change is applied early on its day at each site, whichever replica,
        and a contact period's breach is alerted within the hour after it ends."""
        now = self.clock()
        self._sweep(now)
        self._contact_sweep(now)

    @command
    def registry_kpis(self, site, query):
        """The registry's part of a site's monthly KPI report: records entered that month (in the
        site's time zone), how many past the 3-day entry deadline, and people still unverified."""
        identity = self.caller.identity
        identity.require_role("read KPIs", *SITE_STAFF)
        identity.require_site(site)
        month = load(RegistryKpiQuery(), query)["month"]
        tz = zone(self._site(site).timezone)
        year, number = map(int, month.split("-"))
        start = datetime(year, number, 1, tzinfo=tz)
        end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
        counts = storage.entry_counts(self.uow.session, site, as_utc(start), as_utc(end))
        entered = counts["units_entered"] + counts["people_entered"]
        late = counts["units_late"] + counts["people_late"]
        rate = f"{(100 * late / entered):.1f}" if entered else "0.0"
        return RegistryKpiOut().dump({"site": site, "month": month, **counts,
                                      "late_entries": late, "late_entry_rate": rate})

    # -- customer care (SPEC §8.6): contacts, the not-moved-in list, contact breaches ------

    @command
    def record_contact(self, person_id, payload):
        """A contact with a person (a call from the not-moved-in list, a quarterly visit to a
        key customer, ...): who made it (the caller), when, how, what was said."""
        identity = self.caller.identity
        identity.require_role("record contacts", *DESK)
        data = load(ContactIn(), payload)
        person = self._active(self._visible_person(person_id))
        now = self.clock()
        at = as_utc(data["at"]) if data["at"] else now
        problem = domain.contact_at_problem(at, now)
        if problem:
            raise ValidationFailed.from_messages({"at": [problem]})
        contact = Contact(id=new_id(), person_id=person.id, site=person.site,
                          channel=data["channel"], note=data["note"], at=at,
                          recorded_by=identity.sub, recorded_at=now)
        self.uow.session.add(contact)
        self.uow.commit()
        return ContactOut().dump(contact)

    @command
    def list_contacts(self, person_id):
        """Every contact recorded with a person, oldest first."""
        self.caller.identity.require_role("read contacts", *DESK)
        person = self._visible_person(person_id)
        contacts = storage.contacts_of(self.uow.session, {person.id})[person.id]
        return {"items": ContactOut(many=True).dump(contacts), "next_cursor": None}

    @command
    def not_moved_in(self, site, cursor=None, limit=50):
        """The units of a site handed over without a move-in (客户入住动态表), oldest handover
        first, each with its owner (phone masked) and the contacts recorded with them, for the
        desk to call (000 "主动打电话给未入住的客户")."""
        identity = self.caller.identity
        identity.require_role("read the not-moved-in list", *DESK)
        identity.require_site(site)
        self._site(site)
        limit = page_size(limit)
        after = None
        if cursor:
            value = decode_cursor(cursor, list)
            try:
                day, code = value
                after = (datetime.fromisoformat(day).date(), str(code))
            except (TypeError, ValueError) as exc:
                raise ValidationFailed("invalid cursor", {"errors": {"cursor": ["not a cursor"]}}) from exc
        session = self.uow.session
        rows = storage.not_moved_in(session, site, after, limit)
        more, rows = len(rows) > limit, rows[:limit]
        contacts = storage.contacts_of(session, {owner.id for _, owner in rows if owner})
        today = self._site_day(site, self.clock())
        items = [{
            "unit": unit.code, "site": unit.site, "handover_date": unit.handover_date,
            "days_since_handover": (today - unit.handover_date).days,
            "owner": None if owner is None else {
                "id": owner.id, "name": owner.name, "phone": privacy.mask_phone(owner.phone),
                "key_customer": bool(owner.key_customer),
                "committee_member": bool(owner.committee_member),
                "contacts": contacts[owner.id]},
        } for unit, owner in rows]
        last = rows[-1][0] if rows else None
        return {"items": NotMovedInOut(many=True).dump(items),
                "next_cursor": encode_cursor([last.handover_date.isoformat(), last.code])
                if more else None}

    @command
    def contact_breach_counts(self, site, query):
        """The contact breaches of a site whose period ended in `month` (site time), by
        deadline: {"quarterly_contact": n, "monthly_contact": n}, for the committee report."""
        identity = self.caller.identity
        identity.require_role("read KPIs", *SITE_STAFF)
        identity.require_site(site)
        month = load(RegistryKpiQuery(), query)["month"]
        start, end = self._month_bounds(site, month)
        rows = self.uow.session.execute(
            select(ContactBreach.flag, func.count()).where(
                ContactBreach.site == site, ContactBreach.period_end > start,
                ContactBreach.period_end <= end).group_by(ContactBreach.flag)).all()
        counts = dict.fromkeys(domain.CONTACT_DEADLINES.values(), 0)
        for flag, count in rows:
            counts[domain.CONTACT_DEADLINES[flag]] = count
        return counts

    def _month_bounds(self, site, month):
        tz = zone(self._site(site).timezone)
        year, number = map(int, month.split("-"))
        start = datetime(year, number, 1, tzinfo=tz)
        end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
        return as_utc(start), as_utc(end)

    CONTACT_BREACH_EVENT = "registry.sla_breached"

    def _contact_sweep(self, as_of):
        """Each flagged person's periods ended by `as_of` without a contact: each claimed once
        by its row in `contact_breaches` (its key: person, flag, period), with the manager's
        alert written to the outbox in the same transaction. A replica that finds the row
        taken alerts nothing. How many breaches this sweep found."""
        session = self.uow.session
        people = storage.flagged_people(session)
        contacts = storage.contacts_of(session, {person.id for person, _ in people})
        session.commit()
        found = 0
        for person, tz_name in people:
            tz = zone(tz_name or "Asia/Shanghai")
            ats = [c.at for c in contacts[person.id]]
            for flag in CARE_FLAGS:
                if not getattr(person, flag):
                    continue
                for period in domain.missed_contact_periods(
                        flag, getattr(person, f"{flag}_since"), as_of, ats, tz):
                    found += self._contact_breach(person, flag, period, as_of, tz_name)
        return found

    def _contact_breach(self, person, flag, period, as_of, tz_name):
        session = self.uow.session
        claimed = insert_once(session, insert(ContactBreach).values(
            person_id=person.id, flag=flag, period=period.label, site=person.site,
            period_end=as_utc(period.end), detected_at=as_of))
        if not claimed:
            session.rollback()
            return 0
        units = self._units_of(person.id)
        self.uow.add_event(self.CONTACT_BREACH_EVENT, {
            "subject": "person", "subject_id": person.id,
            "code": f"{person.name} {period.label}", "kind": flag,
            "deadline": domain.CONTACT_DEADLINES[flag], "due_at": as_utc(period.end),
            "detected_at": as_of, "unit": units[0] if units else None,
            "escalate_to": ["manager"], "timezone": tz_name or "Asia/Shanghai",
        }, site=person.site)
        self.uow.commit()
        return 1

    @handles("billing", "arrears_escalated", when=lambda data: data["step"] == "transfer_watch")
    def on_arrears_escalated(self, data, envelope):
        """Arrears past 3 months put the unit on transfer watch (SPEC §1, 001 §2.8.2.6)."""
        unit = self.uow.session.get(Unit, data["unit"])
        if unit is not None:
            unit.transfer_watch = True
        self.uow.commit()

    def _sweep(self, as_of):
        """Candidates by one query, then each in a transaction of its own that first claims it by
        a compare-and-set on its status row: a replica that finds it taken moves on."""
        session = self.uow.session
        zones = {code: tz for code, tz in session.execute(select(Site.code, Site.timezone))}
        latest_day = (as_of + timedelta(days=1)).date()
        candidates = session.execute(locking(
            select(change_requests.c.id, change_requests.c.site, change_requests.c.effective_on)
            .where(change_requests.c.status == "approved",
                   change_requests.c.effective_on <= latest_day)
            .order_by(change_requests.c.effective_on, change_requests.c.id), session.get_bind())).all()
        session.commit()
        applied = 0
        for request_id, site, effective_on in candidates:
            if effective_on > as_of.astimezone(zone(zones.get(site) or "Asia/Shanghai")).date():
                continue
            claimed = session.execute(update(change_requests).where(
                change_requests.c.id == request_id, change_requests.c.status == "approved",
                change_requests.c.applied_at.is_(None)).values(applied_at=as_of))
            if claimed.rowcount != 1:
                session.rollback()
                continue
            request = session.get(ChangeRequest, request_id, populate_existing=True)
            self._apply_change(request, as_of, self.caller.identity)
            self.uow.commit()
            applied += 1
        return applied

    def _apply_change(self, request, now, identity):
        """Set the fields, keep before → after on the request (the unit's history) and announce
        the unit as it now stands."""
        session = self.uow.session
        unit = session.get(Unit, request.unit, with_for_update=True)
        if request.kind == "deactivate":
            target = unit if request.target_id is None else self._target_of(
                request.unit, "person", request.target_id)
            changes = {"active": False}
        else:
            target = unit if request.kind == "unit" else self._target_of(
                request.unit, request.kind, request.target_id)
            changes = CHANGES[request.kind]().load(request.changes)
            if request.kind == "unit":
                changes = domain.with_warranty_following(changes, unit.warranty_until,
                                                         unit.handover_date)
        before, after = domain.changed({name: getattr(target, name) for name in changes}, changes)
        for flag in CARE_FLAGS:
            if flag in changes and bool(changes[flag]) != bool(getattr(target, flag)):
                setattr(target, f"{flag}_since", now if changes[flag] else None)
        for name, value in changes.items():
            setattr(target, name, json_safe(value) if name in JSON_FIELDS else value)
        request.apply("apply", {"before": before, "after": after}, now=now, by=identity.sub,
                      role=identity.role)
        session.flush()
        deactivated = request.kind == "deactivate" and request.target_id is None
        self._announce(unit, "deactivated" if deactivated else "updated")

    def _notify_owner(self, request):
        """The written notice of a fee-affecting change (001 §7 书面知会业主): an event that
        notifications turns into a letter to post and an SMS."""
        unit = self.uow.session.get(Unit, request.unit)
        target = unit if request.kind == "unit" else self._target_of(
            request.unit, request.kind, request.target_id)
        before, _ = domain.changed({name: getattr(target, name) for name in request.changes},
                                   request.changes)
        request.notice_event_id = self.uow.add_event("registry.change_notice", {
            "change_request_id": request.id, "unit": request.unit,
            "owner": _contact(self._owner_of(request.unit)), "changes": request.changes,
            "before": before, "effective_on": request.effective_on, "reason": request.reason,
            "timezone": self._site(request.site).timezone}, site=request.site)

    def _target_of(self, unit_code, kind, target_id):
        """The person or vehicle of this unit a change names; 422 on target_id otherwise."""
        session = self.uow.session
        if kind == "vehicle":
            found = session.get(Vehicle, target_id)
            found = found if found is not None and found.unit == unit_code else None
        else:
            found = session.get(Person, target_id)
            found = found if found is not None and target_id in {
                p.id for p in self._people_of(unit_code)} else None
        if found is None:
            raise ValidationFailed.from_messages({"target_id": [f"no {kind} {target_id} of unit {unit_code}"]})
        return found

    def _visible_request(self, request_id, lock=False):
        identity = self.caller.identity
        return identity.require_visible(
            self.uow.session.get(ChangeRequest, request_id, with_for_update=lock),
            f"change request {request_id}", {"change_request_id": request_id})

    def _request_out(self, request):
        return ChangeRequestOut().dump({
            **{c.key: getattr(request, c.key) for c in change_requests.columns},
            "allowed_actions": request.allowed_actions(self.caller.identity.role)})

    @staticmethod
    def _active(record):
        """A deactivated unit, person or vehicle is kept as it was (销户): nothing more changes it,
        so that nothing announces it back into billing or the warranty reminders."""
        if not record.active:
            name = getattr(record, "code", None) or record.id
            raise Conflict(f"{name} is deactivated", {"deactivated": name})
        return record

    def _entry(self, collected_at, now, identity):
        """Who entered a record and whether past the entry deadline (422 for a form from the future)."""
        problem = domain.collected_at_problem(collected_at, now)
        if problem:
            raise ValidationFailed.from_messages({"collected_at": [problem]})
        return {"collected_at": collected_at, "entered_by": identity.sub,
                "late_entry": domain.late_entry(collected_at, now)}

    def _site_day(self, site, now):
        return now.astimezone(zone(self._site(site).timezone)).date()

    def _active_plate(self, site, plate):
        return self.uow.session.scalar(select(Vehicle.id).where(
            Vehicle.site == site, Vehicle.plate == plate, Vehicle.active.is_(True)))

    def _people_of(self, unit_code):
        return list(self.uow.session.scalars(
            select(Person).join(Occupancy, Occupancy.person_id == Person.id)
            .where(Occupancy.unit == unit_code).order_by(Person.created_at, Person.id)))

    def _visible_person(self, person_id, lock=False, conceal=False):
        """A person the caller may see: a resident themselves and the people of their units."""
        identity = self.caller.identity
        person = self.uow.session.get(Person, person_id, with_for_update=lock)
        mine = set(self._units_of(identity.person_id)) if identity.is_resident else set()
        return identity.require_visible(
            person, f"person {person_id}", {"person_id": person_id},
            owned=lambda p: bool(mine & set(self._units_of(p.id))), conceal=conceal)

    def _person_out(self, person, masked=False):
        relations = dict(self.uow.session.execute(
            select(Occupancy.unit, Occupancy.relation).where(Occupancy.person_id == person.id)).all())
        out = PersonOut().dump({
            **{c: getattr(person, c) for c in (
                "id", "name", "phone", "email", "id_number", "major_customer", "site", "lease",
                "owner_consent", "collected_at", "late_entry", "entered_by", "verified_by",
                "active")},
            "key_customer": bool(person.key_customer),
            "committee_member": bool(person.committee_member),
            "verified": person.verified_by is not None, "units": sorted(relations),
            "relation": next(iter(relations.values()), None)})
        if masked:
            out["phone"] = privacy.mask_phone(person.phone)
            out["id_number"] = privacy.mask_id_number(person.id_number)
        return out

    def _site(self, code):
        site = self.uow.session.get(Site, code)
        if site is None:
            raise NotFound(f"no site {code}", {"site": code})
        return site

    def _owner_of(self, unit_code):
        """The first active owner registered: the one written to about fees."""
        return self.uow.session.execute(
            select(Person).join(Occupancy, Occupancy.person_id == Person.id)
            .where(Occupancy.unit == unit_code, Occupancy.relation == "owner",
                   Person.active.is_(True))
            .order_by(Person.created_at, Person.id)).scalars().first()

    def _announce(self, unit, change):
        """registry.unit_changed with the unit as it now stands, in the transaction that changed
        it: billing keeps its projection from it, notifications writes to the owner from it."""
        owner = self._owner_of(unit.code)
        self.uow.add_event("registry.unit_changed", {
            "unit": unit.code, "change": change, "usage": unit.usage, "area_m2": unit.area_m2,
            "owner": _contact(owner), "major_customer": bool(owner and owner.major_customer),
            "timezone": self._site(unit.site).timezone, "handover_date": unit.handover_date,
            "warranty_until": unit.warranty_until, "moved_in_on": unit.moved_in_on,
            "assistant": _assistant(unit),
        }, site=unit.site)

    def _unit_to_edit(self, code, action):
        """The unit, locked until this unit of work ends (on PostgreSQL; SQLite serialises
        writers), so that two requests at once cannot both move the owner in and both
        announce it."""
        identity = self.caller.identity
        identity.require_role(action, *DESK)
        identity.require_site(site_of_unit(code))
        return self._active(self._visible_unit(code, lock=True))

    def _units_of(self, person_id):
        return list(self.uow.session.scalars(
            select(Occupancy.unit).where(Occupancy.person_id == person_id)))

    def _visible_unit(self, code, lock=False):
        """A unit the caller may see; anyone else's is answered as if it did not exist."""
        identity = self.caller.identity
        return identity.require_visible(
            self.uow.session.get(Unit, code, with_for_update=lock), f"unit {code}", {"unit": code},
            owned=lambda unit: unit.code in self._units_of(identity.person_id), conceal=True)

    def _unit_out(self, unit):
        people = self.uow.session.execute(
            select(Person, Occupancy.relation).join(Occupancy, Occupancy.person_id == Person.id)
            .where(Occupancy.unit == unit.code)).all()
        out = UnitOut().dump({**{c: getattr(unit, c) for c in (
            "code", "site", "usage", "area_m2", "handover_date", "warranty_until", "moved_in_on",
            "meters", "active", "transfer_watch", "created_at", "collected_at", "late_entry")},
            "assistant": _assistant(unit), "people": []})
        out["people"] = [{
            "id": p.id, "name": p.name, "relation": relation, "major_customer": p.major_customer,
            "phone": privacy.mask_phone(p.phone), "email": p.email,
            "id_number": privacy.mask_id_number(p.id_number),
            "verified": p.verified_by is not None, "late_entry": p.late_entry, "active": p.active,
        } for p, relation in people]
        return out


def _contact(person):
    return None if person is None else {
        "name": person.name, "phone": person.phone, "email": person.email, "person_id": person.id}


def _assistant(unit):
    return None if unit.assistant_name is None else {
        "name": unit.assistant_name, "phone": unit.assistant_phone}

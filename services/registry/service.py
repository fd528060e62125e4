"""registry: sites, units and the people in them (SPEC §1)."""
from sqlalchemy import func, select

from services.common.calendar import zone
from services.common.db import Database, new_id, paginate, within_sites
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common import entrypoints, privacy
from services.common.entrypoints import command, handles, load
from services.common.roles import DESK, MANAGERS, RECORD_READERS
from services.common.units import site_of_unit
from services.registry import domain
from services.registry.schemas import (
    AssistantIn, MoveInIn, PersonOut, PersonReadIn, SiteIn, SiteOut, UnitIn, UnitOut,
)
from services.registry.storage import AccessLog, Base, Occupancy, Person, Site, Unit

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
        data["warranty_until"] = domain.warranty_end(data["handover_date"], data["warranty_until"])
        unit = Unit(**data, site=site_code, created_at=now)
        owner = Person(id=new_id(), created_at=now, **owner_data)
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
        session = self.uow.session
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound(f"no person {person_id}")
        units = self._units_of(person_id)
        if identity.is_resident:
            if identity.person_id != person_id:
                raise NotFound(f"no person {person_id}")
        else:
            identity.require_role("read full personal records", *RECORD_READERS)
            if not any(identity.can_see_site(site_of_unit(u)) for u in units):
                raise NotFound(f"no person {person_id}")
        session.add(AccessLog(id=new_id(), person_id=person_id, read_by=identity.sub,
                              role=identity.role, reason=reason, at=self.clock()))
        self.uow.commit()
        return {**PersonOut().dump(person), "units": units}

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

    @handles("billing", "arrears_escalated", when=lambda data: data["step"] == "transfer_watch")
    def on_arrears_escalated(self, data, envelope):
        """Arrears past 3 months put the unit on transfer watch (SPEC §1, 001 §2.8.2.6)."""
        unit = self.uow.session.get(Unit, data["unit"])
        if unit is not None:
            unit.transfer_watch = True
        self.uow.commit()

    def _site(self, code):
        site = self.uow.session.get(Site, code)
        if site is None:
            raise NotFound(f"no site {code}", {"site": code})
        return site

    def _owner_of(self, unit_code):
        return self.uow.session.execute(
            select(Person).join(Occupancy, Occupancy.person_id == Person.id)
            .where(Occupancy.unit == unit_code, Occupancy.relation == "owner")).scalars().first()

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
        return self._visible_unit(code, lock=True)

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
            "meters", "active", "transfer_watch", "created_at")},
            "assistant": _assistant(unit), "people": []})
        out["people"] = [{
            "id": p.id, "name": p.name, "relation": relation, "major_customer": p.major_customer,
            "phone": privacy.mask_phone(p.phone), "email": p.email,
            "id_number": privacy.mask_id_number(p.id_number),
        } for p, relation in people]
        return out


def _contact(person):
    return None if person is None else {
        "name": person.name, "phone": person.phone, "email": person.email, "person_id": person.id}


def _assistant(unit):
    return None if unit.assistant_name is None else {
        "name": unit.assistant_name, "phone": unit.assistant_phone}

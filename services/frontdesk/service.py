"""frontdesk: move-ins and their defects, parking rentals, release passes, community activities
and the answer book (SPEC §8)."""
import logging
from datetime import datetime, time

from nameko.timer import timer
from sqlalchemy import func, or_, select
from sqlalchemy.orm.exc import StaleDataError

from services.common import calendar, entrypoints
from services.common.business import BusinessGauges
from services.common.db import Database, locking, new_id, paginate, within_sites
from services.common.entrypoints import command, load
from services.common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from services.common.metrics import OPEN_CASES
from services.common.roles import DESK, GATE, RESIDENT, SITE_STAFF, SWEEPERS
from services.common.rpc import TimedRpc
from services.common.sweeps import SweepIn
from services.common.units import site_of_unit
from services.frontdesk import domain, schemas
from services.frontdesk.domain import Activity, Defect, MoveIn, ParkingRental, ReleasePass
from services.frontdesk.storage import (
    SWEPT, Answer, Base, answers, open_cases, parking_spaces, take_step,
)

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60
SWEEP_BATCH = 500

# case class -> (name in problems, its action schemas, its answer schema)
KINDS = {
    MoveIn: ("move-in", schemas.MOVE_IN_ACTIONS, schemas.MoveInOut),
    Defect: ("defect", schemas.DEFECT_ACTIONS, schemas.DefectOut),
    ParkingRental: ("parking rental", schemas.PARKING_ACTIONS, schemas.ParkingRentalOut),
    ReleasePass: ("release pass", schemas.PASS_ACTIONS, schemas.ReleasePassOut),
    Activity: ("activity", schemas.ACTIVITY_ACTIONS, schemas.ActivityOut),
}


class FrontdeskService(entrypoints.ServiceBase):
    name = "frontdesk"

    uow = Database(Base)
    rpc = TimedRpc()
    business = BusinessGauges({OPEN_CASES: open_cases})

    # -- move-in (进伙) ------------------------------------------------------------------

    @command
    def create_move_in(self, payload):
        identity = self.caller.identity
        identity.require_role("receive move-ins", *DESK)
        data = load(schemas.ArrivalIn(), payload)
        identity.require_site(site_of_unit(data["unit"]))
        contact, unit = self._unit(data["unit"])
        self._person_of(unit, data["person_id"])
        now = self.clock()
        move_in = self._domain(MoveIn.arrive, id=new_id(), site=contact["site"], unit=data["unit"],
                               timezone=contact["timezone"], person_id=data["person_id"],
                               owner=contact["owner"] or {}, arrived_at=data["arrived_at"] or now,
                               now=now, by=identity.sub, role=identity.role)
        self.uow.session.add(move_in)
        return self._save(move_in)

    @command
    def get_case(self, kind, case_id):
        return self._out(self._visible(_kind(kind), case_id))

    @command
    def act(self, kind, case_id, action, payload=None):
        """Take a step of a case: move_in, defect, parking_rental, release_pass, activity."""
        cls = _kind(kind)
        identity = self.caller.identity
        case = self._visible(cls, case_id)
        schema = KINDS[cls][1].get(action)
        if schema is None:
            raise NotFound(f"no action {action}",
                           {"allowed_actions": case.allowed_actions(identity.role)})
        return self._apply(case, action, load(schema(), payload or {}))

    def _apply(self, case, action, data):
        identity, cls = self.caller.identity, type(case)
        if identity.is_resident:
            self._require_resident_may(case, action, data)
        if cls is ParkingRental and action == "approve":
            self._require_space_free(case)
        self._domain(case.apply, action, data, now=self.clock(), by=identity.sub, role=identity.role)
        if cls is MoveIn:
            self.uow.session.add_all(case.new_defects)
        if cls is ParkingRental:
            case.active_space = case.space_id if case.status == "active" else None
        return self._save(case)

    @command
    def list_defects(self, filters=None, cursor=None, limit=50):
        """The front desk's list of defects (open ones first to chase), by site and status."""
        identity = self.caller.identity
        identity.require_role("list defects", *SITE_STAFF)
        f = load(schemas.DefectFilters(), filters or {})
        stmt = within_sites(select(Defect), Defect.site, identity, f["site"])
        for name in ("status", "unit"):
            if f[name]:
                stmt = stmt.where(getattr(Defect, name) == f[name])
        rows, next_cursor = paginate(self.uow.session, stmt, Defect.id, cursor, limit)
        return {"items": [self._out(r) for r in rows], "next_cursor": next_cursor}

    # -- parking (车位租赁) --------------------------------------------------------------

    @command
    def create_parking_space(self, payload):
        identity = self.caller.identity
        identity.require_role("register parking spaces", *DESK)
        data = load(schemas.ParkingSpaceIn(), payload)
        identity.require_site(data["site"])
        session = self.uow.session
        if session.execute(select(parking_spaces.c.id).where(
                parking_spaces.c.site == data["site"],
                parking_spaces.c.number == data["number"])).first():
            raise Conflict(f"space {data['number']} already exists at site {data['site']}",
                           {"number": data["number"]})
        row = {**data, "id": new_id(), "created_at": self.clock(),
               "monthly_fee": None if data["monthly_fee"] is None else str(data["monthly_fee"])}
        session.execute(parking_spaces.insert().values(**row))
        self.uow.commit()
        return schemas.ParkingSpaceOut().dump(row)

    @command
    def create_parking_rental(self, payload):
        identity = self.caller.identity
        identity.require_role("take parking rentals", *DESK)
        data = load(schemas.ParkingRentalIn(), payload)
        identity.require_site(site_of_unit(data["unit"]))
        space = self.uow.session.execute(select(parking_spaces).where(
            parking_spaces.c.id == data["space"])).mappings().first()
        if space is None or space["site"] != site_of_unit(data["unit"]):
            raise ValidationFailed.from_messages({"space": [f"no space {data['space']} at the unit's site"]})
        contact, unit = self._unit(data["unit"])
        person = self._person_of(unit, data["person_id"])
        now = self.clock()
        rental = self._domain(ParkingRental.apply_for, id=new_id(), site=contact["site"],
                              unit=data["unit"], timezone=contact["timezone"], space=dict(space),
                              person_id=data["person_id"], relation=person["relation"], data=data,
                              now=now, by=identity.sub, role=identity.role)
        self.uow.session.add(rental)
        return self._save(rental)

    def _require_resident_may(self, case, action, data):
        """A resident confirms or refuses a pass only as the unit's owner, and registers only
        themself for an activity."""
        person_id = self.caller.identity.person_id
        if isinstance(case, Activity) and data.get("person_id") != person_id:
            raise Forbidden(f"a resident may {action} only themself", {"action": action})
        if isinstance(case, ReleasePass) and case.owner.get("person_id") != person_id:
            raise Forbidden(f"only the unit's owner may {action} a release pass", {"action": action})

    def _require_space_free(self, rental):
        taken = self.uow.session.scalar(select(ParkingRental.id).where(
            ParkingRental.space_id == rental.space_id, ParkingRental.status == "active"))
        if taken:
            raise Conflict(f"space {rental.space_number} is rented ({taken})",
                           {"space": rental.space_id, "rental_id": taken})

    # -- release passes (放行条) ---------------------------------------------------------

    @command
    def create_release_pass(self, payload):
        identity = self.caller.identity
        identity.require_role("ask for release passes", RESIDENT, *DESK)
        data = load(schemas.ReleasePassIn(), payload)
        identity.require_site(site_of_unit(data["unit"]))
        contact, unit = self._unit(data["unit"])
        if identity.is_resident:
            # a resident asks for themselves: the request names them
            data["requested_by"]["person_id"] = identity.person_id
        now = self.clock()
        release = self._domain(ReleasePass.request, id=new_id(), site=contact["site"],
                               unit=data["unit"], timezone=contact["timezone"],
                               owner=contact["owner"] or {},
                               transfer_watch=bool(unit.get("transfer_watch")), data=data,
                               now=now, by=identity.sub, role=identity.role)
        self.uow.session.add(release)
        return self._save(release)

    @command
    def check_release_pass(self, number):
        """The gate's look-up by number; unknown is 404."""
        release = self._pass(number)
        today = release.today(self.clock())
        return schemas.ReleasePassCheckOut().dump({
            "number": release.number, "status": release.gate_status(today), "unit": release.unit,
            "holder": release.requested_by.get("name"), "valid_until": release.move_on,
            "items": release.items, "transfer_watch": release.transfer_watch})

    @command
    def use_release_pass(self, number, payload=None):
        """The goods went out: the guard and the time are recorded; a second use is 409."""
        release = self._pass(number)
        return self._apply(release, "use", load(schemas.UseIn(), payload or {}))

    def _pass(self, number):
        identity = self.caller.identity
        identity.require_role("check release passes", *GATE)
        release = self.uow.session.scalars(
            select(ReleasePass).where(ReleasePass.number == number)).first()
        if release is None or not identity.can_see_site(release.site):
            raise NotFound(f"no release pass {number}", {"number": number})
        return release

    # -- activities (社区活动) -----------------------------------------------------------

    @command
    def create_activity(self, payload):
        identity = self.caller.identity
        identity.require_role("plan activities", *DESK)
        data = load(schemas.ActivityIn(), payload)
        identity.require_site(data["site"])
        activity = self._domain(Activity.plan, id=new_id(), data=data, now=self.clock(),
                                by=identity.sub, role=identity.role)
        self.uow.session.add(activity)
        return self._save(activity)

    # -- the answer book (答客问) --------------------------------------------------------

    @command
    def create_answer(self, site, payload):
        identity = self.caller.identity
        identity.require_role("write the answer book", *DESK)
        identity.require_site(site)
        data = load(schemas.AnswerEntryIn(), payload)
        now = self.clock()
        row = {**data, "id": new_id(), "site": site, "created_by": identity.sub,
               "created_at": now, "updated_at": now}
        entry = Answer(**row)
        self.uow.session.add(entry)
        self.uow.commit()
        return self._answer_out(entry, now)

    @command
    def get_answer(self, answer_id):
        """An entry, for ticketing's `answer {answer_id}`; another site's looks like none."""
        identity = self.caller.identity
        identity.require_role("read the answer book", *SITE_STAFF)
        entry = self.uow.session.get(Answer, answer_id)
        if entry is None or not identity.can_see_site(entry.site):
            raise NotFound(f"no answer-book entry {answer_id}", {"answer_id": answer_id})
        return self._answer_out(entry, self.clock())

    @command
    def review_answer(self, answer_id, payload=None):
        """The half-yearly review (SPEC §8.5) by the site's desk: the entry rewritten where it
        changed, or confirmed as it is; due for review again 6 months from now."""
        identity = self.caller.identity
        identity.require_role("review the answer book", *DESK)
        data = load(schemas.AnswerReviewIn(), payload or {})
        session = self.uow.session
        entry = session.get(Answer, answer_id, with_for_update=True)
        if entry is None or not identity.can_see_site(entry.site):
            raise NotFound(f"no answer-book entry {answer_id}", {"answer_id": answer_id})
        now = self.clock()
        for column, value in data.items():
            setattr(entry, column, value)
        entry.updated_at, entry.reviewed_by = now, identity.sub
        self.uow.commit()
        return self._answer_out(entry, now)

    @command
    def list_answers(self, site, filters=None, cursor=None, limit=50):
        identity = self.caller.identity
        identity.require_role("read the answer book", *SITE_STAFF)
        identity.require_site(site)
        f = load(schemas.AnswerFilters(), filters or {})
        now = self.clock()
        stmt = select(Answer).where(Answer.site == site)
        if f["q"]:
            pattern = "%" + f["q"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(answers.c.question.like(pattern, escape="\\"),
                                  answers.c.answer.like(pattern, escape="\\")))
        if f["overdue"] is not None:
            cutoff = calendar.add_months(now, -domain.REVIEW_MONTHS)
            column = answers.c.updated_at
            stmt = stmt.where(column <= cutoff if f["overdue"] else column > cutoff)
        rows, next_cursor = paginate(self.uow.session, stmt, Answer.id, cursor, limit)
        return {"items": [self._answer_out(r, now) for r in rows],
                "next_cursor": next_cursor}

    @staticmethod
    def _answer_out(entry, now):
        return schemas.AnswerOut().dump({
            **{column: getattr(entry, column) for column in answers.c.keys()},
            "review_due": domain.review_due(entry.updated_at),
            "review_overdue": domain.review_overdue(entry.updated_at, now)})

    # -- the month's figures -------------------------------------------------------------

    @command
    def kpis(self, site, payload):
        """The procedures' figures of a site's month (site time): move-ins and their wait and
        processing timeliness, rentals within 20 minutes, defects, activities and their rates."""
        identity = self.caller.identity
        identity.require_role("read KPIs", *SITE_STAFF)
        identity.require_site(site)
        month = load(schemas.KpiIn(), payload)["month"]
        start, end = self._month_bounds(site, month)
        session = self.uow.session

        def cases(cls, column):
            return session.scalars(select(cls).where(cls.site == site, column >= start,
                                                     column < end)).all()
        move_ins = cases(MoveIn, MoveIn.arrived_at)
        rentals = cases(ParkingRental, ParkingRental.arrived_at)
        found = cases(Defect, Defect.inspected_at)
        activities = cases(Activity, Activity.starts_at)
        passes = cases(ReleasePass, ReleasePass.created_at)
        start_ok, start_n = domain.on_time_count(move_ins, "start")
        finish_ok, finish_n = domain.on_time_count(move_ins, "finish")
        rent_ok, rent_n = domain.on_time_count(
            [r for r in rentals if r.status != "rejected"], "finish")
        open_defects = session.scalar(select(func.count()).select_from(Defect).where(
            Defect.site == site, Defect.status.in_(("open", "submitted"))))
        return schemas.FrontdeskKpisOut().dump({
            "site": site, "month": month,
            "move_ins": {"arrived": len(move_ins),
                         "completed": sum(m.status == "completed" for m in move_ins),
                         "start_on_time": start_ok, "start_measured": start_n,
                         "start_rate": _rate(domain.ratio(start_ok, start_n)),
                         "finish_on_time": finish_ok, "finish_measured": finish_n,
                         "finish_rate": _rate(domain.ratio(finish_ok, finish_n))},
            "parking": {"applied": len(rentals),
                        "approved": sum(r.approved_at is not None for r in rentals),
                        "within_20_minutes": rent_ok, "measured": rent_n,
                        "rate": _rate(domain.ratio(rent_ok, rent_n))},
            "defects": {"found": len(found), "open": open_defects,
                        "submit_breached": sum(any(b["deadline"] == "submit" for b in d.breaches)
                                               for d in found)},
            "activities": [{"id": a.id, "title": a.title, "status": a.status,
                            "participants": len(a.participants),
                            **{k: _rate(v) if k != "on_target" else v
                               for k, v in a.rates().items()}} for a in activities],
            "release_passes": {"issued": len(passes),
                               "used": sum(p.status == "used" for p in passes)},
        })

    def _month_bounds(self, site, month):
        tz = calendar.zone(self.rpc.registry.get_site(site)["timezone"])
        first = datetime.fromisoformat(f"{month}-01").date()
        start = datetime.combine(first, time(), tz)
        return start, datetime.combine(calendar.shift_months(first, 1), time(), tz)

    # -- the sweep -----------------------------------------------------------------------

    @command
    def sweep(self, payload):
        """Alert every breached deadline up to `as_of`, each once however many replicas sweep."""
        self.caller.identity.require_role("run the frontdesk sweep", *SWEEPERS)
        return self._sweep(load(SweepIn(), payload)["as_of"])

    @timer(interval=SWEEP_SECONDS)
    def sweep_now(self):
        self._sweep(self.clock())

    def _sweep(self, as_of):
        """Each due case in a transaction of its own, its row locked (skipped by the other
        replicas on PostgreSQL), each breach claimed by a unique row."""
        session = self.uow.session
        report = {"as_of": as_of.isoformat(), "breaches": []}
        for cls in SWEPT:
            due = session.scalars(select(cls.id).where(cls.next_due_at <= as_of)
                                  .order_by(cls.next_due_at).limit(SWEEP_BATCH)).all()
            for case_id in due:
                try:
                    self._sweep_one(cls, case_id, as_of, report)
                except StaleDataError:
                    session.rollback()
        return report

    def _sweep_one(self, cls, case_id, as_of, report):
        session, now = self.uow.session, self.clock()
        case = session.scalars(locking(
            select(cls).where(cls.id == case_id, cls.next_due_at <= as_of)
            .execution_options(populate_existing=True), session.get_bind())).first()
        if case is None:
            session.rollback()
            return
        taken = []
        for deadline, due_at in case.due_breaches(as_of):
            if take_step(session, case.id, f"breach:{deadline}", now):
                case.record_breach(deadline, due_at, now=now)
                taken.append({"kind": case.KIND, "id": case.id, "deadline": deadline,
                              "due_at": due_at.isoformat()})
        case.refresh_due()
        self._record_events(case)
        self.uow.commit()
        report["breaches"].extend(taken)

    # -- helpers -------------------------------------------------------------------------

    def _domain(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except domain.InvalidField as exc:
            raise ValidationFailed(str(exc), {"errors": {exc.field: [str(exc)]}, **exc.extra}) from exc

    def _save(self, case):
        try:
            self._record_events(case)
            self.uow.commit()
        except StaleDataError as exc:
            raise Conflict("the case changed meanwhile; try again") from exc
        return self._out(case)

    def _record_events(self, case):
        for name, data in case.pull_events():
            self.uow.add_event(name, data, site=case.site)

    def _visible(self, cls, case_id):
        identity = self.caller.identity
        label = KINDS[cls][0]
        return identity.require_visible(
            self.uow.session.get(cls, case_id), f"{label} {case_id}", {"id": case_id},
            owned=lambda case: _owned(case, identity))

    def _unit(self, code):
        """Owner contact and time zone, and the unit's people and flags, from registry; an
        unknown unit is the caller's mistake, named by its field."""
        try:
            return self.rpc.registry.unit_contact(code), self.rpc.registry.get_unit(code)
        except NotFound as exc:
            raise ValidationFailed.from_messages({"unit": [str(exc)]}) from exc

    @staticmethod
    def _person_of(unit, person_id):
        person = next((p for p in unit["people"] if p["id"] == person_id), None)
        if person is None:
            raise ValidationFailed.from_messages(
                {"person_id": [f"{person_id} is not a person of unit {unit['code']}"]})
        return person

    def _out(self, case):
        out = KINDS[type(case)][2](exclude=("allowed_actions",)).dump(
            {**_fields(case), **(case.rates() if isinstance(case, Activity) else {})})
        out["allowed_actions"] = case.allowed_actions(self.caller.identity.role)
        return out


def _kind(name):
    cls = {"move_in": MoveIn, "defect": Defect, "parking_rental": ParkingRental,
           "release_pass": ReleasePass, "activity": Activity}.get(name)
    if cls is None:
        raise NotFound(f"no kind of case {name}")
    return cls


def _fields(case):
    return {name: getattr(case, name) for name in case.__dataclass_fields__}


def _owned(case, identity):
    """A resident sees their own release passes and the activities of their site."""
    if isinstance(case, Activity):
        return identity.can_see_site(case.site) and case.status != "planned"
    if isinstance(case, ReleasePass):
        return identity.person_id in (case.owner.get("person_id"),
                                      case.requested_by.get("person_id"))
    return False


def _rate(value):
    return None if value is None else str(value)


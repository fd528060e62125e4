"""Front-desk procedures (SPEC §8, seed 001 ch.5 §2, §3, §6), plain Python: move-ins with
their defects, parking rentals, release passes, community activities and the answer book. Each
procedure is a case on the shared workflow; its deadlines are swept like tickets' (a breach is
detected once, also when the deadline was met late). No Nameko, no SQL; `now` is passed in."""
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.common import calendar
from services.common.casefile import CaseFile
from services.common.errors import Conflict
from services.common.roles import DESK, GATE, MANAGERS, RESIDENT
from services.common.workflow import Transition, Workflow

# -- limits (SPEC §8 defaults) ---------------------------------------------------------------
MOVE_IN_START = timedelta(minutes=15)       # 等候不超过 15 分钟
MOVE_IN_FINISH = timedelta(minutes=30)      # 办理不超过 30 分钟
PARKING_FINISH = timedelta(minutes=20)      # 车位租赁 20 分钟内办结
DEFECT_SUBMIT_WORKING_DAYS = 1              # 遗留问题 1 个工作日内书面提交开发商
PUBLISH_AHEAD = timedelta(days=3)           # 活动至少提前 3 天公布
REVIEW_MONTHS = 6                           # 答客问每半年全面更新
REVISIT_TARGET = Decimal("0.10")
SATISFACTION_TARGET = Decimal("0.80")

# -- what the front desk checks and has signed (001 ch.5 §2) ---------------------------------
IDENTITY_DOCUMENTS = {"id_card": "身份证", "move_in_notice": "入伙通知书",
                      "purchase_contract": "购房合同", "payment_receipt": "缴款收据"}
SIGNED_DOCUMENTS = {"service_agreement": "前期物业服务协议", "management_rules": "临时管理规约"}
METERS = ("water", "electricity", "gas")
PARKING_DOCUMENTS = {"driving_licence": "驾驶证", "vehicle_licence": "行驶证", "insurance": "车辆保险单",
                     "property_proof": "产权证明", "lease": "租赁合同"}


class InvalidField(ValueError):
    """Input only the domain can judge; answered as 422 on `field` (with `extra`)."""

    def __init__(self, field, message, **extra):
        super().__init__(message)
        self.field = field
        self.extra = extra


def missing(required, given):
    return [code for code in required if code not in given]


def parking_documents_needed(relation):
    """The owner proves the property; anyone else brings the lease (001 ch.5 §6)."""
    proof = "property_proof" if relation == "owner" else "lease"
    return ["driving_licence", "vehicle_licence", "insurance", proof]


class Case(CaseFile):
    """What every front-desk case adds to CaseFile: the deadlines it alerts and the breach they
    raise (`frontdesk.sla_breached`, to the site's supervisors)."""
    ALERTED = ()
    FINAL = ()
    KIND = ""

    def due_breaches(self, as_of):
        """(deadline, due_at) of each alerted deadline due by `as_of`, unmet or met late, not
        yet breached."""
        breached = {b["deadline"] for b in self.breaches}
        out = []
        for name, due in self.deadlines.items():
            due_at = datetime.fromisoformat(due)
            met = self.deadlines_met.get(name)
            late = met is None or datetime.fromisoformat(met) > due_at
            if name in self.ALERTED and name not in breached and due_at <= as_of and late:
                if met is None and self.status in self.FINAL:
                    continue
                out.append((name, due_at))
        return out

    def record_breach(self, deadline, due_at, *, now):
        self.breaches = [*self.breaches, {"deadline": deadline, "due_at": due_at.isoformat(),
                                          "detected_at": now.isoformat()}]
        self.events.append(("frontdesk.sla_breached", {
            "subject": self.KIND, "subject_id": self.id, "code": self.id, "kind": self.KIND,
            "deadline": deadline, "due_at": due_at, "detected_at": now, "unit": self.unit,
            "first_contact_owner": self.created_by, "escalate_to": ["supervisor"],
            "timezone": self.timezone}))

    def refresh_due(self):
        """The earliest instant the sweep must look at this case again."""
        breached = {b["deadline"] for b in self.breaches}
        dues = []
        for name, due in self.deadlines.items():
            met = self.deadlines_met.get(name)
            if name in breached or name not in self.ALERTED:
                continue
            if met is None and self.status not in self.FINAL:
                dues.append(datetime.fromisoformat(due))
            elif met is not None and datetime.fromisoformat(met) > datetime.fromisoformat(due):
                dues.append(datetime.fromisoformat(due))      # met late: still a breach
        self.next_due_at = min(dues, default=None)

    def on_time(self, name):
        """True met in time, False late (or unmet and due), None not due yet / not set."""
        if name not in self.deadlines:
            return None
        met = self.deadlines_met.get(name)
        if met is None:
            return False if any(b["deadline"] == name for b in self.breaches) else None
        return (
            datetime.fromisoformat(met) <= datetime.fromisoformat(self.deadlines[name]))


def _case_fields():
    return dict(deadlines=field(default_factory=dict), deadlines_met=field(default_factory=dict),
                breaches=field(default_factory=list), history=field(default_factory=list))


# == move-in (进伙) ============================================================================

MOVE_IN_WORKFLOW = Workflow(
    "move_in",
    Transition("start", ("waiting",), "in_progress", DESK),
    Transition("documents", ("in_progress",), None, DESK),
    Transition("inspection", ("in_progress",), None, DESK),
    Transition("complete", ("in_progress",), "completed", DESK,
               guard=lambda m: bool(m.identity and m.signatures and m.inspection)),
)


@dataclass
class MoveIn(Case):
    id: str
    site: str
    unit: str
    timezone: str
    person_id: str
    owner: dict
    arrived_at: datetime
    created_at: datetime
    created_by: str
    status: str = "waiting"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    identity: dict | None = None        # {checked[], at, by}
    signatures: dict | None = None      # {signed[], at, by}
    inspection: dict | None = None      # {meter_readings{}, defects[ids], at, by}
    keys: list = field(default_factory=list)
    assistant: dict | None = None
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    breaches: list = field(default_factory=list)
    history: list = field(default_factory=list)
    next_due_at: datetime | None = None
    events: list = field(default_factory=list, repr=False, compare=False)
    new_defects: list = field(default_factory=list, repr=False, compare=False)

    workflow = MOVE_IN_WORKFLOW
    ALERTED = ("start", "finish")
    FINAL = ("completed",)
    KIND = "move_in"

    @classmethod
    def arrive(cls, *, id, site, unit, timezone, person_id, owner, arrived_at, now, by, role):
        if arrived_at > now:
            raise InvalidField("arrived_at", "arrived_at is in the future")
        move_in = cls(id=id, site=site, unit=unit, timezone=timezone, person_id=person_id,
                      owner=owner, arrived_at=arrived_at, created_at=now, created_by=by)
        move_in._set_deadline("start", arrived_at + MOVE_IN_START)
        move_in._record(now, by, role, "arrive", data={"arrived_at": arrived_at})
        move_in.refresh_due()
        return move_in

    def _start(self, data, *, now, by, role):
        self.started_at = now
        self._meet("start", now)
        self._set_deadline("finish", now + MOVE_IN_FINISH)
        self._record(now, by, role, "start")

    def _documents(self, data, *, now, by, role):
        """Identity against the move-in notice, contract and receipt; the two agreements signed."""
        lacking = missing(IDENTITY_DOCUMENTS, data["checked"])
        if lacking:
            raise InvalidField("checked", f"not checked: {', '.join(lacking)}", missing_documents=lacking)
        unsigned = missing(SIGNED_DOCUMENTS, data["signed"])
        if unsigned:
            raise InvalidField("signed", f"not signed: {', '.join(unsigned)}", missing_documents=unsigned)
        stamp = {"at": now.isoformat(), "by": by}
        self.identity = {"checked": list(data["checked"]), **stamp}
        self.signatures = {"signed": list(data["signed"]), **stamp}
        self._record(now, by, role, "documents", data=data)

    def _inspection(self, data, *, now, by, role):
        """The meter readings signed by the owner and every defect found (房屋遗留问题); each
        defect becomes a case of its own (`new_defects`, saved by the service)."""
        lacking = missing(METERS, data["meter_readings"])
        if lacking:
            raise InvalidField("meter_readings", f"no reading for: {', '.join(lacking)}")
        defects = [Defect.found(id=f"{self.id}-D{i:02d}", move_in=self, location=d["location"],
                                description=d["description"], now=now)
                   for i, d in enumerate(data["defects"], start=len(self._defect_ids()) + 1)]
        self.new_defects = defects
        self.inspection = {"meter_readings": data["meter_readings"],
                           "defects": [*self._defect_ids(), *(d.id for d in defects)],
                           "at": now.isoformat(), "by": by}
        self._record(now, by, role, "inspection", data={
            "meter_readings": data["meter_readings"], "defects": [d.id for d in defects]})

    def _defect_ids(self):
        return (self.inspection or {}).get("defects", [])

    def _complete(self, data, *, now, by, role):
        self.completed_at = now
        self.keys = list(data["keys"])
        self.assistant = dict(data["assistant"])
        self._meet("finish", now)
        self._record(now, by, role, "complete", data=data)
        self.events.append(("frontdesk.moved_in", {
            "move_in_id": self.id, "unit": self.unit, "person_id": self.person_id,
            "moved_in_on": now.astimezone(calendar.zone(self.timezone)).date(),
            "assistant": self.assistant, "keys": self.keys, "timezone": self.timezone}))


# == defects (房屋遗留问题) =====================================================================

DEFECT_WORKFLOW = Workflow(
    "defect",
    Transition("submit", ("open",), "submitted", DESK),
    Transition("progress", ("submitted",), None, DESK),
    Transition("fixed", ("submitted",), "fixed", DESK),
    Transition("close", ("fixed",), "closed", DESK),
)


@dataclass
class Defect(Case):
    id: str
    site: str
    unit: str
    timezone: str
    move_in_id: str
    owner: dict
    location: str
    description: str
    inspected_at: datetime
    created_at: datetime
    created_by: str
    status: str = "open"
    submitted_at: datetime | None = None
    fixed_at: datetime | None = None
    closed_at: datetime | None = None
    progress: list = field(default_factory=list)
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    breaches: list = field(default_factory=list)
    history: list = field(default_factory=list)
    next_due_at: datetime | None = None
    events: list = field(default_factory=list, repr=False, compare=False)

    workflow = DEFECT_WORKFLOW
    ALERTED = ("submit",)
    FINAL = ("closed",)
    KIND = "defect"

    @classmethod
    def found(cls, *, id, move_in, location, description, now):
        defect = cls(id=id, site=move_in.site, unit=move_in.unit, timezone=move_in.timezone,
                     move_in_id=move_in.id, owner=move_in.owner, location=location,
                     description=description, inspected_at=now, created_at=now,
                     created_by=move_in.created_by)
        defect._set_deadline("submit", calendar.add_working_days(
            now, DEFECT_SUBMIT_WORKING_DAYS, move_in.timezone))
        defect._record(now, move_in.created_by, "agent", "found",
                       data={"location": location, "description": description})
        defect.refresh_due()
        return defect

    def _context(self):
        return {"defect_id": self.id, "unit": self.unit, "location": self.location,
                "description": self.description}

    def _submit(self, data, *, now, by, role):
        """In writing to the developer (以书面形式提交开发商): a letter to post."""
        self.submitted_at = now
        self._meet("submit", now)
        self._record(now, by, role, "submit", note=data.get("note"))
        self.events.append(("frontdesk.notice", {
            "notice": "defect_letter", "channel": "letter", "recipient": f"developer@{self.site}",
            "unit": self.unit, "context": {**self._context(),
                                           "inspected_on": self._local_day(self.inspected_at)}}))

    def _progress(self, data, *, now, by, role):
        self.progress = [*self.progress, {"at": now.isoformat(), "by": by, "note": data["note"]}]
        self._record(now, by, role, "progress", note=data["note"])

    def _fixed(self, data, *, now, by, role):
        self.fixed_at = now
        self._record(now, by, role, "fixed", note=data.get("note"))
        if self.owner.get("phone"):
            self.events.append(("frontdesk.notice", {
                "notice": "defect_fixed", "channel": "sms", "recipient": self.owner["phone"],
                "person_id": self.owner.get("person_id"), "unit": self.unit,
                "context": self._context()}))

    def _close(self, data, *, now, by, role):
        self.closed_at = now
        self._record(now, by, role, "close", note=data.get("note"))

    def _local_day(self, instant):
        return instant.astimezone(calendar.zone(self.timezone)).date().isoformat()


# == parking-space rental (车位租赁) ============================================================

PARKING_WORKFLOW = Workflow(
    "parking_rental",
    Transition("approve", ("pending",), "active", MANAGERS),
    Transition("reject", ("pending",), "rejected", MANAGERS),
    Transition("end", ("active",), "ended", DESK),
)


@dataclass
class ParkingRental(Case):
    id: str
    site: str
    unit: str
    timezone: str
    space_id: str
    space_number: str
    monthly_fee: str | None       # the space's own fee; None: the site's parking_per_month
    person_id: str
    relation: str
    vehicle: dict
    documents: list
    start: date
    end: date | None
    arrived_at: datetime
    created_at: datetime
    created_by: str
    status: str = "pending"
    contract_no: str | None = None
    card_no: str | None = None
    approved_at: datetime | None = None
    approved_by: str | None = None
    ended_on: date | None = None
    reason: str | None = None
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    breaches: list = field(default_factory=list)
    history: list = field(default_factory=list)
    next_due_at: datetime | None = None
    events: list = field(default_factory=list, repr=False, compare=False)

    workflow = PARKING_WORKFLOW
    ALERTED = ("finish",)
    FINAL = ("active", "ended", "rejected")
    KIND = "parking_rental"

    @classmethod
    def apply_for(cls, *, id, site, unit, timezone, space, person_id, relation, data, now, by, role):
        lacking = missing(parking_documents_needed(relation), data["documents"])
        if lacking:
            names = ", ".join(f"{code} ({PARKING_DOCUMENTS[code]})" for code in lacking)
            raise InvalidField("documents", f"documents missing: {names}", missing_documents=lacking)
        arrived_at = data.get("arrived_at") or now
        if arrived_at > now:
            raise InvalidField("arrived_at", "arrived_at is in the future")
        if data.get("end") and data["end"] < data["start"]:
            raise InvalidField("end", "end must not be before start")
        rental = cls(id=id, site=site, unit=unit, timezone=timezone, space_id=space["id"],
                     space_number=space["number"], monthly_fee=space.get("monthly_fee"),
                     person_id=person_id, relation=relation, vehicle=dict(data["vehicle"]),
                     documents=list(data["documents"]), start=data["start"], end=data.get("end"),
                     arrived_at=arrived_at, created_at=now, created_by=by)
        rental._set_deadline("finish", arrived_at + PARKING_FINISH)
        rental._record(now, by, role, "apply", data={"arrived_at": arrived_at,
                                                     "documents": rental.documents})
        rental.refresh_due()
        return rental

    def _approve(self, data, *, now, by, role):
        """The manager signs the contract: contract and parking-card numbers, billing from
        `start` (frontdesk.parking_rented)."""
        tail = self.id[-6:].upper()
        self.contract_no = f"CW{self.site}-{tail}"
        self.card_no = f"TC{self.site}-{self.space_number}-{tail}"
        self.approved_at, self.approved_by = now, by
        self._meet("finish", now)
        self._record(now, by, role, "approve", data={"contract_no": self.contract_no,
                                                     "card_no": self.card_no})
        self.events.append(("frontdesk.parking_rented", self._payload()))

    def _reject(self, data, *, now, by, role):
        self.reason = data["reason"]
        self._meet("finish", now)
        self._record(now, by, role, "reject", note=data["reason"])

    def _end(self, data, *, now, by, role):
        if data["on"] < self.start:
            raise InvalidField("on", "a rental cannot end before it starts")
        self.ended_on = data["on"]
        self._record(now, by, role, "end", data={"on": data["on"]})
        self.events.append(("frontdesk.parking_ended", {**self._payload(), "ended_on": self.ended_on}))

    def _payload(self):
        return {"rental_id": self.id, "unit": self.unit, "space_number": self.space_number,
                "monthly_fee": Decimal(self.monthly_fee) if self.monthly_fee else None,
                "start": self.start, "end": self.end, "plate": self.vehicle["plate"],
                "licence_no": self.vehicle.get("licence_no"),
                "person_id": self.person_id, "contract_no": self.contract_no}


# == release passes (放行条) ====================================================================

PASS_WORKFLOW = Workflow(
    "release_pass",
    Transition("confirm", ("awaiting_owner",), "confirmed", (RESIDENT, *DESK)),
    Transition("refuse", ("awaiting_owner",), "refused", (RESIDENT, *DESK)),
    Transition("use", ("confirmed",), "used", GATE),
)


@dataclass
class ReleasePass(CaseFile):
    id: str
    number: str
    site: str
    unit: str
    timezone: str
    owner: dict
    requested_by: dict
    items: list
    move_on: date
    transfer_watch: bool
    created_at: datetime
    created_by: str
    status: str = "awaiting_owner"
    confirmed_by: str | None = None      # owner (asked in person), resident (app), phone
    confirmed_at: datetime | None = None
    used_at: datetime | None = None
    used_by: str | None = None
    reason: str | None = None
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    events: list = field(default_factory=list, repr=False, compare=False)

    workflow = PASS_WORKFLOW

    @classmethod
    def request(cls, *, id, site, unit, timezone, owner, transfer_watch, data, now, by, role):
        number = f"FX{unit}-{id[-6:].upper()}"
        release = cls(id=id, number=number, site=site, unit=unit, timezone=timezone, owner=owner,
                      requested_by=dict(data["requested_by"]), items=list(data["items"]),
                      move_on=data["move_on"], transfer_watch=transfer_watch, created_at=now,
                      created_by=by)
        release._record(now, by, role, "request", data={"requested_by": release.requested_by})
        by_owner = owner.get("person_id") and data["requested_by"].get("person_id") == owner["person_id"]
        if by_owner:
            release._confirmed("owner", now, by, role)
        elif owner.get("phone"):
            # 放行应当得到业主的确认: the owner is asked by SMS (and confirms in the app or by phone)
            release.events.append(("frontdesk.notice", {
                "notice": "pass_confirmation", "channel": "sms", "recipient": owner["phone"],
                "person_id": owner.get("person_id"), "unit": unit, "context": release._context()}))
        return release

    def refresh_due(self):
        """Passes carry no alerted deadline."""

    def _context(self):
        return {"number": self.number, "unit": self.unit,
                "requested_by": self.requested_by.get("name"), "move_on": self.move_on.isoformat(),
                "items": "、".join(f"{i['description']}×{i['quantity']}" for i in self.items)}

    def _confirm(self, data, *, now, by, role):
        if role == RESIDENT and data["by"] != "resident":
            raise InvalidField("by", "a resident confirms in the app: by is resident")
        if role != RESIDENT and data["by"] != "phone":
            raise InvalidField("by", "staff record the owner's phone confirmation: by is phone")
        self._confirmed(data["by"], now, by, role)

    def _confirmed(self, how, now, by, role):
        self.status, self.confirmed_by, self.confirmed_at = "confirmed", how, now
        self._record(now, by, role, "confirm", data={"by": how})
        if self.transfer_watch:
            # arrears > 3 months: the goods may be the owner moving out (001 §2.8 transfer_watch)
            self.events.append(("frontdesk.notice", {
                "notice": "pass_transfer_watch", "channel": "staff",
                "recipient": f"role:manager@{self.site}", "unit": self.unit,
                "context": self._context()}))

    def _refuse(self, data, *, now, by, role):
        self.reason = data["reason"]
        self._record(now, by, role, "refuse", note=data["reason"])

    def _use(self, data, *, now, by, role):
        if self.gate_status(self.today(now)) != "valid":
            raise Conflict(f"pass {self.number} is {self.gate_status(self.today(now))} today",
                           {"number": self.number, "status": self.gate_status(self.today(now))})
        self.used_at, self.used_by = now, data.get("guard") or by
        self._record(now, by, role, "use", data={"guard": self.used_by})

    def today(self, now):
        return now.astimezone(calendar.zone(self.timezone)).date()

    def gate_status(self, today):
        """valid only on its move_on day once confirmed; otherwise what stops it."""
        if self.status in ("used", "refused"):
            return self.status
        if today > self.move_on:
            return "expired"
        if self.status == "awaiting_owner":
            return "awaiting_owner"
        return "valid" if today == self.move_on else "not_yet"


# == community activities (社区活动) ============================================================

ACTIVITY_WORKFLOW = Workflow(
    "activity",
    Transition("publish", ("planned",), "published", DESK),
    Transition("register", ("published",), None, (RESIDENT, *DESK)),
    Transition("complete", ("published",), "completed", DESK),
    Transition("revisit", ("completed",), None, DESK),
    Transition("cancel", ("planned", "published"), "cancelled", DESK),
)


@dataclass
class Activity(CaseFile):
    id: str
    site: str
    title: str
    purpose: str
    starts_at: datetime
    ends_at: datetime
    budget: str
    capacity: int | None
    created_at: datetime
    created_by: str
    status: str = "planned"
    notify_sms: bool = False     # publishing also texts the site's owners (SPEC §8.6)
    published_at: datetime | None = None
    summary: str | None = None
    reason: str | None = None
    participants: list = field(default_factory=list)    # [{person_id, registered_at}]
    revisits: list = field(default_factory=list)        # [{person_id, satisfied, comment, at, by}]
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    events: list = field(default_factory=list, repr=False, compare=False)

    workflow = ACTIVITY_WORKFLOW

    @classmethod
    def plan(cls, *, id, data, now, by, role):
        if data["ends_at"] < data["starts_at"]:
            raise InvalidField("ends_at", "ends_at must not be before starts_at")
        activity = cls(id=id, site=data["site"], title=data["title"], purpose=data["purpose"],
                       starts_at=data["starts_at"], ends_at=data["ends_at"],
                       budget=str(data["budget"]), capacity=data.get("capacity"),
                       notify_sms=bool(data.get("notify_sms")), created_at=now, created_by=by)
        activity._record(now, by, role, "plan")
        return activity

    def refresh_due(self):
        """Activities carry no alerted deadline."""

    def _publish(self, data, *, now, by, role):
        if self.starts_at - now < PUBLISH_AHEAD:
            raise Conflict("an activity is published at least 3 days before it starts",
                           {"starts_at": self.starts_at.isoformat(),
                            "publish_by": (self.starts_at - PUBLISH_AHEAD).isoformat()})
        self.published_at = now
        self._record(now, by, role, "publish")
        self.events.append(("frontdesk.notice", {
            "notice": "activity_published", "channel": "in_app", "recipient": f"site:{self.site}",
            "context": {"title": self.title, "purpose": self.purpose,
                        "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(),
                        "capacity": self.capacity}}))
        self.events.append(("frontdesk.activity_published", {
            "activity_id": self.id, "title": self.title, "purpose": self.purpose,
            "starts_at": self.starts_at, "ends_at": self.ends_at, "capacity": self.capacity,
            "notify_sms": bool(self.notify_sms)}))

    def _register(self, data, *, now, by, role):
        person_id = data["person_id"]
        if any(p["person_id"] == person_id for p in self.participants):
            raise Conflict(f"{person_id} is already registered", {"person_id": person_id})
        if self.capacity is not None and len(self.participants) >= self.capacity:
            raise Conflict("the activity is full", {"capacity": self.capacity})
        self.participants = [*self.participants, {"person_id": person_id,
                                                  "registered_at": now.isoformat()}]
        self._record(now, by, role, "register", data={"person_id": person_id})

    def _complete(self, data, *, now, by, role):
        self.summary = data["summary"]
        self._record(now, by, role, "complete", note=data["summary"])

    def _revisit(self, data, *, now, by, role):
        person_id = data["person_id"]
        if not any(p["person_id"] == person_id for p in self.participants):
            raise InvalidField("person_id", f"{person_id} did not take part")
        if any(r["person_id"] == person_id for r in self.revisits):
            raise Conflict(f"{person_id} was already revisited", {"person_id": person_id})
        self.revisits = [*self.revisits, {"person_id": person_id, "satisfied": data["satisfied"],
                                          "comment": data.get("comment"), "at": now.isoformat(),
                                          "by": by}]
        self._record(now, by, role, "revisit", data={"person_id": person_id,
                                                     "satisfied": data["satisfied"]})

    def _cancel(self, data, *, now, by, role):
        self.reason = data["reason"]
        self._record(now, by, role, "cancel", note=data["reason"])

    def rates(self):
        return activity_rates(len(self.participants), len(self.revisits),
                              sum(1 for r in self.revisits if r["satisfied"]))


def ratio(part, whole):
    return None if not whole else (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"))


def activity_rates(participants, revisits, satisfied):
    """revisit_rate (target ≥ 10 %) and satisfaction_rate (target ≥ 80 %), with on_target."""
    revisit_rate, satisfaction_rate = ratio(revisits, participants), ratio(satisfied, revisits)
    on_target = (revisit_rate is not None and satisfaction_rate is not None
                 and revisit_rate >= REVISIT_TARGET and satisfaction_rate >= SATISFACTION_TARGET)
    return {"revisit_rate": revisit_rate, "satisfaction_rate": satisfaction_rate,
            "on_target": on_target}


# == the answer book (答客问) ===================================================================

def review_due(updated_at, tz=calendar.DEFAULT_TZ):
    return calendar.add_months(updated_at, REVIEW_MONTHS, tz)


def review_overdue(updated_at, now, tz=calendar.DEFAULT_TZ):
    return review_due(updated_at, tz) <= now


# == the month's figures ========================================================================

def on_time_count(cases, deadline):
    """(met in time, measured) of `deadline` over the cases that met it or breached it."""
    judged = [c.on_time(deadline) for c in cases]
    judged = [j for j in judged if j is not None]
    return sum(judged), len(judged)

"""Ticketing rules (SPEC §2), plain Python: a ticket's states, who may move it, and the
deadlines each step starts or meets. No Nameko, no SQL; `now` is always passed in."""
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from services.common import calendar
from services.common.clock import as_utc
from services.common.errors import Forbidden, IllegalTransition

KINDS = ("repair", "complaint", "inquiry", "suggestion")
CHANNELS = ("front_desk", "phone", "web", "app", "email", "letter")
PRIORITIES = ("normal", "urgent")
SCOPES = ("common_area", "in_home")
REPAIR_STATUSES = ("received", "dispatched", "on_site", "completed", "closed", "cancelled")
OPEN_STATUSES = ("received", "dispatched", "on_site", "completed")

DESK = ("agent", "supervisor", "manager", "hq", "ops_admin")
FIELD = ("technician", "supervisor", "manager", "ops_admin")
CREATORS = DESK + ("resident", "quality_supervisor")


@dataclass(frozen=True)
class RepairPolicy:
    """Defaults of SPEC §2.2; a site may tighten them. Frozen onto each ticket at creation."""
    urgent_dispatch_minutes: int = 3        # 三分钟服务承诺 (004)
    callback_hours: int = 24                # callback within 24 h of completion
    second_callback_months: int = 1         # important repairs: one more within a month
    late_entry_hours: int = 2               # paper-first entry allowance (001)
    rework_days: int = 30                   # reopened within 30 days counts as rework

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


@dataclass
class Transition:
    action: str
    sources: tuple
    target: str | None            # None: the status does not change
    roles: tuple


REPAIR_TRANSITIONS = {t.action: t for t in (
    Transition("dispatch", ("received",), "dispatched", DESK),
    Transition("reschedule", ("received", "dispatched"), None, DESK + FIELD),
    Transition("arrive", ("dispatched",), "on_site", FIELD),
    Transition("complete", ("on_site",), "completed", FIELD),
    Transition("record-callback", ("completed", "closed"), None, DESK),
    Transition("close", ("completed",), "closed", DESK),
    Transition("cancel", ("received", "dispatched"), "cancelled", DESK),
)}


@dataclass
class Ticket:
    """A repair (the other kinds grow here). Deadlines, breaches and history are plain data so
    that storage can keep them as they are and the API can show them."""
    id: str
    code: str
    kind: str
    site: str
    timezone: str
    channel: str
    description: str
    received_at: datetime
    created_at: datetime
    first_contact_owner: str
    unit: str | None = None
    reporter: dict | None = None
    priority: str = "normal"
    scope: str = "common_area"
    important: bool = False
    status: str = "received"
    assignee: str | None = None
    appointment: dict | None = None
    reschedules: int = 0
    missed_appointments: int = 0
    escalated: bool = False
    late_entry: bool = False
    policy: dict = field(default_factory=dict)
    deadlines: dict = field(default_factory=dict)       # name -> ISO instant
    deadlines_met: dict = field(default_factory=dict)   # name -> ISO instant it was met
    breaches: list = field(default_factory=list)
    history: list = field(default_factory=list)
    callback: dict | None = None
    second_callback: dict | None = None
    result: dict | None = None
    fee: str | None = None
    completed_at: datetime | None = None
    closed_at: datetime | None = None
    next_due_at: datetime | None = None
    callback_due_at: datetime | None = None
    events: list = field(default_factory=list, repr=False, compare=False)

    # -- creation ------------------------------------------------------------------------

    @classmethod
    def open_repair(cls, *, id, code, site, timezone, channel, description, received_at, now,
                    first_contact_owner, by_role, policy: RepairPolicy, unit=None, reporter=None,
                    priority="normal", scope="common_area", important=False, appointment=None,
                    fee=None):
        if received_at > now:
            raise ValueError("received_at is in the future")
        ticket = cls(
            id=id, code=code, kind="repair", site=site, timezone=timezone, channel=channel,
            description=description, received_at=received_at, created_at=now,
            first_contact_owner=first_contact_owner, unit=unit, reporter=reporter,
            priority=priority, scope=scope, important=important, appointment=appointment,
            fee=None if fee is None else str(Decimal(fee)), policy=asdict(policy),
            late_entry=now - received_at > timedelta(hours=policy.late_entry_hours),
        )
        if priority == "urgent":
            ticket._set_deadline("dispatch", calendar.add_minutes(
                received_at, policy.urgent_dispatch_minutes))
        ticket._record(now, first_contact_owner, by_role, "receive",
                       note="entered late" if ticket.late_entry else None,
                       data={"received_at": received_at.isoformat()})
        ticket._refresh_due()
        return ticket

    # -- what may happen next ------------------------------------------------------------

    @property
    def repair_policy(self):
        return RepairPolicy.from_dict(self.policy)

    def allowed_actions(self, role=None):
        """Actions valid in the current state (for this role, when given)."""
        return [t.action for t in REPAIR_TRANSITIONS.values()
                if self._state_allows(t) and (role is None or role in t.roles)]

    def _state_allows(self, transition):
        if self.status not in transition.sources:
            return False
        if transition.action == "close":
            return self.callback is not None
        if transition.action == "record-callback" and self.status == "closed":
            return self.important and self.callback is not None and self.second_callback is None
        if transition.action == "record-callback":
            return self.callback is None
        return True

    def _check(self, action, role):
        transition = REPAIR_TRANSITIONS.get(action)
        if transition is None:
            raise IllegalTransition.build(action, self.status, self.allowed_actions(role))
        if role not in transition.roles:
            raise Forbidden(f"role {role} may not {action} a repair",
                            {"action": action, "allowed_roles": list(transition.roles)})
        if not self._state_allows(transition):
            raise IllegalTransition.build(action, self.status, self.allowed_actions(role))
        return transition

    # -- the flow (SPEC §2.2) ------------------------------------------------------------

    def apply(self, action, data, *, now, by, role):
        transition = self._check(action, role)
        getattr(self, "_" + action.replace("-", "_"))(data, now=now, by=by, role=role)
        if transition.target:
            self.status = transition.target
        self._refresh_due()
        return self

    def _dispatch(self, data, *, now, by, role):
        self.assignee = data["assignee"]
        if data.get("appointment"):
            self.appointment = data["appointment"]
        self._meet("dispatch", now)
        self._record(now, by, role, "dispatch", data={"assignee": self.assignee,
                                                      "dispatched_at": now.isoformat()})

    def _reschedule(self, data, *, now, by, role):
        """A missed appointment is apologised for and rescheduled; a second miss escalates to
        the supervisor (001 ch.5 §1)."""
        self.appointment = data["appointment"]
        self.reschedules += 1
        if data.get("missed"):
            self.missed_appointments += 1
        self._record(now, by, role, "reschedule", note=data.get("reason"),
                     data={"appointment": self.appointment, "missed": bool(data.get("missed"))})
        if self.missed_appointments >= 2 and not self.escalated:
            self.escalated = True
            self._record(now, "system", "system", "escalate",
                         note="second missed appointment: escalated to the supervisor")

    def _arrive(self, data, *, now, by, role):
        self._record(now, by, role, "arrive", data={"arrived_at": now.isoformat()})

    def _complete(self, data, *, now, by, role):
        policy = self.repair_policy
        self.completed_at = now
        self.result = {k: data.get(k) for k in ("result", "materials", "signed_off")}
        if data.get("fee") is not None:
            self.fee = str(Decimal(data["fee"]))
        callback_due = calendar.add_hours(now, policy.callback_hours)
        self._set_deadline("callback", callback_due)
        if self.important:
            self._set_deadline("second_callback", calendar.add_months(
                now, policy.second_callback_months, self.timezone))
        self._record(now, by, role, "complete", data={**self.result, "completed_at": now.isoformat()})
        self.events.append(("ticketing.callback_due", {
            "ticket_id": self.id, "code": self.code, "kind": self.kind, "unit": self.unit,
            "first_contact_owner": self.first_contact_owner, "reporter": self.reporter,
            "due_at": callback_due, "completed_at": now,
            "important": self.important, "description": self.description,
            "timezone": self.timezone, "priority": self.priority,
        }))

    def _record_callback(self, data, *, now, by, role):
        record = {"satisfaction": data.get("satisfaction"), "reached": data["reached"],
                  "comment": data.get("comment"), "at": now.isoformat(), "by": by}
        if self.callback is None:
            self.callback = record
            self._meet("callback", now)
        else:
            self.second_callback = record
            self._meet("second_callback", now)
        self._record(now, by, role, "record-callback", data=record)

    def _close(self, data, *, now, by, role):
        self.closed_at = now
        self._record(now, by, role, "close")

    def _cancel(self, data, *, now, by, role):
        self.closed_at = now
        self._record(now, by, role, "cancel", note=data.get("reason"))

    # -- bookkeeping ---------------------------------------------------------------------

    def _set_deadline(self, name, due):
        self.deadlines = {**self.deadlines, name: as_utc(due).isoformat()}

    def _meet(self, name, now):
        if name in self.deadlines and name not in self.deadlines_met:
            self.deadlines_met = {**self.deadlines_met, name: now.isoformat()}

    def open_deadlines(self):
        return {n: datetime.fromisoformat(d) for n, d in self.deadlines.items()
                if n not in self.deadlines_met}

    def _refresh_due(self):
        """The earliest unmet deadline (handover order, overdue filter) and the callback due."""
        open_ = self.open_deadlines() if self.status not in ("cancelled",) else {}
        self.next_due_at = min(open_.values(), default=None)
        self.callback_due_at = open_.get("callback")

    def _record(self, now, by, role, action, note=None, data=None):
        self.history = self.history + [{"at": now.isoformat(), "by": by, "role": role,
                                        "action": action, "note": note, "data": data or {}}]

    def pull_events(self):
        events, self.events = self.events, []
        return events


def repair_code(site, serial):
    return f"{site}-R-{serial:05d}"

"""Ticketing rules (SPEC §2), plain Python: a ticket's states, who may move it, and the
deadlines each step starts or meets, for repairs, complaints, inquiries and suggestions.
No Nameko, no SQL; `now` is always passed in."""
from dataclasses import asdict, dataclass, field, fields as dataclass_fields
from datetime import datetime, timedelta
from decimal import Decimal

from services.common import calendar
from services.common.casefile import CaseFile, json_safe
from services.common.clock import as_utc
from services.common.errors import Forbidden
from services.common.roles import DESK, HANDLERS, MANAGERS, RESIDENT, TECHNICIANS
from services.common.workflow import Transition, Workflow

KINDS = ("repair", "complaint", "inquiry", "suggestion")
CHANNELS = ("front_desk", "phone", "web", "app", "email", "letter")
WRITTEN_CHANNELS = ("email", "letter", "web")       # non-face-to-face: acknowledged within 2 days
PRIORITIES = ("normal", "urgent")
SCOPES = ("common_area", "in_home")
SEVERITIES = ("A", "B", "C")
CATEGORIES = ("KF", "ZX", "GC", "BJ", "YY", "QT")
JOINT_COMPLAINANTS = 3

STATUSES = {
    "repair": ("received", "dispatched", "on_site", "completed", "closed", "cancelled"),
    "complaint": ("received", "routed", "resolved", "replied", "closed", "invalid"),
    "inquiry": ("received", "closed"),
    "suggestion": ("received", "forwarded", "decided", "closed"),
}
FINAL_STATUSES = ("closed", "cancelled", "invalid")
DROPPED_STATUSES = ("cancelled", "invalid")   # their deadlines lapse; a closed ticket's revisit stays
OPEN_STATUSES = tuple(sorted({s for kind in STATUSES.values() for s in kind} - set(FINAL_STATUSES)))

CREATORS = (*DESK, "resident", "quality_supervisor")

# 处理权限 (001 ch.4 §2): the most each role may promise; None = no cap (site manager and up).
COMPENSATION_CAPS = {"agent": Decimal("0"), "supervisor": Decimal("1000"),
                     "quality_supervisor": Decimal("2000"), "manager": None, "hq": None,
                     "ops_admin": None}

# Who an overrun deadline alerts, lowest first (agent → supervisor → manager → hq).
ESCALATION = {"C": ("supervisor",), "B": ("supervisor", "manager"),
              "A": ("supervisor", "manager", "hq")}


@dataclass(frozen=True)
class SlaPolicy:
    """Defaults of SPEC §2; a site may tighten them (never loosen). Frozen onto each ticket at
    creation, so a later policy change does not rewrite history. Days are calendar days in
    the site's time zone; a limit runs from the instant that starts it."""
    # repairs (§2.2)
    urgent_dispatch_minutes: int = 3        # 三分钟服务承诺 (004)
    callback_hours: int = 24                # callback within 24 h of completion
    second_callback_months: int = 1         # important repairs: one more within a month
    late_entry_hours: int = 2               # paper-first entry allowance (001)
    rework_days: int = 30                   # reopened within 30 days counts as rework
    # complaints (§2.1)
    acknowledge_days: int = 2               # written complaints
    route_hours: int = 1
    answer_days_a: int = 2                  # a definite answer to an A complainant
    resolve_days_a: int = 10
    resolve_days_b: int = 3
    resolve_days_c: int = 2
    reply_days: int = 2                     # after resolution
    complaint_callback_days: int = 3        # after resolution
    revisit_months: int = 1                 # A and B, after the reply
    upgrade_days: int = 30                  # a valid B/C still open is upgraded to A
    # suggestions (§2.3)
    forward_hours: int = 2
    suggestion_reply_days: int = 3

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})

    def tightened(self, changes):
        """This policy with `changes`; {field: message} for every change that loosens it."""
        defaults = SlaPolicy()
        loosened = {name: [f"at most {getattr(defaults, name)} (the default); a site may only tighten it"]
                    for name, value in changes.items() if value > getattr(defaults, name)}
        return SlaPolicy(**{**asdict(self), **changes}), loosened


def policy_fields():
    return [f.name for f in dataclass_fields(SlaPolicy)]


def _callback_awaited(second):
    """The callback, or once the ticket is closed, the one more that `second` names (the
    repair's second callback, the complaint's revisit)."""
    def guard(ticket):
        if ticket.status == "closed":
            return ticket.callback is not None and ticket.second_callback is None \
                and second in ticket.deadlines
        return ticket.callback is None
    return guard


def _pending(deadline):
    return lambda ticket: ticket.deadline_pending(deadline)


def _called_back(ticket):
    return ticket.callback is not None


def _extension_pending(ticket):
    return bool((ticket.extension or {}).get("pending"))


TRANSITIONS = {
    "repair": Workflow(
        "repair",
        Transition("dispatch", ("received",), "dispatched", DESK),
        Transition("reschedule", ("received", "dispatched"), None, (*DESK, "technician")),
        Transition("arrive", ("dispatched",), "on_site", TECHNICIANS),
        Transition("complete", ("on_site",), "completed", TECHNICIANS),
        # the technician reports a common-area repair back the same day (a callback that
        # reaches the reporter does too)
        Transition("reply", ("completed", "closed"), None, TECHNICIANS, guard=_pending("reply")),
        Transition("record-callback", ("completed", "closed"), None, (*DESK, RESIDENT),
                   guard=_callback_awaited("second_callback")),
        Transition("close", ("completed",), "closed", DESK, guard=_called_back),
        Transition("reopen", ("closed",), "received", DESK,
                   guard=lambda ticket: ticket.completed_at is not None),
        Transition("cancel", ("received", "dispatched"), "cancelled", DESK),
    ),
    "complaint": Workflow(
        "complaint",
        Transition("acknowledge", ("received", "routed"), None, DESK,
                   guard=_pending("acknowledge")),
        Transition("route", ("received",), "routed", DESK),
        Transition("assess", ("received", "routed"), None, HANDLERS,
                   guard=lambda ticket: ticket.valid is None),
        Transition("answer", ("received", "routed"), None, (*HANDLERS, "agent"),
                   guard=_pending("answer")),
        Transition("request-extension", ("routed",), None, (*HANDLERS, "agent"),
                   guard=lambda ticket: not _extension_pending(ticket)),
        Transition("approve-extension", ("routed",), None, MANAGERS, guard=_extension_pending),
        Transition("resolve", ("routed",), "resolved", (*HANDLERS, "agent")),
        Transition("reply", ("resolved",), "replied", (*DESK, "quality_supervisor")),
        Transition("record-callback", ("resolved", "replied", "closed"), None,
                   (*DESK, "quality_supervisor", RESIDENT), guard=_callback_awaited("revisit")),
        Transition("close", ("replied",), "closed", (*DESK, "quality_supervisor"),
                   guard=_called_back),
    ),
    "inquiry": Workflow(
        "inquiry",
        Transition("answer", ("received",), "closed", (*DESK, "quality_supervisor", "technician")),
    ),
    "suggestion": Workflow(
        "suggestion",
        Transition("forward", ("received",), "forwarded", DESK),
        Transition("decide", ("forwarded",), "decided", HANDLERS),
        Transition("reply", ("decided",), "closed", (*DESK, "quality_supervisor")),
    ),
}


@dataclass
class Ticket(CaseFile):
    """Any kind of ticket. Deadlines, breaches and history are plain data so that storage can
    keep them as they are and the API can show them."""
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
    severity: str | None = None
    category: str | None = None
    complainants: int | None = None
    requested_deadline: datetime | None = None
    valid: bool | None = None
    compensation: str | None = None
    extension: dict | None = None
    details: dict = field(default_factory=dict)     # answer, decision, reply, ... as recorded
    reopened: int = 0
    rework: int = 0
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
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    next_due_at: datetime | None = None
    callback_due_at: datetime | None = None
    sweep_due_at: datetime | None = None     # next instant the sweep has something to do
    events: list = field(default_factory=list, repr=False, compare=False)

    # -- creation ------------------------------------------------------------------------

    @classmethod
    def _open(cls, kind, *, now, received_at, policy, by_role, **values):
        if received_at > now:
            raise ValueError("received_at is in the future")
        ticket = cls(kind=kind, received_at=received_at, created_at=now, policy=asdict(policy),
                     late_entry=now - received_at > timedelta(hours=policy.late_entry_hours),
                     **values)
        ticket._record(now, ticket.first_contact_owner, by_role, "receive",
                       note="entered late" if ticket.late_entry else None,
                       data={"received_at": received_at.isoformat()})
        return ticket

    @classmethod
    def open_repair(cls, *, id, code, site, timezone, channel, description, received_at, now,
                    first_contact_owner, by_role, policy: SlaPolicy, unit=None, reporter=None,
                    priority="normal", scope="common_area", important=False, appointment=None,
                    fee=None):
        ticket = cls._open(
            "repair", now=now, received_at=received_at, policy=policy, by_role=by_role,
            id=id, code=code, site=site, timezone=timezone, channel=channel,
            description=description, first_contact_owner=first_contact_owner, unit=unit,
            reporter=reporter, priority=priority, scope=scope, important=important,
            appointment=json_safe(appointment), fee=None if fee is None else str(Decimal(fee)))
        if priority == "urgent":
            ticket._set_deadline("dispatch", calendar.add_minutes(
                received_at, policy.urgent_dispatch_minutes))
        ticket.refresh_due()
        return ticket

    @classmethod
    def open_complaint(cls, *, id, site, serial, timezone, channel, description, received_at,
                       now, first_contact_owner, by_role, policy: SlaPolicy, severity, category,
                       complainants=1, requested_deadline=None, unit=None, reporter=None):
        """Joint complaints (≥ 3 complainants) are always A and go to head office the same day."""
        joint = complainants >= JOINT_COMPLAINANTS
        severity = "A" if joint else severity
        ticket = cls._open(
            "complaint", now=now, received_at=received_at, policy=policy, by_role=by_role,
            id=id, code=complaint_code(site, severity, category, serial), site=site,
            timezone=timezone, channel=channel, description=description,
            first_contact_owner=first_contact_owner, unit=unit, reporter=reporter,
            severity=severity, category=category, complainants=complainants,
            requested_deadline=requested_deadline)
        tz = timezone
        if channel in WRITTEN_CHANNELS:
            ticket._set_deadline("acknowledge", calendar.add_days(received_at, policy.acknowledge_days, tz))
        ticket._set_deadline("route", calendar.add_hours(received_at, policy.route_hours))
        if severity == "A":
            ticket._set_deadline("answer", calendar.add_days(received_at, policy.answer_days_a, tz))
        ticket._set_deadline("resolve", ticket._resolve_due(received_at))
        if joint:
            ticket.escalated = True
            ticket._record(now, "system", "system", "escalate",
                           note="joint complaint: severity A, escalated to head office the same day",
                           data={"to": "hq", "complainants": complainants})
        ticket.refresh_due()
        return ticket

    @classmethod
    def open_inquiry(cls, *, id, code, site, timezone, channel, description, received_at, now,
                     first_contact_owner, by_role, policy: SlaPolicy, reply_by=None, unit=None,
                     reporter=None):
        """Answered at once, or by the reply time agreed with the enquirer."""
        ticket = cls._open(
            "inquiry", now=now, received_at=received_at, policy=policy, by_role=by_role,
            id=id, code=code, site=site, timezone=timezone, channel=channel,
            description=description, first_contact_owner=first_contact_owner, unit=unit,
            reporter=reporter)
        if reply_by is not None:
            ticket._set_deadline("answer", reply_by)
        ticket.refresh_due()
        return ticket

    @classmethod
    def open_suggestion(cls, *, id, code, site, timezone, channel, description, received_at, now,
                        first_contact_owner, by_role, policy: SlaPolicy, unit=None, reporter=None):
        ticket = cls._open(
            "suggestion", now=now, received_at=received_at, policy=policy, by_role=by_role,
            id=id, code=code, site=site, timezone=timezone, channel=channel,
            description=description, first_contact_owner=first_contact_owner, unit=unit,
            reporter=reporter)
        ticket._set_deadline("forward", calendar.add_hours(received_at, policy.forward_hours))
        ticket._set_deadline("reply", calendar.add_days(received_at, policy.suggestion_reply_days,
                                                        timezone))
        ticket.refresh_due()
        return ticket

    # -- what may happen next ------------------------------------------------------------

    @property
    def sla_policy(self):
        return SlaPolicy.from_dict(self.policy)

    @property
    def workflow(self):
        return TRANSITIONS[self.kind]

    def apply(self, action, data, *, now, by, role):
        super().apply(action, data, now=now, by=by, role=role)
        if self.status in FINAL_STATUSES and self.closed_at is None:
            self.closed_at = now
        return self

    # -- repairs (SPEC §2.2) -------------------------------------------------------------

    def _dispatch(self, data, *, now, by, role):
        self.assignee = data["assignee"]
        if data.get("appointment"):
            self.appointment = json_safe(data["appointment"])
        self._meet("dispatch", now)
        self._record(now, by, role, "dispatch", data={"assignee": self.assignee,
                                                      "dispatched_at": now.isoformat()})

    def _reschedule(self, data, *, now, by, role):
        """A missed appointment is apologised for and rescheduled; a second miss escalates to
        the supervisor (001 ch.5 §1)."""
        self.appointment = json_safe(data["appointment"])
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
        policy = self.sla_policy
        self.completed_at = now
        self.result = {k: data.get(k) for k in ("result", "materials", "signed_off")}
        if data.get("fee") is not None:
            self.fee = str(Decimal(data["fee"]))
        callback_due = calendar.add_hours(now, policy.callback_hours)
        self._set_deadline("callback", callback_due)
        if self.important:
            self._set_deadline("second_callback", calendar.add_months(
                now, policy.second_callback_months, self.timezone))
        if self.scope == "common_area":
            # 共用部位: reported back to the reporter the same day it is fixed
            self._set_deadline("reply", calendar.end_of_local_day(now, self.timezone))
        self._record(now, by, role, "complete", data={**self.result, "completed_at": now.isoformat()})
        self._callback_due_event(callback_due, now)
        if self.scope == "in_home" and self.fee is not None and Decimal(self.fee) > 0:
            self.events.append(("ticketing.service_charge", {
                "ticket_id": self.id, "code": self.code, "unit": self.unit,
                "amount": Decimal(self.fee), "description": self.description,
                "completed_at": now}))

    def _repair_reply(self, data, *, now, by, role):
        self._meet("reply", now)
        self.details = {**(self.details or {}), "reported_back": {"at": now.isoformat(), "by": by,
                                                          "note": data.get("message")}}
        self._record(now, by, role, "reply", note=data.get("message"))

    def _reopen(self, data, *, now, by, role):
        """Reopened within `rework_days` of completion counts as rework (a KPI)."""
        rework = now - self.completed_at <= timedelta(days=self.sla_policy.rework_days)
        self.reopened += 1
        self.rework += int(rework)
        # the repair runs again: its next completion starts a new callback (the earlier one
        # stays in the history, and any breach of it in `breaches`)
        again = ("callback", "second_callback", "reply")
        self.deadlines = {k: v for k, v in self.deadlines.items() if k not in again}
        self.deadlines_met = {k: v for k, v in self.deadlines_met.items() if k not in again}
        self.callback = self.second_callback = None
        self.closed_at = None
        self._record(now, by, role, "reopen", note=data.get("reason"), data={"rework": rework})

    def _record_callback(self, data, *, now, by, role):
        record = {"satisfaction": data.get("satisfaction"), "reached": data["reached"],
                  "comment": data.get("comment"), "at": now.isoformat(), "by": by}
        if self.callback is None:
            self.callback = record
            self._meet("callback", now)
            if self.kind == "repair" and record["reached"]:
                self._meet("reply", now)      # reaching the reporter also reports the repair back
        else:
            self.second_callback = record
            self._meet("second_callback" if self.kind == "repair" else "revisit", now)
        self._record(now, by, role, "record-callback", data=record)

    def _close(self, data, *, now, by, role):
        self.closed_at = now
        self._record(now, by, role, "close")

    def _cancel(self, data, *, now, by, role):
        self.closed_at = now
        self._record(now, by, role, "cancel", note=data.get("reason"))

    # -- complaints (SPEC §2.1) ----------------------------------------------------------

    def _acknowledge(self, data, *, now, by, role):
        self._meet("acknowledge", now)
        self._record(now, by, role, "acknowledge", note=data.get("note"))

    def _route(self, data, *, now, by, role):
        self.assignee = data["assignee"]
        self._meet("route", now)
        self._record(now, by, role, "route", data={"assignee": self.assignee})

    def _assess(self, data, *, now, by, role):
        """An invalid complaint is explained to the complainant and closed as invalid."""
        self.valid = data["valid"]
        self._record(now, by, role, "assess", note=data.get("reason"), data={"valid": self.valid})
        if not self.valid:
            self.status = "invalid"
            self.closed_at = now
            self.details = {**(self.details or {}), "invalid_reason": data.get("reason")}

    def _complaint_answer(self, data, *, now, by, role):
        self._meet("answer", now)
        cited = {"answer_source": data["cited"]} if data.get("cited") else {}
        self.details = {**(self.details or {}), "answer": data["answer"], **cited}
        self._record(now, by, role, "answer", note=data["answer"], data=cited)

    def _request_extension(self, data, *, now, by, role):
        self.extension = {"pending": True, "until": as_utc(data["until"]).isoformat(),
                          "reason": data["reason"], "requested_by": by,
                          "requested_at": now.isoformat(),
                          "granted": (self.extension or {}).get("granted", [])}
        self._record(now, by, role, "request-extension", note=data["reason"],
                     data={"until": self.extension["until"]})

    def _approve_extension(self, data, *, now, by, role):
        """Only a site manager extends a resolve deadline; the new deadline is recorded."""
        request = self.extension
        granted = list(request.get("granted", []))
        if data.get("approved", True):
            granted.append({"from": self.deadlines.get("resolve"), "until": request["until"],
                            "reason": request["reason"], "approved_by": by,
                            "approved_at": now.isoformat()})
            self.deadlines = {**self.deadlines, "resolve": request["until"]}
        self.extension = {"pending": False, "granted": granted}
        self._record(now, by, role, "approve-extension", note=data.get("note"),
                     data={"approved": data.get("approved", True), "until": request["until"]})

    def _resolve(self, data, *, now, by, role):
        compensation = data.get("compensation")
        if compensation is not None and compensation > 0:
            cap = COMPENSATION_CAPS.get(role, Decimal("0"))
            if cap is not None and compensation > cap:
                raise Forbidden(f"role {role} may promise at most ¥{cap} compensation",
                                {"action": "resolve", "field": "compensation", "cap": str(cap),
                                 "allowed_roles": [r for r, c in COMPENSATION_CAPS.items()
                                                   if c is None or c >= compensation]})
            self.compensation = str(Decimal(compensation).quantize(Decimal("0.01")))
        policy, tz = self.sla_policy, self.timezone
        self.resolved_at = now
        self.result = {"result": data["result"]}
        # resolving is also the definite answer to the complainant: earlier steps still open
        # end here (a late one stays visible in `breaches` once the sweep has seen it)
        for name in ("resolve", "route", "acknowledge", "answer"):
            self._meet(name, now)
        self._set_deadline("reply", calendar.add_days(now, policy.reply_days, tz))
        callback_due = calendar.add_days(now, policy.complaint_callback_days, tz)
        self._set_deadline("callback", callback_due)
        self._record(now, by, role, "resolve", note=data["result"],
                     data={"compensation": self.compensation})
        if self.compensation:
            self._record(now, "system", "system", "report-compensation",
                         note="promised compensation reported to the superior the same day",
                         data={"amount": self.compensation})
        self._callback_due_event(callback_due, now)

    def _complaint_reply(self, data, *, now, by, role):
        self._meet("reply", now)
        self.details = {**(self.details or {}), "reply": data.get("message")}
        if self.severity in ("A", "B"):
            self._set_deadline("revisit", calendar.add_months(now, self.sla_policy.revisit_months,
                                                              self.timezone))
        self._record(now, by, role, "reply", note=data.get("message"))

    # -- inquiries and suggestions (SPEC §2.3) -------------------------------------------

    def _inquiry_answer(self, data, *, now, by, role):
        self._meet("answer", now)
        cited = {"answer_source": data["cited"]} if data.get("cited") else {}
        self.details = {**(self.details or {}), "answer": data["answer"], **cited}
        self._record(now, by, role, "answer", note=data["answer"], data=cited)

    def _forward(self, data, *, now, by, role):
        self.assignee = data["handler"]
        self._meet("forward", now)
        self._record(now, by, role, "forward", data={"handler": self.assignee})

    def _decide(self, data, *, now, by, role):
        decision = {"adopted": data["adopted"], "reason": data.get("reason"),
                    "committee_consulted": data.get("committee_consulted", False)}
        self.details = {**(self.details or {}), "decision": decision}
        self._record(now, by, role, "decide", note=data.get("reason"), data=decision)

    def _suggestion_reply(self, data, *, now, by, role):
        self._meet("reply", now)
        self.details = {**(self.details or {}), "reply": data.get("message")}
        self._record(now, by, role, "reply", note=data.get("message"))

    # -- the sweep (SPEC §7: each breach once) -------------------------------------------

    def overdue(self, as_of):
        """[(deadline, due_at)] unmet, past due at `as_of`, and not yet recorded as breached."""
        if self.status in DROPPED_STATUSES:
            return []
        seen = {(b["deadline"], b["due_at"]) for b in self.breaches}
        return sorted(((name, due) for name, due in self.open_deadlines().items()
                       if due <= as_of and (name, due.isoformat()) not in seen),
                      key=lambda item: item[1])

    def record_breach(self, deadline, due_at, detected_at):
        self.breaches = self.breaches + [{"deadline": deadline, "due_at": due_at.isoformat(),
                                          "detected_at": as_utc(detected_at).isoformat()}]
        self.events.append(self._breach_event(deadline, due_at, detected_at, self.escalate_to))

    def upgrade_due_at(self):
        """When a valid B/C complaint still unresolved is upgraded to A (None: never)."""
        if self.kind != "complaint" or self.severity not in ("B", "C") or self.valid is False \
                or self.status not in ("received", "routed"):
            return None
        return calendar.add_days(self.received_at, self.sla_policy.upgrade_days, self.timezone)

    def upgrade(self, now):
        self._record(now, "system", "system", "upgrade",
                     note=f"unresolved {self.sla_policy.upgrade_days} days: severity {self.severity} → A",
                     data={"from": self.severity, "to": "A"})
        self.severity = "A"
        self.escalated = True

    def sweep(self, as_of):
        """What the sweep finds due at `as_of`: [(deadline, due_at)] and whether to upgrade."""
        upgrade_at = self.upgrade_due_at()
        return self.overdue(as_of), upgrade_at is not None and upgrade_at <= as_of

    @property
    def escalate_to(self):
        level = self.severity or ("B" if self.priority == "urgent" else "C")
        return list(ESCALATION[level])

    def _breach_event(self, deadline, due_at, detected_at, escalate_to):
        return ("ticketing.sla_breached", {
            "subject": "ticket", "subject_id": self.id, "code": self.code, "kind": self.kind,
            "deadline": deadline, "due_at": due_at, "detected_at": detected_at,
            "severity": self.severity, "unit": self.unit,
            "first_contact_owner": self.first_contact_owner, "escalate_to": list(escalate_to),
            "timezone": self.timezone})

    # -- bookkeeping ---------------------------------------------------------------------

    def _resolve_due(self, received_at):
        policy, tz = self.sla_policy, self.timezone
        days = {"A": policy.resolve_days_a, "B": policy.resolve_days_b,
                "C": policy.resolve_days_c}[self.severity]
        due = calendar.add_days(received_at, days, tz)
        if self.severity == "C" and self.requested_deadline is not None:
            due = min(due, as_utc(self.requested_deadline))
        return due

    def _callback_due_event(self, due, now):
        self.events.append(("ticketing.callback_due", {
            "ticket_id": self.id, "code": self.code, "kind": self.kind, "unit": self.unit,
            "first_contact_owner": self.first_contact_owner, "reporter": self.reporter,
            "due_at": due, "completed_at": now,
            "important": self.important, "description": self.description,
            "timezone": self.timezone, "priority": self.priority,
        }))

    def refresh_due(self):
        """The earliest unmet deadline (handover order, overdue filter), the callback due, and
        the next instant the sweep has work on this ticket (a deadline not yet reported as
        breached, or the 30-day upgrade)."""
        open_ = self.open_deadlines() if self.status not in DROPPED_STATUSES else {}
        self.next_due_at = min(open_.values(), default=None)
        self.callback_due_at = open_.get("callback")
        seen = {(b["deadline"], b["due_at"]) for b in self.breaches}
        pending = [due for name, due in open_.items() if (name, due.isoformat()) not in seen]
        upgrade_at = self.upgrade_due_at()
        if upgrade_at is not None:
            pending.append(upgrade_at)
        self.sweep_due_at = min(pending, default=None)


def repair_code(site, serial):
    return f"{site}-R-{serial:05d}"


def complaint_code(site, severity, category, serial):
    """001-A-GC-00042: site, severity, category, the site's complaint serial."""
    return f"{site}-{severity}-{category}-{serial:05d}"


def inquiry_code(site, serial):
    return f"{site}-Q-{serial:05d}"


def suggestion_code(site, serial):
    return f"{site}-S-{serial:05d}"


def monthly_kpis(tickets, households, *, site, month):
    """SPEC §2.1/§2.2 monthly statistics of one site over the tickets received in `month`
    (YYYY-MM, site time): rates are fractions (0..1), None when there is nothing to measure."""
    def rate(part, whole):
        return None if not whole else round(part / whole, 4)

    by_kind = {kind: [t for t in tickets if t.kind == kind] for kind in KINDS}
    complaints, repairs = by_kind["complaint"], by_kind["repair"]
    due_callback = [t for t in tickets if "callback" in t.deadlines]
    reached = [t.callback for t in tickets if t.callback and t.callback.get("reached")]
    scores = [c["satisfaction"] for c in reached if c.get("satisfaction") is not None]
    valid = [t for t in complaints if t.valid is not False]
    finished = [t for t in tickets if t.status in ("closed",) or t.resolved_at or t.completed_at]
    completed_repairs = [t for t in repairs if t.completed_at]
    return {
        "site": site, "month": month, "households": households,
        "received": {kind: len(items) for kind, items in by_kind.items()},
        "timeliness_rate": rate(sum(1 for t in tickets if not t.breaches), len(tickets)),
        "repair_timeliness_rate": rate(sum(1 for t in repairs if not t.breaches), len(repairs)),
        "complaint_timeliness_rate": rate(sum(1 for t in complaints if not t.breaches), len(complaints)),
        "callback_rate": rate(sum(1 for t in due_callback if t.callback), len(due_callback)),
        "satisfaction_rate": rate(sum(1 for s in scores if s >= 4), len(scores)),
        "average_satisfaction": round(sum(scores) / len(scores), 2) if scores else None,
        "complaint_rate": rate(len(complaints), households),
        "valid_complaint_rate": rate(len(valid), households),
        "rework_rate": rate(sum(1 for t in completed_repairs if t.rework), len(completed_repairs)),
        "inquiry_reply_rate": rate(sum(1 for t in by_kind["inquiry"] if t.status == "closed"),
                                   len(by_kind["inquiry"])),
        "finished": len(finished),
    }

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
    # 超时预警: the assignee and the first-contact owner are warned this long before a deadline
    warn_minutes: int = 60                  # deadlines measured in days or hours
    warn_dispatch_minutes: int = 1          # the 3-minute urgent dispatch

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})

    def tightened(self, changes):
        """This policy with `changes`; {field: message} for every change that loosens it (a
        longer limit, or a shorter warning)."""
        defaults = SlaPolicy()
        loosened = {}
        for name, value in changes.items():
            default = getattr(defaults, name)
            if name in LEAD_TIMES and value < default:
                loosened[name] = [f"at least {default} (the default); a site may only warn earlier"]
            elif name not in LEAD_TIMES and value > default:
                loosened[name] = [f"at most {default} (the default); a site may only tighten it"]
        return SlaPolicy(**{**asdict(self), **changes}), loosened


LEAD_TIMES = ("warn_minutes", "warn_dispatch_minutes")


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
    warnings: list = field(default_factory=list)        # {deadline, due_at, warned_at}
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
    upgrade_at: datetime | None = None       # when the 30-day upgrade is due (None: never)
    events: list = field(default_factory=list, repr=False, compare=False)

    # -- creation ------------------------------------------------------------------------

    @classmethod
    def _open(cls, kind, *, now, received_at, policy, by_role, **values):
        check_received_at(received_at, now)
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
            ticket._escalate(now, "hq", "joint_complaint",
                             "joint complaint: severity A, escalated to head office the same day",
                             complainants=complainants)
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
            self._escalate(now, "supervisor", "missed_appointments",
                           "second missed appointment: escalated to the supervisor")

    def _escalate(self, now, to, reason, note, **data):
        """Recorded once (`escalated`) and told to `to` (hq, or the site's supervisors) by the
        event notifications turns into a staff message."""
        self.escalated = True
        self._record(now, "system", "system", "escalate", note=note, data={"to": to, **data})
        self.events.append(("ticketing.escalated", {
            "ticket_id": self.id, "code": self.code, "kind": self.kind, "to": to,
            "reason": reason, "note": note, "unit": self.unit, "severity": self.severity,
            "complainants": self.complainants, "missed_appointments": self.missed_appointments,
            "first_contact_owner": self.first_contact_owner, "description": self.description,
            "escalated_at": now, "timezone": self.timezone}))

    def page_on_call(self, on_call, now):
        """An urgent repair pages whoever is on call at `received_at` (a technician {sub, phone}),
        or, with nobody on call, the site's supervisors; at once, whatever the hour."""
        to = {"technician": on_call["technician"], "phone": on_call["phone"]} if on_call else None
        self._record(now, "system", "system", "page",
                     note=None if to else "nobody on call: the site's supervisors paged",
                     data={"technician": to and to["technician"]})
        self.events.append(("ticketing.on_call_paged", {
            "ticket_id": self.id, "code": self.code, "unit": self.unit,
            "description": self.description, "received_at": self.received_at,
            "on_call": to, "reporter": self.reporter, "timezone": self.timezone}))

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
        return alerts_due(self, as_of)[0]

    def record_breach(self, deadline, due_at, detected_at, first=True):
        """Recorded on the ticket; alerted only by the replica that saw it `first`."""
        self.breaches = self.breaches + [breach_entry(deadline, due_at, detected_at)]
        if first:
            self.events.append(("ticketing.sla_breached",
                                breach_event(self, deadline, due_at, detected_at)))

    def record_warning(self, deadline, due_at, warned_at, first=True):
        self.warnings = self.warnings + [warning_entry(deadline, due_at, warned_at)]
        if first:
            self.events.append(("ticketing.sla_warning",
                                warning_event(self, deadline, due_at, warned_at)))

    def upgrade_due_at(self):
        """When a valid B/C complaint still unresolved is upgraded to A (None: never)."""
        return upgrade_due_at(self)

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
        return escalate_to(self)

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
        self.upgrade_at = upgrade_due_at(self)
        self.sweep_due_at = next_sweep_at(self, upgrade_at=self.upgrade_at)


# -- the sweep on plain rows ---------------------------------------------------------------
# The functions below read a ticket's fields by attribute, so the sweep applies them to the
# columns it selected (a row, with the limits of SWEPT_LIMITS as columns of their own rather
# than the whole policy) as well as to a Ticket, and both follow the same rules.

SWEPT_LIMITS = ("warn_minutes", "warn_dispatch_minutes", "upgrade_days")


def _limit(t, name):
    policy = t.policy if isinstance(t, Ticket) else None
    value = policy.get(name) if policy is not None else getattr(t, name)
    return getattr(SlaPolicy, name) if value is None else value


def _open_deadlines(t):
    if t.status in DROPPED_STATUSES:
        return {}
    met = t.deadlines_met or {}
    return {name: datetime.fromisoformat(due) for name, due in (t.deadlines or {}).items()
            if name not in met}


def warn_at(t, deadline, due):
    return due - timedelta(minutes=_limit(
        t, "warn_dispatch_minutes" if deadline == "dispatch" else "warn_minutes"))


def alerts_due(t, as_of):
    """([(deadline, due_at)] to report as breached, [(deadline, due_at)] to warn of) at `as_of`:
    each unmet deadline once past due, and once within its lead time before; a deadline first
    seen already past due is reported as breached only (a warning then would come too late)."""
    breached = {(b["deadline"], b["due_at"]) for b in t.breaches or ()}
    warned = {(w["deadline"], w["due_at"]) for w in t.warnings or ()}
    breach, warn = [], []
    for name, due in _open_deadlines(t).items():
        key = (name, due.isoformat())
        if key in breached:
            continue
        if due <= as_of:
            breach.append((name, due))
        elif key not in warned and warn_at(t, name, due) <= as_of:
            warn.append((name, due))
    return sorted(breach, key=lambda item: item[1]), sorted(warn, key=lambda item: item[1])


def next_sweep_at(t, breaches=None, warnings=None, upgrade_at=False):
    """The next instant the sweep has work on ticket `t` (with `breaches`, `warnings` and its
    `upgrade_due_at` in place of its own, when given): a warning or a breach not yet reported,
    or the 30-day upgrade; None when there is nothing left to find."""
    breached = {(b["deadline"], b["due_at"]) for b in (t.breaches if breaches is None else breaches) or ()}
    warned = {(w["deadline"], w["due_at"]) for w in (t.warnings if warnings is None else warnings) or ()}
    pending = []
    for name, due in _open_deadlines(t).items():
        key = (name, due.isoformat())
        if key in breached:
            continue
        pending.append(due if key in warned else warn_at(t, name, due))
    if upgrade_at is False:
        upgrade_at = upgrade_due_at(t)
    if upgrade_at is not None:
        pending.append(upgrade_at)
    return min(pending, default=None)


def upgrade_due_at(t):
    """When a valid B/C complaint still unresolved is upgraded to A (None: never)."""
    if t.kind != "complaint" or t.severity not in ("B", "C") or t.valid is False \
            or t.status not in ("received", "routed"):
        return None
    return calendar.add_days(t.received_at, _limit(t, "upgrade_days"), t.timezone)


def escalate_to(t):
    level = t.severity or ("B" if t.priority == "urgent" else "C")
    return list(ESCALATION[level])


def breach_entry(deadline, due_at, detected_at):
    return {"deadline": deadline, "due_at": due_at.isoformat(),
            "detected_at": as_utc(detected_at).isoformat()}


def warning_entry(deadline, due_at, warned_at):
    return {"deadline": deadline, "due_at": due_at.isoformat(),
            "warned_at": as_utc(warned_at).isoformat()}


def breach_event(t, deadline, due_at, detected_at):
    return {"subject": "ticket", "subject_id": t.id, "code": t.code, "kind": t.kind,
            "deadline": deadline, "due_at": due_at, "detected_at": detected_at,
            "severity": t.severity, "unit": t.unit, "first_contact_owner": t.first_contact_owner,
            "escalate_to": escalate_to(t), "timezone": t.timezone}


def warning_event(t, deadline, due_at, warned_at):
    """超时预警: to the assignee and the first-contact owner, before the deadline passes."""
    return {"ticket_id": t.id, "code": t.code, "kind": t.kind, "deadline": deadline,
            "due_at": due_at, "warned_at": warned_at, "severity": t.severity, "unit": t.unit,
            "first_contact_owner": t.first_contact_owner, "assignee": t.assignee,
            "timezone": t.timezone}


# The per-site number series of each kind (a complaint's code carries no letter of its own).
SERIES = {"repair": "R", "complaint": "C", "inquiry": "Q", "suggestion": "S"}


def check_received_at(received_at, now):
    """A ticket cannot have been received after it is entered (ValueError)."""
    if received_at > now:
        raise ValueError("received_at is in the future")


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

"""Registry rules (SPEC §1): property codes, who may read personal data in full (the masking
itself is services.common.privacy), the warranty and the move-in (000), the entry deadline, the
four-eyes check, and the change request (信息变更) that base info is changed by."""
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from services.common.casefile import CaseFile, json_safe
from services.common.roles import HEAD_OFFICE, MANAGERS
from services.common.units import site_of_unit
from services.common.workflow import Transition, Workflow

USAGES = ("residential", "commercial", "office", "parking")
RELATIONS = ("owner", "tenant", "household_member")


def unit_code_problem(code, site_code):
    """Why a 10-digit property code (3 project + 1 group + 2 building + 4 room) is not valid
    for the site, or None."""
    if not re.fullmatch(r"\d{10}", code or ""):
        return "unit code is 10 digits: 3 project + 1 group + 2 building + 4 room"
    if site_code is not None and site_of_unit(code) != site_code:
        return f"unit code must start with its site code {site_code}"
    return None


WARRANTY_YEARS = 2


def warranty_end(handover_date, stated=None):
    """The last day of the unit's warranty (保修期): the date stated, or else handover +
    WARRANTY_YEARS, the minimum warranty of decoration, plumbing and wiring (装修工程、给排水管道、
    电气管线) under 《建设工程质量管理条例》 §40. A handover on 29 February ends on 28 February.
    None when neither is known."""
    if stated is not None or handover_date is None:
        return stated
    year = handover_date.year + WARRANTY_YEARS
    try:
        return handover_date.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def move_in_date_problem(moved_in_on, site_today):
    """Why a move-in (入伙) cannot be recorded on that day, or None. It is recorded once it has
    happened: the welcome SMS goes out as soon as it is (000)."""
    if moved_in_on > site_today:
        return f"a move-in is recorded once it has happened: not after {site_today.isoformat()}"
    return None


# -- entering the paper form (001 ch.4 §7 "最迟不超过三天") ------------------------------------
ENTRY_DEADLINE = timedelta(days=3)


def late_entry(collected_at, entered_at):
    """Entered more than 3 calendar days after the paper form was filled in (weekends count:
    Friday 10:00 is late from Monday 10:00 on). Without `collected_at`, nothing to judge."""
    return collected_at is not None and entered_at - collected_at > ENTRY_DEADLINE


def collected_at_problem(collected_at, entered_at):
    if collected_at is not None and collected_at > entered_at:
        return "collected_at is in the future: the form is entered after it is filled in"
    return None


def tenant_problems(relation, lease, owner_consent):
    """{field: message} of what a tenant lacks: the lease and the owner's written consent."""
    if relation != "tenant":
        return {}
    problems = {}
    if not lease:
        problems["lease"] = ["a tenant is added only with the lease {contract_no, start, end}"]
    if owner_consent is not True:
        problems["owner_consent"] = ["a tenant is added only with the owner's written consent"]
    return problems


def verify_problem(entered_by, verified_by, verifier):
    """Four eyes ("复核无误后方可投入使用"): someone other than the one who entered it."""
    if verified_by is not None:
        return f"already verified by {verified_by}"
    if verifier == entered_by:
        return "a record is verified by a staff member other than the one who entered it"
    return None


# -- change requests (001 §7 "信息变更应填写…经管理处经理审批后方可运行") -----------------------
KINDS = ("unit", "person", "vehicle", "deactivate")
# What each kind may change; the values are checked by the schema of the kind (schemas.py).
CHANGEABLE = {
    "unit": ("usage", "area_m2", "handover_date", "warranty_until", "moved_in_on", "meters"),
    "person": ("name", "phone", "email", "id_number", "major_customer", "lease",
               "key_customer", "committee_member"),
    "vehicle": ("plate", "licence_no", "model", "insurance_until", "parking_space",
                "rental_contract_no"),
}
# Told to the owner in writing before they take effect (涉及业主收费的信息变更,应在变更之前书面知会业主).
FEE_FIELDS = ("area_m2", "usage", "major_customer", "handover_date")


def affects_fees(kind, changes):
    return kind != "deactivate" and any(name in FEE_FIELDS for name in changes)


def effective_on_problem(affecting_fees, effective_on, decision_day):
    """A fee-affecting change takes effect after the day it is approved (the owner is told in
    writing first); any other change takes effect on approval."""
    if not affecting_fees:
        return None if effective_on is None else \
            "only a change that affects fees takes effect later; this one applies on approval"
    if effective_on is None:
        return "a change that affects fees needs effective_on, after the day of approval"
    if effective_on <= decision_day:
        return f"a change that affects fees takes effect after {decision_day.isoformat()}, " \
               "the day of approval, so that the owner is told in writing first"
    return None


def changed(current, changes):
    """(before, after) of the fields that really change, JSON-safe, for the unit's history."""
    before = {name: current.get(name) for name in changes}
    return json_safe(before), json_safe(dict(changes))


def with_warranty_following(changes, warranty_until_now, handover_now):
    """A corrected handover date moves the warranty end with it, unless the change states it,
    or the warranty end in force was not the handover's default."""
    if "handover_date" not in changes or "warranty_until" in changes:
        return changes
    if warranty_until_now not in (None, warranty_end(handover_now)):
        return changes
    return {**changes, "warranty_until": warranty_end(changes["handover_date"])}


def _decided(roles):
    """Who approves also applies what is due at approval; the sweep applies the rest as ops."""
    return (
        Transition("approve", ("pending",), "approved", roles),
        Transition("reject", ("pending",), "rejected", roles),
        Transition("apply", ("approved",), "applied", roles),
    )


# Deactivation: "没有公司总经理的审批,不得销户" — head office only.
CHANGE_WORKFLOW = Workflow("change request", *_decided(MANAGERS))
DEACTIVATION_WORKFLOW = Workflow("change request", *_decided(HEAD_OFFICE))


@dataclass
class ChangeRequest(CaseFile):
    """A change to a unit, a person or a vehicle, or a deactivation, from who asked to who
    approved it and when it took effect. `before`/`after` are filled when it is applied."""
    id: str
    site: str
    unit: str
    kind: str
    target_id: str | None
    changes: dict
    reason: str
    documents: list
    affects_fees: bool
    effective_on: date | None
    requested_by: str
    requested_at: datetime
    status: str = "pending"
    decided_by: str | None = None
    decided_at: datetime | None = None
    rejection_reason: str | None = None
    applied_at: datetime | None = None
    before: dict | None = None
    after: dict | None = None
    notice_event_id: str | None = None
    history: list = field(default_factory=list)
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    events: list = field(default_factory=list)

    @property
    def workflow(self):
        return DEACTIVATION_WORKFLOW if self.kind == "deactivate" else CHANGE_WORKFLOW

    def refresh_due(self):
        """Nothing is indexed for the sweep beyond `status` and `effective_on`."""

    def decision_problem(self, decision_day):
        return effective_on_problem(self.affects_fees, self.effective_on, decision_day)

    def _approve(self, data, *, now, by, role):
        """Approved: a change that affects fees waits for its day (the service tells the owner
        now), any other the service applies at once."""
        self.decided_by, self.decided_at = by, now
        self._record(now, by, role, "approve", data.get("note"))

    def _reject(self, data, *, now, by, role):
        self.decided_by, self.decided_at = by, now
        self.rejection_reason = data["reason"]
        self._record(now, by, role, "reject", data["reason"])

    def _apply(self, data, *, now, by, role):
        self.applied_at = now
        self.before, self.after = data["before"], data["after"]
        self._record(now, by, role, "apply", None, {"before": self.before, "after": self.after})

def target_problem(kind, target_id):
    if kind in ("person", "vehicle") and not target_id:
        return f"a {kind} change names the {kind} (target_id)"
    if kind == "unit" and target_id:
        return "a unit change is about the unit itself: no target_id"
    return None


def changes_problem(kind, changes):
    if kind == "deactivate":
        return "a deactivation changes nothing else" if changes else None
    if not changes:
        return "name at least one field to change"
    unknown = sorted(set(changes) - set(CHANGEABLE[kind]))
    if unknown:
        return f"a {kind} change may change {', '.join(CHANGEABLE[kind])}; not {', '.join(unknown)}"
    return None


# -- customer care (SPEC §8.6; 001 §2.11.3 "每季度与要害客户的沟通应至少一次",
#    "每月与业主委员会委员的沟通应至少一次") ------------------------------------------------------
# The length of the period in which a flagged person is contacted at least once, in months.
CONTACT_PERIOD_MONTHS = {"key_customer": 3, "committee_member": 1}
CONTACT_DEADLINES = {"key_customer": "quarterly_contact", "committee_member": "monthly_contact"}
CONTACT_CHANNELS = ("phone", "visit", "meeting", "sms", "email", "wechat", "letter")
# A sweep looks this many periods back at most (a system down for years alerts no backlog).
CONTACT_PERIODS_BACK = 24


@dataclass(frozen=True)
class ContactPeriod:
    label: str          # 2027-Q1, 2027-03
    start: datetime     # local midnight of its first day, aware
    end: datetime       # local midnight of the next period's first day


def _first_of_period(day, months):
    return date(day.year, (day.month - 1) // months * months + 1, 1)


def _months_later(day, months):
    year, month = divmod(day.month - 1 + months, 12)
    return date(day.year + year, month + 1, 1)


def _period(first, months, tz):
    label = (f"{first.year}-Q{(first.month - 1) // 3 + 1}" if months == 3
             else f"{first.year}-{first.month:02d}")
    last = _months_later(first, months)
    return ContactPeriod(label, datetime(first.year, first.month, 1, tzinfo=tz),
                         datetime(last.year, last.month, 1, tzinfo=tz))


def missed_contact_periods(flag, since, as_of, contacts, tz):
    """The calendar periods (quarters of a key customer, months of a committee member, in the
    site's time zone `tz`) that ended by `as_of` with no contact in them: a breach at the
    period's end. Only periods that began with the person already flagged (`since`) count: the
    period a person is flagged in is not held against anyone. `contacts` are instants."""
    months = CONTACT_PERIOD_MONTHS[flag]
    if since is None:
        return []
    first = _first_of_period(since.astimezone(tz).date(), months)
    if datetime(first.year, first.month, 1, tzinfo=tz) < since:
        first = _months_later(first, months)
    earliest = _first_of_period(as_of.astimezone(tz).date(), months)
    for _ in range(CONTACT_PERIODS_BACK):
        earliest = _months_later(earliest, -months)
    first = max(first, earliest)
    missed = []
    while True:
        period = _period(first, months, tz)
        if period.end > as_of:
            return missed
        if not any(period.start <= at < period.end for at in contacts):
            missed.append(period)
        first = _months_later(first, months)


def contact_at_problem(at, now):
    if at > now:
        return "a contact is recorded once it has been made: not in the future"
    return None

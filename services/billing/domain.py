"""Billing rules (SPEC §4), plain Python: money, the fee schedule, payment allocation, late fees
and the arrears ladder. No Nameko, no SQL, no I/O; dates are passed in.

Money is `Decimal` CNY with two places (storage keeps it as integer fen, so that SQLite, which has
no exact decimal type, never turns it into a float).
"""
import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from services.common.calendar import zone
from services.common.casefile import CaseFile
from services.common.money import DEFAULT_LATE_FEE_DAILY_RATE  # 0.03 % a day (SPEC §4)
from services.common.roles import LEGAL
from services.common.workflow import Transition, Workflow

CENT = Decimal("0.01")
DEFAULT_DUE_DAY = 15

USAGES = ("residential", "commercial", "office", "parking")
# Fees an invoice line may carry. A deposit is money held for the owner, never a fee.
FEES = ("management", "parking", "renovation_management", "renovation_deposit",
        "debris_removal", "repair", "other")
DEPOSIT_FEES = frozenset({"renovation_deposit"})

STAGES = ("none", "reminder", "lawyer_letter", "lawsuit")
STEPS = ("reminder", "payment_notice", "legal_adviser_informed", "lawyer_letter",
         "lawsuit_referral", "transfer_watch")


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def to_fen(value) -> int:
    return int(money(value) * 100)


def from_fen(fen) -> Decimal:
    return (Decimal(int(fen or 0)) / 100).quantize(CENT)


def money_text(value) -> str:
    return str(money(value))


# -- periods and month arithmetic ------------------------------------------------------------

def parse_period(period: str) -> date:
    """'2026-01' → 2026-01-01; ValueError otherwise."""
    year, month = period.split("-")
    if len(year) != 4 or len(month) != 2:
        raise ValueError("period is YYYY-MM")
    return date(int(year), int(month), 1)


def months_before(day: date, months: int) -> date:
    """The same day `months` earlier, clamped to the end of a shorter month."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date_of(period: str, due_day: int = DEFAULT_DUE_DAY) -> date:
    first = parse_period(period)
    return first.replace(day=min(due_day, calendar.monthrange(first.year, first.month)[1]))


# -- the fee schedule --------------------------------------------------------------------------

@dataclass(frozen=True)
class FeeSchedule:
    """A site's fees. `management_per_m2` is per m² of charge area per month, by unit usage;
    parking spaces pay `parking_per_month` instead."""
    site: str
    management_per_m2: dict = field(default_factory=dict)
    parking_per_month: Decimal = Decimal("0")
    renovation_management: Decimal = Decimal("0")
    renovation_deposit: Decimal = Decimal("0")
    debris_removal: Decimal = Decimal("0")
    repair_call_out: Decimal = Decimal("0")
    late_fee_daily_rate: Decimal = DEFAULT_LATE_FEE_DAILY_RATE
    due_day: int = DEFAULT_DUE_DAY

    def monthly_lines(self, usage, area_m2):
        """The lines of a unit's monthly invoice: [(fee, amount, description)]."""
        if usage == "parking":
            return [("parking", money(self.parking_per_month), "车位管理费")]
        rate = Decimal(str(self.management_per_m2.get(usage, 0)))
        return [("management", money(Decimal(str(area_m2)) * rate), "物业管理费")]


# -- payments ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class OpenInvoice:
    id: str
    due_date: date
    outstanding: Decimal
    accrued_to: date | None = None     # its late fee is posted up to this day


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def allocate(amount, invoices):
    """Spread `amount` over open invoices, the oldest due first: ([(invoice_id, paid)], credit)."""
    left = money(amount)
    paid = []
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.id)):
        if left <= 0:
            break
        share = min(left, money(invoice.outstanding))
        if share > 0:
            paid.append((invoice.id, share))
            left -= share
    return paid, left


def late_fee(invoices, as_of: date, daily_rate=DEFAULT_LATE_FEE_DAILY_RATE):
    """违约金 not posted yet: overdue principal × daily rate × days overdue since its due date
    or the day its late fee was last posted to, summed over the overdue invoices. Posted on
    the first of a month, it is what accrued up to then (`late_fee(invoices, first)`)."""
    total = Decimal("0")
    for invoice in invoices:
        days = (as_of - max(invoice.due_date, invoice.accrued_to or invoice.due_date)).days
        if days > 0 and invoice.outstanding > 0:
            total += money(invoice.outstanding) * Decimal(str(daily_rate)) * days
    return money(total)


def deposit_refund(held, deductions):
    """What goes back to the owner: the deposit less recorded deductions, never below zero."""
    return max(money(held) - money(deductions), Decimal("0.00"))


# -- renovation deposits -----------------------------------------------------------------------
# A deposit (保证金) is `due` once invoiced, `held` once its invoice is paid, and `refunded` (less
# the recorded deductions) after the inspection passes; never mixed with fees. These change any
# object with the deposit's fields (`status`, `amount_fen`, `deductions_fen`, `refunded_fen`,
# `held_at`, `refunded_at`), the stored row included.

def hold_deposit(deposit, now):
    """The deposit's invoice was paid: held from now. False for one not due (already held)."""
    if deposit.status != "due":
        return False
    deposit.status, deposit.held_at = "held", now
    return True


def refund_deposit(deposit, deductions, now):
    """The inspection passed: refund what is held less `deductions`. False for a deposit not
    held (never paid, or refunded already), which is left as it is."""
    if deposit.status != "held":
        return False
    refund = to_fen(deposit_refund(from_fen(deposit.amount_fen), deductions))
    deposit.status, deposit.refunded_at = "refunded", now
    deposit.deductions_fen, deposit.refunded_fen = deposit.amount_fen - refund, refund
    return True


# -- the arrears ladder ------------------------------------------------------------------------

@dataclass(frozen=True)
class Milestone:
    """A point on the ladder: reached when the oldest unpaid due date is `months` months back
    (`strict`: more than that), with the steps taken there and the stage it puts the unit in."""
    number: int
    months: int
    strict: bool
    stage: str
    steps: tuple

    def passed(self, since: date, as_of: date) -> bool:
        boundary = months_before(as_of, self.months)
        return since < boundary if self.strict else since <= boundary


def _reminders(last_month):
    return [Milestone(m, m, False, "reminder", (("reminder", m), ("payment_notice", m)))
            for m in range(1, last_month + 1)]


# Ordinary customers: a reminder and a written notice every month of months 1–6; past 6 months
# the legal adviser is told and the first lawyer's letter goes out, past 12 the second (at most
# two); past 18 the case is referred to the legal adviser to sue. Past 3 months, any customer's
# unit is watched for transfer.
ORDINARY = (
    *_reminders(3),
    Milestone(4, 3, True, "reminder", (("transfer_watch", 1),)),
    *[Milestone(m + 1, m, False, "reminder", (("reminder", m), ("payment_notice", m)))
      for m in range(4, 7)],
    Milestone(8, 6, True, "lawyer_letter", (("legal_adviser_informed", 1), ("lawyer_letter", 1))),
    Milestone(9, 12, True, "lawyer_letter", (("lawyer_letter", 2),)),
    Milestone(10, 18, True, "lawsuit", (("lawsuit_referral", 1),)),
)
# Major customers (大客户): reminded monthly until the lawyer's letter past 3 months; referred
# to sue past 6.
MAJOR = (
    *_reminders(3),
    Milestone(4, 3, True, "lawyer_letter", (("transfer_watch", 1), ("lawyer_letter", 1))),
    Milestone(5, 6, True, "lawsuit", (("lawsuit_referral", 1),)),
)


def ladder(major: bool):
    return MAJOR if major else ORDINARY


def current_milestone(since: date | None, as_of: date, major: bool):
    """The furthest milestone passed, or None."""
    if since is None:
        return None
    passed = [m for m in ladder(major) if m.passed(since, as_of)]
    return passed[-1] if passed else None


def months_overdue(since: date | None, as_of: date) -> int:
    """Whole months since the oldest unpaid due date."""
    if since is None or since >= as_of:
        return 0
    months = 0
    while months_before(as_of, months + 1) >= since:
        months += 1
    return months


def stage_of(since, as_of, major):
    milestone = current_milestone(since, as_of, major)
    return milestone.stage if milestone else "none"


def steps_due(since: date | None, as_of: date, major: bool, taken=frozenset()):
    """The steps to take now, [(step, sequence)], none of them in `taken`.

    The ladder is walked milestone by milestone. Arrears entered late (a migration of past
    periods) do not fire every month missed at once: of the monthly reminders only the current
    month's is sent, and of the lawyer's letters only the current one; a step once-only
    (transfer watch, informing the legal adviser, the referral) is always taken when due."""
    current = current_milestone(since, as_of, major)
    if current is None:
        return []
    due = []
    for milestone in ladder(major):
        if milestone.number > current.number:
            break
        for step, sequence in milestone.steps:
            repeating = step in ("reminder", "payment_notice", "lawyer_letter")
            superseded = repeating and (
                (step != "lawyer_letter" and current.stage != "reminder") or any(
                    step == later_step for later in ladder(major)
                    if milestone.number < later.number <= current.number
                    for later_step, _ in later.steps))
            if not superseded and (step, sequence) not in taken:
                due.append((step, sequence))
    return due


# -- after the referral: the lawsuit (001 §2.8.2.5) --------------------------------------------

PRESERVATION_DAYS = 30      # 成功诉讼后 apply for preservation (保全) within 30 days of the judgement
LAWSUIT_STATUSES = ("referred", "filed", "judged", "preserved", "closed")
OPEN_LAWSUIT = LAWSUIT_STATUSES[:-1]

LAWSUIT_WORKFLOW = Workflow(
    "lawsuit",
    Transition("file", ("referred",), "filed", LEGAL),
    Transition("judge", ("filed",), None, LEGAL),             # won: judged; lost: closed
    Transition("preserve", ("judged",), "preserved", LEGAL),
    Transition("close", OPEN_LAWSUIT, "closed", LEGAL),
)


@dataclass
class Lawsuit(CaseFile):
    """A unit referred to the legal adviser to sue (the ladder's `lawsuit_referral`), followed
    to its judgement and, once won, to the preservation applied for within 30 days. Paying the
    arrears in full closes it."""
    id: str
    unit: str
    site: str
    timezone: str
    since: date                          # the arrears episode it belongs to
    referred_on: date
    amount_referred: str
    status: str = "referred"
    filing: dict | None = None           # {filed_on, court, case_number}
    judgement: dict | None = None        # {won, judged_on, amount_awarded}
    preservation: dict | None = None     # {applied_on, note}
    closing: dict | None = None          # {at, reason}
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    breaches: list = field(default_factory=list)
    history: list = field(default_factory=list)
    next_due_at: datetime | None = None
    events: list = field(default_factory=list, repr=False, compare=False)

    workflow = LAWSUIT_WORKFLOW

    def _file(self, data, *, now, by, role):
        self.filing = {"filed_on": data["filed_on"].isoformat(), "court": data["court"],
                       "case_number": data["case_number"], "by": by}
        self._record(now, by, role, "file", data=self.filing)

    def _judge(self, data, *, now, by, role):
        won = data["won"]
        self.judgement = {"won": won, "judged_on": data["judged_on"].isoformat(),
                          "amount_awarded": str(data.get("amount_awarded") or "0.00"), "by": by}
        self._record(now, by, role, "judge", note=data.get("note"), data=self.judgement)
        if not won:
            self._end(now, "judgement lost")
            return
        self.status = "judged"
        # the whole 30th day after the judgement, at the site
        self._set_deadline("preservation", datetime.combine(
            data["judged_on"] + timedelta(days=PRESERVATION_DAYS + 1), time(),
            tzinfo=zone(self.timezone)))

    def _preserve(self, data, *, now, by, role):
        self.preservation = {"applied_on": data["applied_on"].isoformat(), "note": data.get("note"),
                             "by": by}
        self._meet("preservation", now)
        self._record(now, by, role, "preserve", note=data.get("note"), data=self.preservation)

    def _close(self, data, *, now, by, role):
        self._record(now, by, role, "close", note=data["reason"])
        self._end(now, data["reason"])

    def paid_in_full(self, now):
        """The arrears were paid: the case is closed by itself."""
        if self.status == "closed":
            return False
        self._record(now, "billing", "system", "close", note="arrears paid in full")
        self._end(now, "arrears paid in full")
        self.refresh_due()
        return True

    def _end(self, now, reason):
        self.status = "closed"
        self.closing = {"at": now.isoformat(), "reason": reason}

    def due_breaches(self, as_of):
        """(deadline, due_at) unmet by `as_of` and not breached yet."""
        if self.status == "closed":
            return []
        breached = {b["deadline"] for b in self.breaches}
        return [(name, due) for name, due in self.open_deadlines().items()
                if name not in breached and due <= as_of]

    def record_breach(self, deadline, due_at, *, now):
        """Alerted to the legal adviser who recorded the judgement and to the site's manager."""
        self.breaches = [*self.breaches, {"deadline": deadline, "due_at": due_at.isoformat(),
                                          "detected_at": now.isoformat()}]
        self.events.append(("billing.sla_breached", {
            "subject": "lawsuit", "subject_id": self.id,
            "code": (self.filing or {}).get("case_number") or self.id, "kind": "lawsuit",
            "deadline": deadline, "due_at": due_at, "detected_at": now, "unit": self.unit,
            "first_contact_owner": (self.judgement or {}).get("by"), "escalate_to": ["manager"],
            "timezone": self.timezone}))
        self.refresh_due()

    def refresh_due(self):
        breached = {b["deadline"] for b in self.breaches}
        self.next_due_at = None if self.status == "closed" else min(
            (due for name, due in self.open_deadlines().items() if name not in breached),
            default=None)

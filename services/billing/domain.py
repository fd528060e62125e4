"""Billing rules (SPEC §4), plain Python: money, the fee schedule, payment allocation, late fees
and the arrears ladder. No Nameko, no SQL, no I/O; dates are passed in.

Money is `Decimal` CNY with two places (storage keeps it as integer fen, so that SQLite, which has
no exact decimal type, never turns it into a float).
"""
import calendar
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from services.common.money import DEFAULT_LATE_FEE_DAILY_RATE  # 0.03 % a day (SPEC §4)

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
    """违约金: overdue principal × daily rate × days overdue, summed over the overdue invoices."""
    total = Decimal("0")
    for invoice in invoices:
        days = (as_of - invoice.due_date).days
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

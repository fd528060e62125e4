"""Billing rules of SPEC §4 with the seed's numbers: money, allocation oldest first, late fees at
0.03 % a day, deposits, and the arrears ladder walked month by month (1–6 months reminders and
notices, lawyer's letters past 6 and 12, referral past 18; major customers 3 and 6)."""
from datetime import date, datetime, timezone
from types import SimpleNamespace
from decimal import Decimal

import pytest

from services.billing import domain
from services.billing.domain import FeeSchedule, OpenInvoice

DUE = date(2026, 1, 15)


def walk(major, until_months, since=DUE):
    """Run the ladder daily from the due date for `until_months`: {step: [(sequence, day)]}."""
    taken, log = set(), {}
    day = since
    end = date(since.year + (since.month - 1 + until_months) // 12,
               (since.month - 1 + until_months) % 12 + 1, since.day)
    while day <= end:
        for step, sequence in domain.steps_due(since, day, major, frozenset(taken)):
            taken.add((step, sequence))
            log.setdefault(step, []).append((sequence, day))
        day = date.fromordinal(day.toordinal() + 1)
    return log


def test_money_is_decimal_with_two_places_rounded_half_up():
    assert domain.money("223.745") == Decimal("223.75")
    assert domain.to_fen("268.5") == 26850
    assert domain.from_fen(26850) == Decimal("268.50")


def test_the_management_fee_is_area_times_the_rate_of_the_units_usage():
    schedule = FeeSchedule(site="001", management_per_m2={"residential": Decimal("2.50")},
                           parking_per_month=Decimal("150"))
    assert schedule.monthly_lines("residential", Decimal("89.50"))[0][:2] == (
        "management", Decimal("223.75"))
    assert schedule.monthly_lines("parking", Decimal("12.00"))[0][:2] == ("parking", Decimal("150.00"))


def test_a_payment_goes_to_the_oldest_open_invoice_first_and_leaves_a_credit():
    invoices = [OpenInvoice("feb", date(2026, 2, 15), Decimal("223.75")),
                OpenInvoice("jan", date(2026, 1, 15), Decimal("223.75"))]
    assert domain.allocate(Decimal("300.00"), invoices) == (
        [("jan", Decimal("223.75")), ("feb", Decimal("76.25"))], Decimal("0.00"))
    assert domain.allocate(Decimal("500.00"), invoices)[1] == Decimal("52.50")


def test_the_late_fee_is_overdue_principal_times_0_03_percent_a_day():
    # 1000.00 overdue for 30 days: 1000 × 0.0003 × 30 = 9.00; nothing before the due date
    invoices = [OpenInvoice("a", date(2026, 1, 15), Decimal("1000.00"))]
    assert domain.late_fee(invoices, date(2026, 2, 14)) == Decimal("9.00")
    assert domain.late_fee(invoices, date(2026, 1, 15)) == Decimal("0.00")
    assert domain.late_fee(invoices, date(2026, 2, 14), Decimal("0.0005")) == Decimal("15.00")


def test_a_deposit_is_refunded_less_its_deductions_never_below_zero():
    assert domain.deposit_refund(Decimal("2000.00"), Decimal("300.00")) == Decimal("1700.00")
    assert domain.deposit_refund(Decimal("2000.00"), Decimal("2500.00")) == Decimal("0.00")


@pytest.mark.parametrize("as_of,months", [
    (date(2026, 1, 15), 0), (date(2026, 2, 14), 0), (date(2026, 2, 15), 1),
    (date(2026, 7, 15), 6), (date(2027, 7, 16), 18),
])
def test_months_overdue_count_from_the_oldest_unpaid_due_date(as_of, months):
    assert domain.months_overdue(DUE, as_of) == months


def test_an_ordinary_customer_walks_the_ladder_month_by_month():
    log = walk(major=False, until_months=24)
    # a reminder and a written notice on each of months 1–6, on the day the month is reached
    assert log["reminder"] == [(m, date(2026, 1 + m, 15)) for m in range(1, 7)]
    assert log["payment_notice"] == log["reminder"]
    # past 3 months: transfer watch; past 6: legal adviser and the first lawyer's letter
    assert log["transfer_watch"] == [(1, date(2026, 4, 16))]
    assert log["legal_adviser_informed"] == [(1, date(2026, 7, 16))]
    # lawyer's letters every 6 months, at most two
    assert log["lawyer_letter"] == [(1, date(2026, 7, 16)), (2, date(2027, 1, 16))]
    # past 18 months: referral to sue, once
    assert log["lawsuit_referral"] == [(1, date(2027, 7, 16))]


@pytest.mark.parametrize("as_of,stage", [
    (date(2026, 2, 14), "none"), (date(2026, 2, 15), "reminder"), (date(2026, 7, 15), "reminder"),
    (date(2026, 7, 16), "lawyer_letter"), (date(2027, 7, 15), "lawyer_letter"),
    (date(2027, 7, 16), "lawsuit"),
])
def test_the_stage_of_an_ordinary_customer(as_of, stage):
    assert domain.stage_of(DUE, as_of, major=False) == stage


def test_a_major_customer_gets_the_lawyers_letter_past_3_months_and_the_referral_past_6():
    log = walk(major=True, until_months=12)
    assert log["reminder"] == [(m, date(2026, 1 + m, 15)) for m in range(1, 4)]
    assert log["lawyer_letter"] == [(1, date(2026, 4, 16))]
    assert log["transfer_watch"] == [(1, date(2026, 4, 16))]
    assert log["lawsuit_referral"] == [(1, date(2026, 7, 16))]
    assert "legal_adviser_informed" not in log
    assert domain.stage_of(DUE, date(2026, 4, 16), major=True) == "lawyer_letter"
    assert domain.stage_of(DUE, date(2026, 7, 16), major=True) == "lawsuit"


def test_each_step_is_due_once_however_often_the_sweep_runs():
    taken = set()
    first = domain.steps_due(DUE, date(2026, 3, 20), False, frozenset(taken))
    taken.update(first)
    assert first == [("reminder", 2), ("payment_notice", 2)]
    assert domain.steps_due(DUE, date(2026, 3, 20), False, frozenset(taken)) == []
    assert domain.steps_due(DUE, date(2026, 3, 21), False, frozenset(taken)) == []


def test_arrears_entered_late_take_the_current_steps_not_every_month_missed():
    # a migration finds 14 months overdue: the once-only steps and the current lawyer's letter
    due = domain.steps_due(DUE, date(2027, 3, 20), False)
    assert due == [("transfer_watch", 1), ("legal_adviser_informed", 1), ("lawyer_letter", 2)]


def test_a_partial_payment_of_the_oldest_invoice_counts_from_the_next_oldest():
    # Jan and Feb unpaid; paying January leaves February the oldest: 4 months on 2026-06-20
    assert domain.months_overdue(date(2026, 2, 15), date(2026, 6, 20)) == 4
    assert domain.stage_of(date(2026, 2, 15), date(2026, 6, 20), False) == "reminder"


def test_no_arrears_no_steps():
    assert domain.steps_due(None, date(2026, 6, 1), False) == []
    assert domain.stage_of(None, date(2026, 6, 1), False) == "none"


def _deposit(status, amount_fen=200000):
    return SimpleNamespace(status=status, amount_fen=amount_fen, deductions_fen=0, refunded_fen=0,
                           held_at=None, refunded_at=None)


def test_a_deposit_is_held_once_its_invoice_is_paid_then_refunded_less_deductions():
    at = datetime(2026, 11, 23, 2, tzinfo=timezone.utc)
    deposit = _deposit("due")                                   # 2000.00 invoiced
    assert domain.refund_deposit(deposit, Decimal("300.00"), at) is False   # nothing held yet
    assert domain.hold_deposit(deposit, at) and (deposit.status, deposit.held_at) == ("held", at)
    assert domain.hold_deposit(deposit, at) is False
    assert domain.refund_deposit(deposit, Decimal("300.00"), at)
    assert (deposit.status, deposit.refunded_fen, deposit.deductions_fen, deposit.refunded_at) == (
        "refunded", 170000, 30000, at)
    assert domain.refund_deposit(deposit, Decimal("0"), at) is False          # refunded once


def test_deductions_above_the_deposit_refund_nothing():
    deposit = _deposit("held", amount_fen=50000)
    domain.refund_deposit(deposit, Decimal("800.00"), datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert (deposit.refunded_fen, deposit.deductions_fen) == (0, 50000)


def test_the_late_fee_posted_on_the_first_is_not_charged_again_as_accruing():
    invoice = OpenInvoice("i1", DUE, Decimal("223.75"))
    first = date(2026, 2, 1)
    posted = domain.late_fee([invoice], first)                  # 17 days
    assert posted == Decimal("1.14")
    after = OpenInvoice("i1", DUE, Decimal("223.75"), accrued_to=first)
    accruing = domain.late_fee([after], date(2026, 2, 10))      # 9 days since the posting
    assert accruing == Decimal("0.60")
    assert domain.late_fee([after], first) == Decimal("0.00")


LAWYER_AT = datetime(2025, 10, 10, 2, 0, tzinfo=timezone.utc)


def lawsuit():
    case = domain.Lawsuit(id="ls1", unit="0010101001", site="001", timezone="Asia/Shanghai",
                          since=date(2024, 1, 15), referred_on=date(2025, 7, 16), amount_referred="223.75")
    case.apply("file", {"filed_on": date(2025, 8, 1), "court": "北京市朝阳区人民法院",
                        "case_number": "(2025)京0105民初12345号"}, now=LAWYER_AT, by="legal-liu", role="legal")
    return case


def test_a_lost_judgement_closes_the_lawsuit_with_no_preservation_deadline():
    case = lawsuit()
    case.apply("judge", {"won": False, "judged_on": date(2025, 10, 10)}, now=LAWYER_AT,
               by="legal-liu", role="legal")
    assert (case.status, case.deadlines, case.next_due_at) == ("closed", {}, None)
    assert case.allowed_actions("legal") == []


def test_preservation_within_30_days_meets_the_deadline_and_nothing_is_breached():
    case = lawsuit()
    case.apply("judge", {"won": True, "judged_on": date(2025, 10, 10), "amount_awarded": Decimal("223.75")},
               now=LAWYER_AT, by="legal-liu", role="legal")
    due = datetime(2025, 11, 9, 16, 0, tzinfo=timezone.utc)      # 10 November 00:00 in Shanghai
    assert case.next_due_at == due
    case.apply("preserve", {"applied_on": date(2025, 11, 9)}, now=due, by="legal-liu", role="legal")
    assert case.status == "preserved" and case.next_due_at is None
    assert case.due_breaches(due) == []
    assert case.paid_in_full(due) and case.status == "closed"
    assert not case.paid_in_full(due)

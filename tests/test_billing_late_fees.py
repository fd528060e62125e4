"""billing's rules after the ladder (SPEC §4), on the real broker: late fees posted on the first
of each month and waived by a manager, arrears episodes that survive paying the oldest invoice,
and the lawsuit after a referral to sue taken to its preservation deadline. Amounts are the
seed's site: 89.50 m² × 2.50 = 223.75 a month, late fee 0.03 % a day."""
import pytest

from services.common.errors import Conflict, Forbidden, IllegalTransition, ValidationFailed
from tests.flows import SITE
from tests.inprocess import identity
from tests.test_billing_service import DESK, MANAGER, OPS, UNIT, billing, past_invoice  # noqa: F401

pytestmark = pytest.mark.integration

LEGAL = identity("legal", sub="legal-liu")


def sweep(cluster, day, time="09:00"):
    with cluster.rpc(OPS) as rpc:
        return rpc.billing.sweep({"as_of": f"{day}T{time}:00+08:00"})


def account(cluster, day):
    with cluster.rpc(DESK) as rpc:
        return rpc.billing.get_account(UNIT, day)


def test_late_fees_are_posted_on_the_first_once_and_a_manager_waives_one(billing, event_tap):
    tap = event_tap("billing", "invoice_issued")
    with billing.rpc(DESK) as rpc:
        for period in ("2026-01", "2026-02"):
            rpc.billing.create_invoice(past_invoice(UNIT, period))
    tap.collect(2)
    # 1 February: January's 17 days on 223.75 → 1.14, posted once however often it is swept
    assert [sweep(billing, "2026-02-01")["late_fees_posted"] for _ in range(2)] == [1, 0]
    assert sweep(billing, "2026-02-20")["late_fees_posted"] == 0
    # 1 March: February's 28 + 14 days → 2.82
    assert sweep(billing, "2026-03-01")["late_fees_posted"] == 1
    [january, february] = [b["data"] for _, b in tap.collect(2)]
    assert [(b["invoice_id"], b["kind"], b["amount"], b["due_date"]) for b in (january, february)] == [
        (f"L2026-01-{UNIT}", "late_fee", "1.14", "2026-02-01"),
        (f"L2026-02-{UNIT}", "late_fee", "2.82", "2026-03-01")]

    # posted 3.96, plus 9 more days on each invoice since 1 March: 1.21 — 77 days in all
    arrears = account(billing, "2026-03-10")["arrears"]
    assert (arrears["late_fee_posted"], arrears["late_fee_accruing"], arrears["late_fee"]) == (
        "3.96", "1.21", "5.17")
    assert arrears["amount_overdue"] == "451.46"

    with billing.rpc(DESK) as rpc, pytest.raises(Forbidden):
        rpc.billing.waive_late_fee(january["invoice_id"], {"reason": "业主申请"})
    with billing.rpc(MANAGER) as rpc:
        with pytest.raises(ValidationFailed) as unsaid:
            rpc.billing.waive_late_fee(january["invoice_id"], {})
        assert list(unsaid.value.extra["errors"]) == ["reason"]
        waived = rpc.billing.waive_late_fee(january["invoice_id"], {"reason": "业主困难，经理批准减免"})
        assert (waived["settled"], waived["outstanding"]) == (True, "0.00")
        assert waived["reference"]["waiver"] == {
            "by": "mgr-wang", "reason": "业主困难，经理批准减免", "at": waived["reference"]["waiver"]["at"],
            "amount": "1.14"}
        with pytest.raises(Conflict):
            rpc.billing.waive_late_fee(january["invoice_id"], {"reason": "again"})
        with pytest.raises(Exception) as not_a_late_fee:
            rpc.billing.waive_late_fee(f"M2026-01-{UNIT}", {"reason": "x"})
        assert type(not_a_late_fee.value).__name__ == "NotFound"
    after = account(billing, "2026-03-10")
    assert (after["arrears"]["late_fee_posted"], after["arrears"]["late_fee"]) == ("2.82", "4.03")
    assert after["balance"] == "450.32"      # 447.50 + 2.82

    # paid like any other invoice, after the principal it arose on
    with billing.rpc(DESK) as rpc:
        paid = rpc.billing.record_payment({"unit": UNIT, "amount": "450.32", "method": "cash"})
    assert len(paid["settled_invoices"]) == 3 and paid["settled_invoices"][-1] == f"L2026-02-{UNIT}"
    assert account(billing, "2026-03-10")["balance"] == "0.00"


def test_paying_the_oldest_invoice_keeps_the_episode_and_a_new_one_starts_from_step_one(billing):
    with billing.rpc(DESK) as rpc:
        for period in ("2026-01", "2026-02", "2026-03"):
            rpc.billing.create_invoice(past_invoice(UNIT, period))
    assert [sweep(billing, day)["steps"] for day in ("2026-02-15", "2026-04-15", "2026-04-16")] == [2, 2, 1]

    with billing.rpc(DESK) as rpc:
        rpc.billing.record_payment({"unit": UNIT, "amount": "223.75", "method": "cash"})
    arrears = account(billing, "2026-04-20")["arrears"]
    # months counted from the oldest unpaid invoice; the episode and its five steps kept
    assert (arrears["since"], arrears["episode_since"], arrears["months"]) == ("2026-02-15", "2026-01-15", 2)
    assert len(arrears["steps"]) == 5
    # no step taken twice, and never back down the ladder: month 2, month 3 and the transfer
    # watch are behind it; month 4 (from 15 February) brings its reminder and notice
    assert [sweep(billing, day)["steps"] for day in ("2026-04-20", "2026-05-15", "2026-05-16", "2026-06-15")] == [
        0, 0, 0, 2]
    assert [(s["step"], s["sequence"]) for s in account(billing, "2026-06-15")["arrears"]["steps"]][-2:] == [
        ("reminder", 4), ("payment_notice", 4)]

    with billing.rpc(DESK) as rpc:
        rpc.billing.record_payment({"unit": UNIT, "amount": "447.50", "method": "cash"})
        rpc.billing.create_invoice(past_invoice(UNIT, "2026-07"))
    assert sweep(billing, "2026-08-15")["steps"] == 2
    arrears = account(billing, "2026-08-15")["arrears"]
    assert arrears["episode_since"] == "2026-07-15"
    assert [(s["step"], s["sequence"], s["taken_on"]) for s in arrears["steps"]] == [
        ("reminder", 1, "2026-08-15"), ("payment_notice", 1, "2026-08-15")]


def test_a_referral_becomes_a_lawsuit_whose_missed_preservation_is_breached_once(billing, event_tap):
    tap = event_tap("billing", "sla_breached")
    with billing.rpc(DESK) as rpc:
        rpc.billing.create_invoice(past_invoice(UNIT, "2024-01"))
    # arrears migrated late: past 18 months on 16 July 2025, referred to the legal adviser to sue
    sweep(billing, "2025-07-16")
    with billing.rpc(LEGAL) as rpc:
        [lawsuit] = rpc.billing.list_lawsuits({"site": SITE, "status": "referred"})["items"]
        assert (lawsuit["unit"], lawsuit["since"], lawsuit["referred_on"], lawsuit["amount_referred"]) == (
            UNIT, "2024-01-15", "2025-07-16", "223.75")
        assert lawsuit["allowed_actions"] == ["file", "close"]
        with pytest.raises(IllegalTransition):
            rpc.billing.act_on_lawsuit(UNIT, "preserve", {"applied_on": "2025-08-01"})
        filed = rpc.billing.act_on_lawsuit(UNIT, "file", {
            "filed_on": "2025-08-01", "court": "北京市朝阳区人民法院", "case_number": "(2025)京0105民初12345号"})
        assert filed["status"] == "filed"
        with pytest.raises(ValidationFailed) as unsaid:
            rpc.billing.act_on_lawsuit(UNIT, "judge", {"won": True, "judged_on": "2025-10-10"})
        assert list(unsaid.value.extra["errors"]) == ["amount_awarded"]
        judged = rpc.billing.act_on_lawsuit(UNIT, "judge", {
            "won": True, "judged_on": "2025-10-10", "amount_awarded": "223.75"})
    assert judged["status"] == "judged"
    # preservation applied for within 30 days: by the end of 9 November at the site
    assert judged["deadlines"] == {"preservation": "2025-11-09T16:00:00+00:00"}
    with billing.rpc(DESK) as rpc, pytest.raises(Forbidden):
        rpc.billing.act_on_lawsuit(UNIT, "preserve", {"applied_on": "2025-11-01"})

    assert sweep(billing, "2025-11-09", "23:59")["breaches"] == 0
    assert [sweep(billing, "2025-11-10")["breaches"] for _ in range(2)] == [1, 0]
    [(_, breach)] = tap.collect(1)
    assert {k: breach["data"][k] for k in ("subject", "kind", "deadline", "code", "first_contact_owner",
                                            "escalate_to")} == {
        "subject": "lawsuit", "kind": "lawsuit", "deadline": "preservation",
        "code": "(2025)京0105民初12345号", "first_contact_owner": "legal-liu", "escalate_to": ["manager"]}

    # paying in full closes the case
    with billing.rpc(DESK) as rpc:
        rpc.billing.record_payment({"unit": UNIT, "amount": "223.75", "method": "bank_transfer"})
    with billing.rpc(LEGAL) as rpc:
        [closed] = rpc.billing.list_lawsuits({"site": SITE, "status": "closed"})["items"]
        assert closed["closing"]["reason"] == "arrears paid in full"
        assert closed["allowed_actions"] == []
        assert rpc.billing.list_lawsuits({"site": SITE, "status": "judged"})["items"] == []

"""The arrears ladder replayed through the gateway, as the README shows it: a fee schedule, an
operator's past arrears entered as invoices for past periods, the billing sweep run at successive
`as_of` dates, the account and the arrears list showing the stage, the messages and the transfer
watch it causes, and a payment stopping the ladder."""
import pytest

from tests.flows import SITE, eventually, site_payload, unit_payload

pytestmark = pytest.mark.e2e

UNIT = "0010101001"
EMAIL = "liwei@example.com"
SCHEDULE = {"site": SITE, "management_per_m2": {"residential": "2.50"}, "parking_per_month": "150.00"}


@pytest.fixture(scope="module")
def desk(system):
    head_office = system.client("hq", ["*"], sub="hq-zhao")
    assert head_office.post("/sites", site_payload(SITE)).status_code == 201
    unit = unit_payload(UNIT, "13812345678")
    created = head_office.post("/units", {**unit, "owner": {**unit["owner"], "email": EMAIL}})
    assert created.status_code == 201, created.text
    manager = system.client("manager", [SITE], sub="mgr-wang")
    assert manager.post("/fee-schedules", SCHEDULE).status_code == 201
    return system.client("agent", [SITE], sub="agent-ann")


def sweep(system, day):
    """The sweep at 09:00 at the site (Asia/Shanghai) on `day`."""
    response = system.client("ops_admin", ["*"], sub="ops").post(
        "/admin/sweeps/billing", {"as_of": f"{day}T09:00:00+08:00"})
    assert response.status_code == 200, response.text
    return response.json()["steps"]


def test_the_arrears_ladder_replayed_through_the_gateway(system, desk):
    for period in ("2026-01", "2026-02"):
        invoice = desk.post("/invoices", {"unit": UNIT, "period": period, "due_date": f"{period}-15",
                                          "items": [{"fee": "management", "amount": "223.75"}]})
        assert invoice.status_code == 201, invoice.text

    assert [sweep(system, day) for day in ("2026-02-14", "2026-02-15", "2026-02-15")] == [0, 2, 0]
    # 3 months: the month's reminder and notice, and transfer watch the day after
    assert sweep(system, "2026-04-15") == 2
    assert sweep(system, "2026-04-16") == 1
    # past 6 months: the legal adviser is informed and the first lawyer's letter goes out
    assert sweep(system, "2026-07-16") == 2

    account = desk.get(f"/units/{UNIT}/account", as_of="2026-07-16").json()
    assert account["balance"] == "447.50"
    # (182 + 151 days) × 223.75 × 0.0003 = 22.35
    assert account["arrears"] | {"steps": None} == {
        "months": 6, "stage": "lawyer_letter", "since": "2026-01-15", "amount_overdue": "447.50",
        "late_fee": "22.35", "lawyer_letters": 1, "steps": None, "episode_since": "2026-01-15",
        "late_fee_posted": "0.00", "late_fee_accruing": "22.35"}
    legal = system.client("legal", [SITE], sub="legal-liu")
    listed = legal.get("/arrears", site=SITE, stage="lawyer_letter", as_of="2026-07-16").json()
    assert [(a["unit"], a["months"], a["stage"]) for a in listed["items"]] == [(UNIT, 6, "lawyer_letter")]
    assert legal.get("/arrears", site=SITE, stage="lawsuit", as_of="2026-07-16").json()["items"] == []

    unit = eventually(lambda: desk.get(f"/units/{UNIT}").json(),
                      done=lambda u: u["transfer_watch"], what="registry's transfer watch")
    assert unit["transfer_watch"] is True
    # each invoice's bill went to the owner by SMS and by email, once
    def sent_for(event, items):
        return [m for m in items if m["event"] == event]
    messages = eventually(lambda: desk.get("/messages", unit=UNIT, limit=50).json()["items"],
                          done=lambda items: len(sent_for("billing.arrears_escalated", items)) >= 6
                          and len(sent_for("billing.invoice_issued", items)) >= 4,
                          what="the bills' and the ladder's messages")
    assert sorted((m["channel"], m["recipient"]) for m in sent_for("billing.invoice_issued", messages)) == [
        ("email", EMAIL), ("email", EMAIL), ("sms", "13812345678"), ("sms", "13812345678")]
    # months 1 and 3 swept (month 2 was not): two SMS reminders and two written notices; then
    # the lawyer's letter to post and a task for the legal adviser
    ladder = sent_for("billing.arrears_escalated", messages)
    assert sorted((m["channel"], m["template"], m["recipient"]) for m in ladder) == [
        ("letter", "lawyer_letter", f"unit:{UNIT}"), ("letter", "payment_notice", f"unit:{UNIT}"),
        ("letter", "payment_notice", f"unit:{UNIT}"), ("sms", "arrears_reminder", "13812345678"),
        ("sms", "arrears_reminder", "13812345678"), ("staff", "arrears_legal_task", f"role:legal@{SITE}")]

    refused = desk.post("/payments", {"unit": UNIT, "amount": "a lot", "method": "cash"})
    assert refused.status_code == 422 and "amount" in refused.json()["errors"]
    paid = desk.post("/payments", {"unit": UNIT, "amount": "447.50", "method": "wechat",
                                   "reference": "WX-20260720"})
    assert paid.status_code == 201, paid.text
    assert paid.json()["receipt_number"].startswith("R001") and paid.json()["credit"] == "0.00"
    # both invoices settled by it: the owner is sent its receipt number for each
    receipts = eventually(
        lambda: sent_for("billing.invoice_paid", desk.get("/messages", unit=UNIT, limit=50).json()["items"]),
        done=lambda items: len(items) >= 2, what="the receipts")
    assert [(m["channel"], m["recipient"], paid.json()["receipt_number"] in m["body"])
            for m in receipts] == [("sms", "13812345678", True)] * 2

    assert sweep(system, "2027-02-01") == 0
    after = desk.get(f"/units/{UNIT}/account", as_of="2027-02-01").json()
    assert (after["balance"], after["arrears"]["stage"], after["open_invoices"]) == ("0.00", "none", [])
    assert legal.get("/arrears", site=SITE, as_of="2027-02-01").json()["items"] == []


LATE = "0010101005"


def test_late_fees_posted_and_waived_and_a_lawsuit_to_a_breached_preservation_deadline(system, desk):
    """The README's walk-through of a posted late fee and its waiver, and of a lawsuit taken to
    a breached preservation deadline, as written."""
    head_office = system.client("hq", ["*"], sub="hq-zhao")
    manager = system.client("manager", [SITE], sub="mgr-wang")
    legal = system.client("legal", [SITE], sub="legal-liu")
    assert head_office.post("/units", unit_payload(LATE, "13900000005", owner="Li Si")).status_code == 201
    eventually(lambda: desk.get(f"/units/{LATE}/account").status_code == 200, what="billing's unit")
    invoice = desk.post("/invoices", {"unit": LATE, "period": "2024-01", "due_date": "2024-01-15",
                                      "items": [{"fee": "management", "amount": "223.75"}]})
    assert invoice.status_code == 201, invoice.text

    def swept(day, time="09:00"):
        response = system.client("ops_admin", ["*"], sub="ops").post(
            "/admin/sweeps/billing", {"as_of": f"{day}T{time}:00+08:00"})
        assert response.status_code == 200, response.text
        return response.json()

    # January's 17 days → 1.14 on 1 February, once; February's 29 days (2024) → 1.95 on 1 March
    assert [swept(day)["late_fees_posted"] for day in ("2024-02-01", "2024-02-01", "2024-03-01")] == [1, 0, 1]
    arrears = desk.get(f"/units/{LATE}/account", as_of="2024-03-10").json()["arrears"]
    assert (arrears["late_fee_posted"], arrears["late_fee_accruing"], arrears["late_fee"]) == (
        "3.09", "0.60", "3.69")
    assert desk.post(f"/late-fees/L2024-01-{LATE}/waive", {"reason": "业主申请"}).status_code == 403
    waived = manager.post(f"/late-fees/L2024-01-{LATE}/waive", {"reason": "业主困难，经理批准减免"})
    assert waived.status_code == 200, waived.text
    assert (waived.json()["settled"], waived.json()["reference"]["waiver"]["amount"]) == (True, "1.14")
    assert manager.post(f"/late-fees/L2024-01-{LATE}/waive", {"reason": "again"}).status_code == 409
    account = desk.get(f"/units/{LATE}/account", as_of="2024-03-10").json()
    assert (account["balance"], account["arrears"]["late_fee"]) == ("225.70", "2.55")

    # past 18 months: referred to the legal adviser to sue, and the lawsuit is recorded
    assert swept("2025-07-16")["steps"] == 4
    [lawsuit] = legal.get("/lawsuits", site=SITE, status="referred").json()["items"]
    assert (lawsuit["unit"], lawsuit["amount_referred"]) == (LATE, "225.70")
    assert desk.post(f"/lawsuits/{LATE}/file", {}).status_code == 403
    filed = legal.post(f"/lawsuits/{LATE}/file", {"filed_on": "2025-08-01", "court": "北京市朝阳区人民法院",
                                                  "case_number": "(2025)京0105民初12345号"})
    assert filed.status_code == 200, filed.text
    judged = legal.post(f"/lawsuits/{LATE}/judge", {"won": True, "judged_on": "2025-10-10",
                                                    "amount_awarded": "225.70"}).json()
    assert (judged["status"], judged["deadlines"]) == ("judged", {"preservation": "2025-11-09T16:00:00+00:00"})
    assert [swept("2025-11-10")["breaches"] for _ in range(2)] == [1, 0]
    alerted = eventually(
        lambda: [m for m in legal.get("/messages", site=SITE, event="billing.sla_breached").json()["items"]],
        done=lambda found: len(found) >= 2, what="the preservation breach alerts")
    assert sorted(m["recipient"] for m in alerted) == ["legal-liu", f"role:manager@{SITE}"]

    # paying in full closes the case
    due = desk.get(f"/units/{LATE}/account").json()["balance"]
    assert desk.post("/payments", {"unit": LATE, "amount": due, "method": "bank_transfer"}).status_code == 201
    [closed] = legal.get("/lawsuits", site=SITE, status="closed").json()["items"]
    assert (closed["unit"], closed["closing"]["reason"]) == (LATE, "arrears paid in full")

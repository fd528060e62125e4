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
        "late_fee": "22.35", "lawyer_letters": 1, "steps": None}
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

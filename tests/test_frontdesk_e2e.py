"""The front-desk procedures through the gateway, every service a real process on the real
broker (the README's front-desk walk-through): a move-in with its defect, a parking rental billed
on next month's bill, a release pass at the gate, an activity and the answer book, with the
seed's numbers (a move-in started 20 minutes after arrival, a rental signed after 25 minutes,
an activity published 2 days ahead)."""
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.flows import eventually, ok, site_payload, unit_payload

pytestmark = pytest.mark.e2e

SITE, UNIT = "006", "0061020304"
PHONE = "13900000006"


def iso(instant):
    return instant.isoformat()


def test_the_front_desk_procedures(system):
    ops = system.client("ops_admin", ["*"], sub="ops")
    desk = system.client("agent", [SITE], sub="agent-li")
    sup = system.client("supervisor", [SITE], sub="sup-chen")
    manager = system.client("manager", [SITE], sub="mgr-zhao")
    gate = system.client("agent", [SITE], sub="gate-1")
    ok(ops.post("/sites", site_payload(SITE)), 201)
    ok(desk.post("/units", unit_payload(UNIT, PHONE, area="88.50")), 201)
    owner = ok(desk.get(f"/units/{UNIT}"))["people"][0]["id"]
    now = datetime.now(timezone.utc)

    # -- move-in: arrived 20 minutes ago, started now: the start deadline is breached once
    move_in = ok(desk.post("/move-ins", {"unit": UNIT, "person_id": owner,
                                         "arrived_at": iso(now - timedelta(minutes=20))}), 201)
    mid = move_in["id"]
    assert move_in["status"] == "waiting" and "start" in move_in["deadlines"]
    ok(desk.post(f"/move-ins/{mid}/start", {}))
    refused = desk.post(f"/move-ins/{mid}/complete",
                        {"keys": ["大门"], "assistant": {"name": "王芳", "phone": "13900001111"}})
    assert refused.status_code == 409
    assert "complete" not in refused.json()["allowed_actions"]
    missing = desk.post(f"/move-ins/{mid}/documents", {
        "checked": ["id_card", "move_in_notice", "purchase_contract", "payment_receipt"],
        "signed": ["service_agreement"]})
    assert missing.status_code == 422 and missing.json()["missing_documents"] == ["management_rules"]
    ok(desk.post(f"/move-ins/{mid}/documents", {
        "checked": ["id_card", "move_in_notice", "purchase_contract", "payment_receipt"],
        "signed": ["service_agreement", "management_rules"]}))
    inspected = ok(desk.post(f"/move-ins/{mid}/inspection", {
        "meter_readings": {"water": "12.5", "electricity": "300", "gas": "8"},
        "defects": [{"location": "主卧", "description": "墙面开裂"}]}))
    [defect_id] = inspected["inspection"]["defects"]
    done = ok(desk.post(f"/move-ins/{mid}/complete",
                        {"keys": ["大门", "信箱"], "assistant": {"name": "王芳", "phone": "13900001111"}}))
    assert done["status"] == "completed"
    sweep = ok(ops.post("/admin/sweeps/frontdesk", {"as_of": iso(now + timedelta(minutes=1))}))
    assert [(b["kind"], b["deadline"]) for b in sweep["breaches"]] == [("move_in", "start")]
    again = ok(ops.post("/admin/sweeps/frontdesk", {"as_of": iso(now + timedelta(minutes=2))}))
    assert again["breaches"] == []
    assert [b["deadline"] for b in ok(desk.get(f"/move-ins/{mid}"))["breaches"]] == ["start"]
    eventually(lambda: ok(sup.get("/messages", recipient=f"role:supervisor@{SITE}", channel="staff"))["items"],
               what="the breach alert to the site's supervisors")
    unit = eventually(lambda: ok(desk.get(f"/units/{UNIT}")), lambda u: u["moved_in_on"],
                      what="registry recording the move-in")
    assert unit["assistant"]["name"] == "王芳"
    eventually(lambda: ok(desk.get("/messages", unit=UNIT, channel="sms"))["items"],
               lambda items: any(m["template"] == "welcome" for m in items), what="the welcome SMS")
    again = desk.post(f"/units/{UNIT}/move-in", {"assistant": {"name": "王芳", "phone": "13900001111"}})
    assert again.status_code == 409         # the shortcut sees the move-in frontdesk recorded

    # -- the defect: a letter to the developer, the owner told when it is fixed
    assert [d["id"] for d in ok(desk.get("/defects", site=SITE, status="open"))["items"]] == [defect_id]
    ok(desk.post(f"/defects/{defect_id}/submit", {}))
    ok(desk.post(f"/defects/{defect_id}/progress", {"note": "开发商已安排维修"}))
    ok(desk.post(f"/defects/{defect_id}/fixed", {}))
    assert ok(desk.post(f"/defects/{defect_id}/close", {}))["status"] == "closed"
    letters = eventually(lambda: ok(desk.get("/messages", unit=UNIT, channel="letter"))["items"],
                         what="the letter to the developer")
    assert letters[0]["template"] == "frontdesk_defect_letter"
    eventually(lambda: ok(desk.get("/messages", unit=UNIT, channel="sms"))["items"],
               lambda items: any(m["template"] == "frontdesk_defect_fixed" for m in items),
               what="the owner's SMS")

    # -- parking: documents, the manager's signature after 25 minutes (breached), one per space
    ok(manager.post("/fee-schedules", {"site": SITE, "management_per_m2": {"residential": "2.50"},
                                       "parking_per_month": "150.00"}), 201)
    space = ok(desk.post("/parking-spaces", {"site": SITE, "number": "B-017", "kind": "underground",
                                             "monthly_fee": "300.00"}), 201)
    application = {"space": space["id"], "unit": UNIT, "person_id": owner,
                   "vehicle": {"plate": "粤B12345", "licence_no": "440300123456"},
                   "documents": ["driving_licence", "vehicle_licence", "insurance"],
                   "start": now.date().isoformat(), "arrived_at": iso(now - timedelta(minutes=25))}
    lacking = desk.post("/parking-rentals", application)
    assert lacking.status_code == 422 and lacking.json()["missing_documents"] == ["property_proof"]
    application["documents"].append("property_proof")
    rental = ok(desk.post("/parking-rentals", application), 201)
    second = ok(desk.post("/parking-rentals", application), 201)
    assert desk.post(f"/parking-rentals/{rental['id']}/approve", {}).status_code == 403
    active = ok(manager.post(f"/parking-rentals/{rental['id']}/approve", {}))
    assert active["status"] == "active" and active["contract_no"] and active["card_no"]
    assert manager.post(f"/parking-rentals/{second['id']}/approve", {}).status_code == 409
    sweep = ok(ops.post("/admin/sweeps/frontdesk", {"as_of": iso(now + timedelta(minutes=3))}))
    assert {(b["kind"], b["id"]) for b in sweep["breaches"]} >= {("parking_rental", rental["id"])}
    # registry records the rented car on the unit, with its space and contract number
    [car] = eventually(lambda: ok(desk.get(f"/units/{UNIT}/vehicles"))["items"],
                       lambda items: items and items[0]["parking_space"], what="the car's space")
    assert (car["plate"], car["parking_space"], car["rental_contract_no"]) == (
        "粤B12345", "B-017", active["contract_no"])

    # -- a release pass asked by a removal company: the owner confirms by phone, the gate once
    asked = ok(desk.post("/release-passes", {
        "unit": UNIT, "requested_by": {"name": "搬家公司", "phone": "13700000000"},
        "items": [{"description": "沙发", "quantity": 1}],
        "move_on": now.astimezone(timezone(timedelta(hours=8))).date().isoformat()}), 201)
    assert ok(gate.get(f"/release-passes/{asked['number']}/check"))["status"] == "awaiting_owner"
    ok(desk.post(f"/release-passes/{asked['id']}/confirm", {"by": "phone"}))
    assert ok(gate.get(f"/release-passes/{asked['number']}/check"))["status"] == "valid"
    used = ok(gate.post(f"/release-passes/{asked['number']}/use", {}))
    assert (used["status"], used["used_by"]) == ("used", "gate-1")
    assert gate.post(f"/release-passes/{asked['number']}/use", {}).status_code == 409
    assert gate.get("/release-passes/FX-UNKNOWN/check").status_code == 404

    # -- an activity: 2 days ahead is too late to publish; 10 days ahead is fine
    soon = ok(desk.post("/activities", {"site": SITE, "title": "插花", "purpose": "邻里交流",
                                        "starts_at": iso(now + timedelta(days=2)),
                                        "ends_at": iso(now + timedelta(days=2, hours=2)),
                                        "budget": "500.00"}), 201)
    assert desk.post(f"/activities/{soon['id']}/publish", {}).status_code == 409
    fair = ok(desk.post("/activities", {"site": SITE, "title": "游园会", "purpose": "邻里交流",
                                        "starts_at": iso(now + timedelta(days=10)),
                                        "ends_at": iso(now + timedelta(days=10, hours=2)),
                                        "budget": "2000.00", "capacity": 30}), 201)
    ok(desk.post(f"/activities/{fair['id']}/publish", {}))
    resident = system.client("resident", [SITE], sub="owner", person_id=owner)
    ok(resident.post(f"/activities/{fair['id']}/register", {"person_id": owner}))
    assert resident.post(f"/activities/{fair['id']}/register", {"person_id": owner}).status_code == 409
    ok(desk.post(f"/activities/{fair['id']}/complete", {"summary": "圆满结束"}))
    rated = ok(desk.post(f"/activities/{fair['id']}/revisit", {"person_id": owner, "satisfied": True}))
    assert (rated["revisit_rate"], rated["satisfaction_rate"], rated["on_target"]) == ("1.0000", "1.0000", True)

    # -- the answer book, searched in Chinese
    entry = ok(desk.post(f"/sites/{SITE}/answers", {"topic": "收费", "question": "物业费怎么交？",
                                                    "answer": "可在前台或APP缴纳物业费。"}), 201)
    found = ok(desk.get(f"/sites/{SITE}/answers", q="物业费"))["items"]
    assert [a["topic"] for a in found] == ["收费"] and found[0]["review_overdue"] is False
    assert ok(desk.get(f"/sites/{SITE}/answers", q="停车"))["items"] == []
    inquiry = ok(desk.post("/tickets", {"kind": "inquiry", "site": SITE, "unit": UNIT,
                                        "channel": "phone", "description": "物业费在哪里交"}), 201)
    answered = ok(desk.post(f"/tickets/{inquiry['id']}/answer", {"answer_id": entry["id"]}))
    assert answered["status"] == "closed"
    assert answered["details"]["answer"] == "可在前台或APP缴纳物业费。"
    assert answered["details"]["answer_source"]["answer_id"] == entry["id"]
    assert desk.post(f"/tickets/{inquiry['id']}/answer", {}).status_code in (409, 422)
    reviewed = ok(desk.post(f"/answers/{entry['id']}/review", {"answer": "可在前台、APP或银行代扣缴纳物业费。"}))
    assert (reviewed["reviewed_by"], reviewed["review_overdue"]) == ("agent-li", False)
    assert desk.post(f"/answers/{entry['id']}/review", {"answer": ""}).status_code == 422

    this_month = now.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m")
    kpis = ok(desk.get(f"/sites/{SITE}/frontdesk-kpis", month=this_month))
    assert kpis["move_ins"]["start_on_time"] == 0 and kpis["move_ins"]["start_measured"] == 1
    assert kpis["parking"]["within_20_minutes"] == 0
    # the site's monthly report carries the same figures, in JSON and in its CSV row
    report = ok(desk.get(f"/sites/{SITE}/kpis", month=this_month))
    assert report["frontdesk"] == kpis and report["received"]["inquiry"] == 1
    assert (report["frontdesk"]["move_ins"]["start_rate"], report["frontdesk"]["parking"]["rate"],
            report["frontdesk"]["defects"]["open"]) == ("0.0000", "0.0000", 0)
    [fair_figures] = [a for a in report["frontdesk"]["activities"] if a["id"] == fair["id"]]
    assert (fair_figures["revisit_rate"], fair_figures["on_target"]) == ("1.0000", True)
    as_csv = desk.get(f"/sites/{SITE}/kpis", month=this_month, format="csv").text
    assert as_csv.splitlines()[0].endswith(
        "move_ins,move_in_start_rate,move_in_finish_rate,parking_within_20_minutes_rate,open_defects")
    assert as_csv.splitlines()[1].endswith(",1,0.0000,1.0000,0.0000,0")

    # -- next month's bill carries the space's fee as a line of its own
    month = now.date().replace(day=1)
    next_period = (month + timedelta(days=32)).strftime("%Y-%m")

    # (billing has long had frontdesk.parking_rented by now: the rental was approved above)
    ok(manager.post("/billing/runs", {"site": SITE, "period": next_period}))
    [bill] = [i for i in ok(desk.get(f"/units/{UNIT}/account"))["open_invoices"]
              if i["period"] == next_period]
    assert bill["total"] == "521.25"                # 88.50 m² × 2.50 + the space's 300.00
    bills = eventually(lambda: [m for m in ok(desk.get("/messages", unit=UNIT, channel="sms"))["items"]
                                if m["template"] == "bill"], what="the bill SMS")
    assert "停车费 300.00 元" in bills[0]["body"]

    # -- ended on the last day of next month: billed for it, not for the month after
    last_day = (month + timedelta(days=63)).replace(day=1) - timedelta(days=1)
    ended = ok(desk.post(f"/parking-rentals/{rental['id']}/end", {"on": last_day.isoformat()}))
    assert (ended["status"], ended["ended_on"]) == ("ended", last_day.isoformat())
    time.sleep(3)       # billing's copy learns of frontdesk.parking_ended (nothing shows it)
    after = (last_day + timedelta(days=1)).strftime("%Y-%m")
    assert ok(manager.post("/billing/runs", {"site": SITE, "period": after}))["billed"] == "221.25"
    [car] = ok(desk.get(f"/units/{UNIT}/vehicles"))["items"]
    assert (car["parking_space"], car["rental_contract_no"]) == (None, None)

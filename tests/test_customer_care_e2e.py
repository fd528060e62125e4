"""Customer care through the gateway, every service a real process on the real broker (the
README's customer-care walk-through): an activity published with notify_sms texts each owner
of the site once (an opted-out one skipped), a call recorded from the not-moved-in list, and
the monthly committee report as a printable A4 page with SVG charts and as JSON, whose figures
are the site KPI report's for the same month."""
from datetime import datetime, timedelta, timezone

import pytest

from tests.flows import eventually, ok, repair_payload, site_payload, unit_payload

pytestmark = pytest.mark.e2e

SITE = "008"


def test_activity_sms_the_not_moved_in_call_and_the_committee_report(system):
    ops = system.client("ops_admin", ["*"], sub="ops")
    desk = system.client("agent", [SITE], sub="agent-sun")
    manager = system.client("manager", [SITE], sub="mgr-qian")
    other = system.client("agent", ["009"], sub="agent-x")
    ok(ops.post("/sites", site_payload(SITE)), 201)
    owners = []
    for code, phone, handover in (("0081010101", "13900080101", "2026-06-30"),
                                  ("0081010102", "13900080102", "2025-12-31"),
                                  ("0081010103", "13900080103", None)):
        unit = ok(desk.post("/units", {**unit_payload(code, phone), "handover_date": handover}), 201)
        owners.append(unit["people"][0]["id"])
    ok(desk.post(f"/persons/{owners[2]}/opt-outs", {"channel": "sms"}))

    # -- an activity told by SMS: each owner once, the opted-out one skipped
    now = datetime.now(timezone.utc)
    fair = ok(desk.post("/activities", {
        "site": SITE, "title": "游园会", "purpose": "邻里交流", "budget": "2000.00",
        "starts_at": (now + timedelta(days=10)).isoformat(),
        "ends_at": (now + timedelta(days=10, hours=2)).isoformat(), "notify_sms": True}), 201)
    assert fair["notify_sms"] is True
    ok(desk.post(f"/activities/{fair['id']}/publish", {}))

    def texts():
        return [m for m in ok(desk.get("/messages", site=SITE, channel="sms"))["items"]
                if m["template"] == "activity_sms"]
    sent = eventually(texts, lambda seen: len(seen) == 3, what="an SMS to each owner")
    assert sorted(m["recipient"] for m in sent) == ["13900080101", "13900080102", "13900080103"]
    assert next(m for m in sent if m["recipient"] == "13900080103")["status"] == "skipped"
    assert all("游园会" in m["body"] for m in sent)

    # -- the not-moved-in list: oldest handover first, the phone masked; a call recorded
    listed = ok(desk.get(f"/sites/{SITE}/not-moved-in"))["items"]
    assert [row["unit"] for row in listed] == ["0081010102", "0081010101"]
    assert listed[0]["owner"]["phone"] == "139****0102"
    called = ok(desk.post(f"/persons/{listed[0]['owner']['id']}/contacts",
                          {"channel": "phone", "note": "询问入住时间：春节后"}), 201)
    assert called["recorded_by"] == "agent-sun"
    listed = ok(desk.get(f"/sites/{SITE}/not-moved-in"))["items"]
    assert [c["note"] for c in listed[0]["owner"]["contacts"]] == ["询问入住时间：春节后"]
    assert desk.post("/persons/nobody/contacts", {"channel": "phone", "note": "x"}).status_code == 404
    assert other.post(f"/persons/{owners[0]}/contacts",
                      {"channel": "phone", "note": "x"}).status_code in (403, 404)
    assert desk.post(f"/persons/{owners[0]}/contacts", {"channel": "phone"}).status_code == 422
    assert other.get(f"/sites/{SITE}/not-moved-in").status_code == 403

    # -- the committee report: the KPI report's figures, as JSON and as a printable page
    ok(desk.post("/tickets", repair_payload("0081010101", "水龙头漏水")), 201)
    month = now.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m")
    kpis = ok(manager.get(f"/sites/{SITE}/kpis", month=month))
    report = ok(manager.session.get(f"{manager.base}/sites/{SITE}/committee-report",
                                    params={"month": month}, timeout=30,
                                    headers={"Accept": "application/json"}))
    assert ok(manager.get(f"/sites/{SITE}/committee-report", month=month, format="json")) == report
    assert report["kpis"] == kpis
    assert report["trend"][-1]["month"] == month and len(report["trend"]) == 12
    assert report["trend"][-1]["received"] == sum(kpis["received"].values()) == 1
    assert report["trend"][-1]["timeliness_rate"] == kpis["timeliness_rate"]
    starts = datetime.fromisoformat(fair["starts_at"]).astimezone(timezone(timedelta(hours=8)))
    assert [a["title"] for a in report["activities"]] == (
        ["游园会"] if starts.strftime("%Y-%m") == month else [])     # frontdesk's, by start
    page = manager.get(f"/sites/{SITE}/committee-report", month=month)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "size: A4" in page.text and page.text.count("<svg") >= 3
    assert "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in page.text
    assert desk.get(f"/sites/{SITE}/committee-report", month=month).status_code == 403
    assert manager.get(f"/sites/{SITE}/committee-report").status_code == 422
    assert system.client("manager", ["009"]).get(
        f"/sites/{SITE}/committee-report", month=month).status_code == 403

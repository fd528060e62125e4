"""Complaints, suggestions, SLA policies, the sweep and the front-desk views through the HTTP
gateway, with the whole system running as separate processes (the README's walk-through)."""
import csv
import io

import pytest

from tests.flows import eventually, site_payload, unit_payload

pytestmark = pytest.mark.e2e

SITE, UNIT = "001", "0010101001"
FRIDAY_1600 = "2026-11-20T16:00:00+08:00"
SATURDAY_0900 = "2026-11-21T09:00:00+08:00"


@pytest.fixture(scope="module")
def desk(system):
    hq = system.client("hq", ["*"], sub="hq-zhao")
    assert hq.post("/sites", site_payload(SITE)).status_code == 201
    assert hq.post("/units", unit_payload(UNIT, "13812345678")).status_code == 201
    return {role: system.client(role, [SITE], sub=f"{role}-{SITE}") for role in (
        "agent", "supervisor", "quality_supervisor", "manager", "technician")} | {
        "hq": hq, "ops": system.client("ops_admin", ["*"], sub="ops-1")}


def complaint(desk, **fields):
    body = {"kind": "complaint", "site": SITE, "unit": UNIT, "channel": "email",
            "description": "楼道照明坏了一周", "received_at": FRIDAY_1600, "severity": "B",
            "category": "GC", **fields}
    return desk["agent"].post("/tickets", body)


def test_site_tightens_its_policy_and_new_complaints_carry_it(desk):
    loosened = desk["manager"].post(f"/sites/{SITE}/sla-policy", {"resolve_days_b": 5})
    assert loosened.status_code == 422 and "resolve_days_b" in loosened.json()["errors"]
    assert desk["agent"].post(f"/sites/{SITE}/sla-policy", {"resolve_days_b": 2}).status_code == 403
    tightened = desk["manager"].post(f"/sites/{SITE}/sla-policy", {"resolve_days_b": 2})
    assert tightened.status_code == 200 and tightened.json()["policy"]["resolve_days_b"] == 2
    created = complaint(desk)
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert ticket["code"].startswith("001-B-GC-") and ticket["policy"]["resolve_days_b"] == 2
    assert ticket["deadlines"] == {"acknowledge": "2026-11-22T08:00:00+00:00",
                                   "route": "2026-11-20T09:00:00+00:00",
                                   "resolve": "2026-11-22T08:00:00+00:00"}


def test_bad_complaint_is_422_naming_the_field_and_nothing_is_written(desk):
    before = desk["agent"].get("/tickets", site=SITE, kind="complaint", limit=200).json()["items"]
    refused = complaint(desk, category=None)
    assert refused.status_code == 422 and list(refused.json()["errors"]) == ["category"]
    after = desk["agent"].get("/tickets", site=SITE, kind="complaint", limit=200).json()["items"]
    assert len(after) == len(before)


def test_joint_complaint_is_a_and_serials_never_repeat(desk):
    codes = [complaint(desk, severity="C", complainants=3).json()["code"] for _ in range(2)]
    assert all(code.startswith("001-A-GC-") for code in codes) and codes[0] != codes[1]


def test_complaint_walk_through_with_roles_states_sweep_and_alerts(desk):
    ticket = complaint(desk).json()
    tid = ticket["id"]
    wrong_state = desk["agent"].post(f"/tickets/{tid}/reply", {})
    assert wrong_state.status_code == 409
    assert "route" in wrong_state.json()["allowed_actions"]
    assert desk["technician"].post(f"/tickets/{tid}/route", {"assignee": "sup-chen"}).status_code == 403

    assert desk["agent"].post("/admin/sweeps/ticketing", {"as_of": SATURDAY_0900}).status_code == 403
    swept = desk["ops"].post("/admin/sweeps/ticketing", {"as_of": SATURDAY_0900})
    assert swept.status_code == 200, swept.text
    desk["ops"].post("/admin/sweeps/ticketing", {"as_of": SATURDAY_0900})
    shown = desk["agent"].get(f"/tickets/{tid}").json()
    # once, however often swept (the service's own timer, at the real now, may add later ones)
    route, = [b for b in shown["breaches"] if b["deadline"] == "route"]
    assert route == {"deadline": "route", "due_at": "2026-11-20T09:00:00+00:00",
                     "detected_at": "2026-11-21T01:00:00+00:00"}
    alerts = eventually(lambda: [m for m in desk["supervisor"].get(
        "/messages", ticket_id=tid, channel="staff").json()["items"]
        if m["event"] == "ticketing.sla_breached"], lambda found: len(found) >= 3)
    # the agent who took the complaint, then up the chain by its severity (B)
    assert {m["recipient"] for m in alerts} == {"agent-001", "role:manager@001", "role:supervisor@001"}
    assert "【超时预警】" in alerts[0]["body"]

    assert desk["agent"].post(f"/tickets/{tid}/route", {"assignee": "sup-chen"}).status_code == 200
    too_much = desk["supervisor"].post(f"/tickets/{tid}/resolve",
                                       {"result": "赔偿灯具", "compensation": "1500.00"})
    assert too_much.status_code == 403
    resolved = desk["quality_supervisor"].post(f"/tickets/{tid}/resolve",
                                               {"result": "赔偿灯具", "compensation": "1500.00"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    worklist = desk["agent"].get(f"/sites/{SITE}/callbacks").json()["items"]
    assert tid in [t["id"] for t in worklist]


def test_suggestion_on_the_eve_of_the_national_day(desk):
    created = desk["agent"].post("/tickets", {
        "kind": "suggestion", "site": SITE, "channel": "front_desk", "description": "增设快递柜",
        "received_at": "2026-09-30T17:00:00+08:00"})
    assert created.status_code == 201
    assert created.json()["deadlines"] == {"forward": "2026-09-30T11:00:00+00:00",
                                           "reply": "2026-10-03T09:00:00+00:00"}
    refused = desk["agent"].post(f"/tickets/{created.json()['id']}/decide", {"adopted": False})
    assert refused.status_code == 422 and "reason" in refused.json()["errors"]


def test_handover_most_urgent_first_and_monthly_kpis_as_json_and_csv(desk):
    items = desk["agent"].get(f"/sites/{SITE}/handover", limit=200).json()["items"]
    dues = [t["next_due_at"] for t in items if t["next_due_at"]]
    assert items and dues == sorted(dues)
    report = desk["manager"].get(f"/sites/{SITE}/kpis", month="2026-11")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["households"] == 1 and body["received"]["complaint"] >= 4
    assert body["complaint_rate"] == body["received"]["complaint"] / 1
    as_csv = desk["manager"].get(f"/sites/{SITE}/kpis", month="2026-11", format="csv")
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    row, = csv.DictReader(io.StringIO(as_csv.text))
    assert row["site"] == SITE and float(row["complaint_rate"]) == body["complaint_rate"]
    assert desk["manager"].get(f"/sites/{SITE}/kpis", month="2026-13").status_code == 422

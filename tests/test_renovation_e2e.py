"""The whole life of one renovation through the gateway, every service a real process on the
real broker (the README's renovation walk-through): apply → approve (the fees of billing's
schedule in force) → fees paid at the desk → passes valid at the gate → inspection failed with
its rectification deadline → re-inspected and passed → deposit refunded by billing → the file
archived by itself, passes revoked."""

import pytest

from tests.flows import eventually, ok, renovation_application, site_payload, unit_payload

pytestmark = pytest.mark.e2e

SITE, UNIT, NEIGHBOUR = "004", "0041020304", "0041020305"
SCHEDULE = {"site": SITE, "management_per_m2": {"residential": "2.50"},
            "renovation_deposit": "2000.00", "debris_removal": "300.00"}


def application(**changes):
    return renovation_application(changes.pop("unit", UNIT), workers=1, **changes)


def test_a_renovation_from_application_to_deposit_refund(system):
    ops = system.client("ops_admin", ["*"], sub="ops")
    desk = system.client("agent", [SITE], sub="agent-li")
    manager = system.client("manager", [SITE], sub="mgr-zhao")
    gate = system.client("agent", [SITE], sub="gate-1")
    ok(ops.post("/sites", site_payload(SITE)), 201)
    ok(desk.post("/units", unit_payload(UNIT, "13900000001", area="88.50")), 201)
    # renovation's fees are the site's schedule in billing: 5.00/m², deposit 2000, debris 300
    ok(manager.post("/fee-schedules", {**SCHEDULE, "renovation_management": "5.00"}), 201)

    incomplete = desk.post("/renovations", application(documents=["application_form"]))
    assert incomplete.status_code == 422
    assert "documents" in incomplete.json()["errors"]
    assert ok(desk.get("/renovations", site=SITE))["items"] == []

    bad = desk.post("/renovations", application(unit="12", work_items=["knock_down_wall"],
                                                planned={"start": "2026-12-31", "end": "2026-12-01"}))
    assert bad.status_code == 422
    assert {"unit", "work_items", "planned"} <= set(bad.json()["errors"])
    elsewhere = system.client("agent", ["002"], sub="agent-002")
    assert elsewhere.post("/renovations", application()).status_code == 403
    assert ok(desk.get("/renovations", site=SITE))["items"] == []

    renovation = ok(desk.post("/renovations", application()), 201)
    rid = renovation["id"]
    assert (renovation["status"], renovation["rule_violations"]) == ("submitted", [])
    assert desk.post(f"/renovations/{rid}/review", {"decision": "approved"}).status_code == 403
    approved = ok(manager.post(f"/renovations/{rid}/review", {"decision": "approved"}))
    total = sum(float(line["amount"]) for line in approved["fees"])
    assert total == 442.50 + 2000.00 + 300.00
    ok(desk.post(f"/renovations/{rid}/sign", {}))

    invoice = eventually(lambda: [i for i in ok(desk.get(f"/units/{UNIT}/account"))["open_invoices"]],
                         what="billing's renovation invoice")
    assert len(invoice) == 1
    ok(desk.post("/payments", {"unit": UNIT, "amount": f"{total:.2f}", "method": "cash"}), 201)

    permitted = eventually(lambda: ok(desk.get(f"/renovations/{rid}")),
                           lambda r: r["status"] == "permitted", what="the permit")
    [worker_pass] = permitted["passes"]
    checked = ok(gate.get(f"/passes/{worker_pass['number']}"))
    assert (checked["status"], checked["unit"], checked["holder"]) == ("valid", UNIT, "王工")
    assert gate.get("/passes/ZX-UNKNOWN").status_code == 404
    assert elsewhere.get(f"/renovations/{rid}").status_code == 403

    ok(desk.post(f"/renovations/{rid}/request-inspection", {}))
    unsaid = manager.post(f"/renovations/{rid}/inspect", {"passed": False, "notes": "卫生间防水未做闭水试验"})
    assert unsaid.status_code == 422 and list(unsaid.json()["errors"]) == ["rectify_by"]
    failed = ok(manager.post(f"/renovations/{rid}/inspect", {
        "passed": False, "notes": "卫生间防水未做闭水试验", "rectify_by": "2027-01-10T18:00:00+08:00"}))
    assert failed["status"] == "rectifying"
    assert failed["deadlines"]["rectify"] == "2027-01-10T10:00:00+00:00"
    # not re-inspected by then: breached once, however often the sweep runs
    sweeps = [ok(ops.post("/admin/sweeps/renovation", {"as_of": "2027-01-11T09:00:00+08:00"}))
              for _ in range(2)]
    assert [[b["deadline"] for b in s["breaches"] if b["renovation_id"] == rid] for s in sweeps] == [
        ["rectify"], []]
    ok(desk.post(f"/renovations/{rid}/request-inspection", {}))
    passed = ok(manager.post(f"/renovations/{rid}/inspect", {"passed": True, "notes": "复验合格"}))
    assert passed["status"] == "passed" and "refund" in passed["deadlines"]
    assert "rectify" in passed["deadlines_met"]
    assert ok(gate.get(f"/passes/{worker_pass['number']}"))["status"] == "revoked"

    deposits = eventually(lambda: ok(desk.get(f"/units/{UNIT}/account"))["deposits"],
                          lambda d: d and d[0]["status"] == "refunded", what="the deposit refund")
    assert deposits[0]["renovation_id"] == rid
    # billing.deposit_refunded archives the file by itself
    archived = eventually(lambda: ok(desk.get(f"/renovations/{rid}")),
                          lambda r: r["status"] == "closed", what="the file archived by the refund")
    assert archived["history"][-1]["action"] == "close"
    assert archived["history"][-1]["by"] == "billing"
    assert "refund" in archived["deadlines_met"]
    assert desk.post(f"/renovations/{rid}/close", {}).status_code == 409

    # a changed schedule charges the new amounts on the next approval; the first keeps its own
    ok(manager.post("/fee-schedules", {**SCHEDULE, "renovation_management": "6.00",
                                       "renovation_deposit": "3000.00"}), 201)
    ok(desk.post("/units", unit_payload(NEIGHBOUR, "13900000002", area="88.50")), 201)
    second = ok(desk.post("/renovations", application(unit=NEIGHBOUR, debris_removal=False)), 201)
    fees = ok(manager.post(f"/renovations/{second['id']}/review", {"decision": "approved"}))["fees"]
    assert [(f["fee"], f["amount"]) for f in fees] == [
        ("renovation_management", "531.00"), ("renovation_deposit", "3000.00")]
    assert [f["amount"] for f in ok(desk.get(f"/renovations/{rid}"))["fees"]] == [
        "442.50", "2000.00", "300.00"]

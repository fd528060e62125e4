"""The whole life of one renovation through the gateway, every service a real process on the
real broker (the README's renovation walk-through): apply → approve → fees paid at the desk →
passes valid at the gate → inspection passed → deposit refunded → passes revoked."""

import pytest

from tests.flows import renovation_application, eventually, site_payload, unit_payload

pytestmark = pytest.mark.e2e

SITE, UNIT = "004", "0041020304"


def application(**changes):
    return renovation_application(changes.pop("unit", UNIT), workers=1, **changes)


def ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def test_a_renovation_from_application_to_deposit_refund(system):
    ops = system.client("ops_admin", ["*"], sub="ops")
    desk = system.client("agent", [SITE], sub="agent-li")
    manager = system.client("manager", [SITE], sub="mgr-zhao")
    gate = system.client("agent", [SITE], sub="gate-1")
    ok(ops.post("/sites", site_payload(SITE)), 201)
    ok(desk.post("/units", unit_payload(UNIT, "13900000001", area="88.50")), 201)

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
    passed = ok(manager.post(f"/renovations/{rid}/inspect", {"passed": True, "notes": "验收合格"}))
    assert passed["status"] == "passed" and "refund" in passed["deadlines"]
    assert ok(gate.get(f"/passes/{worker_pass['number']}"))["status"] == "revoked"

    deposits = eventually(lambda: ok(desk.get(f"/units/{UNIT}/account"))["deposits"],
                          lambda d: d and d[0]["status"] == "refunded", what="the deposit refund")
    assert deposits[0]["renovation_id"] == rid
    closed = ok(desk.post(f"/renovations/{rid}/close", {"reference": "deposit refunded"}))
    assert closed["status"] == "closed"

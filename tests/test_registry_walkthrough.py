"""The README's registry walk-through, through the gateway with the whole system running as
separate processes, request for request: a tenant added with the lease, a vehicle, an area
change approved today and applied by the sweep on the 1st of next month with the owner's notice
in the messages and billed at the new area from that period only (billing's own run), a
deactivation refused to a manager and approved by head office, and a resident filing a repair
and reading their bill; another resident's objects are 404."""
import pytest

from tests.flows import (
    REPAIR_TO_COMPLETION, SITE, SUB_OF_ROLE, eventually, renovation_application, site_payload,
    unit_payload,
)

pytestmark = pytest.mark.e2e

UNIT, SHOP = "0010101001", "0010101002"
LEASE = {"contract_no": "ZL-2026-118", "start": "2026-12-01", "end": "2027-11-30"}
SCHEDULE = {"site": SITE, "management_per_m2": {"residential": "2.50"}}


@pytest.fixture(scope="module")
def office(system):
    """Site 001, a flat of 89.50 m² (owner 李伟) and a second unit, the site's fee schedule;
    the desk (agent-ann, agent-bo), the site manager and head office."""
    hq = system.client("hq", ["*"], sub="hq-zhao")
    assert hq.post("/sites", site_payload(SITE)).status_code == 201
    for code, phone in ((UNIT, "13812345678"), (SHOP, "13887654321")):
        created = hq.post("/units", {**unit_payload(code, phone, owner="李伟"),
                                     "handover_date": "2025-06-30"})
        assert created.status_code == 201, created.text
    manager = system.client("manager", [SITE], sub="mgr-li")
    assert manager.post("/fee-schedules", SCHEDULE).status_code == 201
    return {"ann": system.client("agent", [SITE], sub="agent-ann"),
            "bo": system.client("agent", [SITE], sub="agent-bo"),
            "manager": manager, "hq": hq, "ops": system.client("ops_admin", ["*"], sub="ops")}


def test_a_tenant_with_a_lease_verified_by_a_second_pair_of_eyes(office):
    ann, bo = office["ann"], office["bo"]
    tenant = {"name": "陈晨", "phone": "13700001111", "relation": "tenant", "lease": LEASE,
              "collected_at": "2026-11-27T10:00:00+08:00"}
    refused = ann.post(f"/units/{UNIT}/people", tenant)
    assert refused.status_code == 422 and list(refused.json()["errors"]) == ["owner_consent"]

    added = ann.post(f"/units/{UNIT}/people", {**tenant, "owner_consent": True})
    assert added.status_code == 201, added.text
    person = added.json()
    assert (person["verified"], person["phone"], person["late_entry"]) == (False, "137****1111", True)
    assert ann.post(f"/persons/{person['id']}/verify").status_code == 409
    verified = bo.post(f"/persons/{person['id']}/verify")
    assert verified.status_code == 200 and verified.json()["verified_by"] == "agent-bo"

    kpis = ann.get(f"/sites/{SITE}/registry-kpis", month="2026-12").json()
    assert kpis["people_late"] >= 1 and kpis["late_entries"] >= 1


def test_a_vehicle_of_the_owner(office):
    owner = office["ann"].get(f"/units/{UNIT}").json()["people"][0]
    vehicle = office["ann"].post(f"/units/{UNIT}/vehicles", {
        "plate": "粤B12345", "person_id": owner["id"], "licence_no": "440300123456",
        "model": "比亚迪 汉", "insurance_until": "2027-08-31"})
    assert vehicle.status_code == 201, vehicle.text
    listed = office["ann"].get(f"/units/{UNIT}/vehicles").json()["items"]
    assert [(v["plate"], v["parking_space"]) for v in listed] == [("粤B12345", None)]


def test_an_area_change_is_noticed_at_approval_and_billed_from_its_period(system, office):
    ann, manager, ops = office["ann"], office["manager"], office["ops"]
    asked = ann.post("/change-requests", {
        "unit": UNIT, "kind": "unit", "changes": {"area_m2": "95.00"}, "reason": "实测面积更正",
        "documents": ["测绘报告"], "effective_on": "2027-01-01"})
    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert (request["status"], request["affects_fees"]) == ("pending", True)
    assert ann.post(f"/change-requests/{request['id']}/approve", {}).status_code == 403
    approved = manager.post(f"/change-requests/{request['id']}/approve", {})
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text

    notices = eventually(lambda: ann.get("/messages", unit=UNIT, event="registry.change_notice")
                         .json()["items"], done=lambda items: len(items) == 2, what="the notice")
    assert sorted(m["channel"] for m in notices) == ["letter", "sms"]

    december = manager.post("/billing/runs", {"site": SITE, "period": "2026-12"})
    assert december.status_code == 200, december.text
    sweep = ops.post("/admin/sweeps/registry", {"as_of": "2026-12-31T23:00:00+08:00"})
    assert sweep.status_code == 200 and sweep.json() == {"applied": 0, "contact_breaches": 0}
    sweep = ops.post("/admin/sweeps/registry", {"as_of": "2027-01-01T06:00:00+08:00"})
    assert sweep.json() == {"applied": 1, "contact_breaches": 0}
    assert ops.post("/admin/sweeps/registry", {"as_of": "2027-01-01T07:00:00+08:00"}).json() == {
        "applied": 0, "contact_breaches": 0}
    assert ann.get(f"/units/{UNIT}").json()["area_m2"] == "95.00"
    [entry] = ann.get(f"/units/{UNIT}/history").json()["items"]
    assert (entry["before"], entry["after"], entry["requested_by"], entry["approved_by"]) == (
        {"area_m2": "89.50"}, {"area_m2": "95.00"}, "agent-ann", "mgr-li")

    def billed_in_january():
        manager.post("/billing/runs", {"site": SITE, "period": "2027-01"})
        return {i["period"]: i["total"]
                for i in ann.get(f"/units/{UNIT}/account").json()["open_invoices"]}
    # 89.50 m² × 2.50 = 223.75 for December; 95.00 m² × 2.50 = 237.50 from January
    totals = eventually(billed_in_january, done=lambda t: "2027-01" in t, what="January's bill")
    assert totals == {"2026-12": "223.75", "2027-01": "237.50"}


def test_a_deactivation_is_refused_to_the_manager_and_approved_by_head_office(office):
    asked = office["ann"].post("/change-requests", {"unit": SHOP, "kind": "deactivate",
                                                    "reason": "两套房合并为一户"})
    assert asked.status_code == 201, asked.text
    path = f"/change-requests/{asked.json()['id']}/approve"
    refused = office["manager"].post(path, {})
    assert refused.status_code == 403 and refused.json()["allowed_roles"] == ["hq", "ops_admin"]
    approved = office["hq"].post(path, {})
    assert approved.status_code == 200 and approved.json()["status"] == "applied"
    unit = office["ann"].get(f"/units/{SHOP}").json()
    assert unit["active"] is False and unit["people"]                 # nothing deleted

    def february():
        office["manager"].post("/billing/runs", {"site": SITE, "period": "2027-02"})
        return {i["period"] for i in office["ann"].get(f"/units/{UNIT}/account").json()["open_invoices"]}
    eventually(february, done=lambda periods: "2027-02" in periods, what="February's run")
    periods = {i["period"] for i in office["ann"].get(f"/units/{SHOP}/account").json()["open_invoices"]}
    assert "2027-02" not in periods


def test_a_resident_files_a_repair_and_reads_their_bill_but_no_one_elses(system, office):
    owner = office["ann"].get(f"/units/{UNIT}").json()["people"][0]
    resident = system.client("resident", [SITE], sub="resident-liwei", person_id=owner["id"])
    filed = resident.post("/tickets", {"kind": "repair", "site": SITE, "unit": UNIT,
                                       "channel": "app", "description": "厨房水龙头漏水"})
    assert filed.status_code == 201, filed.text
    assert [t["id"] for t in resident.get("/tickets").json()["items"]] == [filed.json()["id"]]
    account = resident.get(f"/units/{UNIT}/account")
    assert account.status_code == 200 and account.json()["open_invoices"]
    assert resident.get(f"/units/{UNIT}").status_code == 200
    assert resident.get("/messages", channel="in_app").status_code == 200

    stranger = system.client("resident", [SITE], sub="resident-x", person_id="someone-else")
    for path in (f"/units/{UNIT}", f"/units/{UNIT}/account", f"/units/{UNIT}/people",
                 f"/tickets/{filed.json()['id']}"):
        assert stranger.get(path).status_code == 404, path
    assert stranger.post(f"/persons/{owner['id']}/opt-outs", {"channel": "sms"}).status_code == 404
    assert office["ann"].post("/persons/no-such-person/opt-outs",
                              {"channel": "sms"}).status_code == 404


def test_a_tenant_reads_the_units_bill_and_applies_for_renovation_with_the_owners_consent(
        system, office):
    tenant = next(p for p in office["ann"].get(f"/units/{UNIT}/people").json()["items"]
                  if p["relation"] == "tenant")
    me = system.client("resident", [SITE], sub="resident-chen", person_id=tenant["id"])
    assert me.get(f"/units/{UNIT}/account").status_code == 200
    as_owner = me.post("/renovations", renovation_application(UNIT))
    assert as_owner.status_code == 422 and "applicant" in as_owner.json()["errors"], as_owner.text
    applied = me.post("/renovations", renovation_application(UNIT, applicant={
        "name": "陈晨", "phone": "13700001111", "is_owner": False, "owner_consent": True},
        documents=[*renovation_application(UNIT)["documents"], "owner_consent_letter"]))
    assert applied.status_code == 201, applied.text
    assert me.get(f"/renovations/{applied.json()['id']}").status_code == 200
    assert me.post("/renovations", renovation_application(SHOP)).status_code == 404


def test_a_resident_rates_the_callback_of_their_own_repair(system, office):
    owner = office["ann"].get(f"/units/{UNIT}").json()["people"][0]
    me = system.client("resident", [SITE], sub="resident-liwei", person_id=owner["id"])
    ticket = me.post("/tickets", {"kind": "repair", "site": SITE, "unit": UNIT, "channel": "app",
                                  "description": "卫生间灯不亮"}).json()
    for action, payload, role in REPAIR_TO_COMPLETION:
        step = system.client(role, [SITE], sub=SUB_OF_ROLE[role]).post(
            f"/tickets/{ticket['id']}/{action}", payload)
        assert step.status_code == 200, step.text
    stranger = system.client("resident", [SITE], sub="resident-x", person_id="someone-else")
    rating = {"reached": True, "satisfaction": 5, "comment": "很快修好了"}
    assert stranger.post(f"/tickets/{ticket['id']}/record-callback", rating).status_code == 404
    rated = me.post(f"/tickets/{ticket['id']}/record-callback", rating)
    assert rated.status_code == 200, rated.text
    assert rated.json()["callback"]["satisfaction"] == 5

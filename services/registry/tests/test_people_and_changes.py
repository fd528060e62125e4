"""registry's people, vehicles, entry deadline, four eyes and change requests in a service worker
on a real database (SQLite and PostgreSQL), without a broker: what each command writes, answers
and leaves in the outbox (registry.unit_changed, registry.change_notice), with the seed's rules
and real dates (site 001, Asia/Shanghai)."""
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from nameko.testing.services import worker_factory

from services.common.auth import IDENTITY_KEY, CallContext
from services.common.errors import Conflict, Forbidden, IllegalTransition, NotFound, ValidationFailed
from services.registry.service import RegistryService
from services.registry.storage import Base
from tests.flows import site_payload, unit_payload
from bench.harness import migrated
from tests.inprocess import identity

UNIT, OTHER_UNIT = "0010101001", "0010101002"
AGENT = identity("agent", sub="agent-ann")
CLERK = identity("agent", sub="agent-bo")
MANAGER = identity("manager", sub="mgr-li")
HQ = identity("hq", ["*"], sub="hq-zhao")
LEASE = {"contract_no": "ZL-2026-118", "start": "2026-12-01", "end": "2027-11-30"}
TENANT = {"name": "陈晨", "phone": "13700001111", "relation": "tenant"}


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def registry_db(bound_database, db_url):
    return bound_database("registry", Base, {
        "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/unused",
        "DB_URIS": {"registry": migrated("registry", db_url)},
    })


@pytest.fixture
def clock():
    """Thursday 10 December 2026, 10:00 at the site (02:00 UTC); tests move it."""
    return SimpleNamespace(now=utc(2026, 12, 10, 2, 0))


@pytest.fixture
def registry(registry_db, clock):
    """`registry(caller, command, *args)` in a fresh worker at `clock.now`; site 001 and a unit
    of 89.50 m² handed over on 2025-06-30, owner 李伟."""
    def call(caller, name, *args):
        context = {IDENTITY_KEY: caller} if caller else {}
        with registry_db.unit(context) as uow:
            worker = worker_factory(RegistryService, uow=uow, clock=lambda: clock.now,
                                    caller=CallContext(SimpleNamespace(data=context)))
            return getattr(worker, name)(*args)

    call(MANAGER, "create_site", site_payload("001"))
    call(AGENT, "create_unit", {**unit_payload(UNIT, "13812345678", owner="李伟"),
                                "handover_date": "2025-06-30"})
    return call


def events(registry_db, name):
    return [row.body["data"] for row in registry_db.outbox_rows() if row.event == name]


def owner_of(registry):
    return registry(AGENT, "get_unit", UNIT)["people"][0]


# -- people ------------------------------------------------------------------------------

@pytest.mark.parametrize("missing, body", [
    ("lease", {**TENANT, "owner_consent": True}),
    ("owner_consent", {**TENANT, "lease": LEASE}),
    ("owner_consent", {**TENANT, "lease": LEASE, "owner_consent": False}),
])
def test_a_tenant_needs_the_lease_and_the_owners_consent(registry, missing, body):
    with pytest.raises(ValidationFailed) as refused:
        registry(AGENT, "add_person", UNIT, body)
    assert list(refused.value.extra["errors"]) == [missing]
    assert [p["relation"] for p in registry(AGENT, "list_people", UNIT)["items"]] == ["owner"]


def test_a_tenant_with_lease_and_consent_is_added_unverified_and_masked(registry):
    tenant = registry(AGENT, "add_person", UNIT, {**TENANT, "lease": LEASE, "owner_consent": True})
    assert (tenant["relation"], tenant["verified"], tenant["phone"]) == ("tenant", False, "137****1111")
    assert tenant["lease"] == LEASE and tenant["entered_by"] == "agent-ann"
    member = registry(AGENT, "add_person", UNIT, {"name": "李小龙", "phone": "13600001111",
                                                  "relation": "household_member"})
    assert member["relation"] == "household_member"
    assert [p["verified"] for p in registry(AGENT, "get_unit", UNIT)["people"]] == [False] * 3


def test_four_eyes_the_one_who_entered_it_cannot_verify_it(registry):
    person = registry(AGENT, "add_person", UNIT, {**TENANT, "lease": LEASE, "owner_consent": True})
    with pytest.raises(Conflict):
        registry(AGENT, "verify_person", person["id"])
    verified = registry(CLERK, "verify_person", person["id"])
    assert (verified["verified"], verified["verified_by"]) == (True, "agent-bo")
    with pytest.raises(Conflict):
        registry(MANAGER, "verify_person", person["id"])


def test_a_person_of_another_site_or_none_is_403_or_404_to_staff(registry):
    registry(HQ, "create_site", site_payload("002"))
    registry(HQ, "create_unit", unit_payload("0020101001", "13911112222"))
    theirs = registry(HQ, "get_unit", "0020101001")["people"][0]["id"]
    with pytest.raises(Forbidden):
        registry(AGENT, "person_scope", theirs)
    with pytest.raises(NotFound):
        registry(AGENT, "person_scope", "no-such-person")
    assert registry(HQ, "person_scope", theirs)["site"] == "002"
    with pytest.raises(NotFound):
        registry(identity("resident", person_id="someone-else"), "person_scope", theirs)


# -- entry deadline (最迟不超过三天), across a weekend -------------------------------------------

def test_a_form_entered_more_than_three_days_later_is_late_weekends_included(registry, clock):
    # filled in on Friday 4 December 2026 at 10:00 in Shanghai (02:00 UTC)
    collected = "2026-12-04T10:00:00+08:00"
    clock.now = utc(2026, 12, 7, 1, 59)          # Monday 09:59: 2 days 23 h 59 min later
    on_time = registry(AGENT, "add_person", UNIT, {"name": "王五", "phone": "13500001111",
                                                   "relation": "household_member",
                                                   "collected_at": collected})
    clock.now = utc(2026, 12, 7, 2, 1)           # Monday 10:01: just past three days
    late = registry(AGENT, "create_unit", {**unit_payload(OTHER_UNIT, "13500002222"),
                                           "collected_at": collected})
    assert (on_time["late_entry"], late["late_entry"], late["people"][0]["late_entry"]) == (
        False, True, True)
    kpis = registry(AGENT, "registry_kpis", "001", {"month": "2026-12"})
    # with the fixture's unit and owner, entered on 10 December without a collected_at
    assert kpis == {"site": "001", "month": "2026-12", "units_entered": 2, "units_late": 1,
                    "people_entered": 3, "people_late": 1, "late_entries": 2,
                    "late_entry_rate": "40.0", "people_unverified": 3}
    assert registry(AGENT, "registry_kpis", "001", {"month": "2026-11"})["units_entered"] == 0


def test_a_form_from_the_future_is_422(registry):
    with pytest.raises(ValidationFailed) as refused:
        registry(AGENT, "add_person", UNIT, {"name": "王五", "phone": "13500001111",
                                             "relation": "household_member",
                                             "collected_at": "2026-12-11T10:00:00+08:00"})
    assert list(refused.value.extra["errors"]) == ["collected_at"]


# -- vehicles ----------------------------------------------------------------------------

def test_a_vehicle_belongs_to_a_person_of_the_unit_and_its_space_is_set_by_a_change(registry):
    owner = owner_of(registry)
    vehicle = registry(AGENT, "add_vehicle", UNIT, {
        "plate": "粤B12345", "person_id": owner["id"], "licence_no": "440300123456",
        "model": "比亚迪 汉", "insurance_until": "2027-08-31"})
    assert (vehicle["parking_space"], vehicle["rental_contract_no"]) == (None, None)
    with pytest.raises(Conflict):
        registry(AGENT, "add_vehicle", UNIT, {"plate": "粤B12345", "person_id": owner["id"],
                                              "licence_no": "440300999999"})
    with pytest.raises(ValidationFailed):
        registry(AGENT, "add_vehicle", UNIT, {"plate": "粤B54321", "person_id": "stranger",
                                              "licence_no": "440300999999"})
    request = registry(AGENT, "create_change_request", {
        "unit": UNIT, "kind": "vehicle", "target_id": vehicle["id"], "reason": "租用车位",
        "changes": {"parking_space": "B2-017", "rental_contract_no": "CW-2026-031"}})
    assert registry(MANAGER, "decide_change_request", request["id"], "approve")["status"] == "applied"
    [rented] = registry(AGENT, "list_vehicles", UNIT)["items"]
    assert (rented["parking_space"], rented["rental_contract_no"]) == ("B2-017", "CW-2026-031")


# -- change requests ---------------------------------------------------------------------

def area_change(registry, effective_on="2027-01-01"):
    return registry(AGENT, "create_change_request", {
        "unit": UNIT, "kind": "unit", "changes": {"area_m2": "95.00"}, "reason": "实测面积更正",
        "documents": ["测绘报告"], "effective_on": effective_on})


def test_only_a_manager_approves_and_the_asker_cannot(registry):
    request = area_change(registry)
    assert (request["status"], request["affects_fees"]) == ("pending", True)
    for caller in (AGENT, identity("supervisor", sub="sup-wu")):
        with pytest.raises(Forbidden):
            registry(caller, "decide_change_request", request["id"], "approve")
    rejected = registry(MANAGER, "decide_change_request", request["id"], "reject",
                        {"reason": "测绘报告未盖章"})
    assert (rejected["status"], rejected["rejection_reason"]) == ("rejected", "测绘报告未盖章")
    with pytest.raises(IllegalTransition):
        registry(MANAGER, "decide_change_request", request["id"], "approve")
    assert registry(AGENT, "get_unit", UNIT)["area_m2"] == "89.50"


@pytest.mark.parametrize("effective_on", [None, "2026-12-10", "2026-12-01"])
def test_a_fee_change_takes_effect_after_the_day_of_approval(registry, effective_on):
    with pytest.raises(ValidationFailed) as refused:
        area_change(registry, effective_on)
    assert list(refused.value.extra["errors"]) == ["effective_on"]


def test_a_fee_change_approved_on_the_10th_is_noticed_then_applied_on_the_1st_once(
        registry, registry_db, clock):
    request = area_change(registry)                        # asked on Thursday 10 December
    approved = registry(MANAGER, "decide_change_request", request["id"], "approve")
    assert (approved["status"], approved["decided_by"]) == ("approved", "mgr-li")
    [notice] = events(registry_db, "registry.change_notice")
    assert notice["changes"] == {"area_m2": "95.00"} and notice["before"] == {"area_m2": "89.50"}
    assert (notice["effective_on"], notice["owner"]["name"]) == ("2027-01-01", "李伟")
    assert approved["notice_event_id"]
    assert registry(AGENT, "get_unit", UNIT)["area_m2"] == "89.50"

    # 31 December 23:59 in Shanghai: not yet
    assert registry(None, "sweep", {"as_of": "2026-12-31T23:59:00+08:00"})["applied"] == 0
    # 1 January 00:00 in Shanghai is still 31 December in UTC: its day has come
    assert registry(None, "sweep", {"as_of": "2027-01-01T00:00:00+08:00"})["applied"] == 1
    assert registry(None, "sweep", {"as_of": "2027-01-02T08:00:00+08:00"})["applied"] == 0

    assert registry(AGENT, "get_unit", UNIT)["area_m2"] == "95.00"
    changed = events(registry_db, "registry.unit_changed")[-1]
    assert (changed["change"], changed["area_m2"]) == ("updated", "95.00")
    [entry] = registry(AGENT, "unit_history", UNIT)["items"]
    assert (entry["before"], entry["after"]) == ({"area_m2": "89.50"}, {"area_m2": "95.00"})
    assert (entry["requested_by"], entry["approved_by"]) == ("agent-ann", "mgr-li")
    assert registry(AGENT, "get_change_request", request["id"])["status"] == "applied"


def test_a_non_fee_change_applies_on_approval_and_shows_in_the_history(registry, registry_db):
    owner = owner_of(registry)
    request = registry(AGENT, "create_change_request", {
        "unit": UNIT, "kind": "person", "target_id": owner["id"],
        "changes": {"phone": "13899998888"}, "reason": "业主换号"})
    assert request["affects_fees"] is False
    applied = registry(MANAGER, "decide_change_request", request["id"], "approve")
    assert applied["status"] == "applied" and applied["after"] == {"phone": "13899998888"}
    assert events(registry_db, "registry.unit_changed")[-1]["owner"]["phone"] == "13899998888"
    assert events(registry_db, "registry.change_notice") == []


def test_a_corrected_handover_date_moves_the_warranty_end(registry, registry_db, clock):
    request = registry(AGENT, "create_change_request", {
        "unit": UNIT, "kind": "unit", "changes": {"handover_date": "2025-09-30"},
        "reason": "交房日期录入错误", "effective_on": "2026-12-11"})
    registry(MANAGER, "decide_change_request", request["id"], "approve")
    registry(None, "sweep", {"as_of": "2026-12-11T06:00:00+08:00"})
    unit = registry(AGENT, "get_unit", UNIT)
    assert (unit["handover_date"], unit["warranty_until"]) == ("2025-09-30", "2027-09-30")
    assert events(registry_db, "registry.unit_changed")[-1]["warranty_until"] == "2027-09-30"


def test_a_moved_in_date_is_corrected_by_an_approved_change(registry):
    registry(AGENT, "record_move_in", UNIT, {"moved_in_on": "2026-10-08",
                                             "assistant": {"name": "王芳", "phone": "13900001111"}})
    request = registry(AGENT, "create_change_request", {
        "unit": UNIT, "kind": "unit", "changes": {"moved_in_on": "2026-10-18"}, "reason": "入伙日期更正"})
    registry(MANAGER, "decide_change_request", request["id"], "approve")
    assert registry(AGENT, "get_unit", UNIT)["moved_in_on"] == "2026-10-18"


def test_a_deactivation_is_head_offices_alone_and_deletes_nothing(registry, registry_db):
    request = registry(AGENT, "create_change_request", {
        "unit": UNIT, "kind": "deactivate", "reason": "房屋拆除"})
    with pytest.raises(Forbidden) as refused:
        registry(MANAGER, "decide_change_request", request["id"], "approve")
    assert refused.value.extra["allowed_roles"] == ["hq", "ops_admin"]
    done = registry(HQ, "decide_change_request", request["id"], "approve")
    assert (done["status"], done["before"], done["after"]) == (
        "applied", {"active": True}, {"active": False})
    unit = registry(AGENT, "get_unit", UNIT)
    assert unit["active"] is False and len(unit["people"]) == 1
    assert events(registry_db, "registry.unit_changed")[-1]["change"] == "deactivated"
    with pytest.raises(Conflict):
        registry(AGENT, "record_move_in", UNIT, {"assistant": {"name": "王芳", "phone": "13900001111"}})
    with pytest.raises(Conflict):
        area_change(registry)


def test_a_change_names_only_what_its_kind_may_change(registry):
    for body, field in (
            ({"kind": "unit", "changes": {"plate": "粤B1"}}, "changes"),
            ({"kind": "unit", "changes": {"area_m2": "-1"}, "effective_on": "2027-01-01"}, "changes"),
            ({"kind": "person", "changes": {"phone": "13800000000"}}, "target_id"),
            ({"kind": "deactivate", "changes": {"area_m2": "1"}}, "changes")):
        with pytest.raises(ValidationFailed) as refused:
            registry(AGENT, "create_change_request", {"unit": UNIT, "reason": "x", **body})
        assert list(refused.value.extra["errors"]) == [field], body

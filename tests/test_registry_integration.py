"""registry as a running service on the real broker, called over RPC with a caller's identity
as the gateway sends it: sites and units, masked personal data, residents fenced in to their own
unit, full reads written to the access log, bad input refused by field with nothing written."""
import json

import pytest

from services.common.errors import Forbidden, NotFound, ValidationFailed
from tests.flows import AGENT, SITE, site_payload, unit_payload
from tests.inprocess import identity

pytestmark = pytest.mark.integration

MANAGER = identity("manager", sub="mgr-wang")
DESK = identity("agent", sub=AGENT)
HEAD_OFFICE = identity("hq", sites=["*"], sub="hq-zhao")
OWN_UNIT, NEIGHBOUR_UNIT = "0010101001", "0010101002"
OWNER_PHONE, OWNER_ID_NUMBER = "13812345678", "110101199001011234"


@pytest.fixture
def registry(run_services):
    """registry running, with site 001 and two units in it."""
    cluster = run_services("registry")
    with cluster.rpc(MANAGER) as rpc:
        rpc.registry.create_site(site_payload(SITE))
    with cluster.rpc(DESK) as rpc:
        rpc.registry.create_unit(unit_payload(OWN_UNIT, OWNER_PHONE, owner="Li Wei"))
        rpc.registry.create_unit(unit_payload(NEIGHBOUR_UNIT, "13987654321", owner="Zhang Min"))
    return cluster


def owner_id(registry, unit):
    with registry.rpc(DESK) as rpc:
        [owner] = rpc.registry.get_unit(unit)["people"]
    return owner["id"]


def test_a_unit_is_answered_with_its_owners_phone_and_id_number_masked(registry):
    with registry.rpc(DESK) as rpc:
        unit = rpc.registry.get_unit(OWN_UNIT)

    [owner] = unit["people"]
    assert (unit["site"], unit["area_m2"], owner["relation"]) == (SITE, "89.50", "owner")
    assert owner["phone"] == "138****5678"
    assert owner["id_number"] == "1101**********1234"
    assert OWNER_PHONE not in json.dumps(unit) and OWNER_ID_NUMBER not in json.dumps(unit)


def test_a_resident_sees_their_own_unit_and_no_other(registry):
    resident = identity("resident", sub="li-wei", person_id=owner_id(registry, OWN_UNIT))
    with registry.rpc(resident) as rpc:
        assert rpc.registry.get_unit(OWN_UNIT)["code"] == OWN_UNIT
        with pytest.raises(NotFound):
            rpc.registry.get_unit(NEIGHBOUR_UNIT)
        listed = rpc.registry.list_units(SITE)
    assert [unit["code"] for unit in listed["items"]] == [OWN_UNIT]


def test_staff_of_another_site_do_not_see_the_unit(registry):
    with registry.rpc(identity("agent", sites=["002"])) as rpc:
        with pytest.raises(NotFound):
            rpc.registry.get_unit(OWN_UNIT)
        with pytest.raises(Forbidden):
            rpc.registry.list_units(SITE)


def test_a_full_read_of_a_persons_record_is_written_to_the_access_log(registry):
    person_id = owner_id(registry, OWN_UNIT)
    with registry.rpc(MANAGER) as rpc:
        person = rpc.registry.get_person(person_id, {"reason": "callback about a leaking pipe"})
        log = rpc.registry.access_log(person_id)
    assert (person["phone"], person["id_number"]) == (OWNER_PHONE, OWNER_ID_NUMBER)
    assert [(e["read_by"], e["role"], e["reason"]) for e in log["items"]] == [
        ("mgr-wang", "manager", "callback about a leaking pipe")]


def test_a_refused_full_read_is_not_logged(registry):
    person_id = owner_id(registry, OWN_UNIT)
    with registry.rpc(identity("technician", sub="tech1")) as rpc:
        with pytest.raises(Forbidden):
            rpc.registry.get_person(person_id, {"reason": "curious"})
    with registry.rpc(MANAGER) as rpc:
        assert rpc.registry.access_log(person_id)["items"] == []


@pytest.mark.parametrize("field, change", [
    ("area_m2", {"area_m2": "-3"}),
    ("owner", {"owner": {"name": "Wu Fang", "phone": "12"}}),
    ("usage", {"usage": "castle"}),
    ("code", {"code": "0020101001"}),  # no site 002
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(registry, field, change):
    payload = {**unit_payload("0010101003", "13700000000"), **change}
    with registry.rpc(HEAD_OFFICE) as rpc:  # may register units on any site
        with pytest.raises(ValidationFailed) as refused:
            rpc.registry.create_unit(payload)
        assert field in refused.value.extra["errors"]
        assert refused.value.status == 422
        listed = rpc.registry.list_units(SITE)
    assert sorted(unit["code"] for unit in listed["items"]) == [OWN_UNIT, NEIGHBOUR_UNIT]


def test_a_new_unit_is_announced_once_on_the_bus(registry, event_tap):
    tap = event_tap("registry", "unit_changed")
    with registry.rpc(DESK) as rpc:
        unit = rpc.registry.create_unit(unit_payload("0010101003", "13700000000", owner="Wu Fang"))

    # the fixture's two units are announced too, and may reach the tap's queue if their relay
    # publishes them after it was bound: this unit's announcement is the one counted
    [event] = [body for _, body in tap.collect(expected=1) if body["data"]["unit"] == "0010101003"]
    assert (event["event"], event["site"]) == ("registry.unit_changed", SITE)
    assert event["data"]["unit"] == "0010101003"
    assert event["data"]["change"] == "created"
    assert event["data"]["owner"]["person_id"] == unit["people"][0]["id"]
    assert event["data"]["owner"]["phone"] == "13700000000"

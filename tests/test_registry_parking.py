"""A parking rental reaches the unit's vehicle record (SPEC §8.2, §1): registry and frontdesk
running on the real broker, the rental taken and signed over RPC as the front desk does it. Once
the manager signs, the unit's vehicle shows the space and the contract number; a plate the unit
had no record of is recorded on it; ending the rental clears them."""
from datetime import date

import pytest

from tests.flows import SITE, eventually, site_payload, unit_payload
from tests.inprocess import identity

pytestmark = pytest.mark.integration

MANAGER = identity("manager", sub="mgr-wang")
DESK = identity("agent", sub="agent-li")
UNIT = "0010101001"
DOCUMENTS = ["driving_licence", "vehicle_licence", "insurance", "property_proof"]


@pytest.fixture
def desk(run_services):
    cluster = run_services("registry", "frontdesk")
    with cluster.rpc(MANAGER) as rpc:
        rpc.registry.create_site(site_payload(SITE))
    with cluster.rpc(DESK) as rpc:
        rpc.registry.create_unit(unit_payload(UNIT, "13812345678"))
    return cluster


def vehicles(cluster):
    with cluster.rpc(DESK) as rpc:
        return {v["plate"]: v for v in rpc.registry.list_vehicles(UNIT)["items"]}


def test_the_rented_space_shows_on_the_units_vehicle_until_the_rental_ends(desk):
    with desk.rpc(DESK) as rpc:
        owner = rpc.registry.get_unit(UNIT)["people"][0]["id"]
        rpc.registry.add_vehicle(UNIT, {"plate": "粤B12345", "person_id": owner,
                                        "licence_no": "440300123456", "model": "比亚迪"})
        space = rpc.frontdesk.create_parking_space({"site": SITE, "number": "B-017",
                                                    "kind": "underground", "monthly_fee": "300.00"})
        other_space = rpc.frontdesk.create_parking_space({"site": SITE, "number": "B-018",
                                                          "kind": "underground"})

        def rent(space_id, plate):
            return rpc.frontdesk.create_parking_rental({
                "space": space_id, "unit": UNIT, "person_id": owner, "documents": DOCUMENTS,
                "vehicle": {"plate": plate, "licence_no": "440300654321"},
                "start": "2026-12-01"})
        known = rent(space["id"], "粤B12345")
        unknown = rent(other_space["id"], "粤B54321")
    with desk.rpc(MANAGER) as rpc:
        signed = rpc.frontdesk.act("parking_rental", known["id"], "approve", {})
        second = rpc.frontdesk.act("parking_rental", unknown["id"], "approve", {})

    # the recorded vehicle keeps its own licence and model; only the space and contract change
    seen = eventually(lambda: vehicles(desk),
                      lambda v: v.get("粤B12345", {}).get("parking_space") and "粤B54321" in v,
                      what="registry recording both rentals")
    car = seen["粤B12345"]
    assert (car["parking_space"], car["rental_contract_no"]) == ("B-017", signed["contract_no"])
    assert (car["licence_no"], car["model"]) == ("440300123456", "比亚迪")
    # a plate the unit had no record of is recorded on it, for the person renting
    new = seen["粤B54321"]
    assert (new["parking_space"], new["rental_contract_no"]) == ("B-018", second["contract_no"])
    assert (new["person_id"], new["licence_no"], new["active"]) == (owner, "440300654321", True)
    assert len(seen) == 2

    with desk.rpc(DESK) as rpc:
        rpc.frontdesk.act("parking_rental", known["id"], "end", {"on": "2027-01-31"})
    ended = eventually(lambda: vehicles(desk), lambda v: v["粤B12345"]["parking_space"] is None,
                       what="registry clearing the ended rental")
    assert ended["粤B12345"]["rental_contract_no"] is None
    assert ended["粤B54321"]["parking_space"] == "B-018"      # the other rental goes on


def test_a_rental_plate_recorded_on_another_unit_is_left_there(desk):
    neighbour = "0010101002"
    with desk.rpc(DESK) as rpc:
        rpc.registry.create_unit(unit_payload(neighbour, "13987654321", owner="Zhang Min"))
        theirs = rpc.registry.get_unit(neighbour)["people"][0]["id"]
        owner = rpc.registry.get_unit(UNIT)["people"][0]["id"]
        rpc.registry.add_vehicle(neighbour, {"plate": "粤B77777", "person_id": theirs,
                                             "licence_no": "440300777777"})
        space = rpc.frontdesk.create_parking_space({"site": SITE, "number": "B-020",
                                                    "kind": "surface"})
        marker = rpc.frontdesk.create_parking_space({"site": SITE, "number": "B-021",
                                                     "kind": "surface"})
        rentals = [rpc.frontdesk.create_parking_rental({
            "space": space_id, "unit": UNIT, "person_id": owner, "documents": DOCUMENTS,
            "vehicle": {"plate": plate, "licence_no": "440300000001"},
            "start": date(2026, 12, 1).isoformat()})
            for space_id, plate in ((space["id"], "粤B77777"), (marker["id"], "粤B88888"))]
    with desk.rpc(MANAGER) as rpc:
        for rental in rentals:
            rpc.frontdesk.act("parking_rental", rental["id"], "approve", {})
    # the two events come in order on one queue: the second one recorded, the first was handled
    eventually(lambda: vehicles(desk), lambda v: "粤B88888" in v, what="the second rental")
    assert "粤B77777" not in vehicles(desk)
    with desk.rpc(DESK) as rpc:
        [kept] = rpc.registry.list_vehicles(neighbour)["items"]
    assert (kept["plate"], kept["parking_space"], kept["rental_contract_no"]) == ("粤B77777", None, None)

"""The seed's numbers (001 ch.5 §2, §3, §6) at their own times of day, through frontdesk and
registry running on the real broker with the services' clock set: a move-in arriving 09:00 and
started 09:20 breaches its 15-minute start deadline, once however often the sweep runs; a rental
whose applicant arrived 14:00 and which the manager signed 14:25 breaches its 20 minutes; an
activity published 2 days ahead is refused (409)."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common import entrypoints
from services.common.errors import Conflict
from tests.flows import SITE, site_payload, unit_payload
from tests.inprocess import identity

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
MANAGER = identity("manager", sub="mgr-wang")
DESK = identity("agent", sub="agent-li")
OPS = identity("ops_admin", sites=["*"], sub="ops")
UNIT = "0010101001"
NOW = [datetime(2026, 12, 1, 8, 0, tzinfo=SH)]


def at(hh, mm=0, day=1):
    return datetime(2026, 12, day, hh, mm, tzinfo=SH)


@pytest.fixture
def desk(run_services, monkeypatch):
    monkeypatch.setattr(entrypoints, "utcnow", lambda: NOW[0])
    NOW[0] = at(8)
    cluster = run_services("registry", "frontdesk")
    with cluster.rpc(MANAGER) as rpc:
        rpc.registry.create_site(site_payload(SITE))
    with cluster.rpc(DESK) as rpc:
        rpc.registry.create_unit(unit_payload(UNIT, "13812345678"))
        owner = rpc.registry.get_unit(UNIT)["people"][0]["id"]
    return cluster, owner


def sweep(cluster, when):
    with cluster.rpc(OPS) as rpc:
        return [(b["kind"], b["deadline"], datetime.fromisoformat(b["due_at"]))
                for b in rpc.frontdesk.sweep({"as_of": when.isoformat()})["breaches"]]


def test_a_move_in_arriving_0900_and_started_0920_breaches_its_start_once(desk):
    cluster, owner = desk
    NOW[0] = at(9, 0)
    with cluster.rpc(DESK) as rpc:
        move_in = rpc.frontdesk.create_move_in({"unit": UNIT, "person_id": owner})
        NOW[0] = at(9, 20)
        started = rpc.frontdesk.act("move_in", move_in["id"], "start", {})
    assert datetime.fromisoformat(started["deadlines"]["start"]) == at(9, 15)
    assert datetime.fromisoformat(started["deadlines"]["finish"]) == at(9, 50)
    NOW[0] = at(9, 21)
    assert sweep(cluster, at(9, 21)) == [("move_in", "start", at(9, 15))]
    assert sweep(cluster, at(9, 22)) == []
    assert sweep(cluster, at(9, 21)) == []
    with cluster.rpc(DESK) as rpc:
        assert [b["deadline"] for b in rpc.frontdesk.get_case("move_in", move_in["id"])["breaches"]] == ["start"]


def test_a_rental_arriving_1400_and_signed_1425_breaches_its_20_minutes(desk):
    cluster, owner = desk
    NOW[0] = at(14, 0)
    with cluster.rpc(DESK) as rpc:
        space = rpc.frontdesk.create_parking_space({"site": SITE, "number": "B-017",
                                                    "kind": "underground", "monthly_fee": "300.00"})
        rental = rpc.frontdesk.create_parking_rental({
            "space": space["id"], "unit": UNIT, "person_id": owner, "start": "2026-12-01",
            "vehicle": {"plate": "粤B12345", "licence_no": "440300123456"},
            "documents": ["driving_licence", "vehicle_licence", "insurance", "property_proof"]})
    assert datetime.fromisoformat(rental["deadlines"]["finish"]) == at(14, 20)
    NOW[0] = at(14, 25)
    with cluster.rpc(MANAGER) as rpc:
        assert rpc.frontdesk.act("parking_rental", rental["id"], "approve", {})["status"] == "active"
    NOW[0] = at(14, 26)
    assert sweep(cluster, at(14, 26)) == [("parking_rental", "finish", at(14, 20))]
    assert sweep(cluster, at(15, 0)) == []


def test_an_activity_published_two_days_ahead_is_refused(desk):
    cluster, _ = desk
    NOW[0] = at(10, 0)
    with cluster.rpc(DESK) as rpc:
        planned = rpc.frontdesk.create_activity({
            "site": SITE, "title": "中秋游园会", "purpose": "增进邻里交流", "budget": "2000.00",
            "starts_at": at(10, 0, day=3).isoformat(),
            "ends_at": (at(10, 0, day=3) + timedelta(hours=2)).isoformat()})
        with pytest.raises(Conflict) as refused:
            rpc.frontdesk.act("activity", planned["id"], "publish", {})
        assert datetime.fromisoformat(refused.value.extra["publish_by"]) == datetime(2026, 11, 30, 10, tzinfo=SH)
        assert rpc.frontdesk.get_case("activity", planned["id"])["status"] == "planned"

"""Customer care (SPEC §8.6) with the issue's dates: a key customer flagged in September 2026
and last contacted on 2026-12-31 is not breached at the end of 2026-Q4 but is at the end of
2027-Q1, once whatever replays the sweep, and the site manager gets one staff message; a
committee member with no contact in October is breached at the month's end; the not-yet-moved-in
list shows the oldest handover first with the owner's masked phone and the calls made.
registry and notifications in this process on the real broker, the clock set by the test."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.common import entrypoints
from services.common.errors import Forbidden, NotFound, ValidationFailed
from tests.flows import eventually, site_payload, unit_payload
from tests.inprocess import identity

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
SITE = "001"
AGENT = identity("agent", sub="agent-li")
MANAGER = identity("manager", sub="mgr-zhao")
OPS = identity("ops_admin", sites=("*",), sub="ops")
OTHER_AGENT = identity("agent", sites=("002",), sub="agent-wang")


@pytest.fixture
def clock(monkeypatch):
    now = {"at": datetime(2026, 9, 15, 10, 0, tzinfo=SH)}
    monkeypatch.setattr(entrypoints, "utcnow", lambda: now["at"])
    return now


@pytest.fixture
def services(run_services, clock):
    cluster = run_services("registry", "notifications")
    with cluster.rpc(MANAGER) as rpc:
        rpc.registry.create_site(site_payload(SITE))
    return cluster


def flag(rpc_agent, rpc_manager, unit, person_id, name):
    request = rpc_agent.registry.create_change_request({
        "unit": unit, "kind": "person", "target_id": person_id, "changes": {name: True},
        "reason": "业委会换届名单" if name == "committee_member" else "大业主"})
    assert request["affects_fees"] is False
    decided = rpc_manager.registry.decide_change_request(request["id"], "approve", {})
    assert decided["status"] == "applied"
    return decided


def owner_of(rpc, unit):
    return rpc.registry.get_unit(unit)["people"][0]["id"]


def sweep(services, instant):
    with services.rpc(OPS) as rpc:
        return rpc.registry.sweep({"as_of": instant})["contact_breaches"]


def test_a_key_customer_contacted_on_new_years_eve_is_breached_at_the_end_of_2027_q1(services, clock):
    with services.rpc(AGENT) as agent, services.rpc(MANAGER) as manager:
        agent.registry.create_unit(unit_payload("0011010101", "13900000101", owner="孙丽"))
        key = owner_of(agent, "0011010101")
        flag(agent, manager, "0011010101", key, "key_customer")
        assert agent.registry.list_people("0011010101")["items"][0]["key_customer"] is True
        clock["at"] = datetime(2026, 12, 31, 15, 0, tzinfo=SH)
        contact = agent.registry.record_contact(key, {"channel": "phone", "note": "新年问候，无诉求"})
        assert (contact["recorded_by"], contact["channel"]) == ("agent-li", "phone")
        assert datetime.fromisoformat(contact["at"]) == datetime(2026, 12, 31, 15, 0, tzinfo=SH)

    assert sweep(services, "2027-01-01T00:30:00+08:00") == 0      # 2026-Q4: contacted 12-31
    assert sweep(services, "2027-03-31T23:59:00+08:00") == 0      # Q1 not over yet
    assert sweep(services, "2027-04-01T00:30:00+08:00") == 1      # 2027-Q1: none
    assert sweep(services, "2027-04-01T00:30:00+08:00") == 0      # replayed: once
    assert sweep(services, "2027-04-01T09:00:00+08:00") == 0

    def alerts():
        with services.rpc(MANAGER) as rpc:
            return [m for m in rpc.notifications.list_messages({"site": SITE, "channel": "staff"})["items"]
                    if m["event"] == "registry.sla_breached"]
    found = eventually(alerts, what="the manager's alert")
    assert [m["recipient"] for m in found] == [f"role:manager@{SITE}"]
    assert "要害客户" in found[0]["body"] and "孙丽 2027-Q1" in found[0]["body"]
    with services.rpc(MANAGER) as rpc:
        assert rpc.registry.contact_breach_counts(SITE, {"month": "2027-03"}) == {
            "quarterly_contact": 1, "monthly_contact": 0}
        assert rpc.registry.contact_breach_counts(SITE, {"month": "2027-04"})["quarterly_contact"] == 0


def test_a_committee_member_not_contacted_in_october_is_breached_at_its_end(services, clock):
    with services.rpc(AGENT) as agent, services.rpc(MANAGER) as manager:
        agent.registry.create_unit(unit_payload("0011010102", "13900000102", owner="周强"))
        member = owner_of(agent, "0011010102")
        flag(agent, manager, "0011010102", member, "committee_member")
    # flagged on 15 September: September is not held against anyone
    assert sweep(services, "2026-10-01T08:00:00+08:00") == 0
    assert sweep(services, "2026-11-01T00:10:00+08:00") == 1
    with services.rpc(AGENT) as agent:
        clock["at"] = datetime(2026, 11, 20, 10, 0, tzinfo=SH)
        agent.registry.record_contact(member, {"channel": "meeting", "note": "业委会例会"})
    assert sweep(services, "2026-12-01T00:10:00+08:00") == 0      # November: the meeting
    assert sweep(services, "2026-12-01T00:10:00+08:00") == 0


def test_the_not_moved_in_list_and_the_calls_recorded(services, clock):
    with services.rpc(AGENT) as agent:
        for code, handover, phone in (("0011010201", "2026-06-30", "13812345678"),
                                      ("0011010202", "2025-12-31", "13812340002"),
                                      ("0011010203", None, "13812340003"),
                                      ("0011010204", "2026-03-01", "13812340004")):
            agent.registry.create_unit({**unit_payload(code, phone), "handover_date": handover})
        agent.registry.record_move_in("0011010204", {
            "moved_in_on": "2026-09-01", "assistant": {"name": "小王", "phone": "13700000000"}})
        owner = owner_of(agent, "0011010201")
        agent.registry.record_contact(owner, {"channel": "phone", "note": "预计十月装修后入住",
                                              "at": "2026-09-15T09:30:00+08:00"})
        first = agent.registry.not_moved_in(SITE, None, 1)
        assert [i["unit"] for i in first["items"]] == ["0011010202"]   # oldest handover first
        rest = agent.registry.not_moved_in(SITE, first["next_cursor"], 50)
        assert [i["unit"] for i in rest["items"]] == ["0011010201"] and rest["next_cursor"] is None
        row = rest["items"][0]
        assert row["owner"]["phone"] == "138****5678"
        assert [c["note"] for c in row["owner"]["contacts"]] == ["预计十月装修后入住"]
        assert row["days_since_handover"] == 77

        with pytest.raises(ValidationFailed) as refused:
            agent.registry.record_contact(owner, {"channel": "phone", "note": "x",
                                                  "at": "2026-09-16T09:30:00+08:00"})
        assert "at" in refused.value.extra["errors"]
        with pytest.raises(ValidationFailed) as refused:
            agent.registry.record_contact(owner, {"channel": "pigeon", "note": "x"})
        assert "channel" in refused.value.extra["errors"]
        with pytest.raises(NotFound):
            agent.registry.record_contact("nobody", {"channel": "phone", "note": "x"})
        with pytest.raises(ValidationFailed):
            agent.registry.not_moved_in(SITE, "forged.cursor", 50)
    with services.rpc(OTHER_AGENT) as other:
        with pytest.raises(Forbidden):
            other.registry.record_contact(owner, {"channel": "phone", "note": "x"})
        with pytest.raises(Forbidden):
            other.registry.not_moved_in(SITE, None, 50)

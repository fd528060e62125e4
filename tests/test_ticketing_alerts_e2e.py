"""Ticketing's alerts through the HTTP gateway, the whole system running as processes (the
README's walk-throughs, issue 17): an urgent repair received at 02:10 pages the technician on
call (SMS and task) and, with nobody on call, the supervisors; a B complaint's resolve deadline
is warned of an hour before and then breached, each once however often the sweep runs; a joint
complaint is told to head office, a second missed appointment to the supervisors, once each;
the handover list pages by cursor."""
from datetime import datetime, timedelta, timezone

import pytest

from tests.flows import eventually, site_payload, unit_payload

pytestmark = pytest.mark.e2e

SITE, UNIT = "001", "0010101001"
NIGHT_SHIFT = {"technician": "tech-wang", "phone": "13900001111",
               "from": "2026-11-23T18:00:00+08:00", "until": "2026-11-24T08:00:00+08:00"}
AT_0210 = "2026-11-24T02:10:00+08:00"
AT_0930 = "2026-11-24T09:30:00+08:00"      # the night shift is over, nobody took the day


@pytest.fixture(scope="module")
def desk(system):
    hq = system.client("hq", ["*"], sub="hq-zhao")
    assert hq.post("/sites", site_payload(SITE)).status_code == 201
    assert hq.post("/units", unit_payload(UNIT, "13812345678")).status_code == 201
    return {role: system.client(role, [SITE], sub=f"{role}-{SITE}") for role in (
        "agent", "supervisor", "manager", "technician")} | {"hq": hq}


def messages(desk, ticket_id, event, count):
    return eventually(lambda: [m for m in desk["agent"].get("/messages", ticket_id=ticket_id,
                                                           limit=200).json()["items"]
                               if m["event"] == event],
                      lambda found: len(found) >= count, what=f"{count} {event} messages")


def urgent_repair(desk, received_at):
    created = desk["agent"].post("/tickets", {
        "kind": "repair", "site": SITE, "unit": UNIT, "channel": "phone", "priority": "urgent",
        "description": "楼道水管爆裂", "received_at": received_at})
    assert created.status_code == 201, created.text
    return created.json()


def test_the_on_call_roster_is_set_by_a_supervisor_and_read_by_the_desk(desk):
    assert desk["agent"].put(f"/sites/{SITE}/on-call", NIGHT_SHIFT).status_code == 403
    backwards = desk["supervisor"].put(f"/sites/{SITE}/on-call",
                                       {**NIGHT_SHIFT, "until": NIGHT_SHIFT["from"]})
    assert backwards.status_code == 422 and "until" in backwards.json()["errors"]
    put = desk["supervisor"].put(f"/sites/{SITE}/on-call", NIGHT_SHIFT)
    assert put.status_code == 200, put.text
    assert (put.json()["technician"], put.json()["from"]) == ("tech-wang", "2026-11-23T10:00:00+00:00")
    # the roster lists shifts not over yet: this one is history, a shift next year is not
    ahead = {**NIGHT_SHIFT, "from": "2027-01-04T18:00:00+08:00", "until": "2027-01-05T08:00:00+08:00"}
    assert desk["supervisor"].put(f"/sites/{SITE}/on-call", ahead).status_code == 200
    roster = desk["agent"].get(f"/sites/{SITE}/on-call")
    assert roster.status_code == 200, roster.text
    assert [(s["technician"], s["until"]) for s in roster.json()["items"]] == [
        ("tech-wang", "2027-01-05T00:00:00+00:00")]


def test_an_urgent_repair_received_at_0210_pages_the_technician_on_call(desk):
    ticket = urgent_repair(desk, AT_0210)
    found = messages(desk, ticket["id"], "ticketing.on_call_paged", 2)
    assert sorted((m["channel"], m["recipient"], m["status"]) for m in found) == [
        ("sms", "13900001111", "sent"), ("staff", "tech-wang", "sent")]
    shown = desk["agent"].get(f"/tickets/{ticket['id']}").json()
    [page] = [step for step in shown["history"] if step["action"] == "page"]
    assert page["data"] == {"technician": "tech-wang"}


def test_with_nobody_on_call_the_supervisors_are_paged(desk):
    ticket = urgent_repair(desk, AT_0930)
    [message] = messages(desk, ticket["id"], "ticketing.on_call_paged", 1)
    assert (message["channel"], message["recipient"]) == ("staff", "role:supervisor@001")


def sweep(desk, at):
    answered = desk["hq"].post("/admin/sweeps/ticketing", {"as_of": at.isoformat()})
    assert answered.status_code == 200, answered.text
    return answered.json()


def test_a_b_complaints_resolve_deadline_is_warned_an_hour_before_then_breached_once(desk):
    received = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=5)
    created = desk["agent"].post("/tickets", {
        "kind": "complaint", "site": SITE, "unit": UNIT, "channel": "phone", "severity": "B",
        "category": "GC", "description": "楼上装修噪音", "received_at": received.isoformat()})
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    routed = desk["agent"].post(f"/tickets/{tid}/route", {"assignee": "supervisor-001"})
    assert routed.status_code == 200, routed.text
    resolve = datetime.fromisoformat(created.json()["deadlines"]["resolve"])
    assert resolve == received + timedelta(days=3)
    for at in (resolve - timedelta(minutes=61), resolve - timedelta(hours=1),
               resolve - timedelta(minutes=30), resolve - timedelta(minutes=1)):
        sweep(desk, at)
    warned = messages(desk, tid, "ticketing.sla_warning", 2)
    assert sorted(m["recipient"] for m in warned) == ["agent-001", "supervisor-001"]
    assert not [m for m in desk["agent"].get("/messages", ticket_id=tid).json()["items"]
                if m["event"] == "ticketing.sla_breached"]
    for at in (resolve, resolve + timedelta(minutes=1), resolve + timedelta(hours=5)):
        sweep(desk, at)
    breached = messages(desk, tid, "ticketing.sla_breached", 3)
    assert sorted(m["recipient"] for m in breached) == [
        "agent-001", "role:manager@001", "role:supervisor@001"]
    shown = desk["agent"].get(f"/tickets/{tid}").json()
    assert [(w["deadline"], w["warned_at"]) for w in shown["warnings"]] == [
        ("resolve", (resolve - timedelta(hours=1)).isoformat())]
    assert [b["deadline"] for b in shown["breaches"]] == ["resolve"]
    assert len(messages(desk, tid, "ticketing.sla_warning", 2)) == 2      # still once each


def test_a_joint_complaint_is_told_to_head_office_once(desk):
    created = desk["agent"].post("/tickets", {
        "kind": "complaint", "site": SITE, "unit": UNIT, "channel": "letter", "category": "GC",
        "complainants": 5, "description": "电梯三个月内停运六次"})
    assert created.status_code == 201, created.text
    assert created.json()["severity"] == "A"
    [told] = messages(desk, created.json()["id"], "ticketing.escalated", 1)
    assert (told["channel"], told["recipient"]) == ("staff", "role:hq")


def window(day):
    return {"start": f"2026-11-{day}T09:00:00+08:00", "end": f"2026-11-{day}T11:00:00+08:00"}


def test_a_second_missed_appointment_tells_the_supervisors_once(desk):
    created = desk["agent"].post("/tickets", {"kind": "repair", "site": SITE, "unit": UNIT,
                                              "channel": "phone", "description": "厨房下水堵塞"})
    tid = created.json()["id"]
    assert desk["agent"].post(f"/tickets/{tid}/dispatch", {"assignee": "tech-wang",
                                                          "appointment": window(24)}).status_code == 200
    for day in (25, 26, 27):
        moved = desk["agent"].post(f"/tickets/{tid}/reschedule",
                                   {"appointment": window(day), "missed": True, "reason": "技工未到"})
        assert moved.status_code == 200, moved.text
    [told] = messages(desk, tid, "ticketing.escalated", 1)
    assert told["recipient"] == "role:supervisor@001"


def test_the_handover_list_pages_by_cursor_without_repeating_a_ticket(desk):
    seen, cursor = [], None
    while True:
        page = desk["agent"].get(f"/sites/{SITE}/handover", limit=2,
                                 **({"cursor": cursor} if cursor else {})).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    listed = desk["agent"].get(f"/sites/{SITE}/handover", limit=200).json()["items"]
    assert seen == [t["id"] for t in listed] and len(seen) == len(set(seen)) >= 4
    due = [t["next_due_at"] for t in listed]
    assert due == sorted(due, key=lambda d: (d is None, d or ""))
    forged = desk["agent"].get(f"/sites/{SITE}/handover", cursor="WzEsMl0.abc")
    assert forged.status_code == 422

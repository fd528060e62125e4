"""The repair flow of SPEC §2.2 as a front desk and a technician live it."""
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common.errors import Forbidden, IllegalTransition
from services.ticketing.domain import SlaPolicy, Ticket

SH = ZoneInfo("Asia/Shanghai")
MONDAY_0900 = datetime(2026, 11, 23, 9, 0, tzinfo=SH)


def repair(now=MONDAY_0900, received_at=None, **kw):
    return Ticket.open_repair(
        id="t1", code="001-R-00001", site="001", timezone="Asia/Shanghai", channel="phone",
        description="厨房水管漏水", received_at=received_at or now, now=now,
        first_contact_owner="agent-li", by_role="agent", policy=SlaPolicy(),
        unit="0011020304", reporter={"name": "张三", "phone": "13812341234", "person_id": "p1"},
        **kw)


def walk(ticket, *steps, start=MONDAY_0900):
    at = start
    for action, data, role, minutes in steps:
        at = at + timedelta(minutes=minutes)
        ticket.apply(action, data, now=at, by=f"{role}-1", role=role)
    return at


def test_urgent_repair_must_be_dispatched_within_three_minutes():
    ticket = repair(priority="urgent")
    assert ticket.deadlines == {"dispatch": datetime(2026, 11, 23, 9, 3, tzinfo=SH).astimezone(
        ZoneInfo("UTC")).isoformat()}
    assert ticket.next_due_at == datetime(2026, 11, 23, 9, 3, tzinfo=SH)


def test_normal_repair_has_no_dispatch_deadline():
    assert repair().deadlines == {}


def test_completion_starts_the_24_hour_callback_and_raises_callback_due():
    ticket = repair()
    done = walk(ticket, ("dispatch", {"assignee": "tech-wang"}, "agent", 1),
                ("arrive", {}, "technician", 30),
                ("complete", {"result": "换了阀门"}, "technician", 45))
    assert ticket.status == "completed"
    assert ticket.callback_due_at == done + timedelta(hours=24)   # Tuesday 10:16
    (event, data), = ticket.pull_events()
    assert event == "ticketing.callback_due"
    assert data["first_contact_owner"] == "agent-li" and data["reporter"]["phone"] == "13812341234"
    assert ticket.pull_events() == []


def test_important_repair_gets_a_second_callback_within_a_month():
    ticket = repair(important=True)
    walk(ticket, ("dispatch", {"assignee": "t"}, "agent", 1), ("arrive", {}, "technician", 1),
         ("complete", {"result": "ok"}, "technician", 1))
    assert datetime.fromisoformat(ticket.deadlines["second_callback"]) == \
        datetime(2026, 12, 23, 9, 3, tzinfo=SH)


def test_close_needs_the_callback_first_and_409_names_what_is_allowed():
    ticket = repair()
    walk(ticket, ("dispatch", {"assignee": "t"}, "agent", 1), ("arrive", {}, "technician", 1),
         ("complete", {"result": "ok"}, "technician", 1))
    with pytest.raises(IllegalTransition) as refused:
        ticket.apply("close", {}, now=MONDAY_0900 + timedelta(hours=1), by="a", role="agent")
    assert refused.value.extra["allowed_actions"] == ["record-callback"]
    walk(ticket, ("record-callback", {"reached": True, "satisfaction": 5}, "agent", 120),
         ("close", {}, "agent", 1))
    assert ticket.status == "closed" and "callback" in ticket.deadlines_met
    assert ticket.next_due_at is None


def test_a_technician_cannot_dispatch_and_a_resident_cannot_complete():
    ticket = repair()
    with pytest.raises(Forbidden):
        ticket.apply("dispatch", {"assignee": "t"}, now=MONDAY_0900, by="x", role="technician")
    with pytest.raises(IllegalTransition) as refused:
        ticket.apply("arrive", {}, now=MONDAY_0900, by="x", role="technician")
    assert refused.value.extra["current_status"] == "received"


def test_second_missed_appointment_escalates_to_the_supervisor_once():
    ticket = repair()
    window = {"start": "2026-11-24T09:00:00+08:00", "end": "2026-11-24T11:00:00+08:00"}
    walk(ticket, ("dispatch", {"assignee": "t"}, "agent", 1),
         ("reschedule", {"appointment": window, "missed": True}, "agent", 60))
    assert not ticket.escalated
    walk(ticket, ("reschedule", {"appointment": window, "missed": True}, "agent", 120),
         ("reschedule", {"appointment": window, "missed": True}, "agent", 180))
    assert ticket.escalated and ticket.reschedules == 3
    assert [h["action"] for h in ticket.history].count("escalate") == 1


def test_appointments_as_the_schema_loads_them_are_kept_as_iso_instants():
    """The loaded payload carries datetimes; the ticket and its history are JSON columns."""
    ticket = repair()
    first = {"start": datetime(2026, 11, 24, 9, 0, tzinfo=SH),
             "end": datetime(2026, 11, 24, 11, 0, tzinfo=SH)}
    later = {"start": first["start"] + timedelta(days=1), "end": first["end"] + timedelta(days=1)}
    walk(ticket, ("dispatch", {"assignee": "t", "appointment": first}, "agent", 1))
    assert ticket.appointment == {"start": "2026-11-24T09:00:00+08:00",
                                  "end": "2026-11-24T11:00:00+08:00"}
    walk(ticket, ("reschedule", {"appointment": later, "missed": True, "reason": "技工未到"},
                  "agent", 60))
    assert ticket.appointment == {"start": "2026-11-25T09:00:00+08:00",
                                  "end": "2026-11-25T11:00:00+08:00"}
    assert ticket.history[-1]["data"]["appointment"] == ticket.appointment
    json.dumps([ticket.appointment, ticket.history])


def test_entry_more_than_two_hours_after_receipt_is_flagged_late():
    assert repair(received_at=MONDAY_0900 - timedelta(hours=2, minutes=1)).late_entry
    assert not repair(received_at=MONDAY_0900 - timedelta(hours=2)).late_entry


def test_received_in_the_future_is_refused():
    with pytest.raises(ValueError):
        repair(received_at=MONDAY_0900 + timedelta(minutes=5))

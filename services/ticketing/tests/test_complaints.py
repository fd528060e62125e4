"""Complaints (SPEC §2.1) as a front desk, a supervisor and a site manager live them, with the
seed's numbers across a weekend and the October national holiday."""
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.common.errors import Forbidden, IllegalTransition
from services.ticketing.domain import SlaPolicy, Ticket

SH = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")
FRIDAY_1600 = datetime(2026, 11, 20, 16, 0, tzinfo=SH)
EVE_OF_NATIONAL_DAY = datetime(2026, 9, 30, 17, 0, tzinfo=SH)


def complaint(now=FRIDAY_1600, severity="B", category="GC", serial=42, channel="phone",
              policy=SlaPolicy(), **kw):
    return Ticket.open_complaint(
        id="c1", site="001", serial=serial, timezone="Asia/Shanghai", channel=channel,
        description="电梯噪音", received_at=kw.pop("received_at", now), now=now,
        first_contact_owner="agent-li", by_role="agent", policy=policy, severity=severity,
        category=category, unit="0011020304",
        reporter={"name": "张三", "phone": "13812341234", "person_id": "p1"}, **kw)


def due(ticket, name):
    return datetime.fromisoformat(ticket.deadlines[name]).astimezone(SH)


def act(ticket, action, data=None, *, at, role="supervisor", by=None):
    return ticket.apply(action, data or {}, now=at, by=by or f"{role}-1", role=role)


def test_code_is_site_severity_category_and_serial():
    assert complaint().code == "001-B-GC-00042"
    assert complaint(severity="A", category="BJ", serial=7).code == "001-A-BJ-00007"


def test_b_complaint_is_routed_within_an_hour_and_resolved_within_three_calendar_days():
    ticket = complaint()              # Friday 16:00: the limit runs through the weekend
    assert due(ticket, "route") == datetime(2026, 11, 20, 17, 0, tzinfo=SH)
    assert due(ticket, "resolve") == datetime(2026, 11, 23, 16, 0, tzinfo=SH)   # Monday 16:00
    assert "acknowledge" not in ticket.deadlines and "answer" not in ticket.deadlines


def test_a_complaint_is_answered_within_two_days_and_resolved_within_ten():
    ticket = complaint(severity="A", now=EVE_OF_NATIONAL_DAY)
    assert due(ticket, "answer") == datetime(2026, 10, 2, 17, 0, tzinfo=SH)     # holiday or not
    assert due(ticket, "resolve") == datetime(2026, 10, 10, 17, 0, tzinfo=SH)


def test_c_complaint_takes_the_earlier_of_two_days_and_the_complainants_own_deadline():
    assert due(complaint(severity="C"), "resolve") == datetime(2026, 11, 22, 16, 0, tzinfo=SH)
    tomorrow_noon = datetime(2026, 11, 21, 12, 0, tzinfo=SH)
    assert due(complaint(severity="C", requested_deadline=tomorrow_noon), "resolve") == tomorrow_noon
    later = datetime(2026, 11, 30, 12, 0, tzinfo=SH)
    assert due(complaint(severity="C", requested_deadline=later), "resolve") == \
        datetime(2026, 11, 22, 16, 0, tzinfo=SH)


@pytest.mark.parametrize("channel", ["email", "letter", "web"])
def test_written_complaints_are_acknowledged_within_two_days(channel):
    ticket = complaint(channel=channel)
    assert due(ticket, "acknowledge") == datetime(2026, 11, 22, 16, 0, tzinfo=SH)
    act(ticket, "acknowledge", at=FRIDAY_1600 + timedelta(hours=3), role="agent")
    assert "acknowledge" in ticket.deadlines_met
    assert "acknowledge" not in ticket.allowed_actions("agent")


def test_joint_complaint_is_a_and_goes_to_head_office_the_same_day():
    ticket = complaint(severity="C", category="ZX", complainants=3)
    assert ticket.severity == "A" and ticket.code == "001-A-ZX-00042"
    assert ticket.escalated
    escalation, = [h for h in ticket.history if h["action"] == "escalate"]
    assert escalation["data"]["to"] == "hq" and escalation["at"] == FRIDAY_1600.isoformat()
    assert "answer" in ticket.deadlines


def test_invalid_complaint_is_closed_as_invalid_with_the_explanation():
    ticket = complaint()
    act(ticket, "assess", {"valid": False, "reason": "属业主间纠纷，已解释"}, at=FRIDAY_1600)
    assert ticket.status == "invalid" and ticket.next_due_at is None
    assert ticket.closed_at == FRIDAY_1600 and ticket.allowed_actions() == []


def test_full_flow_reply_callback_revisit_then_close():
    ticket = complaint()
    act(ticket, "route", {"assignee": "sup-chen"}, at=FRIDAY_1600 + timedelta(minutes=20), role="agent")
    assert ticket.status == "routed" and "route" in ticket.deadlines_met
    resolved_at = datetime(2026, 11, 22, 10, 0, tzinfo=SH)
    act(ticket, "resolve", {"result": "更换电梯导靴"}, at=resolved_at)
    assert ticket.status == "resolved"
    assert due(ticket, "reply") == datetime(2026, 11, 24, 10, 0, tzinfo=SH)
    assert due(ticket, "callback") == datetime(2026, 11, 25, 10, 0, tzinfo=SH)
    (event, data), = ticket.pull_events()
    assert event == "ticketing.callback_due" and data["kind"] == "complaint"
    with pytest.raises(IllegalTransition) as refused:
        act(ticket, "close", at=resolved_at, role="agent")
    assert refused.value.extra["allowed_actions"] == ["reply", "record-callback"]
    act(ticket, "reply", {"message": "已处理"}, at=resolved_at + timedelta(hours=2), role="agent")
    assert due(ticket, "revisit") == datetime(2026, 12, 22, 12, 0, tzinfo=SH)   # B: one month
    act(ticket, "record-callback", {"reached": True, "satisfaction": 5},
        at=resolved_at + timedelta(days=1), role="agent")
    act(ticket, "close", at=resolved_at + timedelta(days=1, hours=1), role="agent")
    assert ticket.status == "closed" and ticket.next_due_at == due(ticket, "revisit")
    act(ticket, "record-callback", {"reached": True, "satisfaction": 4},
        at=datetime(2026, 12, 10, 10, 0, tzinfo=SH), role="agent")
    assert "revisit" in ticket.deadlines_met and ticket.allowed_actions("agent") == []


def test_c_complaint_gets_no_revisit():
    ticket = complaint(severity="C")
    act(ticket, "route", {"assignee": "s"}, at=FRIDAY_1600, role="agent")
    act(ticket, "resolve", {"result": "ok"}, at=FRIDAY_1600 + timedelta(hours=5))
    act(ticket, "reply", {}, at=FRIDAY_1600 + timedelta(hours=6), role="agent")
    assert "revisit" not in ticket.deadlines


def test_extension_needs_a_managers_approval_and_records_the_new_deadline():
    ticket = complaint()
    act(ticket, "route", {"assignee": "s"}, at=FRIDAY_1600, role="agent")
    new = datetime(2026, 11, 27, 16, 0, tzinfo=SH)
    act(ticket, "request-extension", {"until": new, "reason": "等配件"}, at=FRIDAY_1600 + timedelta(days=2))
    assert due(ticket, "resolve") == datetime(2026, 11, 23, 16, 0, tzinfo=SH)   # not yet
    with pytest.raises(Forbidden):
        act(ticket, "approve-extension", {}, at=FRIDAY_1600 + timedelta(days=2), role="supervisor")
    act(ticket, "approve-extension", {"approved": True}, at=FRIDAY_1600 + timedelta(days=2, hours=1),
        role="manager", by="mgr-wu")
    assert due(ticket, "resolve") == new
    granted, = ticket.extension["granted"]
    assert granted["approved_by"] == "mgr-wu" and granted["until"] == new.astimezone(UTC).isoformat()


@pytest.mark.parametrize("role,amount,allowed", [
    ("supervisor", "1000.00", True), ("supervisor", "1000.01", False),
    ("quality_supervisor", "2000.00", True), ("quality_supervisor", "2500.00", False),
    ("manager", "8000.00", True), ("agent", "10.00", False),
])
def test_compensation_is_capped_by_role(role, amount, allowed):
    ticket = complaint()
    act(ticket, "route", {"assignee": "s"}, at=FRIDAY_1600, role="agent")
    resolve = lambda: act(ticket, "resolve", {"result": "赔偿", "compensation": Decimal(amount)},
                          at=FRIDAY_1600 + timedelta(hours=2), role=role)
    if allowed:
        resolve()
        assert ticket.compensation == amount and ticket.status == "resolved"
        assert any(h["action"] == "report-compensation" for h in ticket.history)
    else:
        with pytest.raises(Forbidden):
            resolve()
        assert ticket.status == "routed" and ticket.compensation is None


def test_a_resident_cannot_route_and_routing_twice_is_409():
    ticket = complaint()
    with pytest.raises(Forbidden):
        act(ticket, "route", {"assignee": "s"}, at=FRIDAY_1600, role="resident")
    act(ticket, "route", {"assignee": "s"}, at=FRIDAY_1600, role="agent")
    with pytest.raises(IllegalTransition) as refused:
        act(ticket, "route", {"assignee": "s"}, at=FRIDAY_1600, role="agent")
    assert "resolve" in refused.value.extra["allowed_actions"]


def test_policy_frozen_on_the_ticket_and_a_tightened_site_policy_applies():
    tight, loosened = SlaPolicy().tightened({"resolve_days_b": 2})
    assert loosened == {}
    assert due(complaint(policy=tight), "resolve") == datetime(2026, 11, 22, 16, 0, tzinfo=SH)
    assert complaint(policy=tight).policy["resolve_days_b"] == 2
    _, loosened = SlaPolicy().tightened({"resolve_days_b": 5})
    assert list(loosened) == ["resolve_days_b"]

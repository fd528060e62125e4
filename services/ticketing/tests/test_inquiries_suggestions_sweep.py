"""Inquiries and suggestions (SPEC §2.3), paid and common-area repairs, rework, and what the
sweep finds on a ticket (each breach once; the 30-day upgrade), across holidays."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common.errors import IllegalTransition
from services.ticketing.domain import SlaPolicy, Ticket, monthly_kpis
from services.ticketing.tests.test_complaints import complaint, due
from services.ticketing.tests.test_repairs import repair, walk

SH = ZoneInfo("Asia/Shanghai")
EVE_OF_NATIONAL_DAY = datetime(2026, 9, 30, 17, 0, tzinfo=SH)
COMMON = dict(site="001", timezone="Asia/Shanghai", channel="front_desk",
              first_contact_owner="agent-li", by_role="agent", policy=SlaPolicy())


def suggestion(now=EVE_OF_NATIONAL_DAY):
    return Ticket.open_suggestion(id="s1", code="001-S-00001", description="增加快递柜",
                                  received_at=now, now=now, **COMMON)


def inquiry(now=EVE_OF_NATIONAL_DAY, reply_by=None):
    return Ticket.open_inquiry(id="q1", code="001-Q-00001", description="物业费标准？",
                               received_at=now, now=now, reply_by=reply_by, **COMMON)


def test_suggestion_on_the_eve_of_the_national_day_forward_2h_reply_3_calendar_days():
    ticket = suggestion()
    assert due(ticket, "forward") == datetime(2026, 9, 30, 19, 0, tzinfo=SH)
    assert due(ticket, "reply") == datetime(2026, 10, 3, 17, 0, tzinfo=SH)   # holiday: days run on
    ticket.apply("forward", {"handler": "sup-chen"}, now=EVE_OF_NATIONAL_DAY + timedelta(hours=1),
                 by="agent-li", role="agent")
    with pytest.raises(IllegalTransition):
        ticket.apply("reply", {}, now=EVE_OF_NATIONAL_DAY, by="agent-li", role="agent")
    ticket.apply("decide", {"adopted": False, "reason": "场地不足", "committee_consulted": True},
                 now=datetime(2026, 10, 2, 10, 0, tzinfo=SH), by="mgr", role="manager")
    ticket.apply("reply", {"message": "感谢建议"}, now=datetime(2026, 10, 3, 9, 0, tzinfo=SH),
                 by="agent-li", role="agent")
    assert ticket.status == "closed" and set(ticket.deadlines_met) == {"forward", "reply"}
    assert ticket.details["decision"] == {"adopted": False, "reason": "场地不足",
                                          "committee_consulted": True}


def test_inquiry_answered_at_once_or_by_the_agreed_time():
    at_once = inquiry()
    assert at_once.deadlines == {}
    at_once.apply("answer", {"answer": "2.5 元/m²"}, now=EVE_OF_NATIONAL_DAY, by="a", role="agent")
    assert at_once.status == "closed"
    agreed = datetime(2026, 10, 8, 10, 0, tzinfo=SH)
    later = inquiry(reply_by=agreed)
    assert due(later, "answer") == agreed and later.next_due_at == agreed


def test_paid_in_home_repair_raises_the_service_charge_on_completion():
    ticket = repair(scope="in_home", fee="120.00")
    walk(ticket, ("dispatch", {"assignee": "t"}, "agent", 1), ("arrive", {}, "technician", 10),
         ("complete", {"result": "换龙头", "fee": "150.00"}, "technician", 30))
    charges = [data for event, data in ticket.pull_events() if event == "ticketing.service_charge"]
    assert [(c["unit"], str(c["amount"])) for c in charges] == [("0011020304", "150.00")]
    assert "reply" not in ticket.deadlines           # in-home: no same-day report-back


def test_common_area_repair_is_reported_back_the_same_day():
    ticket = repair()
    done = walk(ticket, ("dispatch", {"assignee": "t"}, "agent", 1), ("arrive", {}, "technician", 1),
                ("complete", {"result": "ok"}, "technician", 1))
    assert due(ticket, "reply") == datetime(2026, 11, 23, 23, 59, 59, tzinfo=SH)
    assert [e for e, _ in ticket.pull_events()] == ["ticketing.callback_due"]
    assert "reply" not in ticket.allowed_actions("agent")
    ticket.apply("reply", {"message": "已告知"}, now=done, by="t", role="technician")
    assert "reply" in ticket.deadlines_met


def test_reopened_within_30_days_counts_as_rework_later_does_not():
    ticket = repair()
    fixed_and_closed = (("dispatch", {"assignee": "t"}, "agent", 1), ("arrive", {}, "technician", 1),
                        ("complete", {"result": "ok"}, "technician", 1),
                        ("record-callback", {"reached": True, "satisfaction": 5}, "agent", 60),
                        ("close", {}, "agent", 1))
    walk(ticket, *fixed_and_closed)
    completed = ticket.completed_at
    with pytest.raises(IllegalTransition):          # a closed repair is reopened, not re-dispatched
        ticket.apply("dispatch", {"assignee": "t"}, now=completed, by="a", role="agent")
    ticket.apply("reopen", {"reason": "又漏了"}, now=completed + timedelta(days=30), by="a", role="agent")
    assert ticket.status == "received" and ticket.rework == 1 and ticket.closed_at is None
    walk(ticket, *fixed_and_closed, start=completed + timedelta(days=31))
    ticket.apply("reopen", {"reason": "again"}, now=ticket.completed_at + timedelta(days=31),
                 by="a", role="agent")
    assert ticket.reopened == 2 and ticket.rework == 1


def test_sweep_finds_each_overdue_deadline_once_and_moves_on():
    ticket = complaint()                         # B, Friday 16:00: route 17:00, resolve Monday 16:00
    # the route deadline's warning, an hour before it, is due at once
    assert ticket.sweep_due_at == datetime(2026, 11, 20, 16, 0, tzinfo=SH)
    saturday = datetime(2026, 11, 21, 9, 0, tzinfo=SH)
    overdue, upgrade = ticket.sweep(saturday)
    assert [name for name, _ in overdue] == ["route"] and not upgrade
    for name, due_at in overdue:
        ticket.record_breach(name, due_at, saturday)
    ticket.refresh_due()
    assert ticket.sweep(saturday) == ([], False)
    assert ticket.sweep_due_at == datetime(2026, 11, 23, 15, 0, tzinfo=SH)     # resolve's warning
    assert ticket.next_due_at == datetime(2026, 11, 20, 17, 0, tzinfo=SH)      # still overdue
    (event, data), = ticket.pull_events()
    assert event == "ticketing.sla_breached" and data["escalate_to"] == ["supervisor", "manager"]
    assert ticket.breaches == [{"deadline": "route",
                                "due_at": "2026-11-20T09:00:00+00:00",
                                "detected_at": "2026-11-21T01:00:00+00:00"}]


def test_valid_b_complaint_open_30_days_is_upgraded_to_a_once():
    ticket = complaint(now=EVE_OF_NATIONAL_DAY)
    thirty_days = datetime(2026, 10, 30, 17, 0, tzinfo=SH)
    assert ticket.sweep(thirty_days - timedelta(seconds=1))[1] is False
    overdue, upgrade = ticket.sweep(thirty_days)
    assert upgrade
    ticket.upgrade(thirty_days)
    ticket.refresh_due()
    assert ticket.severity == "A" and ticket.sweep(thirty_days)[1] is False
    assert ticket.escalate_to == ["supervisor", "manager", "hq"]


def test_monthly_kpis_with_households():
    good = complaint()
    good.callback = {"reached": True, "satisfaction": 5}
    good.deadlines = {**good.deadlines, "callback": "2026-11-25T02:00:00+00:00"}
    late = complaint()
    late.breaches = [{"deadline": "route"}]
    invalid = complaint()
    invalid.valid = False
    report = monthly_kpis([good, late, invalid], 200, site="001", month="2026-11")
    assert report["complaint_rate"] == 0.015 and report["valid_complaint_rate"] == 0.01
    assert report["complaint_timeliness_rate"] == round(2 / 3, 4)
    assert report["callback_rate"] == 1.0 and report["satisfaction_rate"] == 1.0

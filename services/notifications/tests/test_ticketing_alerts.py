"""Ticketing's alerts as notifications makes them (SPEC §2, §5): the on-call page of an urgent
repair (an SMS sent at once at night, whatever the quiet hours, and a staff task; the
supervisors when nobody is on call), the warning before a deadline (超时预警) and the escalations
(a joint complaint to head office, a second missed appointment to the supervisors)."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.contracts import envelope, load_event
from services.notifications import domain
from services.notifications.providers import Delivery, StoreOnly
from services.notifications.rendering import render
from services.notifications.storage import Message

SH = ZoneInfo("Asia/Shanghai")
NIGHT = datetime(2026, 11, 24, 2, 10, tzinfo=SH)           # 02:10, inside the quiet hours


class Phones(StoreOnly):
    """An SMS provider that reaches phones (quiet hours apply to it), recording what it sent."""
    sends_out = True

    def __init__(self):
        self.sent = []

    def deliver(self, message):
        self.sent.append((message.recipient, message.body))
        return "sent"


def paged(on_call={"technician": "tech-wang", "phone": "13900001111"}):
    return envelope("ticketing.on_call_paged", {
        "ticket_id": "t-0008", "code": "001-R-00008", "unit": "0011020304",
        "description": "楼道水管爆裂", "received_at": NIGHT, "on_call": on_call,
        "reporter": {"name": "张三", "phone": "13812341234"}, "timezone": "Asia/Shanghai"},
        site="001", occurred_at=NIGHT)


def stored(engine):
    with Session(engine) as session:
        return session.execute(select(Message.channel, Message.recipient, Message.status,
                                      Message.event).order_by(Message.channel)).all()


def test_an_urgent_repair_at_0210_texts_the_technician_on_call_at_once(notifications, notifications_db):
    phones = Phones()
    delivery = Delivery({**{c: StoreOnly() for c in domain.CHANNELS}, "sms": phones})
    body = paged()
    for _ in range(2):                                  # delivered twice: paged once
        notifications(now=NIGHT.astimezone(timezone.utc), delivery=delivery).on_on_call_paged(body)
    assert stored(notifications_db) == [
        ("sms", "13900001111", "sent", "ticketing.on_call_paged"),
        ("staff", "tech-wang", "sent", "ticketing.on_call_paged")]
    [(phone, text)] = phones.sent                       # once, at 02:10, not held until 08:00
    assert phone == "13900001111" and "001-R-00008" in text and "2026-11-24 02:10" in text


def test_with_nobody_on_call_the_sites_supervisors_are_paged():
    [draft] = domain.on_call_messages(load_event(paged(on_call=None)))
    assert (draft.channel, draft.recipient) == ("staff", "role:supervisor@001")
    assert "无人值班" in render(draft).body


def warning(**changes):
    data = {"ticket_id": "t1", "code": "001-B-GC-00042", "kind": "complaint", "deadline": "resolve",
            "due_at": datetime(2026, 11, 23, 16, 0, tzinfo=SH),
            "warned_at": datetime(2026, 11, 23, 15, 0, tzinfo=SH), "severity": "B",
            "unit": "0011020304", "first_contact_owner": "agent-li", "assignee": "sup-chen",
            **changes}
    return load_event(envelope("ticketing.sla_warning", data, site="001",
                               occurred_at=data["warned_at"]))


def test_a_warning_goes_to_the_assignee_and_the_first_contact_owner_in_site_time():
    drafts = domain.sla_warning_messages(warning())
    assert [(d.channel, d.recipient) for d in drafts] == [("staff", "sup-chen"), ("staff", "agent-li")]
    assert "处理时限为 2026-11-23 16:00" in render(drafts[0]).body


def test_a_warning_to_one_person_who_is_both_is_one_message():
    assert [d.recipient for d in domain.sla_warning_messages(warning(assignee="agent-li"))] == ["agent-li"]
    assert [d.recipient for d in domain.sla_warning_messages(warning(assignee=None))] == ["agent-li"]


def escalated(**changes):
    at = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    data = {"ticket_id": "t2", "code": "001-A-GC-00043", "kind": "complaint", "to": "hq",
            "reason": "joint_complaint", "unit": "0011020304", "severity": "A", "complainants": 5,
            "first_contact_owner": "agent-li", "description": "电梯长期故障", "escalated_at": at,
            **changes}
    return load_event(envelope("ticketing.escalated", data, site="001", occurred_at=at))


def test_a_joint_complaint_is_told_to_head_office_the_same_day():
    [draft] = domain.escalation_messages(escalated())
    assert (draft.channel, draft.recipient) == ("staff", "role:hq")
    assert "联名投诉（5 人）" in render(draft).body and "2026-11-23 10:00 上报总部" in render(draft).body


def test_a_second_missed_appointment_is_told_to_the_sites_supervisors():
    [draft] = domain.escalation_messages(escalated(
        to="supervisor", reason="missed_appointments", kind="repair", code="001-R-00009",
        severity=None, complainants=None, missed_appointments=2))
    assert draft.recipient == "role:supervisor@001" and "第 2 次预约未履约" in render(draft).body

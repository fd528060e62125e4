"""What a completed repair or resolved complaint sends (SPEC §2.2, §5), as the staff member and
the resident read it."""
import pytest

from services.common.contracts import load_event
from services.notifications.domain import callback_due_messages
from services.notifications.providers import delivery_from
from services.notifications.rendering import render
from services.notifications.tests.support import REPORTER, callback_due_body


def messages(**changes):
    drafts = callback_due_messages(load_event(callback_due_body(**changes)))
    return [(d.channel, d.recipient, d.template, render(d).body) for d in drafts]


def test_a_completed_repair_makes_one_staff_task_and_one_satisfaction_sms():
    sent = messages()
    assert [(channel, recipient, template) for channel, recipient, template, _ in sent] == [
        ("staff", "agent-li", "callback_task"),
        ("sms", "13812341234", "satisfaction_survey"),
    ]


def test_the_sms_names_the_ticket_and_asks_for_a_1_to_5_rating():
    (_, _, _, sms), = [m for m in messages() if m[0] == "sms"]
    assert "001-R-00007" in sms
    assert "1–5" in sms and "满意" in sms
    assert sms.startswith("张三您好")
    assert "2026-11-23 10:00" in sms           # completion in site time, not UTC 02:00


def test_the_staff_task_says_whom_to_call_and_by_when():
    (_, _, _, task), = [m for m in messages() if m[0] == "staff"]
    assert "报修单 001-R-00007（房号 0011020304）" in task
    assert "2026-11-24 10:00 前回访 张三（13812341234）" in task   # 24 hours after completion
    assert "厨房水管漏水" in task
    assert "第二次回访" not in task


def test_without_a_phone_only_the_staff_task_is_made():
    sent = messages(reporter={**REPORTER, "phone": None})
    assert [(channel, recipient) for channel, recipient, _, _ in sent] == [("staff", "agent-li")]


def test_a_ticket_without_a_reporter_still_gets_its_callback_task():
    (channel, _, _, task), = messages(reporter=None)
    assert channel == "staff"
    assert "前回访报事人，" in task


def test_the_sms_is_addressed_to_the_reporter_as_a_person():
    drafts = callback_due_messages(load_event(callback_due_body()))
    assert [(d.channel, d.person_id) for d in drafts] == [("staff", None), ("sms", "p-zhang")]


def test_a_resolved_complaint_is_called_a_complaint():
    for _, _, _, body in messages(kind="complaint"):
        assert "投诉" in body and "报修" not in body


def test_an_important_repair_reminds_staff_of_the_second_callback():
    (_, _, _, task), _ = messages(important=True)
    assert "一个月内还需第二次回访" in task


def test_the_store_only_provider_reports_every_channel_sent():
    delivery = delivery_from({"sms_provider": "store"})
    for channel in ("sms", "email", "in_app", "letter", "staff"):
        assert delivery.deliver(type("M", (), {"channel": channel})()) == "sent"


def test_an_unknown_provider_is_refused_when_the_service_starts():
    with pytest.raises(ValueError, match="sms provider 'carrier-pigeon'"):
        delivery_from({"sms_provider": "carrier-pigeon"})

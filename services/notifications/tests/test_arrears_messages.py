"""Arrears ladder steps (SPEC §4, §5): an SMS reminder to the owner, the written payment notice
and the lawyer's letter as letters for the unit, a task for the site's legal adviser; each stating
the amount and the late fee."""
from datetime import date, datetime, timezone

import pytest

from services.common.contracts import envelope, load_event
from services.notifications.domain import arrears_messages
from services.notifications.rendering import render

OWNER = {"name": "张三", "phone": "13812341234", "person_id": "p1"}


def step(name, owner=OWNER, **changes):
    data = {"unit": "0011020304", "step": name, "stage": "reminder", "months": 3,
            "amount_due": "442.50", "late_fee": "10.02", "taken_on": date(2026, 4, 16),
            "owner": owner, **changes}
    return load_event(envelope("billing.arrears_escalated", data, site="001",
                               occurred_at=datetime(2026, 4, 16, 1, tzinfo=timezone.utc)))


@pytest.mark.parametrize("name,channel,recipient,template", [
    ("reminder", "sms", "13812341234", "arrears_reminder"),
    ("payment_notice", "letter", "unit:0011020304", "payment_notice"),
    ("lawyer_letter", "letter", "unit:0011020304", "lawyer_letter"),
    ("legal_adviser_informed", "staff", "role:legal@001", "arrears_legal_task"),
    ("lawsuit_referral", "staff", "role:legal@001", "arrears_legal_task"),
])
def test_each_step_makes_one_message_stating_the_amount_and_the_late_fee(name, channel, recipient, template):
    [draft] = arrears_messages(step(name))
    assert (draft.channel, draft.recipient, draft.template) == (channel, recipient, template)
    text = render(draft).body
    assert "442.50" in text and "10.02" in text and "0011020304" in text


def test_transfer_watch_sends_nothing_and_a_reminder_needs_a_phone():
    assert arrears_messages(step("transfer_watch")) == []
    assert arrears_messages(step("reminder", owner=None)) == []


@pytest.mark.parametrize("name", ["reminder", "payment_notice"])
def test_the_reminder_and_the_notice_state_the_sites_own_late_fee_rate(name):
    [draft] = arrears_messages(step(name, late_fee_daily_rate="0.0005"))
    assert "按日 0.05% 计" in render(draft).body
    [default] = arrears_messages(step(name))          # a sender before the field: SPEC's default
    assert "按日 0.03% 计" in render(default).body

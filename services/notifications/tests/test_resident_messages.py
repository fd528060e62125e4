"""What residents receive beyond callbacks and arrears (SPEC §5, seed 000): monthly bills by SMS
and email, receipts, the renovation fee notice, the welcome after move-in with the assistant's
mobile, a new assistant, and the warranty reminder a month before it ends. Every template renders
from its sample."""
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from services.common.contracts import envelope, load_event
from services.notifications import domain, rendering
from services.notifications.rendering import render

OWNER = {"name": "张三", "phone": "13812341234", "email": "zhang@example.com", "person_id": "p-zhang"}
AT = datetime(2026, 11, 1, 1, 0, tzinfo=timezone.utc)


def event(name, data):
    return load_event(envelope(name, data, site="001", occurred_at=AT))


def bodies(drafts):
    return {d.channel: render(d) for d in drafts}


def invoice(kind="monthly", owner=OWNER):
    return event("billing.invoice_issued", {
        "invoice_id": "i-1", "unit": "0011020304", "period": "2026-11", "kind": kind,
        "amount": Decimal("268.50"), "due_date": date(2026, 11, 30),
        "items": [{"fee": "management", "amount": Decimal("268.50"), "description": ""}],
        "owner": owner})


def test_the_monthly_bill_goes_by_sms_and_email_with_amount_and_due_date():
    drafts = domain.bill_messages(invoice())
    assert [(d.channel, d.recipient, d.template, d.person_id) for d in drafts] == [
        ("sms", "13812341234", "bill", "p-zhang"), ("email", "zhang@example.com", "bill", "p-zhang")]
    sms, mail = bodies(drafts)["sms"], bodies(drafts)["email"]
    assert "2026-11 月账单 268.50 元" in sms.body and "2026-11-30 前缴纳" in sms.body
    assert mail.subject == "房号 0011020304 2026-11 月物业费账单：268.50 元"
    assert "物业管理费 268.50 元" in mail.body and "缴费截止日：2026-11-30" in mail.body


def test_an_owner_without_email_gets_the_bill_by_sms_only():
    drafts = domain.bill_messages(invoice(owner={**OWNER, "email": None}))
    assert [d.channel for d in drafts] == ["sms"]


def test_renovation_fees_are_told_by_the_fee_notice_not_as_a_bill():
    assert domain.bill_messages(invoice(kind="renovation")) == []
    notice = event("renovation.fees_due", {
        "renovation_id": "r-1", "unit": "0011020304", "due_date": date(2026, 11, 25),
        "items": [{"fee": "renovation_management", "amount": Decimal("442.50")},
                  {"fee": "renovation_deposit", "amount": Decimal("2000.00")},
                  {"fee": "debris_removal", "amount": Decimal("300.00")}],
        "applicant": {"name": "张三", "phone": "13812341234"}})
    [draft] = domain.renovation_fee_notice_messages(notice)
    text = render(draft).body
    assert draft.recipient == "13812341234"
    assert "装修管理费 442.50 元；装修保证金 2000.00 元；建筑垃圾清运费 300.00 元，合计 2742.50 元" in text
    assert "2026-11-25 前" in text


def test_a_settled_invoice_sends_the_receipt_number():
    paid = event("billing.invoice_paid", {
        "invoice_id": "i-1", "unit": "0011020304", "period": "2026-11", "amount": Decimal("268.50"),
        "paid_at": datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc), "receipt_number": "R001-000042",
        "owner": OWNER})
    [draft] = domain.receipt_messages(paid)
    assert "收据号 R001-000042" in render(draft).body and "2026-11-20 10:30" in render(draft).body


def unit_changed(change, **data):
    return event("registry.unit_changed", {"unit": "0011020304", "change": change, "owner": OWNER,
                                           **data})


def test_move_in_welcomes_the_owner_with_the_assistants_mobile():
    [draft] = domain.unit_changed_messages(unit_changed(
        "moved_in", assistant={"name": "李娜", "phone": "13900001111"}, moved_in_on=date(2026, 11, 1)))
    assert (draft.channel, draft.recipient, draft.template) == ("sms", "13812341234", "welcome")
    assert "客户事务助理是 李娜，手机 13900001111" in render(draft).body


def test_a_new_assistant_is_introduced_and_other_changes_say_nothing():
    [draft] = domain.unit_changed_messages(unit_changed(
        "assistant_changed", assistant={"name": "王芳", "phone": "13900002222"}))
    assert "王芳" in render(draft).body and "13900002222" in render(draft).body
    assert domain.unit_changed_messages(unit_changed("updated")) == []
    assert domain.unit_changed_messages(unit_changed("moved_in")) == []     # no assistant to name


@pytest.mark.parametrize("warranty_until,today,due", [
    (date(2027, 6, 30), date(2027, 5, 29), False),
    (date(2027, 6, 30), date(2027, 5, 30), True),      # a month before
    (date(2027, 6, 30), date(2027, 6, 30), True),      # a missed day is caught up until the end
    (date(2027, 6, 30), date(2027, 7, 1), False),      # never after
    (date(2027, 3, 31), date(2027, 2, 28), True),      # no 31 February: the month's last day
])
def test_the_warranty_reminder_is_due_a_month_before_the_warranty_ends(warranty_until, today, due):
    assert domain.warranty_reminder_due(warranty_until, today) is due


def test_the_warranty_reminder_names_the_day_it_ends():
    [draft] = domain.warranty_messages("0011020304", OWNER, date(2027, 6, 30))
    assert "保修期将于 2027-06-30 届满" in render(draft).body


@pytest.mark.parametrize("template", rendering.templates(), ids=lambda t: f"{t['name']}.{t['channel']}")
def test_every_template_renders_from_its_sample(template):
    assert template["event"], "samples.json names the event each template serves"
    rendered = rendering.preview(template["name"], template["channel"])
    assert rendered.body and "{{" not in rendered.body
    assert (rendered.subject is not None) is (template["channel"] == "email")


def test_a_preview_without_a_field_the_template_needs_names_it():
    with pytest.raises(rendering.MissingField, match="assistant_phone"):
        rendering.render_template("welcome", "sms", {"unit": "0011020304", "owner_name": None,
                                                     "assistant_name": "李娜"})

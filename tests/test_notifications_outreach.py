"""Notifications beyond delivery (issue 6), on SQLite and PostgreSQL without a broker: letters
printed and tracked until posted, the warranty-expiry sweep (once per unit, on any number of
replicas), the welcome after move-in, bills and receipts, a dead message given another try, and
templates listed and previewed."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.contracts import envelope
from services.common.errors import Forbidden, IllegalTransition, NotFound, ValidationFailed
from services.notifications import domain
from services.notifications.domain import Draft
from services.notifications.sinks import SmsEndpoint
from services.notifications.storage import Message, Warranty
from services.notifications.tests.support import NOW, ZHANG, callback_due_body
from bench.harness import free_port

AGENT = {"sub": "agent-li", "role": "agent", "sites": ["001"]}
AGENT_002 = {"sub": "agent-wu", "role": "agent", "sites": ["002"]}
OPS = {"sub": "ops-1", "role": "ops_admin", "sites": ["*"]}
OWNER = {"name": "张三", "phone": "13812341234", "email": None, "person_id": "p-zhang"}


def body(name, data, occurred_at=NOW, event_id=None):
    return envelope(name, data, site="001", occurred_at=occurred_at, event_id=event_id)


def messages(db, **where):
    with Session(db) as session:
        stmt = select(Message).order_by(Message.created_at, Message.channel)
        for name, value in where.items():
            stmt = stmt.where(getattr(Message, name) == value)
        return session.scalars(stmt).all()


# -- letters ---------------------------------------------------------------------------------

def arrears_step(notifications, step, stage, months, amount_due, late_fee):
    notifications().on_arrears_escalated(body("billing.arrears_escalated", {
        "unit": "0011020304", "step": step, "stage": stage, "months": months,
        "amount_due": Decimal(amount_due), "late_fee": Decimal(late_fee),
        "taken_on": date(2026, 11, 23), "owner": OWNER}))


def lawyer_letter(notifications):
    arrears_step(notifications, "lawyer_letter", "lawyer_letter", 7, "1876.00", "120.40")
    [letter] = notifications(identity=AGENT).list_messages({"channel": "letter"})["items"]
    return letter


def test_a_lawyers_letter_waits_to_be_posted_then_is_sent_with_its_express_number(notifications):
    letter = lawyer_letter(notifications)
    assert (letter["status"], letter["attempts"], letter["recipient"]) == ("awaiting_post", 0, "unit:0011020304")
    waiting = notifications(identity=AGENT).list_messages({"status": "awaiting_post"})["items"]
    assert [m["id"] for m in waiting] == [letter["id"]]

    page = notifications(identity=AGENT).letter_document(letter["id"])
    assert page["content_type"].startswith("text/html")
    assert "<h1>律师函（EMS 特快专递）</h1>" in page["body"]
    assert "1876.00" in page["body"] and "2026-11-23" in page["body"]

    posted = notifications(identity=AGENT, now=NOW + timedelta(hours=3)).mark_posted(
        letter["id"], {"tracking_number": "EMS1234567890"})
    assert (posted["status"], posted["posted_by"], posted["tracking_number"]) == (
        "sent", "agent-li", "EMS1234567890")
    assert posted["posted_at"] == (NOW + timedelta(hours=3)).isoformat()
    assert notifications(identity=AGENT).list_messages({"status": "awaiting_post"})["items"] == []

    with pytest.raises(IllegalTransition) as twice:
        notifications(identity=AGENT).mark_posted(letter["id"], {})
    assert twice.value.extra["current_status"] == "sent"


def test_letters_are_for_their_sites_staff_only(notifications):
    letter = lawyer_letter(notifications)
    with pytest.raises(NotFound):
        notifications(identity=AGENT_002).letter_document(letter["id"])
    with pytest.raises(NotFound):
        notifications(identity=AGENT_002).mark_posted(letter["id"], {})
    with pytest.raises(Forbidden):
        notifications(identity=ZHANG).mark_posted(letter["id"], {})
    assert notifications(identity=AGENT).get_message(letter["id"])["status"] == "awaiting_post"


def test_an_sms_cannot_be_marked_posted(notifications):
    arrears_step(notifications, "reminder", "reminder", 2, "536.00", "9.65")
    [sms] = notifications(identity=AGENT).list_messages({"channel": "sms"})["items"]
    with pytest.raises(IllegalTransition):
        notifications(identity=AGENT).mark_posted(sms["id"], {})


# -- move-in and the warranty ----------------------------------------------------------------

WARRANTY_END = date(2027, 6, 30)
SHANGHAI_MIDNIGHT = timezone(timedelta(hours=8))


def moved_in(notifications, warranty_until=WARRANTY_END, occurred_at=NOW, change="moved_in"):
    notifications().on_unit_changed(body("registry.unit_changed", {
        "unit": "0011020304", "change": change, "owner": OWNER, "timezone": "Asia/Shanghai",
        "handover_date": date(2025, 6, 30), "warranty_until": warranty_until,
        "moved_in_on": date(2026, 11, 23), "assistant": {"name": "李娜", "phone": "13900001111"},
    }, occurred_at=occurred_at))


def sweep(notifications, day, hour=9):
    as_of = datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI_MIDNIGHT)
    return notifications(identity=OPS).sweep({"as_of": as_of.isoformat()})


def test_move_in_sends_the_welcome_with_the_assistants_mobile(notifications, notifications_db):
    moved_in(notifications)
    [welcome] = messages(notifications_db)
    assert (welcome.channel, welcome.recipient, welcome.template, welcome.status) == (
        "sms", "13812341234", "welcome", "sent")
    assert "李娜，手机 13900001111" in welcome.body
    assert welcome.event == "registry.unit_changed"


def test_the_owner_is_reminded_once_a_month_before_the_warranty_ends(notifications, notifications_db):
    moved_in(notifications)
    assert sweep(notifications, date(2027, 5, 29))["warranty_reminders"] == 0
    assert sweep(notifications, date(2027, 5, 30))["warranty_reminders"] == 1
    for day in (date(2027, 5, 30), date(2027, 6, 1), date(2027, 6, 30)):
        assert sweep(notifications, day, hour=23)["warranty_reminders"] == 0
    [reminder] = messages(notifications_db, template="warranty_expiry")
    assert (reminder.recipient, reminder.event, reminder.status) == (
        "13812341234", "notifications.warranty_expiring", "sent")
    assert "2027-06-30 届满" in reminder.body


def test_a_warranty_extended_after_its_reminder_is_reminded_again_for_its_new_end(notifications, notifications_db):
    moved_in(notifications)
    sweep(notifications, date(2027, 5, 30))
    moved_in(notifications, warranty_until=date(2028, 6, 30), occurred_at=NOW + timedelta(days=200),
             change="updated")
    assert sweep(notifications, date(2027, 6, 15))["warranty_reminders"] == 0
    assert sweep(notifications, date(2028, 5, 30))["warranty_reminders"] == 1
    assert len(messages(notifications_db, template="warranty_expiry")) == 2


def test_a_late_redelivered_unit_event_does_not_roll_the_warranty_back(notifications, notifications_db):
    moved_in(notifications, warranty_until=date(2028, 6, 30), occurred_at=NOW + timedelta(days=1),
             change="updated")
    moved_in(notifications, warranty_until=WARRANTY_END, occurred_at=NOW)       # older, arrives late
    assert sweep(notifications, date(2027, 5, 30))["warranty_reminders"] == 0


def test_two_replicas_sweeping_the_same_day_remind_once(notifications, notifications_db):
    """The second replica finds the unit not yet marked (it read before the first committed):
    the message's unique key keeps one reminder."""
    moved_in(notifications)
    first, second = notifications(identity=OPS, now=NOW), notifications(identity=OPS, now=NOW)
    as_of = datetime(2027, 5, 30, 9, tzinfo=SHANGHAI_MIDNIGHT).isoformat()
    with Session(notifications_db) as session:
        assert session.get(Warranty, "0011020304").reminded_for is None
    first.sweep({"as_of": as_of})
    with Session(notifications_db) as session:
        session.get(Warranty, "0011020304").reminded_for = None      # as the other replica saw it
        session.commit()
    assert second.sweep({"as_of": as_of})["warranty_reminders"] == 0
    assert len(messages(notifications_db, template="warranty_expiry")) == 1


def test_a_deactivated_unit_gets_no_warranty_reminder(notifications):
    moved_in(notifications)
    moved_in(notifications, occurred_at=NOW + timedelta(days=1), change="deactivated")
    assert sweep(notifications, date(2027, 5, 30))["warranty_reminders"] == 0


def test_residents_may_not_run_the_sweep(notifications):
    with pytest.raises(Forbidden):
        notifications(identity=ZHANG).sweep({})


# -- bills and receipts ----------------------------------------------------------------------

def test_a_monthly_bill_reaches_the_owner_once_however_often_it_is_delivered(notifications, notifications_db):
    issued = body("billing.invoice_issued", {
        "invoice_id": "i-1", "unit": "0011020304", "period": "2026-11", "kind": "monthly",
        "amount": Decimal("268.50"), "due_date": date(2026, 11, 30),
        "items": [{"fee": "management", "amount": Decimal("268.50")}],
        "owner": {**OWNER, "email": "zhang@example.com"}})
    notifications().on_invoice_issued(issued)
    notifications().on_invoice_issued(issued)
    assert [(m.channel, m.template) for m in messages(notifications_db)] == [("email", "bill"), ("sms", "bill")]
    [mail] = messages(notifications_db, channel="email")
    assert mail.subject == "房号 0011020304 2026-11 月物业费账单：268.50 元"
    [mine] = notifications(identity=ZHANG).list_messages({"event": "billing.invoice_issued",
                                                         "channel": "sms"})["items"]
    assert "268.50" in mine["body"]


# -- a dead message given one more try -------------------------------------------------------

def test_after_an_outage_an_operator_gives_a_dead_sms_one_more_try(notifications, notifications_db):
    port = free_port()
    settings = {"sms_provider": "http", "sms_http_url": f"http://127.0.0.1:{port}/send",
                "retry_base_seconds": 1, "max_attempts": 2, "sms_http_timeout_seconds": 2}
    moved_in_body = body("registry.unit_changed", {
        "unit": "0011020304", "change": "moved_in", "owner": OWNER,
        "assistant": {"name": "李娜", "phone": "13900001111"}})
    notifications(settings).on_unit_changed(moved_in_body)
    notifications(settings).deliver(as_of=NOW + timedelta(hours=1))
    [dead] = messages(notifications_db)
    assert (dead.status, dead.attempts) == ("dead", 2)
    with pytest.raises(Forbidden):
        notifications(settings, identity=AGENT).retry(dead.id)

    endpoint = SmsEndpoint(port=port).start()
    try:
        retried = notifications(settings, identity=OPS, now=NOW + timedelta(hours=2)).retry(dead.id)
        assert (retried["status"], retried["attempts"]) == ("sent", 3)
        assert [(a["ok"], a["error"] is None) for a in retried["attempt_log"]] == [
            (False, False), (False, False), (True, True)]
        notifications(settings).deliver(as_of=NOW + timedelta(days=1))
        assert len(endpoint.received) == 1
        with pytest.raises(IllegalTransition):
            notifications(settings, identity=OPS).retry(dead.id)
    finally:
        endpoint.close()


def test_a_failed_retry_leaves_the_message_dead_at_once(notifications, notifications_db):
    settings = {"sms_provider": "http", "sms_http_url": f"http://127.0.0.1:{free_port()}/send",
                "retry_base_seconds": 1, "max_attempts": 1, "sms_http_timeout_seconds": 2}
    notifications(settings).on_unit_changed(body("registry.unit_changed", {
        "unit": "0011020304", "change": "moved_in", "owner": OWNER,
        "assistant": {"name": "李娜", "phone": "13900001111"}}))
    [dead] = messages(notifications_db)
    assert notifications(settings, identity=OPS).retry(dead.id)["status"] == "dead"


# -- templates -------------------------------------------------------------------------------

def test_templates_are_listed_and_previewed_with_the_context_given(notifications):
    listed = notifications(identity=AGENT).list_templates()["items"]
    assert {"name": "satisfaction_survey", "channel": "email", "event": "ticketing.callback_due"} in [
        {k: t[k] for k in ("name", "channel", "event")} for t in listed]
    preview = notifications(identity=AGENT).preview_template(
        "welcome", "sms", {"context": {"owner_name": "王五", "assistant_phone": "13700000000"}})
    assert preview["body"].startswith("王五您好") and "13700000000" in preview["body"]
    assert preview["subject"] is None


def test_a_preview_of_an_unknown_template_is_404_and_a_missing_field_names_it(notifications):
    with pytest.raises(NotFound):
        notifications(identity=AGENT).preview_template("welcome", "letter", {})
    with pytest.raises(ValidationFailed) as caught:
        notifications(identity=AGENT).preview_template("welcome", "sms", {"context": []})
    assert "context" in caught.value.extra["errors"]


def test_a_template_the_event_cannot_fill_leaves_a_dead_letter_not_a_requeued_event(
        notifications, notifications_db, monkeypatch):
    monkeypatch.setattr(domain, "callback_due_messages",
                        lambda envelope: [Draft("sms", "13812341234", "welcome", {"unit": "0011020304"})])
    notifications().on_callback_due(callback_due_body())          # handled, not raised
    [dead] = messages(notifications_db)
    assert (dead.status, dead.attempts, dead.body) == ("dead", 0, "")
    assert "welcome.sms" in dead.last_error and "owner_name" in dead.last_error
    with pytest.raises(IllegalTransition):
        notifications(identity=OPS).retry(dead.id)

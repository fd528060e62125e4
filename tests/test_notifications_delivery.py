"""Notifications delivery (issue 6): retries with backoff and a dead letter, every attempt logged,
a real HTTP SMS gateway and a real SMTP server (both local, started here), SMS quiet hours and
opt-outs. On SQLite and PostgreSQL, without a broker."""
import email
import email.policy
from datetime import date, datetime, time, timedelta, timezone

import eventlet
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.contracts import envelope
from services.common.errors import Forbidden
from services.common.metrics import registry_for
from services.notifications import domain
from services.notifications.domain import first_attempt_at
from services.notifications.providers import delivery_from
from services.notifications.service import NotificationsService
from services.notifications.sinks import SmsEndpoint, SmtpMailbox
from services.notifications.storage import DeliveryAttempt, Message, OptOut
from services.notifications.tests.support import NEIGHBOUR, NOW, REPORTER, ZHANG, callback_due_body
from bench.harness import free_port


def sms_row(notifications_db):
    with Session(notifications_db) as session:
        return session.scalars(select(Message).where(Message.channel == "sms")).one()


def attempts_of(notifications_db, message_id):
    with Session(notifications_db) as session:
        return [(a.ok, a.error is None) for a in session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.message_id == message_id)
            .order_by(DeliveryAttempt.id))]


# -- an SMS gateway over HTTP ----------------------------------------------------------------

@pytest.fixture
def gateway():
    made = []

    def make(failures):
        made.append(SmsEndpoint(failures=failures).start())
        return made[-1]

    yield make
    for g in made:
        g.close()


def test_an_sms_fails_twice_then_goes_out_exactly_once(notifications, notifications_db, gateway):
    sms_gateway = gateway(failures=2)
    settings = {"sms_provider": "http", "sms_http_url": sms_gateway.url, "retry_base_seconds": 30}
    notifications(settings).on_callback_due(callback_due_body())
    first = sms_row(notifications_db)
    assert (first.status, first.attempts) == ("failed", 1)
    assert first.next_attempt_at == NOW + timedelta(seconds=30)
    assert "503" in first.last_error

    assert notifications(settings).deliver(as_of=(NOW + timedelta(seconds=10)).isoformat())["failed"] == 0
    assert notifications(settings).deliver(as_of=NOW + timedelta(seconds=30))["failed"] == 1
    second = sms_row(notifications_db)
    assert (second.status, second.attempts) == ("failed", 2)
    assert second.next_attempt_at == NOW + timedelta(seconds=30 + 60)   # doubled

    assert notifications(settings).deliver(as_of=NOW + timedelta(seconds=90))["sent"] == 1
    sent = sms_row(notifications_db)
    assert (sent.status, sent.attempts, sent.next_attempt_at, sent.last_error) == ("sent", 3, None, None)
    for days in (1, 2, 30):
        notifications(settings).deliver(as_of=NOW + timedelta(days=days))
    assert len(sms_gateway.received) == 3
    assert sms_gateway.received[-1]["to"] == "13812341234"
    assert sms_gateway.received[-1]["text"] == sent.body
    # every try carries the message's id, for a gateway that de-duplicates
    assert {r["id"] for r in sms_gateway.received} == {sent.id}
    assert attempts_of(notifications_db, sent.id) == [(False, False), (False, False), (True, True)]


def deliveries(outcome):
    """propdesk_notification_deliveries_total{channel="sms"} as /metrics shows it."""
    return registry_for("notifications").get_sample_value(
        "propdesk_notification_deliveries_total", {"channel": "sms", "outcome": outcome}) or 0


def test_an_sms_gateway_down_for_good_leaves_the_message_dead(notifications, notifications_db):
    settings = {"sms_provider": "http", "sms_http_url": f"http://127.0.0.1:{free_port()}/send",
                "retry_base_seconds": 1, "max_attempts": 5, "sms_http_timeout_seconds": 2}
    failed_before, dead_before = deliveries("failed"), deliveries("dead")
    notifications(settings).on_callback_due(callback_due_body())
    for hours in range(1, 10):
        notifications(settings).deliver(as_of=NOW + timedelta(hours=hours))
    assert (deliveries("failed") - failed_before, deliveries("dead") - dead_before) == (4, 1)
    dead = sms_row(notifications_db)
    assert (dead.status, dead.attempts, dead.next_attempt_at) == ("dead", 5, None)
    assert "unreachable" in dead.last_error
    assert attempts_of(notifications_db, dead.id) == [(False, False)] * 5
    listed = {m["channel"]: m for m in notifications(settings).list_messages()["items"]}
    assert (listed["sms"]["status"], listed["sms"]["attempts"]) == ("dead", 5)
    assert listed["staff"]["status"] == "sent"


def test_a_claimed_message_is_not_tried_by_another_sweep(notifications, notifications_db):
    """While one replica delivers a message (its lease), another sweep leaves it alone."""
    inner = []

    class Reentrant:
        def deliver(self, message):
            if message.channel == "sms":
                inner.append(notifications(delivery=delivery_from({})).deliver(as_of=NOW + timedelta(minutes=1)))
            return "sent"

    delivery = delivery_from({})
    delivery.by_channel["sms"] = Reentrant()
    notifications(delivery=delivery).on_callback_due(callback_due_body())
    assert inner == [{"sent": 0, "failed": 0, "dead": 0, "skipped": 0}]
    assert (sms_row(notifications_db).status, sms_row(notifications_db).attempts) == ("sent", 1)


# -- email over SMTP -------------------------------------------------------------------------

def test_a_completed_repair_mails_the_reporter_through_smtp_once(notifications, notifications_db):
    mailbox = SmtpMailbox().start()
    try:
        settings = {"email_provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": mailbox.port,
                    "smtp_from": "desk@propdesk.test"}
        reporter = {**REPORTER, "email": "zhang@example.com"}
        notifications(settings).on_callback_due(callback_due_body(reporter=reporter))
        [raw] = mailbox.messages
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert mail["To"] == "zhang@example.com" and mail["From"] == "desk@propdesk.test"
        assert mail["Subject"] == "您的报修（单号 001-R-00007）已处理完毕，请为本次服务评分"
        assert mail["Message-ID"].endswith("@propdesk.test>")
        text = mail.get_content()
        assert "2026-11-23 10:00 处理完毕" in text and "2026-11-24 10:00 前" in text
        with Session(notifications_db) as session:
            stored = session.scalars(select(Message).where(Message.channel == "email")).one()
        assert (stored.status, stored.attempts, stored.subject) == ("sent", 1, mail["Subject"])
        assert text.strip() == stored.body
        assert notifications(settings).deliver(as_of=NOW + timedelta(days=1))["sent"] == 0
        assert len(mailbox.messages) == 1
    finally:
        mailbox.close()


def test_an_smtp_server_that_is_down_is_retried_then_takes_the_mail(notifications, notifications_db):
    port = free_port()
    settings = {"email_provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port,
                "retry_base_seconds": 30}
    notifications(settings).on_callback_due(callback_due_body(reporter={**REPORTER, "email": "zhang@example.com"}))
    with Session(notifications_db) as session:
        failed = session.scalars(select(Message).where(Message.channel == "email")).one()
    assert (failed.status, failed.attempts) == ("failed", 1) and "smtp" in failed.last_error
    mailbox = SmtpMailbox(port=port).start()
    try:
        assert notifications(settings).deliver(as_of=NOW + timedelta(seconds=30))["sent"] == 1
        assert len(mailbox.messages) == 1
    finally:
        mailbox.close()


# -- quiet hours and opt-outs ----------------------------------------------------------------

SH_2300 = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)      # 23:00 in Shanghai
SH_0800_NEXT = datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("now,expected", [
    (datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc), datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)),
    (SH_2300, SH_0800_NEXT),
    (datetime(2026, 11, 23, 19, 30, tzinfo=timezone.utc), SH_0800_NEXT),  # 03:30 local
    (datetime(2026, 11, 23, 13, 59, tzinfo=timezone.utc), datetime(2026, 11, 23, 13, 59, tzinfo=timezone.utc)),
    (datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc), SH_0800_NEXT),                   # 22:00 local
    (datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc), SH_0800_NEXT),                    # 08:00 local
])
def test_quiet_hours_hold_a_non_urgent_sms_until_eight_local(now, expected):
    assert first_attempt_at("sms", False, now) == expected
    assert first_attempt_at("sms", True, now) == now
    assert first_attempt_at("email", False, now) == now


def test_quiet_hours_follow_the_sites_time_zone():
    # 23:00 UTC is 07:00 in Shanghai (held until 08:00) but 23:00 in London (held overnight)
    late = datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc)
    assert first_attempt_at("sms", False, late) == datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)
    assert first_attempt_at("sms", False, late, "Europe/London") == datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)


class Recording:
    sends_out = True

    def __init__(self):
        self.sent = []

    def deliver(self, message):
        self.sent.append(message.recipient)
        return "sent"


def recording_sms():
    sms, delivery = Recording(), delivery_from({})
    delivery.by_channel["sms"] = sms
    return sms, delivery


def test_an_sms_made_at_night_waits_for_the_morning_sweep(notifications, notifications_db):
    sms, delivery = recording_sms()
    notifications(now=SH_2300, delivery=delivery).on_callback_due(callback_due_body())
    held = sms_row(notifications_db)
    assert (held.status, held.attempts, held.next_attempt_at) == ("pending", 0, SH_0800_NEXT)
    assert notifications(delivery=delivery).deliver(as_of=SH_0800_NEXT - timedelta(minutes=1))["sent"] == 0
    assert sms.sent == []
    assert notifications(delivery=delivery).deliver(as_of=SH_0800_NEXT)["sent"] == 1
    assert (sms_row(notifications_db).status, sms_row(notifications_db).attempts) == ("sent", 1)
    assert sms.sent == ["13812341234"]


def test_an_urgent_repair_is_texted_at_night(notifications, notifications_db):
    sms, delivery = recording_sms()
    notifications(now=SH_2300, delivery=delivery).on_callback_due(callback_due_body(priority="urgent"))
    assert (sms_row(notifications_db).status, sms_row(notifications_db).attempts) == ("sent", 1)
    assert sms.sent == ["13812341234"]


def test_the_store_only_provider_holds_nothing_back_at_night(notifications, notifications_db):
    """Nothing reaches a phone through it, so the record is complete at once, at any hour."""
    notifications(now=SH_2300).on_callback_due(callback_due_body())
    assert (sms_row(notifications_db).status, sms_row(notifications_db).attempts) == ("sent", 1)


def test_an_opted_out_resident_gets_no_sms_and_the_message_is_skipped(notifications, notifications_db):
    assert notifications(identity=ZHANG).set_opt_out("p-zhang", "sms", True)["opted_out"] is True
    notifications(identity=ZHANG).set_opt_out("p-zhang", "sms", True)          # twice is the same
    sms = Recording()
    delivery = delivery_from({})
    delivery.by_channel["sms"] = sms
    notifications(delivery=delivery).on_callback_due(callback_due_body())
    notifications(delivery=delivery).deliver(as_of=NOW + timedelta(days=3))
    skipped = sms_row(notifications_db)
    assert (skipped.status, skipped.attempts, skipped.next_attempt_at) == ("skipped", 0, None)
    assert sms.sent == []
    assert attempts_of(notifications_db, skipped.id) == []
    [listed] = notifications(identity=ZHANG).list_messages()["items"]
    assert listed["status"] == "skipped"

    notifications(identity=ZHANG).set_opt_out("p-zhang", "sms", False)
    notifications(delivery=delivery).on_callback_due(callback_due_body())
    assert sms.sent == ["13812341234"]


def test_a_resident_may_not_opt_someone_else_out(notifications):
    with pytest.raises(Forbidden):
        notifications(identity=NEIGHBOUR).set_opt_out("p-zhang", "sms", True)


def test_residents_may_not_drive_the_sweep(notifications):
    with pytest.raises(Forbidden):
        notifications(identity=ZHANG).deliver()


def test_retry_backoff_doubles_from_the_base():
    assert [domain.retry_at(NOW, n, 30) - NOW for n in range(3)] == [
        timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]


@pytest.mark.parametrize("as_of", ["yesterday", "2026-11-23T10:00:00", 42])
def test_a_bad_as_of_names_its_field(notifications, as_of):
    from services.common.errors import ValidationFailed
    with pytest.raises(ValidationFailed) as caught:
        notifications().deliver(as_of=as_of)
    assert "as_of" in caught.value.extra["errors"]


@pytest.mark.parametrize("setting,expected", [
    ("22:00-08:00", domain.QUIET_HOURS), ("21:30-07:00", (time(21, 30), time(7, 0))),
    ("off", None), (False, None),
])
def test_quiet_hours_are_an_operators_setting(setting, expected):
    assert delivery_from({"sms_quiet_hours": setting}).quiet_hours == expected


def test_malformed_quiet_hours_stop_the_service_at_start_up():
    with pytest.raises(ValueError, match="HH:MM-HH:MM or off"):
        delivery_from({"sms_quiet_hours": "late"})


def test_with_quiet_hours_off_a_night_sms_goes_at_once(notifications, notifications_db):
    sms, delivery = recording_sms()
    delivery.quiet_hours = None
    notifications(now=SH_2300, delivery=delivery).on_callback_due(callback_due_body())
    assert sms.sent == ["13812341234"]


def test_quiet_hours_within_one_day_hold_until_their_end():
    noon_to_two = (time(12, 0), time(14, 0))
    at_one = datetime(2026, 11, 23, 5, 0, tzinfo=timezone.utc)            # 13:00 Shanghai
    assert first_attempt_at("sms", False, at_one, quiet=noon_to_two) == datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)
    assert first_attempt_at("sms", False, SH_2300, quiet=noon_to_two) == SH_2300


def test_one_sweep_drains_a_backlog_larger_than_its_batch(notifications, notifications_db, monkeypatch):
    """Five SMS held overnight, a batch of two: the morning sweep sends all five, each once."""
    monkeypatch.setattr(NotificationsService, "SWEEP_BATCH", 2)
    sms, delivery = recording_sms()
    for _ in range(5):
        notifications(now=SH_2300, delivery=delivery).on_callback_due(callback_due_body())
    assert notifications(delivery=delivery).deliver(as_of=SH_0800_NEXT)["sent"] == 5
    assert sms.sent == ["13812341234"] * 5
    assert notifications(delivery=delivery).deliver(as_of=SH_0800_NEXT)["sent"] == 0


def test_a_residents_inbox_shows_their_buildings_lobby_notices_and_not_anothers(notifications):
    """GET /messages?channel=in_app for a resident: their own messages and the in-app notices of
    the buildings of their units (the gateway names their units, from registry)."""
    for unit, event_id in (("0011020399", "permit-1"), ("0011030101", "permit-2")):
        notifications().on_permit_issued(envelope("renovation.permit_issued", {
            "renovation_id": event_id, "unit": unit, "permit_number": f"P-{event_id}",
            "valid_from": date(2026, 11, 24), "valid_until": date(2026, 12, 24)},
            site="001", occurred_at=NOW, event_id=event_id))
    in_building = {**ZHANG, "units": ["0011020304"]}
    [notice] = notifications(identity=in_building).list_messages({"channel": "in_app"})["items"]
    assert (notice["recipient"], notice["template"]) == ("building:001102", "renovation_lobby_notice")
    assert notifications(identity=ZHANG).list_messages({"channel": "in_app"})["items"] == []


class SlowGateway:
    """An SMS gateway that takes a while to answer, counting the sends in flight at once."""
    sends_out = True

    def __init__(self, failing=(), seconds=0.01):
        self.in_flight = self.most_at_once = 0
        self.failing, self.sent, self.seconds = set(failing), [], seconds

    def deliver(self, message):
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            eventlet.sleep(self.seconds)
            if message.recipient in self.failing:
                raise ConnectionError("gateway hung up")
            self.sent.append(message.id)
        finally:
            self.in_flight -= 1


def test_a_sweep_sends_at_once_no_more_than_its_bound_and_logs_every_attempt(
        notifications, notifications_db):
    """Twelve SMS held overnight, four sends at a time, one gateway failure: the morning
    sweep overlaps the sends but never beyond four, and each attempt is on record."""
    gateway, delivery = SlowGateway(failing={"13900000011"}), delivery_from({"sends_at_once": 4})
    delivery.by_channel["sms"] = gateway
    for n in range(12):
        reporter = {**REPORTER, "phone": f"139000000{n:02d}", "person_id": f"p-{n}"}
        notifications(now=SH_2300, delivery=delivery).on_callback_due(
            callback_due_body(reporter=reporter, ticket_id=f"t-{n}"))
    assert notifications(delivery=delivery).deliver(as_of=SH_0800_NEXT) == {
        "sent": 11, "failed": 1, "dead": 0, "skipped": 0}
    assert gateway.most_at_once == 4
    with Session(notifications_db) as session:
        messages = session.scalars(select(Message).where(Message.channel == "sms")).all()
        assert sorted((m.status, m.attempts) for m in messages) == [("failed", 1)] + [("sent", 1)] * 11
        assert sorted(gateway.sent) == sorted(m.id for m in messages if m.status == "sent")
        for m in messages:
            assert attempts_of(notifications_db, m.id) == [(m.status == "sent", m.status == "sent")]


def test_a_backlog_claimed_in_small_batches_keeps_its_sends_overlapping_and_sends_each_once(
        notifications, notifications_db, monkeypatch):
    """Nine SMS held overnight, one of their people opted out since, claimed three at a time
    and sent four at a time: the sends overlap across batches (four at once, though no batch
    holds four), the opted-out one is skipped, and each of the others is sent once with its
    one attempt on record."""
    monkeypatch.setattr(NotificationsService, "SWEEP_BATCH", 3)
    # slow enough that the next batch is claimed while the first sends are still out
    gateway, delivery = SlowGateway(seconds=0.3), delivery_from({"sends_at_once": 4})
    delivery.by_channel["sms"] = gateway
    for n in range(9):
        reporter = {**REPORTER, "phone": f"139000000{n:02d}", "person_id": f"p-{n}"}
        notifications(now=SH_2300, delivery=delivery).on_callback_due(
            callback_due_body(reporter=reporter, ticket_id=f"t-{n}"))
    with Session(notifications_db) as session:
        session.add(OptOut(person_id="p-4", channel="sms", created_at=SH_2300))
        session.commit()
    assert notifications(delivery=delivery).deliver(as_of=SH_0800_NEXT) == {
        "sent": 8, "failed": 0, "dead": 0, "skipped": 1}
    assert gateway.most_at_once == 4
    with Session(notifications_db) as session:
        messages = session.scalars(select(Message).where(Message.channel == "sms")).all()
    assert sorted(gateway.sent) == sorted(m.id for m in messages if m.status == "sent")
    assert [m.recipient for m in messages if m.status == "skipped"] == ["13900000004"]
    for m in messages:
        assert attempts_of(notifications_db, m.id) == ([] if m.status == "skipped" else [(True, True)])
    assert notifications(delivery=delivery).deliver(as_of=SH_0800_NEXT)["sent"] == 0
